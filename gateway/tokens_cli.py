"""`marketgate tokens`: the admin API's operator tokens.

    tokens create   issue a token for some products, read or write; shown once
    tokens list     every token, without secrets
    tokens revoke   revoke a token at once
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.clock import SystemClock
from gateway.settings import ConfigError, Settings
from tenants import admin
from tenants.admin_models import ApiToken, TokenScope
from tenants.database import Database
from tenants.migrate import upgrade

ResultT = TypeVar("ResultT")


def _settings() -> Settings:
    try:
        return Settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:  # pydantic's ValidationError names the setting at fault
        raise click.ClickException(f"invalid settings: {exc}") from exc


def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[ResultT]]) -> ResultT:
    if settings.auto_migrate:
        upgrade(settings.database_url)

    async def run() -> ResultT:
        database = Database(settings.database_url)
        try:
            async with database.transaction() as session:
                return await work(session)
        finally:
            await database.dispose()

    return asyncio.run(run())


def _describe(token: ApiToken) -> str:
    state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
    return f"{token.id:>5}  {token.name:<24} {token.scope.value:<6} {','.join(token.products):<32} {state}"


@click.group()
def tokens() -> None:
    """Operator tokens of the admin API (GraphQL at /graphql): Authorization: Bearer <token>."""


@tokens.command("create")
@click.option("--name", required=True, help="Who or what uses the token; shown in the audit log.")
@click.option("--products", required=True, help="Comma-separated product slugs the token may reach.")
@click.option(
    "--scope",
    type=click.Choice([scope.value for scope in TokenScope]),
    default=TokenScope.READ.value,
    show_default=True,
    help="read: see; write: also retry jobs and reconcile instances.",
)
def tokens_create(name: str, products: str, scope: str) -> None:
    """Issue a token and print it once on standard output; only its SHA-256 is stored."""
    settings = _settings()
    slugs = sorted({slug.strip() for slug in products.split(",") if slug.strip()})
    unknown = [slug for slug in slugs if slug not in settings.products]
    if not slugs or unknown:
        known = ", ".join(sorted(settings.products)) or "none configured"
        raise click.BadParameter(f"unknown product(s) {', '.join(unknown)}; known: {known}", param_hint="--products")

    async def create(session: AsyncSession) -> admin.IssuedToken:
        return await admin.create_api_token(
            session,
            caller=admin.Caller.system(),
            name=name,
            products=slugs,
            scope=TokenScope(scope),
            now=SystemClock().now(),
        )

    try:
        issued = _in_transaction(settings, create)
    except admin.InvalidTokenRequestError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"token {issued.token.id} ({name}, {scope}, {','.join(slugs)}); shown once, keep it now:", err=True)
    click.echo(issued.secret)


@tokens.command("list")
def tokens_list() -> None:
    """List every token (id, name, scope, products, state); never a secret or a hash."""

    async def read(session: AsyncSession) -> list[ApiToken]:
        return list(await admin.list_api_tokens(session, caller=admin.Caller.system()))

    found = _in_transaction(_settings(), read)
    click.echo(f"{'id':>5}  {'name':<24} {'scope':<6} {'products':<32} state")
    for token in found:
        click.echo(_describe(token))


@tokens.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID: it is refused from the next request on. Revoking twice is harmless."""

    async def revoke(session: AsyncSession) -> ApiToken | None:
        return await admin.revoke_api_token(
            session, caller=admin.Caller.system(), token_id=token_id, now=SystemClock().now()
        )

    token = _in_transaction(_settings(), revoke)
    if token is None:
        raise click.ClickException(f"no token {token_id}")
    click.echo(f"revoked token {token.id} ({token.name})")
