"""`marketgate simulate`: play the marketplace against a production address.

    simulate run       send the console's debug cases (and chaos) and report pass/fail
    simulate cases     list the case names `run --case` takes
    simulate sign      print a signed request as a curl command
    simulate open-api  serve the marketplace's order-query open API locally
"""

import asyncio
import base64
import binascii
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import httpx

from gateway.koogallery.errors import BadPayloadError
from gateway.koogallery.payload import parse_object
from gateway.koogallery.signing import CallKind
from gateway.simulator.calls import CONSOLE_TIMEOUT_S, PRODUCTION_TIMEOUT_S, Target, epoch_ms_now
from gateway.simulator.cases import DEFAULT_APP_ID, DEFAULT_TENANT_DOMAIN, load_rsa_public_key
from gateway.simulator.chaos import CHAOS_CASES, DEFAULT_TIMESTAMP_WINDOW_S
from gateway.simulator.errors import UnknownCaseError
from gateway.simulator.report import render_table
from gateway.simulator.runner import (
    CATALOG,
    DEFAULT_CONCURRENCY,
    LOAD_CASE,
    RunOptions,
    known_case_names,
    run_simulation,
)
from gateway.simulator.signer import sign_call
from gateway.simulator.sso_cases import DEFAULT_IDENTITY_HOST, DEFAULT_IDENTITY_PORT

DEFAULT_OPEN_API_PORT = 8001
KEY_ENV = "MARKETGATE_SIMULATE_KEY"
KIT_KEY_ENV = "MARKETGATE_SIMULATE_KIT_KEY"


@dataclass(frozen=True, slots=True)
class CliEnvironment:
    """What tests hand the commands through click's `obj`: a transport instead of the network."""

    transport: httpx.AsyncBaseTransport | None = None


def _key_bytes(value: str, encoding: str, option: str) -> bytes:
    if encoding == "raw":
        return value.encode("utf-8")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise click.BadParameter("not Base64 (see --key-encoding)", param_hint=option) from exc


def _check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://")
    return value


def _check_optional_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else _check_url(ctx, param, value)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def simulate() -> None:
    """Play the KooGallery marketplace against a production address, MarketGate's or any vendor's.

    Sends real signed calls as the marketplace does and checks the answers as the Seller
    Console debugger does.
    """


@simulate.command("run")
@click.option("--url", required=True, callback=_check_url,
              help="Production address, e.g. https://host/koogallery/<slug>; Kit calls go to <url>/produceAPI/v2/….")
@click.option("--key", required=True, envvar=KEY_ENV, show_envvar=True, help="Key bound to the basic interfaces.")
@click.option("--kit-key", envvar=KIT_KEY_ENV, show_envvar=True,
              help="Key bound to the Kit sync interfaces (default: --key).")
@click.option("--key-encoding", type=click.Choice(["raw", "base64"]), default="raw", show_default=True,
              help="base64: the keys are given Base64-encoded and signed with decoded.")
@click.option("--case", "cases", multiple=True, metavar="NAME",
              help="Run only this case or flow (repeatable; `simulate cases` lists them). Default: every debug case.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON report instead of the table.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=CONSOLE_TIMEOUT_S,
              show_default=True, help="Seconds to wait for each answer (the console debugger waits 20).")
@click.option("--deadline", is_flag=True,
              help=f"Wait only the production timeout ({PRODUCTION_TIMEOUT_S:g} s) for each answer.")
@click.option("--retries", type=click.IntRange(min=0), default=0, show_default=True,
              help="Resend every call N more times (fresh nonce and businessId): same answers, same instanceId.")
@click.option("--duplicate", is_flag=True, help="Send every call with concurrent duplicates: same answers.")
@click.option("--reorder", is_flag=True, help="Add Kit syncs out of order (users before departments, child first).")
@click.option("--clock-skew", type=float, metavar="SECONDS",
              help="Add calls with timestamps off by SECONDS: refused (000002) beyond the window, else accepted.")
@click.option("--timestamp-window", type=click.FloatRange(min=0), default=DEFAULT_TIMESTAMP_WINDOW_S,
              show_default=True, help="The server's accepted timestamp window, for --clock-skew.")
@click.option("--replay", is_flag=True, help="Add a call resent with its nonce: must be refused (000001).")
@click.option("--tamper", is_flag=True, help="Add a call whose body changes after signing: must be refused (000001).")
@click.option("--concurrency", type=click.IntRange(min=1, max=1000), default=DEFAULT_CONCURRENCY,
              show_default=True, help="Load: calls in flight at once.")
@click.option("--count", type=click.IntRange(min=0), default=0, show_default=True,
              help="Load: send N new purchases and print throughput, p50 and p99 (0: no load).")
@click.option("--rsa-public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Public key of the application credential (PEM or Base64 X.509) to encrypt the "
                   "applicationSync clientSecret; without it applicationSync is skipped.")
@click.option("--app-id", default=DEFAULT_APP_ID, show_default=True, help="appId of the Kit syncs.")
@click.option("--tenant-domain", default=DEFAULT_TENANT_DOMAIN, show_default=True,
              help="domainName of the Kit tenant sync: the identity domain the SSO cases serve locally.")
@click.option("--sso-url", callback=_check_optional_url, metavar="URL",
              help="The server's SSO address: <URL>/login?tenant=… starts a sign-in, <URL>/callback is the "
                   "registered callback. Default: https://host/sso/<slug> for --url https://host/koogallery/<slug>.")
@click.option("--identity-host", default=DEFAULT_IDENTITY_HOST, show_default=True,
              help="Address the SSO cases serve the tenant's identity domain on.")
@click.option("--identity-port", type=click.IntRange(min=0, max=65535), default=DEFAULT_IDENTITY_PORT,
              show_default=True, help="Port of that identity domain (0: a free one). The server must map "
                                      "--tenant-domain to it (`marketgate demo` maps it to its port + 2).")
@click.pass_context
def run_command(
    ctx: click.Context,
    url: str,
    key: str,
    kit_key: str | None,
    key_encoding: str,
    cases: tuple[str, ...],
    as_json: bool,
    timeout: float,
    deadline: bool,
    retries: int,
    duplicate: bool,
    reorder: bool,
    clock_skew: float | None,
    timestamp_window: float,
    replay: bool,
    tamper: bool,
    concurrency: int,
    count: int,
    rsa_public_key: Path | None,
    app_id: str,
    tenant_domain: str,
    sso_url: str | None,
    identity_host: str,
    identity_port: int,
) -> None:
    """Send the Seller Console's debug cases to --url and report each case: pass or fail, and why.

    Then the SSO cases: a browser signs the Kit syncs' members in through the server's SSO
    (--sso-url) and an identity domain served locally (--identity-port), and checks that forged
    or replayed callbacks are refused. They need --kit-key and --rsa-public-key.

    Exits 1 if any case fails. Cases skipped (no --rsa-public-key or --kit-key, an identity domain
    the server does not reach, or a failed prerequisite) are not passes but do not fail the run.
    """
    environment = ctx.obj if isinstance(ctx.obj, CliEnvironment) else CliEnvironment()
    public_key = None
    if rsa_public_key is not None:
        try:
            public_key = load_rsa_public_key(rsa_public_key.read_bytes())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--rsa-public-key") from exc
    basic_key = _key_bytes(key, key_encoding, "--key")
    target = Target(url=url, key=basic_key,
                    kit_key=basic_key if kit_key is None else _key_bytes(kit_key, key_encoding, "--kit-key"))
    notes = () if kit_key is not None else ("Kit calls were signed with --key (no --kit-key given).",)
    options = RunOptions(
        cases=cases,
        timeout_s=PRODUCTION_TIMEOUT_S if deadline else timeout,
        retries=retries,
        duplicate=duplicate,
        reorder=reorder,
        clock_skew_s=clock_skew,
        replay=replay,
        tamper=tamper,
        concurrency=concurrency,
        count=count,
        timestamp_window_s=timestamp_window,
        app_id=app_id,
        tenant_domain=tenant_domain,
        rsa_public_key=public_key,
        kit_key_given=kit_key is not None,
        sso_url=sso_url,
        identity_host=identity_host,
        identity_port=identity_port,
        notes=notes,
    )

    async def go() -> int:
        limits = httpx.Limits(max_connections=max(100, concurrency))
        async with httpx.AsyncClient(transport=environment.transport, timeout=options.timeout_s, limits=limits,
                                     follow_redirects=False) as client:
            report = await run_simulation(client, target, options, browser_transport=environment.transport)
        click.echo(json.dumps(report.as_json(), ensure_ascii=False, indent=2) if as_json else render_table(report))
        return report.exit_code

    try:
        ctx.exit(asyncio.run(go()))
    except UnknownCaseError as exc:
        known = ", ".join(known_case_names())
        raise click.BadParameter(f"unknown case {exc}; known: {known}", param_hint="--case") from exc


@simulate.command("cases")
def cases_command() -> None:
    """List the case names `run --case` takes: flows, debug cases, SSO cases, chaos cases and load."""
    flows = dict.fromkeys(case.flow for case in CATALOG)
    click.echo("flows: " + ", ".join(flows))
    for case in CATALOG:
        click.echo(f"  {case.name:<30} {case.summary}")
    click.echo("chaos (added by their option, or named):")
    for chaos in CHAOS_CASES:
        option = "--" + chaos.option.replace("_", "-")
        click.echo(f"  {chaos.name:<30} {chaos.summary} ({option})")
    click.echo(f"  {LOAD_CASE:<30} new purchases under load (--count, --concurrency)")


@simulate.command("sign")
@click.option("--key", required=True, envvar=KEY_ENV, show_envvar=True, help="The key to sign with.")
@click.option("--key-encoding", type=click.Choice(["raw", "base64"]), default="raw", show_default=True,
              help="base64: --key is given Base64-encoded and signed with decoded.")
@click.option("--kit", is_flag=True, help="Sign as a Kit call (x- headers) instead of a basic call (query string).")
@click.option("--body", help="The JSON body.")
@click.option("--body-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the JSON body from this file.")
@click.option("--url", required=True, callback=_check_url,
              help="Where the call goes: the production address, or for --kit the full …/produceAPI/v2/<sync> address.")
@click.option("--nonce", help="Use this nonce (default: a fresh one, as the marketplace does).")
@click.option("--timestamp", type=click.IntRange(min=0), help="Use this timestamp in ms (default: now).")
def sign_command(
    key: str,
    key_encoding: str,
    kit: bool,
    body: str | None,
    body_file: Path | None,
    url: str,
    nonce: str | None,
    timestamp: int | None,
) -> None:
    """Print a signed request as a curl command, for debugging a server by hand.

    The body is sent as given; the signature is over its canonical form, as the marketplace's
    verifier computes it.
    """
    if body is not None and body_file is None:
        raw = body.encode("utf-8").strip()
    elif body is None and body_file is not None:
        raw = body_file.read_bytes().strip()
    else:
        raise click.UsageError("give exactly one of --body and --body-file")
    try:
        parse_object(raw)
    except BadPayloadError as exc:
        raise click.BadParameter(exc.reason, param_hint="--body") from exc
    kind = CallKind.KIT if kit else CallKind.BASIC
    call = sign_call(kind, raw, key=_key_bytes(key, key_encoding, "--key"),
                     now_ms=epoch_ms_now() if timestamp is None else timestamp, nonce=nonce)
    address = url if kit else str(httpx.URL(url).copy_merge_params(call.query))
    parts = ["curl", "-X", "POST", shlex.quote(address)]
    for name, value in call.headers.items():
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    parts += ["--data-binary", shlex.quote(raw.decode("utf-8"))]
    click.echo(" ".join(parts))


@simulate.command("open-api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_OPEN_API_PORT, show_default=True, type=int, help="Port to listen on.")
def open_api_command(host: str, port: int) -> None:
    """Serve the marketplace's order-query open API locally (AK/SK checked as the API gateway does).

    Serves the console's mock orders (MOCKPERIODYEARNEW …), the orders `simulate run` creates
    (<mock id>-<run suffix>) and, for any other id, a synthesized yearly order. Point a
    product's open_api_endpoint at http://HOST:PORT with the credentials printed at start.
    """
    import uvicorn

    from gateway.simulator.open_api import DEMO_ACCESS_KEY, DEMO_SECRET_KEY
    from gateway.simulator.scenario_orders import create_scenario_open_api_app

    click.echo(
        f"order-query open API on http://{host}:{port}\n"
        f"  open_api_endpoint = \"http://{host}:{port}\"\n"
        f"  open_api_ak = \"{DEMO_ACCESS_KEY}\"\n"
        f"  open_api_sk = \"{DEMO_SECRET_KEY}\"",
        err=True,
    )
    uvicorn.run(create_scenario_open_api_app(), host=host, port=port, log_level="info")
