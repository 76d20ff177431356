"""The `marketgate` command: serve, check a products file, migrate, run the demo."""

import asyncio
import contextlib
import gc
import os
import secrets
import socket
import sys
from pathlib import Path

import click
import uvicorn
from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.logs import configure_logging
from gateway.settings import ConfigError, Environment, Settings
from gateway.simulator.cli import simulate
from gateway.tokens_cli import tokens

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
    _preflight(settings)
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
    settings = _load_settings(**({"config": config_path} if config_path else {}))
    if not settings.products:
        raise click.ClickException("no products: set MARKETGATE_CONFIG or pass --config")
    _check_products(settings)
    for slug, product in settings.products.items():
        click.echo(
            f"ok  {slug:<24} {product.name}  adapter={product.adapter}  address={settings.public_url}/koogallery/{slug}"
        )


def _check_products(settings: Settings) -> None:
    """What start-up checks of the products besides the file itself: the RSA keys, each adapter
    (loaded, then closed) and each product's roles. A problem stops here with one line naming the
    product, never with a traceback."""
    from gateway.adapters.registry import build_adapters
    from gateway.app import adapter_context, api_products
    from gateway.kit_syncs import private_keys
    from gateway.products import Product

    adapters = {}
    try:
        private_keys(settings.products)
        adapters = build_adapters(settings.products, context_for=adapter_context(settings))
        api_products({slug: Product(slug, config, adapters[slug]) for slug, config in settings.products.items()})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        asyncio.run(_close_all(list(adapters.values())))


async def _close_all(adapters: list[object]) -> None:
    for adapter in adapters:
        try:
            await adapter.aclose()  # type: ignore[attr-defined]
        except Exception as exc:  # a checked adapter that fails to close must not hide the check's verdict
            click.echo(f"warning: closing adapter {type(adapter).__name__} failed ({type(exc).__name__})", err=True)


def _preflight(settings: Settings) -> None:
    """What commonly stops a start-up, checked before serving so that it stops with one line: the
    products (`_check_products`) and, unless told not to, the pending migrations. The app's own
    start-up does both again, briefly."""
    _check_products(settings)
    if settings.auto_migrate:
        _migrate(settings, announce=False)


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to MARKETGATE_DATABASE_URL."""
    _migrate(_load_settings(), announce=True)


def _migrate(settings: Settings, *, announce: bool) -> None:
    """Apply the pending migrations; a database that is down or refuses stops here with one line."""
    from sqlalchemy.exc import SQLAlchemyError

    from tenants.database import shown_url
    from tenants.migrate import MigrationError, pending_revisions, prepare_database_folder, upgrade

    shown = shown_url(settings.database_url)
    try:
        prepare_database_folder(settings.database_url)
        pending = pending_revisions(settings.database_url)
        if announce:
            click.echo(f"applying {len(pending)} migration(s)" if pending else "database is up to date")
        if pending:
            upgrade(settings.database_url)
    except (SQLAlchemyError, ValueError, MigrationError, OSError) as exc:
        # One line, never a traceback, never the password: the database is down, refused us, or
        # was upgraded by a newer MarketGate.
        problem = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise click.ClickException(f"cannot upgrade {shown}: {problem}") from exc


@main.group()
def keys() -> None:
    """Key commands."""


@keys.command("rsa-new")
@click.option("--bits", default=3072, show_default=True, type=int, help="RSA key size; at least 3072.")
@click.option(
    "--out-dir",
    default=Path("."),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the two key files.",
)
@click.option("--name", default="rsa", show_default=True, help="File name stem: <name>-private.pem, <name>-public.pem.")
def keys_rsa_new(bits: int, out_dir: Path, name: str) -> None:
    """Write a fresh RSA key pair for the Kit's applicationSync and print its public key.

    The private key (PKCS#8 PEM, file mode 0600) is what a product's `rsa_private_key_file`
    points at. The line printed on standard output is the public key as the Seller Console's
    application credential asks for it: Base64 of the X.509 SubjectPublicKeyInfo, one line.
    Existing files are never overwritten.
    """
    from gateway.koogallery.client_secret import MIN_KEY_BITS, new_key_pair

    if bits < MIN_KEY_BITS:
        raise click.BadParameter(f"the marketplace asks for at least {MIN_KEY_BITS} bits", param_hint="--bits")
    if bits > 16384:
        raise click.BadParameter("at most 16384 bits", param_hint="--bits")
    private_path, public_path = out_dir / f"{name}-private.pem", out_dir / f"{name}-public.pem"
    for path in (private_path, public_path):
        if path.exists():
            raise click.ClickException(f"{path} exists; not overwriting it")
    pair = new_key_pair(bits)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise click.ClickException(f"{private_path} exists; not overwriting it") from exc
    with os.fdopen(descriptor, "wb") as private_file:
        private_file.write(pair.private_pem)
    os.chmod(private_path, 0o600)  # whatever the umask
    public_path.write_bytes(pair.public_pem)
    click.echo(f"private key  {private_path} (mode 0600; set rsa_private_key_file to it)", err=True)
    click.echo(f"public key   {public_path}", err=True)
    click.echo("public key for the Seller Console (Base64 X.509 SubjectPublicKeyInfo):", err=True)
    click.echo(pair.public_base64)


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
    envvar="MARKETGATE_DATA_DIR",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo keeps its database (always SQLite there: the embedded default) and keys.",
)
def demo(host: str, port: int, data_dir: Path) -> None:
    """Run MarketGate with a demo product on the embedded default (SQLite, in-memory store).

    Prints the demo product's production address and keys. Its order queries go to a local
    stand-in of the marketplace's open API on the next port, never to the internet. SSO calls
    to the simulator's tenant identity domain go to the port after that, where
    `marketgate simulate run` serves it.
    """
    from gateway.simulator.cases import DEFAULT_TENANT_DOMAIN
    from gateway.simulator.open_api import DEMO_ACCESS_KEY, DEMO_SECRET_KEY
    from gateway.simulator.scenario_orders import create_scenario_open_api_app
    from gateway.simulator.sso_cases import DEFAULT_IDENTITY_HOST, DEFAULT_IDENTITY_PORT

    data_dir.mkdir(parents=True, exist_ok=True)
    keys = _demo_keys(data_dir / "demo-keys.txt")
    rsa_public = _demo_rsa_key_pair(data_dir)
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
rsa_private_key_file = "demo-rsa-private.pem"
""",
        encoding="utf-8",
    )
    public_url = f"http://{host}:{port}"
    identity_port = port + 2
    settings = _load_settings(
        environment=Environment.DEVELOPMENT,
        config=products_file,
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'marketgate.db'}",
        public_url=public_url,
        log_format="console",
        graphql_introspection=True,
        graphiql=True,
        dev_identity_domain_overrides={DEFAULT_TENANT_DOMAIN: f"http://{host}:{identity_port}"},
    )
    _preflight(settings)
    identity_options = (f" --identity-host {host}" if host != DEFAULT_IDENTITY_HOST else "") + (
        f" --identity-port {identity_port}" if identity_port != DEFAULT_IDENTITY_PORT else ""
    )
    click.echo(
        f"""
MarketGate demo
  production address  {public_url}/koogallery/{DEMO_SLUG}
  Kit sync address    {public_url}/koogallery/{DEMO_SLUG}/produceAPI/v2/<tenantSync|…>
  access key          {keys}
  database            {settings.database_url}
  open API stand-in   http://{host}:{port + 1}
  tenant identity     {DEFAULT_TENANT_DOMAIN} -> http://{host}:{identity_port} (served by simulate run)

Drive it as the marketplace would, from another terminal:
  .venv/bin/marketgate simulate run --url {public_url}/koogallery/{DEMO_SLUG} --key {keys} \\
      --kit-key {keys} --rsa-public-key {rsa_public}{identity_options}
""",
        err=True,
    )
    _run_servers(settings, [(create_app(settings), host, port), (create_scenario_open_api_app(), host, port + 1)])


def _demo_rsa_key_pair(data_dir: Path) -> Path:
    """The demo product's RSA key pair for applicationSync, made once; returns the public key's path."""
    from gateway.koogallery.client_secret import new_key_pair

    private, public = data_dir / "demo-rsa-private.pem", data_dir / "demo-rsa-public.pem"
    if not private.exists() or not public.exists():
        pair = new_key_pair()
        private.write_bytes(pair.private_pem)
        private.chmod(0o600)
        public.write_bytes(pair.public_pem)
    return public


def _demo_keys(path: Path) -> str:
    if not path.exists():
        path.write_text(secrets.token_hex(16) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


class _Server(uvicorn.Server):
    """uvicorn's server; once it has started, what start-up built is kept out of the way of the
    garbage collector's full passes.

    Modules, schemas, adapters and pools live as long as the process. A full collection walks
    every tracked object and holds the event loop meanwhile, so each one stalled every call in
    flight: in `bench.basic_calls`, freezing them took queryInstance's p99 from about 100 ms to
    under 30 ms at 32 connections. Garbage start-up left is collected first; objects made later
    are collected as usual. The price: a start-up object that later becomes part of a reference
    cycle (a pooled connection replaced, say) is never collected; there are few of them.
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            gc.collect()
            gc.freeze()


def _run_servers(settings: Settings, apps: list[tuple[ASGIApp, str, int]]) -> None:
    """Serve `apps` until interrupted (after `_preflight`)."""
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    servers = [
        _Server(
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

    # The event loop uvicorn itself would pick (`loop="auto"`: uvloop where it is installed).
    loop_factory = servers[0].config.get_loop_factory()
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve_all())
    if any(not server.started for server in servers):
        sys.exit(3)


main.add_command(simulate)
main.add_command(tokens)

if __name__ == "__main__":
    main()
