"""The `marketgate` command: serve, check a products file, migrate, run the demo."""

import asyncio
import contextlib
import secrets
import sys
from pathlib import Path

import click
import uvicorn
from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.logs import configure_logging
from gateway.settings import ConfigError, Environment, Settings

DEMO_SLUG = "demo"


def _load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:  # pydantic's ValidationError: name the setting at fault
        raise click.ClickException(f"invalid settings: {exc}") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="marketgate")
def main() -> None:
    """MarketGate: sell SaaS products on Huawei Cloud KooGallery through one gateway.

    Settings come from MARKETGATE_* environment variables; products from the TOML file
    named by MARKETGATE_CONFIG. See README.md for every key.
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--no-migrate", is_flag=True, help="Do not apply pending database migrations at start-up.")
def serve(host: str, port: int, no_migrate: bool) -> None:
    """Serve the production endpoints, SSO and the admin API."""
    settings = _load_settings(**({"auto_migrate": False} if no_migrate else {}))
    _run_servers(settings, [(create_app(settings), host, port)])


@main.command("check-config")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Products file to check (default: MARKETGATE_CONFIG).",
)
def check_config(config_path: Path | None) -> None:
    """Validate the settings and the products file, and load every adapter, without serving."""
    from gateway.adapters.registry import build_adapters
    from gateway.app import adapter_context

    settings = _load_settings(**({"config": config_path} if config_path else {}))
    if not settings.products:
        raise click.ClickException("no products: set MARKETGATE_CONFIG or pass --config")
    try:
        adapters = build_adapters(settings.products, context_for=adapter_context(settings))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    for slug, product in settings.products.items():
        click.echo(
            f"ok  {slug:<24} {product.name}  adapter={product.adapter}  address={settings.public_url}/koogallery/{slug}"
        )
    asyncio.run(_close_all(list(adapters.values())))


async def _close_all(adapters: list[object]) -> None:
    for adapter in adapters:
        await adapter.aclose()  # type: ignore[attr-defined]


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to MARKETGATE_DATABASE_URL."""
    from tenants.migrate import pending_revisions, upgrade

    settings = _load_settings()
    pending = pending_revisions(settings.database_url)
    click.echo(f"applying {len(pending)} migration(s)" if pending else "database is up to date")
    upgrade(settings.database_url)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=int,
    help="Port of MarketGate; the local stand-in of the marketplace's open API takes the next one.",
)
@click.option(
    "--data-dir",
    default=Path(".marketgate"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo keeps its database and keys.",
)
def demo(host: str, port: int, data_dir: Path) -> None:
    """Run MarketGate with a demo product on the embedded default (SQLite, in-memory store).

    Prints the demo product's production address and keys. Its order queries go to a local
    stand-in of the marketplace's open API on the next port, never to the internet.
    """
    from gateway.simulator.open_api import DEMO_ACCESS_KEY, DEMO_SECRET_KEY, create_demo_open_api_app

    data_dir.mkdir(parents=True, exist_ok=True)
    keys = _demo_keys(data_dir / "demo-keys.txt")
    products_file = data_dir / "demo-products.toml"
    products_file.write_text(
        f"""# Written by `marketgate demo`; the keys live in demo-keys.txt beside it.
[products.{DEMO_SLUG}]
name = "Demo Workspace"
adapter = "demo"
access_key_file = "demo-keys.txt"
answer_deadline_s = 3.0
open_api_endpoint = "http://{host}:{port + 1}"
open_api_ak = "{DEMO_ACCESS_KEY}"
open_api_sk = "{DEMO_SECRET_KEY}"
""",
        encoding="utf-8",
    )
    public_url = f"http://{host}:{port}"
    settings = _load_settings(
        environment=Environment.DEVELOPMENT,
        config=products_file,
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'marketgate.db'}",
        public_url=public_url,
        log_format="console",
    )
    click.echo(
        f"""
MarketGate demo
  production address  {public_url}/koogallery/{DEMO_SLUG}
  Kit sync address    {public_url}/koogallery/{DEMO_SLUG}/produceAPI/v2/<tenantSync|…>
  access key          {keys}
  database            {settings.database_url}
  open API stand-in   http://{host}:{port + 1}

Drive it as the marketplace would, from another terminal:
  .venv/bin/marketgate simulate run --url {public_url}/koogallery/{DEMO_SLUG} --key {keys}
""",
        err=True,
    )
    _run_servers(settings, [(create_app(settings), host, port), (create_demo_open_api_app(), host, port + 1)])


def _demo_keys(path: Path) -> str:
    if not path.exists():
        path.write_text(secrets.token_hex(16) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def _run_servers(settings: Settings, apps: list[tuple[ASGIApp, str, int]]) -> None:
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_config=None,
                access_log=False,
                log_level="warning",
                lifespan="on",
            )
        )
        for app, host, port in apps
    ]

    async def serve_all() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_all())
    if any(not server.started for server in servers):
        sys.exit(3)


if __name__ == "__main__":
    main()
