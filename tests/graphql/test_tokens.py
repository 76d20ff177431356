"""Operator tokens: shown once, stored hashed, refused once revoked; the tokens commands."""

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette

from gateway.cli import main
from gateway.settings import Settings
from tenants import admin
from tenants.admin_models import ApiToken, AuditEntry, TokenScope
from tests.conftest import ALPHA_KEY, BETA_KEY
from tests.graphql.conftest import GraphQL, codes, issue_token, rows

VIEWER = "{ viewer { kind actor canWrite products { slug } } }"


@pytest.mark.anyio
async def test_a_token_is_shown_once_and_only_its_hash_is_kept(app: Starlette, gql: GraphQL) -> None:
    # Given a new read token for alpha
    secret = await issue_token(app, "dashboards", ["alpha"], TokenScope.READ)

    # Then it is recognisable and carries 256 random bits, and the database keeps only its SHA-256
    assert secret.startswith("mgt_") and len(secret) == 4 + 43
    [stored] = await rows(app, ApiToken)
    assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in json.dumps(stored.model_dump(mode="json"))
    assert (stored.name, stored.products, stored.scope, stored.revoked_at) == ("dashboards", ["alpha"], "read", None)

    # And the token opens the API for what it was issued for
    body = await gql(VIEWER, token=secret)
    assert body == {
        "data": {
            "viewer": {
                "kind": "OPERATOR",
                "actor": f"token:{stored.id}:dashboards",
                "canWrite": False,
                "products": [{"slug": "alpha"}],
            }
        }
    }


@pytest.mark.anyio
async def test_a_revoked_token_is_refused_at_once(app: Starlette, gql: GraphQL) -> None:
    secret = await issue_token(app, "ci", ["alpha", "beta"], TokenScope.WRITE)
    [token] = await rows(app, ApiToken)
    assert (await gql(VIEWER, token=secret))["data"]["viewer"]["canWrite"] is True

    async with app.state.database.transaction() as session:
        revoked = await admin.revoke_api_token(
            session, caller=admin.Caller.system(), token_id=token.id, now=datetime.now(UTC)
        )
    assert revoked is not None and revoked.revoked_at is not None

    body = await gql(VIEWER, token=secret)
    assert body["data"] is None
    assert codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["message"] == "the bearer token is unknown or revoked"

    # Revoking again changes nothing; the audit log has the creation and one revocation
    async with app.state.database.transaction() as session:
        again = await admin.revoke_api_token(
            session, caller=admin.Caller.system(), token_id=token.id, now=datetime.now(UTC)
        )
    assert again is not None and again.revoked_at == revoked.revoked_at
    audit = await rows(app, AuditEntry)
    assert [(entry.action, entry.actor_kind, entry.product, entry.target) for entry in audit] == [
        ("apiTokenCreate", "system", None, f"api_token:{token.id}"),
        ("apiTokenRevoke", "system", None, f"api_token:{token.id}"),
    ]
    assert secret not in json.dumps([entry.model_dump(mode="json") for entry in audit])


@pytest.mark.anyio
@pytest.mark.parametrize(
    "authorization",
    ["Bearer mgt_" + "A" * 43, "Bearer not-a-token", "Bearer ", "Basic dXNlcjpwYXNz", "mgt_" + "A" * 43],
)
async def test_unknown_or_malformed_credentials_are_refused(app: Starlette, gql: GraphQL, authorization: str) -> None:
    secret = await issue_token(app, "real", ["alpha"], TokenScope.READ)
    body = await gql(VIEWER, headers={"Authorization": authorization})
    assert body["data"] is None
    assert codes(body) == ["UNAUTHENTICATED"]
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert codes(await gql(VIEWER, token=tampered)) == ["UNAUTHENTICATED"]


@pytest.mark.anyio
async def test_token_management_is_for_the_marketgate_command_only(app: Starlette) -> None:
    operator = admin.Caller(
        kind=admin.CallerKind.OPERATOR, actor="token:1:x", products=frozenset({"alpha"}), can_write=True
    )
    async with app.state.database.transaction() as session:
        with pytest.raises(admin.AccessDeniedError):
            await admin.create_api_token(
                session,
                caller=operator,
                name="sneaky",
                products=["alpha"],
                scope=TokenScope.WRITE,
                now=datetime.now(UTC),
            )
        with pytest.raises(admin.AccessDeniedError):
            await admin.list_api_tokens(session, caller=operator)
    assert await rows(app, ApiToken) == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "products", "message"),
    [("", ["alpha"], "name"), ("x", [], "at least one product"), ("x", ["Alpha!"], "not a product slug")],
)
async def test_a_token_request_is_validated(app: Starlette, name: str, products: list[str], message: str) -> None:
    async with app.state.database.transaction() as session:
        with pytest.raises(admin.InvalidTokenRequestError, match=message):
            await admin.create_api_token(
                session,
                caller=admin.Caller.system(),
                name=name,
                products=products,
                scope=TokenScope.READ,
                now=datetime.now(UTC),
            )
    assert await rows(app, ApiToken) == []


def _cli_environment(settings: Settings, tmp_path: Path) -> dict[str, str]:
    products = tmp_path / "products.toml"
    products.write_text(
        f'[products.alpha]\nname = "Alpha"\nadapter = "recording"\naccess_key = "{ALPHA_KEY}"\n\n'
        f'[products.beta]\nname = "Beta"\nadapter = "recording"\naccess_key = "{BETA_KEY}"\n',
        encoding="utf-8",
    )
    return {
        "MARKETGATE_ENVIRONMENT": "development",
        "MARKETGATE_DATABASE_URL": settings.database_url,
        "MARKETGATE_CONFIG": str(products),
        "MARKETGATE_AUTO_MIGRATE": "false",
    }


def test_the_tokens_commands_create_list_and_revoke(settings: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    env = _cli_environment(settings, tmp_path)

    created = runner.invoke(
        main, ["tokens", "create", "--name", "ci", "--products", "beta,alpha", "--scope", "write"], env=env
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("mgt_") and len(secret) == 47
    assert "shown once" in created.stderr

    listed = runner.invoke(main, ["tokens", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["id", "name", "scope", "products", "state"]
    assert lines[1].split() == ["1", "ci", "write", "alpha,beta", "active"]
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in listed.output and digest not in listed.output

    revoked = runner.invoke(main, ["tokens", "revoke", "1"], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout == "revoked token 1 (ci)\n"
    assert "revoked 2" in runner.invoke(main, ["tokens", "list"], env=env).stdout.splitlines()[1]

    missing = runner.invoke(main, ["tokens", "revoke", "99"], env=env)
    assert missing.exit_code == 1
    assert "no token 99" in missing.output


def test_the_tokens_command_refuses_unknown_products(settings: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    env = _cli_environment(settings, tmp_path)
    refused = runner.invoke(main, ["tokens", "create", "--name", "ci", "--products", "alpha,gamma"], env=env)
    assert refused.exit_code == 2
    assert "unknown product(s) gamma; known: alpha, beta" in refused.output
    listed = runner.invoke(main, ["tokens", "list"], env=env)
    assert listed.stdout.splitlines()[1:] == []
