"""Running the simulator: the debug cases, the SSO cases, the chaos cases and the load, into a `Report`.

`run_simulation(client, target, options)` is the one entry point, for the CLI, the tests and the
benchmarks: it sends real calls through `client` (any `httpx.AsyncClient`, including one on
an ASGI transport) to `target.url`.

Each debug case's call is checked as the Seller Console debugger checks it (`checks`), then
by the case's own check. With `--duplicate` it is sent `1 + DUPLICATES` times at once, and
with `--retries N` sent N more times afterwards, as the marketplace resends for hours (each
resend has a fresh nonce, and a purchase a fresh businessId): every copy must get an
accepted code and the same instanceId. A case whose prerequisite did not pass is skipped;
so is the application sync without an RSA public key. Skips are not passes, but only
failures make the run fail. The load (`--count`, `--concurrency`) goes through `load.drive`.

The SSO cases (`sso_cases`) run after the debug cases, against an identity domain served
for the run only; a simulated browser reaches the server through `browser_transport`.
"""

import asyncio
import contextlib
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.koogallery.signing import CallKind
from gateway.simulator.browser import Browser
from gateway.simulator.calls import CONSOLE_TIMEOUT_S, Caller, Target, epoch_ms_now
from gateway.simulator.cases import (
    DEBUG_CASES,
    DEBUG_FLAG,
    DEFAULT_APP_ID,
    DEFAULT_TENANT_DOMAIN,
    PROCESSING,
    SUCCESS,
    Case,
    RunState,
    select_cases,
)
from gateway.simulator.chaos import (
    CHAOS_CASES,
    DEFAULT_CLOCK_SKEW_S,
    DEFAULT_TIMESTAMP_WINDOW_S,
    ChaosCase,
    ChaosContext,
)
from gateway.simulator.checks import Answer, Exchange, check_answer
from gateway.simulator.errors import CaseFailedError, CaseSkippedError, MissingValueError
from gateway.simulator.identity import create_identity_app, serve_identity
from gateway.simulator.load import LoadResult, NewInstanceOrders, answered, drive, new_instance_factory
from gateway.simulator.report import CaseResult, Outcome, Report
from gateway.simulator.sso_cases import (
    DEFAULT_IDENTITY_HOST,
    DEFAULT_IDENTITY_PORT,
    KIT_REQUIREMENTS,
    SSO_CASES,
    SsoCase,
    SsoContext,
    default_sso_url,
    tenant_identity,
)

DUPLICATES = 2
"""How many concurrent copies `--duplicate` sends besides the call itself."""
LOAD_CASE = "load"
DEFAULT_CONCURRENCY = 10
DEFAULT_LOAD_COUNT = 100
_HOW = {Outcome.PASSED: "passed", Outcome.FAILED: "failed", Outcome.SKIPPED: "was skipped"}
CATALOG: tuple[Case | SsoCase, ...] = (*DEBUG_CASES, *SSO_CASES)
"""Every case `--case` selects by name or flow, in suite order."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What `simulate run` was asked to do; the defaults are the console debugger's."""

    cases: tuple[str, ...] = ()
    timeout_s: float = CONSOLE_TIMEOUT_S
    retries: int = 0
    duplicate: bool = False
    reorder: bool = False
    clock_skew_s: float | None = None
    replay: bool = False
    tamper: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    count: int = 0
    timestamp_window_s: float = DEFAULT_TIMESTAMP_WINDOW_S
    app_id: str = DEFAULT_APP_ID
    tenant_domain: str = DEFAULT_TENANT_DOMAIN
    rsa_public_key: rsa.RSAPublicKey | None = None
    kit_key_given: bool = True
    """False: the Kit calls are signed with the basic key, and the SSO cases are skipped."""
    sso_url: str | None = None
    """The server's SSO address (`<sso_url>/login`, `<sso_url>/callback`); None: derived from the target."""
    identity_host: str = DEFAULT_IDENTITY_HOST
    identity_port: int = DEFAULT_IDENTITY_PORT
    """Where the run's identity domain is served (port 0: a free one)."""
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Plan:
    debug: list[Case]
    sso: list[SsoCase]
    chaos: list[ChaosCase]
    load: bool


def known_case_names() -> list[str]:
    """Every name `--case` takes: flows, cases, chaos cases and `load`."""
    flows = dict.fromkeys(case.flow for case in CATALOG)
    return [*flows, *(case.name for case in CATALOG), *(case.name for case in CHAOS_CASES), LOAD_CASE]


def plan_run(options: RunOptions) -> Plan:
    """Which cases run: the named ones (all debug cases if none), plus what the chaos options add.

    A chaos option adds its basic case, and its Kit case too when Kit cases run (or when it
    has only a Kit case, as `--reorder`).
    """
    chaos_by_name = {case.name: case for case in CHAOS_CASES}
    named = [name for name in options.cases if name not in chaos_by_name and name != LOAD_CASE]
    selected = select_cases(named, CATALOG) if named or not options.cases else []
    debug = [case for case in selected if isinstance(case, Case)]
    kit_selected = any(case.kind is CallKind.KIT for case in debug)
    flags = {
        "clock_skew": options.clock_skew_s is not None,
        "replay": options.replay,
        "tamper": options.tamper,
        "reorder": options.reorder,
    }
    basic_options = {case.option for case in CHAOS_CASES if not case.kit}
    chaos = [
        case
        for case in CHAOS_CASES
        if case.name in options.cases
        or (flags[case.option] and (not case.kit or kit_selected or case.option not in basic_options))
    ]
    sso = [case for case in selected if isinstance(case, SsoCase)]
    return Plan(debug=debug, sso=sso, chaos=chaos, load=options.count > 0 or LOAD_CASE in options.cases)


async def run_simulation(
    client: httpx.AsyncClient,
    target: Target,
    options: RunOptions,
    *,
    now_ms: Callable[[], int] = epoch_ms_now,
    browser_transport: httpx.AsyncBaseTransport | None = None,
) -> Report:
    """Run the planned cases against `target` through `client`; raises `UnknownCaseError`.

    The SSO cases' browser reaches the server through `browser_transport` (None: the network).
    """
    plan = plan_run(options)
    return await Simulator(client, target, options, now_ms=now_ms, browser_transport=browser_transport).run(plan)


class Simulator:
    """One run: the cases in plan order, sharing what they learn through `RunState`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        target: Target,
        options: RunOptions,
        *,
        now_ms: Callable[[], int] = epoch_ms_now,
        browser_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = client
        self._target = target
        self._options = options
        self._browser_transport = browser_transport
        sso_url = options.sso_url or default_sso_url(target.url)
        self._sso_url = sso_url.rstrip("/") if sso_url else None
        self._caller = Caller(client, target, timeout_s=options.timeout_s, now_ms=now_ms)
        self._run = RunState.fresh(
            now_ms=now_ms,
            app_id=options.app_id,
            tenant_domain=options.tenant_domain,
            rsa_public_key=options.rsa_public_key,
        )
        self._outcomes: dict[str, Outcome] = {}

    async def run(self, plan: Plan) -> Report:
        results = [await self._debug_case(case) for case in plan.debug]
        results += await self._sso_cases(plan.sso)
        results += [await self._chaos_case(case) for case in plan.chaos]
        load = None
        if plan.load:
            load, failure = await self._load()
            outcome = Outcome.FAILED if failure else Outcome.PASSED
            results.append(CaseResult(LOAD_CASE, outcome, failure or load.summary(), None, load.sent))
        return Report(url=self._target.url, cases=tuple(results), load=load, notes=self._options.notes)

    # Debug cases ------------------------------------------------------------------------

    async def _debug_case(self, case: Case) -> CaseResult:
        if case.needs_rsa_key and self._run.rsa_public_key is None:
            return self._skipped(case.name, "skipped: no --rsa-public-key")
        skip = self._unmet(case.requires)
        if skip is not None:
            return self._skipped(case.name, skip)
        return await self._measure(case.name, self._perform(case))

    def _unmet(self, requires: Sequence[str]) -> str | None:
        """Why a case that needs `requires` is skipped, or None when they all passed."""
        for required in requires:
            outcome = self._outcomes.get(required)
            if outcome is not Outcome.PASSED:
                how = "did not run" if outcome is None else _HOW[outcome]
                return f"skipped: needs {required}, which {how}"
        return None

    def _skipped(self, name: str, why: str) -> CaseResult:
        self._outcomes[name] = Outcome.SKIPPED
        return CaseResult(name, Outcome.SKIPPED, why)

    async def _perform(self, case: Case) -> str:
        copies = 1 + (DUPLICATES if self._options.duplicate else 0)
        fields = [case.build(self._run) for _ in range(copies)]
        exchanges = await asyncio.gather(
            *(self._caller.call(case.kind, case.interface, body) for body in fields)
        )
        answer = self._judge(case, exchanges[0], case.codes, step=None)
        if case.remember is not None:
            case.remember(self._run, answer)
        for index, exchange in enumerate(exchanges[1:], start=1):
            self._judge_repeat(case, exchange, answer, step=f"duplicate {index}")
        for attempt in range(1, self._options.retries + 1):
            exchange = await self._caller.call(case.kind, case.interface, case.build(self._run))
            self._judge_repeat(case, exchange, answer, step=f"retry {attempt}")
        why = f"{answer['resultCode']} {case.summary}"
        if answer.get("instanceId"):
            why += f", instanceId {answer['instanceId']}"
        resends = copies - 1 + self._options.retries
        return why + (f"; {resends} resends agree" if resends else "")

    def _judge(self, case: Case, exchange: Exchange, codes: Sequence[str], *, step: str | None) -> Answer:
        prefix = f"{step}: " if step else ""
        verdict = check_answer(
            exchange, codes=codes, required=case.required, result_msg_required=case.kind is CallKind.BASIC
        )
        if verdict.failure is not None or verdict.answer is None:
            raise CaseFailedError(prefix + str(verdict.failure))
        failure = case.verify(self._run, verdict.answer) if case.verify is not None else None
        if failure is not None:
            raise CaseFailedError(prefix + failure)
        return verdict.answer

    def _judge_repeat(self, case: Case, exchange: Exchange, first: Answer, *, step: str) -> None:
        answer = self._judge(case, exchange, case.repeat_codes or case.codes, step=step)
        if "instanceId" in first and answer.get("instanceId") != first["instanceId"]:
            raise CaseFailedError(
                f"{step}: instanceId {answer.get('instanceId')!r}, first call {first['instanceId']!r} (not idempotent)"
            )

    # SSO cases --------------------------------------------------------------------------

    async def _sso_cases(self, cases: list[SsoCase]) -> list[CaseResult]:
        """The SSO cases, against an identity domain served for as long as they run."""
        if not cases:
            return []
        skip = self._sso_unavailable()
        if skip is not None:
            return [self._skipped(case.name, skip) for case in cases]
        sso_url = self._sso_url
        assert sso_url is not None  # else _sso_unavailable said why
        password = secrets.token_urlsafe(12)
        directory = tenant_identity(self._run, callback=f"{sso_url}/callback", password=password)
        identity_app = create_identity_app(directory, issuer=self._run.tenant_domain)
        host, port = self._options.identity_host, self._options.identity_port
        with contextlib.ExitStack() as stack:
            try:
                identity_url = stack.enter_context(serve_identity(identity_app, host=host, port=port))
            except (OSError, RuntimeError) as exc:
                why = f"skipped: cannot serve the identity domain on {host}:{port} ({exc}); see --identity-port"
                return [self._skipped(case.name, why) for case in cases]

            def new_browser(cookies: httpx.Cookies | None) -> Browser:
                return Browser(transport=self._browser_transport, identity_app=identity_app,
                               identity_origins=(identity_url, self._run.tenant_domain),
                               timeout_s=self._options.timeout_s, latencies=self._caller.latencies, cookies=cookies)

            context = SsoContext(run=self._run, sso_url=sso_url, identity_url=identity_url,
                                 directory=directory, password=password, new_browser=new_browser)
            return [await self._sso_case(case, context) for case in cases]

    def _sso_unavailable(self) -> str | None:
        if not self._options.kit_key_given:
            return "skipped: no --kit-key (SSO signs in the tenant and members the Kit syncs send)"
        if self._sso_url is None:
            return "skipped: no --sso-url (none to derive from an --url outside /koogallery/<slug>)"
        return self._unmet(KIT_REQUIREMENTS)

    async def _sso_case(self, case: SsoCase, context: SsoContext) -> CaseResult:
        skip = self._unmet(case.requires)
        if skip is not None:
            return self._skipped(case.name, skip)
        return await self._measure(case.name, case.perform(context))

    # Chaos cases ------------------------------------------------------------------------

    async def _chaos_case(self, case: ChaosCase) -> CaseResult:
        context = ChaosContext(
            caller=self._caller,
            run=self._run,
            clock_skew_s=DEFAULT_CLOCK_SKEW_S if self._options.clock_skew_s is None else self._options.clock_skew_s,
            timestamp_window_s=self._options.timestamp_window_s,
        )
        return await self._measure(case.name, case.perform(context))

    async def _measure(self, name: str, work: Awaitable[str]) -> CaseResult:
        start = len(self._caller.latencies)
        try:
            why = await work
            outcome = Outcome.PASSED
        except CaseFailedError as exc:
            why, outcome = str(exc), Outcome.FAILED
        except MissingValueError as exc:
            why, outcome = f"needs {exc} from an earlier case", Outcome.FAILED
        except CaseSkippedError as exc:
            why, outcome = f"skipped: {exc}", Outcome.SKIPPED
        latencies = self._caller.latencies[start:]
        self._outcomes[name] = outcome
        slowest = round(max(latencies) * 1000, 1) if latencies else None
        return CaseResult(name, outcome, str(why), slowest, len(latencies))

    # Load -------------------------------------------------------------------------------

    async def _load(self) -> tuple[LoadResult, str | None]:
        """`count` debug purchases of fresh orders, `concurrency` in flight, through `load.drive`."""
        count = self._options.count or DEFAULT_LOAD_COUNT
        concurrency = max(1, min(self._options.concurrency, count))
        orders = NewInstanceOrders(prefix=self._run.run_id, test_flag=DEBUG_FLAG)
        factory = new_instance_factory(self._target.url, self._target.key, orders, now_ms=self._caller.now_ms)
        # Bound the whole run by what it takes if every call waits the full timeout.
        overall_s = self._options.timeout_s * (math.ceil(count / concurrency) + 1)
        result = await drive(self._client, factory, concurrency=concurrency, count=count,
                             check=answered(SUCCESS, PROCESSING), timeout_s=overall_s)
        if result.errors or result.not_sent:
            return result, f"{result.requested - result.ok} of {result.requested} calls failed: {result.summary()}"
        return result, None


__all__ = ["RunOptions", "Target", "known_case_names", "plan_run", "run_simulation"]
