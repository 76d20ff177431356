"""The simulator against MarketGate (both backends), a correct toy vendor and broken ones."""

import re
import socket
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.settings import Settings
from gateway.simulator.calls import Target
from gateway.simulator.cases import DEBUG_CASES, DEFAULT_TENANT_DOMAIN, load_rsa_public_key
from gateway.simulator.chaos import CHAOS_CASES
from gateway.simulator.report import Outcome, Report, render_table
from gateway.simulator.runner import RunOptions, run_simulation
from gateway.simulator.sso_cases import SSO_CASES
from tenants.models import Instance
from tests.conftest import ALPHA_KEY, product
from tests.gateway.helpers import count_rows
from tests.simulator.test_cases import RSA_VECTOR, vector_private_key
from tests.simulator.toy_vendor import Faults, ToyVendor

pytestmark = pytest.mark.anyio

KEY = b"toy-basic-key-0123"
KIT_KEY = b"toy-kit-key-4567"
TOY_URL = "https://vendor.test/isv/produce"
EVERY_CHAOS: dict[str, Any] = {
    "retries": 1, "duplicate": True, "reorder": True, "clock_skew_s": 120.0, "replay": True, "tamper": True,
    "count": 20, "concurrency": 5,
}
ALPHA_KIT_KEY = "alpha-kit-key-5550123"


SSO = [case.name for case in SSO_CASES]


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def outcomes(report: Report) -> dict[str, Outcome]:
    return {case.name: case.outcome for case in report.cases}


def failures(report: Report) -> dict[str, str]:
    return {case.name: case.why for case in report.cases if case.outcome is Outcome.FAILED}


async def run_against(app: Starlette, *, url: str = TOY_URL, key: bytes = KEY, kit_key: bytes = KIT_KEY,
                      **options: Any) -> Report:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        return await run_simulation(client, Target(url, key, kit_key), RunOptions(**options))


# MarketGate -------------------------------------------------------------------------------


@pytest.fixture
def identity_port() -> int:
    return free_port()


@pytest.fixture
def settings(settings: Settings, identity_port: int) -> Settings:
    """alpha with a Kit key of its own and the vectors' RSA private key, for applicationSync; the
    simulator's identity domain mapped to where it serves it, for SSO."""
    alpha = product("Alpha", ALPHA_KEY, kit_access_key=ALPHA_KIT_KEY,
                    rsa_private_key=RSA_VECTOR["private_key_pkcs8_base64"])
    return settings.model_copy(update={
        "products": {**settings.products, "alpha": alpha},
        "public_url": "https://mg.test",
        "dev_identity_domain_overrides": {DEFAULT_TENANT_DOMAIN: f"http://127.0.0.1:{identity_port}"},
    })


async def test_marketgate_passes_every_case_with_every_chaos_option_then_again(
    app: Starlette, client: httpx.AsyncClient, identity_port: int
) -> None:
    target = Target("https://mg.test/koogallery/alpha", ALPHA_KEY.encode(), ALPHA_KIT_KEY.encode())
    public_key = load_rsa_public_key(RSA_VECTOR["public_key_x509_base64"].encode())
    browser = httpx.ASGITransport(app=app)
    options = RunOptions(rsa_public_key=public_key, identity_port=identity_port, **EVERY_CHAOS)
    report = await run_simulation(client, target, options, browser_transport=browser)
    assert report.ok, render_table(report)
    assert set(outcomes(report).values()) == {Outcome.PASSED}
    assert list(outcomes(report)) == [
        *(case.name for case in DEBUG_CASES), *SSO, *(case.name for case in CHAOS_CASES), "load"
    ]
    assert report.load is not None and report.load.ok == 20
    # repeatable: the suite run again against the same server passes again
    again_options = RunOptions(rsa_public_key=public_key, identity_port=identity_port)
    again = await run_simulation(client, target, again_options, browser_transport=browser)
    assert again.ok and again.count(Outcome.PASSED) == len(DEBUG_CASES) + len(SSO), render_table(again)


# A correct server -------------------------------------------------------------------------


async def test_a_correct_server_passes_every_case_and_chaos_option() -> None:
    vendor = ToyVendor(KEY, KIT_KEY, private_key=vector_private_key())
    public_key = load_rsa_public_key(RSA_VECTOR["public_key_x509_base64"].encode())
    report = await run_against(vendor.app(), rsa_public_key=public_key, **EVERY_CHAOS)
    assert report.ok, render_table(report)
    assert list(outcomes(report)) == [
        *(case.name for case in DEBUG_CASES), *SSO, *(case.name for case in CHAOS_CASES), "load"
    ]
    assert {outcome for name, outcome in outcomes(report).items() if name not in SSO} == {Outcome.PASSED}
    # the toy has no SSO, and its address says nowhere where MarketGate's would be
    assert {case.why for case in report.cases if case.name in SSO} == {
        "skipped: no --sso-url (none to derive from an --url outside /koogallery/<slug>)"
    }
    # applicationSync: sent once, twice duplicated and once retried, each secret decryptable
    assert len(vendor.client_secrets) == 4
    assert {secret.startswith("sim-client-secret-SIM") for secret in vendor.client_secrets} == {True}


async def test_the_kit_syncs_come_in_the_binding_sequence_with_debug_bodies() -> None:
    vendor = ToyVendor(KEY, KIT_KEY)
    report = await run_against(vendor.app(), cases=("kit",))
    assert outcomes(report) == {
        "kit.tenantSync": Outcome.PASSED,
        "kit.tenantSync.repeat": Outcome.PASSED,
        "kit.applicationSync": Outcome.SKIPPED,
        "kit.allOrgSync": Outcome.PASSED,
        "kit.authSync": Outcome.PASSED,
        "kit.singleOrgSync": Outcome.PASSED,
    }
    assert report.ok and report.exit_code == 0
    assert report.count(Outcome.PASSED) == 5
    skipped = next(case for case in report.cases if case.outcome is Outcome.SKIPPED)
    assert skipped.why == "skipped: no --rsa-public-key"
    assert [sync for sync, _ in vendor.kit_calls] == [
        "tenantSync", "tenantSync", "allOrgSync", "authSync", "singleOrgSync"
    ]
    assert {body["testFlag"] for _, body in vendor.kit_calls} == {1}
    assert len({body["tenantId"] for _, body in vendor.kit_calls}) == 1


async def test_reorder_sends_users_and_a_child_department_first() -> None:
    vendor = ToyVendor(KEY, KIT_KEY)
    report = await run_against(vendor.app(), cases=("chaos.reorder",))
    assert outcomes(report) == {"chaos.reorder": Outcome.PASSED}
    calls = [(sync, body.get("orgCode")) for sync, body in vendor.kit_calls]
    tenant = vendor.kit_calls[0][1]["instanceId"].removesuffix("-KIT")
    assert calls == [("tenantSync", None), ("authSync", None), ("singleOrgSync", f"{tenant}-D2"),
                     ("singleOrgSync", f"{tenant}-D1"), ("allOrgSync", None)]


async def test_a_skew_within_the_window_is_expected_to_be_accepted() -> None:
    report = await run_against(ToyVendor(KEY, KIT_KEY).app(), cases=("chaos.clock-skew",), clock_skew_s=-20.0)
    assert report.cases[0].why == "timestamp -20 s off: accepted (within 60 s)"
    assert report.ok


# Broken servers ---------------------------------------------------------------------------

BROKEN = [
    pytest.param(
        Faults(result_code={"newInstance": "000005"}), {"cases": ("one-time",)},
        {"one-time.new": "resultCode 000005, expected 000000 (resultMsg 'refused')"},
        id="wrong result code",
    ),
    pytest.param(
        Faults(result_code={"refreshInstance": "000000"}), {"cases": ("negative",)},
        {"negative.refresh-unknown": "resultCode 000000, expected 000003 (resultMsg 'success.')"},
        id="unknown instance renewed",
    ),
    pytest.param(
        Faults(drop_instance_id=True), {"cases": ("one-time",)},
        {"one-time.new": "missing instanceId (接口响应缺少instanceId)"},
        id="missing instanceId",
    ),
    pytest.param(
        Faults(status=500), {"cases": ("one-time.new",)},
        {"one-time.new": "HTTP 500 (接口响应httpCode=500)"},
        id="non-200",
    ),
    pytest.param(
        Faults(content_type="text/html"), {"cases": ("one-time.new",)},
        {"one-time.new": "content type 'text/html; charset=utf-8' is not application/json"},
        id="non-JSON content type",
    ),
    pytest.param(
        Faults(delay_s=0.5), {"cases": ("one-time.new",), "timeout_s": 0.1},
        {"one-time.new": "no answer within 0.1 s (调用接口超时0.1s)"},
        id="slower than the timeout",
    ),
    pytest.param(
        Faults(long_front_end_url=True), {"cases": ("one-time",)},
        {"one-time.query": "info[0].appInfo.frontEndUrl longer than 512 (字段frontEndUrl长度不合法)"},
        id="field too long",
    ),
    pytest.param(
        Faults(result_code={"authSync": "000005"}), {"cases": ("kit",)},
        {"kit.authSync": "resultCode 000005, expected 000000 (resultMsg 'refused')"},
        id="kit sync refused",
    ),
    pytest.param(
        Faults(skip_signature_check=True), {"cases": ("chaos.tamper", "chaos.tamper.kit")},
        {"chaos.tamper": "orderId changed after signing: resultCode 000000, expected 000001 (resultMsg 'success.')",
         "chaos.tamper.kit": "name changed after signing: resultCode 000000, expected 000001 (resultMsg 'success.')"},
        id="tampered body accepted",
    ),
    pytest.param(
        Faults(skip_nonce_check=True), {"cases": ("chaos.replay",)},
        {"chaos.replay": "same nonce again: resultCode 000000, expected 000001 (resultMsg 'success.')"},
        id="replay accepted",
    ),
]


@pytest.mark.parametrize(("faults", "options", "expected"), BROKEN)
async def test_a_broken_server_fails_exactly_the_case_it_breaks(
    faults: Faults, options: dict[str, Any], expected: dict[str, str]
) -> None:
    report = await run_against(ToyVendor(KEY, KIT_KEY, faults=faults).app(), **options)
    assert failures(report) == expected, render_table(report)
    assert report.exit_code == 1
    # cases that needed a failed one are skipped, the others still pass
    for case in report.cases:
        if case.outcome is Outcome.SKIPPED and case.why != "skipped: no --rsa-public-key":
            assert case.why.startswith(f"skipped: needs {next(iter(expected))}, which failed"), case.why


async def test_a_new_instance_id_per_call_fails_the_idempotency_case_and_every_retry() -> None:
    vendor = ToyVendor(KEY, KIT_KEY, faults=Faults(new_instance_id_each_call=True))
    report = await run_against(vendor.app(), cases=("periodic.new.repeat",))
    first = vendor.orders.popitem()[1]
    assert list(failures(report)) == ["periodic.new.repeat"]
    pattern = rf"instanceId '[0-9a-f-]{{36}}' for the same order, first answered '{first}'"
    assert re.fullmatch(pattern, failures(report)["periodic.new.repeat"])
    retried = await run_against(ToyVendor(KEY, KIT_KEY, faults=Faults(new_instance_id_each_call=True)).app(),
                                cases=("one-time.new",), retries=2)
    why = failures(retried)["one-time.new"]
    assert why.startswith("retry 1: instanceId '") and why.endswith("(not idempotent)"), why


async def test_concurrent_duplicates_must_agree() -> None:
    vendor = ToyVendor(KEY, KIT_KEY, faults=Faults(new_instance_id_each_call=True))
    report = await run_against(vendor.app(), cases=("on-demand.new",), duplicate=True)
    why = failures(report)["on-demand.new"]
    assert why.startswith("duplicate 1: instanceId '") and why.endswith("(not idempotent)"), why


async def test_load_failures_fail_the_load_row() -> None:
    vendor = ToyVendor(KEY, KIT_KEY, faults=Faults(result_code={"newInstance": "000005"}))
    report = await run_against(vendor.app(), cases=("load",), count=6, concurrency=2)
    assert outcomes(report) == {"load": Outcome.FAILED}
    assert failures(report)["load"].startswith("6 of 6 calls failed: 0/6 ok")
    assert report.load is not None and dict(report.load.failures) == {"resultCode 000005": 6}


@pytest.fixture
def closed_port() -> int:
    return free_port()


async def test_an_unreachable_address_fails_every_call(closed_port: int) -> None:
    async with httpx.AsyncClient() as client:
        target = Target(f"http://127.0.0.1:{closed_port}/isv/produce", KEY, KIT_KEY)
        report = await run_simulation(client, target, RunOptions(cases=("negative.query-unknown",)))
    why = failures(report)["negative.query-unknown"]
    assert why.startswith("production address unreachable: ConnectError") and why.endswith("(生产地址不可达)")


async def test_rejected_chaos_calls_create_nothing_in_marketgate(client: httpx.AsyncClient, app: Starlette) -> None:
    target = Target("https://mg.test/koogallery/beta", b"beta-access-key-9876543210", b"beta-access-key-9876543210")
    report = await run_simulation(client, target, RunOptions(cases=("chaos.tamper", "chaos.clock-skew"),
                                                             clock_skew_s=-90.0))
    assert report.ok, render_table(report)
    assert await count_rows(app, Instance) == 0
