"""Cases for what a real marketplace (or an attacker) does that the debug cases do not.

- `chaos.clock-skew[.kit]`: a call whose timestamp is off by `--clock-skew` seconds: refused
  with `000002` beyond the timestamp window (and nothing created), accepted within it;
- `chaos.replay[.kit]`: an accepted call sent again with the same nonce: refused with `000001`;
- `chaos.tamper[.kit]`: a body changed after signing: refused with `000001`, nothing created;
- `chaos.reorder`: the Kit syncs of a new tenant out of order (users before departments, a
  child department before its parent): each answered `000000`.

`--retries` and `--duplicate` are not cases of their own: they resend every debug case's
call (see `runner`).
"""

import dataclasses
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gateway.koogallery.basic import Activity
from gateway.koogallery.results import ResultCode
from gateway.koogallery.signing import CallKind
from gateway.simulator.calls import Caller
from gateway.simulator.cases import (
    DEBUG_FLAG,
    PROCESSING,
    SUCCESS,
    Fields,
    RunState,
    all_org_sync_fields,
    auth_sync_fields,
    new_business_id,
    single_org_sync_fields,
    tenant_sync_fields,
)
from gateway.simulator.checks import Answer, Exchange, check_answer, listed_instance
from gateway.simulator.errors import CaseFailedError
from gateway.simulator.signer import marketplace_body

DEFAULT_CLOCK_SKEW_S = 120.0
DEFAULT_TIMESTAMP_WINDOW_S = 60.0
AUTH_FAILED = ResultCode.AUTH_FAILED.value
BAD_PARAMETER = ResultCode.BAD_PARAMETER.value
NEW_INSTANCE = Activity.NEW_INSTANCE.value


@dataclass(frozen=True, slots=True)
class ChaosContext:
    caller: Caller
    run: RunState
    clock_skew_s: float = DEFAULT_CLOCK_SKEW_S
    timestamp_window_s: float = DEFAULT_TIMESTAMP_WINDOW_S

    def expect(
        self, exchange: Exchange, kind: CallKind, codes: Sequence[str], *, step: str, required: Sequence[str] = ()
    ) -> Answer:
        """The answer of a step, or `CaseFailedError` naming the step and the reason."""
        verdict = check_answer(exchange, codes=codes, required=required, result_msg_required=kind is CallKind.BASIC)
        if verdict.failure is not None or verdict.answer is None:
            raise CaseFailedError(f"{step}: {verdict.failure}")
        return verdict.answer

    async def expect_not_created(self, instance_id: str, *, step: str) -> None:
        """Query `instance_id`: a refused purchase must not have created it."""
        fields = {"activity": Activity.QUERY_INSTANCE.value, "instanceId": instance_id, "testFlag": DEBUG_FLAG}
        exchange = await self.caller.call(CallKind.BASIC, Activity.QUERY_INSTANCE.value, fields)
        answer = self.expect(exchange, CallKind.BASIC, (SUCCESS,), step="query after it")
        if listed_instance(answer, instance_id) is not None:
            raise CaseFailedError(f"{step}: refused, yet instance {instance_id} was created")


def _purchase(run: RunState, tag: str) -> Fields:
    order_id = run.order_id("MOCKPERIODYEARNEW", tag)
    return {"activity": NEW_INSTANCE, "orderId": order_id, "orderLineId": f"{order_id}-000001",
            "businessId": new_business_id(), "testFlag": DEBUG_FLAG}


def _kit_tenant(run: RunState) -> RunState:
    """A tenant of its own, so a chaos case never disturbs the Kit flow's tenant."""
    return dataclasses.replace(run, run_id=f"{run.run_id}{secrets.token_hex(2).upper()}",
                               tenant_id=secrets.token_hex(16), values={})


async def clock_skew(ctx: ChaosContext) -> str:
    fields = _purchase(ctx.run, "-SKEW")
    exchange = await ctx.caller.call(CallKind.BASIC, NEW_INSTANCE, fields, skew_s=ctx.clock_skew_s)
    return await _judge_skew(ctx, exchange, CallKind.BASIC, business_id=fields["businessId"])


async def clock_skew_kit(ctx: ChaosContext) -> str:
    fields = tenant_sync_fields(_kit_tenant(ctx.run))
    exchange = await ctx.caller.call(CallKind.KIT, "tenantSync", fields, skew_s=ctx.clock_skew_s)
    return await _judge_skew(ctx, exchange, CallKind.KIT, business_id=None)


async def _judge_skew(ctx: ChaosContext, exchange: Exchange, kind: CallKind, *, business_id: str | None) -> str:
    skew = f"{ctx.clock_skew_s:+g} s"
    if abs(ctx.clock_skew_s) > ctx.timestamp_window_s:
        ctx.expect(exchange, kind, (BAD_PARAMETER,), step=f"timestamp {skew} off (outside the window)")
        if business_id is not None:
            await ctx.expect_not_created(business_id, step=f"timestamp {skew} off")
        return f"timestamp {skew} off: refused with {BAD_PARAMETER}"
    codes = (SUCCESS, PROCESSING) if kind is CallKind.BASIC else (SUCCESS,)
    ctx.expect(exchange, kind, codes, step=f"timestamp {skew} off (within the window)")
    return f"timestamp {skew} off: accepted (within {ctx.timestamp_window_s:g} s)"


async def replay(ctx: ChaosContext) -> str:
    call = ctx.caller.sign(CallKind.BASIC, _purchase(ctx.run, "-RPL"))
    first = await ctx.caller.send(call, interface=NEW_INSTANCE)
    ctx.expect(first, CallKind.BASIC, (SUCCESS, PROCESSING), step="first call", required=("instanceId",))
    again = await ctx.caller.send(call, interface=NEW_INSTANCE)
    ctx.expect(again, CallKind.BASIC, (AUTH_FAILED,), step="same nonce again")
    return f"same nonce refused with {AUTH_FAILED}"


async def replay_kit(ctx: ChaosContext) -> str:
    call = ctx.caller.sign(CallKind.KIT, tenant_sync_fields(_kit_tenant(ctx.run)))
    ctx.expect(await ctx.caller.send(call, interface="tenantSync"), CallKind.KIT, (SUCCESS,), step="first call")
    again = await ctx.caller.send(call, interface="tenantSync")
    ctx.expect(again, CallKind.KIT, (AUTH_FAILED,), step="same nonce again")
    return f"same nonce refused with {AUTH_FAILED}"


async def tamper(ctx: ChaosContext) -> str:
    fields = _purchase(ctx.run, "-TMP")
    call = ctx.caller.sign(CallKind.BASIC, fields)
    other_order = ctx.run.order_id("MOCKPERIODYEARNEW", "-TMP2")
    changed = marketplace_body(fields | {"orderId": other_order, "orderLineId": f"{other_order}-000001"})
    exchange = await ctx.caller.send(call, interface=NEW_INSTANCE, body=changed)
    ctx.expect(exchange, CallKind.BASIC, (AUTH_FAILED,), step="orderId changed after signing")
    await ctx.expect_not_created(fields["businessId"], step="orderId changed after signing")
    return f"changed body refused with {AUTH_FAILED}, nothing created"


async def tamper_kit(ctx: ChaosContext) -> str:
    fields = tenant_sync_fields(_kit_tenant(ctx.run))
    call = ctx.caller.sign(CallKind.KIT, fields)
    changed = marketplace_body(fields | {"name": f"{fields['name']} (changed)"})
    exchange = await ctx.caller.send(call, interface="tenantSync", body=changed)
    ctx.expect(exchange, CallKind.KIT, (AUTH_FAILED,), step="name changed after signing")
    return f"changed body refused with {AUTH_FAILED}"


async def reorder(ctx: ChaosContext) -> str:
    run = _kit_tenant(ctx.run)
    parent, child = f"{run.run_id}-D1", f"{run.run_id}-D2"
    steps: list[tuple[str, str, Fields]] = [
        ("tenantSync", "tenant", tenant_sync_fields(run)),
        ("authSync", "users before any department", auth_sync_fields(run)),
        ("singleOrgSync", "child department before its parent",
         single_org_sync_fields(run, code=child, name="测试部", parent=parent)),
        ("singleOrgSync", "parent department after its child",
         single_org_sync_fields(run, code=parent, name="产品部", parent="")),
        ("allOrgSync", "all departments last", all_org_sync_fields(run)),
    ]
    for sync, step, fields in steps:
        exchange = await ctx.caller.call(CallKind.KIT, sync, fields)
        ctx.expect(exchange, CallKind.KIT, (SUCCESS,), step=f"{sync} ({step})")
    return "users before departments and a child before its parent: all accepted"


@dataclass(frozen=True, slots=True)
class ChaosCase:
    """A chaos case; `option` is the `run` flag that adds it, `kit` says it sends Kit calls."""

    name: str
    summary: str
    option: str
    kit: bool
    perform: Callable[[ChaosContext], Awaitable[str]]


CHAOS_CASES: tuple[ChaosCase, ...] = (
    ChaosCase("chaos.clock-skew", "purchase with a skewed timestamp", "clock_skew", False, clock_skew),
    ChaosCase("chaos.clock-skew.kit", "tenant sync with a skewed timestamp", "clock_skew", True, clock_skew_kit),
    ChaosCase("chaos.replay", "purchase replayed with its nonce", "replay", False, replay),
    ChaosCase("chaos.replay.kit", "tenant sync replayed with its nonce", "replay", True, replay_kit),
    ChaosCase("chaos.tamper", "purchase body changed after signing", "tamper", False, tamper),
    ChaosCase("chaos.tamper.kit", "tenant sync body changed after signing", "tamper", True, tamper_kit),
    ChaosCase("chaos.reorder", "Kit syncs out of order", "reorder", True, reorder),
)
