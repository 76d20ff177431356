"""`marketgate simulate …` through click's CliRunner: exit codes, the table, --json, sign, help.

One run goes over real HTTP to MarketGate served by uvicorn on a loopback port (both backends),
the SSO cases included.
"""

import json
import shlex
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization

from gateway.app import create_app
from gateway.cli import main
from gateway.settings import Settings
from gateway.simulator.cases import DEFAULT_TENANT_DOMAIN
from gateway.simulator.cli import CliEnvironment
from tests.conftest import ALPHA_KEY, product
from tests.fakes import Behaviour, recording_factory
from tests.simulator.test_cases import RSA_VECTOR, VECTORS, vector_private_key
from tests.simulator.test_runner import free_port
from tests.simulator.toy_vendor import Faults, ToyVendor
from tests.sso.live import loopback_socket, serve

KEY = "toy-basic-key-0123"
TOY_URL = "https://vendor.test/isv/produce"
ALPHA_KIT_KEY = "alpha-kit-key-5550123"


def invoke(args: list[str], *, vendor: ToyVendor | None = None) -> Result:
    environment = CliEnvironment(transport=httpx.ASGITransport(app=vendor.app())) if vendor is not None else None
    return CliRunner().invoke(main, ["simulate", *args], obj=environment, catch_exceptions=False)


def toy(**faults: Any) -> ToyVendor:
    return ToyVendor(KEY.encode(), KEY.encode(), faults=Faults(**faults), private_key=vector_private_key())


# Help -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["run"], ["cases"], ["sign"], ["open-api"]], ids=lambda c: " ".join(c) or "-")
def test_every_command_has_help(command: list[str]) -> None:
    result = invoke([*command, "--help"])
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: main simulate {' '.join(command)}".rstrip())


def test_cases_lists_every_case_name() -> None:
    result = invoke(["cases"])
    assert result.exit_code == 0
    assert "periodic.trial-to-formal" in result.output
    assert "chaos.reorder" in result.output and "(--reorder)" in result.output
    assert "kit.applicationSync" in result.output
    assert "flows: periodic, one-time, on-demand, negative, kit, sso" in result.output
    assert "sso.forged-state" in result.output


def test_run_help_tells_how_the_sso_cases_reach_the_server() -> None:
    output = " ".join(invoke(["run", "--help"]).output.split())
    assert "Then the SSO cases:" in output
    for option in ("--sso-url URL", "--identity-host TEXT", "--identity-port INTEGER RANGE"):
        assert option in output


# run --------------------------------------------------------------------------------------


def test_a_passing_run_prints_the_table_and_exits_0() -> None:
    result = invoke(["run", "--url", TOY_URL, "--key", KEY, "--case", "one-time", "--case", "kit"], vendor=toy())
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["CASE", "RESULT", "LATENCY", "WHY"]
    assert lines[1].split()[:2] == ["one-time.new", "PASS"]
    assert any(line.split()[:2] == ["kit.applicationSync", "SKIP"] and
               line.endswith("skipped: no --rsa-public-key") for line in lines)
    assert "Kit calls were signed with --key (no --kit-key given)." in lines
    assert lines[-1] == f"8 passed, 0 failed, 1 skipped against {TOY_URL}"


def test_a_failing_run_exits_1_and_names_the_case_and_the_reason() -> None:
    result = invoke(["run", "--url", TOY_URL, "--key", KEY, "--case", "one-time.new"], vendor=toy(status=503))
    assert result.exit_code == 1
    row = result.output.splitlines()[1]
    assert row.split()[:2] == ["one-time.new", "FAIL"]
    assert row.endswith("HTTP 503 (接口响应httpCode=503)")


def test_json_report(tmp_path: Path) -> None:
    key_file = tmp_path / "public.txt"
    key_file.write_text(RSA_VECTOR["public_key_x509_base64"] + "\n")
    vendor = toy(result_code={"singleOrgSync": "000002"})
    result = invoke(["run", "--url", TOY_URL, "--key", KEY, "--kit-key", KEY, "--case", "kit", "--json",
                     "--rsa-public-key", str(key_file), "--count", "4", "--concurrency", "2"], vendor=vendor)
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert set(report) == {"url", "ok", "passed", "failed", "skipped", "cases", "load", "notes"}
    assert (report["url"], report["ok"], report["passed"], report["failed"], report["skipped"]) == (
        TOY_URL, False, 6, 1, 0
    )
    assert report["notes"] == []
    by_name = {case["name"]: case for case in report["cases"]}
    assert set(by_name["kit.singleOrgSync"]) == {"name", "result", "why", "latency_ms", "calls"}
    assert by_name["kit.singleOrgSync"]["result"] == "fail"
    assert by_name["kit.singleOrgSync"]["why"] == "resultCode 000002, expected 000000 (resultMsg 'refused')"
    assert by_name["kit.applicationSync"]["result"] == "pass"
    assert by_name["kit.applicationSync"]["calls"] == 1
    assert by_name["load"]["result"] == "pass"
    assert report["load"]["requested"] == report["load"]["ok"] == 4
    assert report["load"]["p50_ms"] <= report["load"]["p99_ms"]
    assert vendor.client_secrets[0].startswith("sim-client-secret-SIM")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--case", "periodic.nope"], "unknown case periodic.nope; known: periodic, one-time"),
        (["--rsa-public-key", "__FILE__"], "not an RSA public key in PEM or Base64 X.509 form"),
        (["--key-encoding", "base64"], "not Base64 (see --key-encoding)"),
        (["--retries", "-1"], "-1 is not in the range x>=0"),
    ],
    ids=["unknown case", "bad public key", "bad base64 key", "negative retries"],
)
def test_bad_options_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key")
    args = [str(bad_key) if arg == "__FILE__" else arg for arg in args]
    result = CliRunner().invoke(main, ["simulate", "run", "--url", TOY_URL, "--key", "not*base64", *args],
                                obj=CliEnvironment(transport=httpx.ASGITransport(app=toy().app())))
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_the_key_may_come_from_the_environment() -> None:
    environment = CliEnvironment(transport=httpx.ASGITransport(app=toy().app()))
    result = CliRunner().invoke(main, ["simulate", "run", "--url", TOY_URL, "--case", "negative"], obj=environment,
                                env={"MARKETGATE_SIMULATE_KEY": KEY})
    assert result.exit_code == 0, result.output


# sign -------------------------------------------------------------------------------------


def test_sign_prints_the_marketplace_curl_of_a_basic_call() -> None:
    vector = VECTORS["basic_v2"][1]
    result = invoke(["sign", "--key", vector["access_key"], "--url", "https://isv.example.com/saasproduce",
                     "--body", vector["body"], "--nonce", vector["nonce"], "--timestamp", vector["timestamp"]])
    assert result.exit_code == 0
    parts = shlex.split(result.output)
    assert parts[:3] == ["curl", "-X", "POST"]
    assert parts[3] == (f"https://isv.example.com/saasproduce?signature={vector['signature'].upper()}"
                        f"&timestamp={vector['timestamp']}&nonce={vector['nonce']}")
    assert parts[parts.index("--data-binary") + 1] == vector["body"]
    assert "Content-Type: application/json;charset=utf8" in parts


def test_sign_prints_the_x_headers_of_a_kit_call(tmp_path: Path) -> None:
    vector = VECTORS["kit_v2"][0]
    body_file = tmp_path / "body.json"
    body_file.write_text(vector["body"] + "\n", encoding="utf-8")
    url = "https://isv.example.com/saasproduce/produceAPI/v2/tenantSync"
    result = invoke(["sign", "--kit", "--key", vector["kit_access_key"], "--url", url, "--body-file", str(body_file),
                     "--nonce", vector["nonce"], "--timestamp", vector["timestamp"]])
    assert result.exit_code == 0
    parts = shlex.split(result.output)
    assert parts[3] == url
    assert f"x-sign: {vector['x_sign']}" in parts
    assert f"x-timestamp: {vector['timestamp']}" in parts
    assert f"x-nonce: {vector['nonce']}" in parts


@pytest.mark.parametrize(
    ("args", "message"),
    [([], "give exactly one of --body and --body-file"), (["--body", "[1]"], "body is not a JSON object")],
)
def test_sign_refuses_a_missing_or_bad_body(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["simulate", "sign", "--key", "k", "--url", TOY_URL, *args])
    assert result.exit_code == 2
    assert message in result.output


# Real HTTP against MarketGate -------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    alpha = product("Alpha", ALPHA_KEY, kit_access_key=ALPHA_KIT_KEY,
                    rsa_private_key=RSA_VECTOR["private_key_pkcs8_base64"])
    return settings.model_copy(update={"products": {**settings.products, "alpha": alpha}})


def test_a_run_over_real_http_against_marketgate_passes(settings: Settings, tmp_path: Path) -> None:
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(vector_private_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ))
    identity_port = free_port()
    with loopback_socket() as sock:
        public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        live = settings.model_copy(update={
            "public_url": public_url,
            "dev_identity_domain_overrides": {DEFAULT_TENANT_DOMAIN: f"http://127.0.0.1:{identity_port}"},
        })
        app = create_app(live, adapter_factories={"recording": recording_factory({"alpha": Behaviour(),
                                                                                    "beta": Behaviour()})})
        with serve(app, sock):
            result = CliRunner().invoke(main, [
                "simulate", "run", "--url", f"{public_url}/koogallery/alpha", "--key", ALPHA_KEY,
                "--kit-key", ALPHA_KIT_KEY, "--json", "--rsa-public-key", str(key_file), "--deadline",
                "--retries", "1", "--replay", "--tamper", "--clock-skew", "-75", "--count", "10", "--concurrency", "4",
                "--identity-port", str(identity_port),
            ], catch_exceptions=False)
    # The server thread logs to the same standard output: the report is the block from "{" to "}".
    lines = result.output.splitlines()
    report = json.loads("\n".join(lines[lines.index("{"):lines.index("}") + 1]))
    assert result.exit_code == 0, [case for case in report["cases"] if case["result"] != "pass"]
    assert report["ok"] is True and report["failed"] == report["skipped"] == 0
    assert {case["name"] for case in report["cases"]} >= {"periodic.new", "kit.applicationSync", "chaos.replay",
                                                            "chaos.tamper.kit", "chaos.clock-skew", "load",
                                                            "sso.login", "sso.workbench", "sso.unauthorized"}
    assert report["load"]["ok"] == 10
