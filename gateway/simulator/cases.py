"""The Seller Console's debug cases, as data: what each call sends and what must come back.

Flows, run in this order (a flow is also a name for `--case`):
- `periodic`: new purchase (and the same order resent: same instanceId), query, renewal,
  trial and trial to formal, renewal cancellation, expiry freeze and unfreeze, upgrade,
  change check, release (and release repeated);
- `one-time`: new purchase, query, release;
- `on-demand`: new purchase, query, freeze, unfreeze, release;
- `negative`: what the marketplace relies on for ids a server does not know;
- `kit`: the five Kit syncs in the binding sequence (tenant, application, all departments,
  users, one department), with the tenant sync resent.

The `sso` flow (`sso_cases`) signs in the tenant and members the `kit` flow synced.

Every run uses order ids and a tenant of its own (`RunState`), so running the suite again
against the same server creates new instances and passes again; the idempotency cases resend
the same order within a run. Order ids are the console's mock ids with the run's suffix
(`MOCKPERIODYEARNEW-SIM…`), which `ScenarioOrderBook` serves with the mock's contents.
"""

import base64
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.koogallery.basic import Activity, RenewalScene, StatusChange
from gateway.koogallery.results import ResultCode
from gateway.koogallery.signing import CallKind
from gateway.simulator.checks import Answer, listed_instance, missing
from gateway.simulator.errors import MissingValueError, UnknownCaseError

DEBUG_FLAG = "1"
"""testFlag of a debug call: a string on basic calls."""
KIT_DEBUG_FLAG = 1
"""testFlag of a debug call: an integer on Kit calls."""
DEFAULT_APP_ID = "app-001"
DEFAULT_TENANT_DOMAIN = "https://example.tenantaccount.com"
MIN_RSA_BITS = 3072
EAST_8 = timezone(timedelta(hours=8))

SUCCESS = ResultCode.SUCCESS.value
PROCESSING = ResultCode.PROCESSING.value
INSTANCE_NOT_FOUND = ResultCode.INSTANCE_NOT_FOUND.value

Fields = dict[str, Any]


@dataclass
class RunState:
    """One run of the suite: its unique ids, its clock and what earlier cases learned."""

    run_id: str
    tenant_id: str
    now_ms: Callable[[], int]
    app_id: str = DEFAULT_APP_ID
    tenant_domain: str = DEFAULT_TENANT_DOMAIN
    rsa_public_key: rsa.RSAPublicKey | None = None
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fresh(
        cls,
        *,
        now_ms: Callable[[], int],
        app_id: str = DEFAULT_APP_ID,
        tenant_domain: str = DEFAULT_TENANT_DOMAIN,
        rsa_public_key: rsa.RSAPublicKey | None = None,
    ) -> "RunState":
        """A run with ids no other run has."""
        return cls(run_id=f"SIM{secrets.token_hex(5).upper()}", tenant_id=secrets.token_hex(16), now_ms=now_ms,
                   app_id=app_id, tenant_domain=tenant_domain, rsa_public_key=rsa_public_key)

    def order_id(self, mock: str, tag: str = "") -> str:
        """A fresh order id of this run in the shape of a console mock order."""
        return f"{mock}-{self.run_id}{tag}"

    def need(self, name: str) -> str:
        value = self.values.get(name)
        if value is None:
            raise MissingValueError(name)
        return value

    def time_text(self, *, days: int = 0) -> str:
        """UTC `yyyyMMddHHmmssSSS`, `days` from now: an expireTime."""
        moment = datetime.fromtimestamp(self.now_ms() / 1000, UTC) + timedelta(days=days)
        return moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"

    def east8_time_text(self) -> str:
        """East-8 `yyyyMMddHHmmssSSS`: the Kit body's `timeStamp`."""
        moment = datetime.fromtimestamp(self.now_ms() / 1000, EAST_8)
        return moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"


def new_business_id() -> str:
    """businessId differs on every call, retries included."""
    return str(uuid.uuid4())


Builder = Callable[[RunState], Fields]
Verifier = Callable[[RunState, Answer], str | None]
Recorder = Callable[[RunState, Answer], None]


@dataclass(frozen=True, slots=True)
class Case:
    """One debug case: one call, the answer it needs, and what it teaches later cases.

    `build` is called again for every resend (`--retries`, `--duplicate`), so a newInstance
    resend gets a fresh businessId for the same order. `repeat_codes` are the codes a resend
    may get (a resent purchase may be answered `000004` while it provisions).
    """

    name: str
    summary: str
    kind: CallKind
    interface: str
    build: Builder
    codes: tuple[str, ...] = (SUCCESS,)
    required: tuple[str, ...] = ()
    verify: Verifier | None = None
    remember: Recorder | None = None
    requires: tuple[str, ...] = ()
    needs_rsa_key: bool = False
    repeat_codes: tuple[str, ...] | None = None

    @property
    def flow(self) -> str:
        return self.name.split(".", 1)[0]


# Basic calls ----------------------------------------------------------------------------


def _new_instance_fields(run: RunState, order_id: str) -> Fields:
    return {
        "activity": Activity.NEW_INSTANCE.value,
        "orderId": order_id,
        "orderLineId": f"{order_id}-000001",
        "businessId": new_business_id(),
        "testFlag": DEBUG_FLAG,
    }


def _remember_instance(slot: str) -> Recorder:
    def remember(run: RunState, answer: Answer) -> None:
        run.values[slot] = str(answer["instanceId"])

    return remember


def new_purchase(flow: str, mock: str, summary: str, *, slot: str | None = None, name: str = "new") -> Case:
    slot = slot or flow
    return Case(
        name=f"{flow}.{name}",
        summary=summary,
        kind=CallKind.BASIC,
        interface=Activity.NEW_INSTANCE.value,
        build=lambda run: _new_instance_fields(run, run.order_id(mock)),
        required=("instanceId",),
        remember=_remember_instance(slot),
        repeat_codes=(SUCCESS, PROCESSING),
    )


def _same_instance(slot: str) -> Verifier:
    def verify(run: RunState, answer: Answer) -> str | None:
        expected = run.need(slot)
        if answer.get("instanceId") != expected:
            return f"instanceId {answer.get('instanceId')!r} for the same order, first answered {expected!r}"
        return None

    return verify


def repeated_purchase(flow: str, mock: str, *, slot: str | None = None) -> Case:
    slot = slot or flow
    return Case(
        name=f"{flow}.new.repeat",
        summary="the same order resent with a new businessId: same instance",
        kind=CallKind.BASIC,
        interface=Activity.NEW_INSTANCE.value,
        build=lambda run: _new_instance_fields(run, run.order_id(mock)),
        codes=(SUCCESS, PROCESSING),
        required=("instanceId",),
        verify=_same_instance(slot),
        requires=(f"{flow}.new",),
    )


def _listed_with_front_end_url(slot: str) -> Verifier:
    def verify(run: RunState, answer: Answer) -> str | None:
        instance_id = run.need(slot)
        item = listed_instance(answer, instance_id)
        if item is None:
            return f"instance {instance_id} not listed in info (接口响应缺少info)"
        app_info = item.get("appInfo")
        if not isinstance(app_info, dict) or not app_info.get("frontEndUrl"):
            return missing("appInfo.frontEndUrl")
        return None

    return verify


def query(flow: str, *, slot: str | None = None) -> Case:
    slot = slot or flow
    return Case(
        name=f"{flow}.query",
        summary="query the new instance: listed with appInfo.frontEndUrl",
        kind=CallKind.BASIC,
        interface=Activity.QUERY_INSTANCE.value,
        build=lambda run: {"activity": Activity.QUERY_INSTANCE.value, "instanceId": run.need(slot),
                           "testFlag": DEBUG_FLAG},
        verify=_listed_with_front_end_url(slot),
        requires=(f"{flow}.new",),
    )


def refresh(
    name: str, scene: RenewalScene, mock: str, summary: str, *, slot: str, days: int, requires: tuple[str, ...]
) -> Case:
    def build(run: RunState) -> Fields:
        order_id = run.order_id(mock)
        return {
            "activity": Activity.REFRESH_INSTANCE.value,
            "scene": scene.value,
            "orderId": order_id,
            "orderLineId": f"{order_id}-000001",
            "instanceId": run.need(slot),
            "expireTime": run.time_text(days=days),
            "testFlag": DEBUG_FLAG,
        }

    return Case(name=name, summary=summary, kind=CallKind.BASIC, interface=Activity.REFRESH_INSTANCE.value,
                build=build, requires=requires)


def status_change(flow: str, status: StatusChange, summary: str, *, requires: tuple[str, ...]) -> Case:
    return Case(
        name=f"{flow}.{status.value.lower()}",
        summary=summary,
        kind=CallKind.BASIC,
        interface=Activity.UPDATE_INSTANCE_STATUS.value,
        build=lambda run: {"activity": Activity.UPDATE_INSTANCE_STATUS.value, "instanceId": run.need(flow),
                           "status": status.value, "testFlag": DEBUG_FLAG},
        requires=requires,
    )


def release(flow: str, *, repeat: bool = False) -> Case:
    return Case(
        name=f"{flow}.release.repeat" if repeat else f"{flow}.release",
        summary="release repeated: success again" if repeat else "release the instance",
        kind=CallKind.BASIC,
        interface=Activity.RELEASE_INSTANCE.value,
        build=lambda run: {"activity": Activity.RELEASE_INSTANCE.value, "instanceId": run.need(flow),
                           "testFlag": DEBUG_FLAG},
        requires=(f"{flow}.new", f"{flow}.release") if repeat else (f"{flow}.new",),
    )


def _upgrade(run: RunState) -> Fields:
    order_id = run.order_id("MOCKMONTYCHANGE")
    return {"activity": Activity.UPGRADE_INSTANCE.value, "instanceId": run.need("periodic"), "orderId": order_id,
            "orderLineId": f"{order_id}-000001", "testFlag": DEBUG_FLAG}


def _change_check(run: RunState) -> Fields:
    # The only basic body with a nested object; its keys keep the documented order.
    target = {"productId": "OFFI461867333479178241", "skuCode": "a1b2c3d4-sku", "linearValue": 10,
              "productName": "企业版"}
    return {"activity": Activity.CHANGE_INSTANCE_CHECK.value, "instanceId": run.need("periodic"),
            "productInfo": target, "testFlag": DEBUG_FLAG}


def unknown_instance_id(run: RunState) -> str:
    return f"UNKNOWN-{run.run_id}"


def _not_listed(run: RunState, answer: Answer) -> str | None:
    instance_id = unknown_instance_id(run)
    if listed_instance(answer, instance_id) is not None:
        return f"unknown instance {instance_id} is listed in info"
    return None


# Kit calls ------------------------------------------------------------------------------


def _kit_common(run: RunState) -> Fields:
    return {
        "instanceId": f"{run.run_id}-KIT",
        "tenantId": run.tenant_id,
        "testFlag": KIT_DEBUG_FLAG,
        "timeStamp": run.east8_time_text(),
    }


def tenant_name(run: RunState) -> str:
    return f"Simulated tenant {run.run_id}"


def tenant_sync_fields(run: RunState, *, flag: int = 1) -> Fields:
    return _kit_common(run) | {
        "orderId": run.order_id("MOCKPERIODYEARNEW", "-KIT"),
        "tenantCode": f"sim{run.run_id.lower()}",
        "name": tenant_name(run),
        "domainName": run.tenant_domain,
        "flag": flag,
    }


def encrypt_client_secret(public_key: rsa.RSAPublicKey, secret: str) -> str:
    """RSA-OAEP as Java's `OAEPWithSHA-256AndMGF1Padding` (SHA-256, MGF1 over SHA-1), Base64."""
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA256(), label=None)  # noqa: S303
    return base64.b64encode(public_key.encrypt(secret.encode("utf-8"), oaep)).decode("ascii")


def load_rsa_public_key(data: bytes) -> rsa.RSAPublicKey:
    """A public key as the console takes it: PEM, or Base64 of the X.509 SubjectPublicKeyInfo."""
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(base64.b64decode(b"".join(data.split()), validate=True))
    except ValueError as exc:
        raise ValueError("not an RSA public key in PEM or Base64 X.509 form") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"RSA key of {key.key_size} bits: the marketplace takes {MIN_RSA_BITS} bits or more")
    return key


def client_credentials(run: RunState) -> tuple[str, str]:
    """The clientId and (plaintext) clientSecret the application sync sends for the run's tenant."""
    return f"sim-client-{run.run_id}", f"sim-client-secret-{run.run_id}"


def _application_sync(run: RunState) -> Fields:
    if run.rsa_public_key is None:
        raise MissingValueError("rsa public key")
    client_id, secret = client_credentials(run)
    return _kit_common(run) | {
        "appId": run.app_id,
        "clientId": client_id,
        "clientSecret": encrypt_client_secret(run.rsa_public_key, secret),
        "flag": 1,
    }


def departments(run: RunState) -> list[Fields]:
    return [
        {"orgCode": f"{run.run_id}-D1", "orgName": "产品部", "parentCode": ""},
        {"orgCode": f"{run.run_id}-D2", "orgName": "测试部", "parentCode": f"{run.run_id}-D1"},
    ]


def all_org_sync_fields(run: RunState, orgs: list[Fields] | None = None) -> Fields:
    return _kit_common(run) | {"orgInfoList": departments(run) if orgs is None else orgs}


def users(run: RunState) -> list[Fields]:
    return [
        {"userName": f"admin-{run.run_id.lower()}", "name": "张三", "position": "系统管理员",
         "orgCode": f"{run.run_id}-D1", "role": "admin", "enable": "true"},
        {"userName": f"user-{run.run_id.lower()}", "name": "李四", "orgCode": f"{run.run_id}-D2",
         "role": "user", "enable": "true"},
    ]


def auth_sync_fields(run: RunState) -> Fields:
    now = run.east8_time_text()
    return _kit_common(run) | {"appId": run.app_id, "userList": users(run), "currentSyncTime": now, "flag": 1}


def single_org_sync_fields(run: RunState, *, code: str, name: str, parent: str, flag: int = 1) -> Fields:
    return _kit_common(run) | {"orgCode": code, "orgName": name, "parentCode": parent, "flag": flag}


def kit(name: str, summary: str, build: Builder, **options: Any) -> Case:
    sync = name.split(".")[1]
    requires = () if name == "kit.tenantSync" else ("kit.tenantSync",)
    return Case(name=name, summary=summary, kind=CallKind.KIT, interface=sync, build=build, requires=requires,
                **options)


# The suite ------------------------------------------------------------------------------

_AFTER_PERIODIC_NEW = ("periodic.new",)

DEBUG_CASES: tuple[Case, ...] = (
    new_purchase("periodic", "MOCKPERIODYEARNEW", "new purchase of a yearly periodic order"),
    repeated_purchase("periodic", "MOCKPERIODYEARNEW"),
    query("periodic"),
    refresh("periodic.renewal", RenewalScene.RENEWAL, "MOCKMONTYRENEW", "renewal (RENEWAL): a new expireTime",
            slot="periodic", days=395, requires=_AFTER_PERIODIC_NEW),
    new_purchase("periodic", "MOCKPERIODDAYTRIAL", "new purchase of a trial order", slot="trial", name="trial.new"),
    refresh("periodic.trial-to-formal", RenewalScene.TRIAL_TO_FORMAL, "MOCKMONTYTRIALTOFORMAL",
            "trial to formal (TRIAL_TO_FORMAL)", slot="trial", days=30, requires=("periodic.trial.new",)),
    refresh("periodic.unsubscribe-renewal", RenewalScene.UNSUBSCRIBE_RENEWAL_PERIOD, "MOCKMONTYUNSUBSCRIBE",
            "renewal cancellation (UNSUBSCRIBE_RENEWAL_PERIOD)", slot="periodic", days=365,
            requires=_AFTER_PERIODIC_NEW),
    status_change("periodic", StatusChange.FREEZE, "expiry: freeze", requires=_AFTER_PERIODIC_NEW),
    status_change("periodic", StatusChange.UNFREEZE, "renewed after expiry: unfreeze", requires=_AFTER_PERIODIC_NEW),
    Case("periodic.upgrade", "upgrade to a new spec (order MOCKMONTYCHANGE-…)", CallKind.BASIC,
         Activity.UPGRADE_INSTANCE.value, _upgrade, requires=_AFTER_PERIODIC_NEW),
    Case("periodic.change-check", "change check at renewal (nested productInfo)", CallKind.BASIC,
         Activity.CHANGE_INSTANCE_CHECK.value, _change_check, requires=_AFTER_PERIODIC_NEW),
    release("periodic"),
    release("periodic", repeat=True),
    new_purchase("one-time", "MOCKONETIMENEW", "new purchase of a one-time order"),
    query("one-time"),
    release("one-time"),
    new_purchase("on-demand", "MOCKONDEMAND", "new purchase of an on-demand order"),
    query("on-demand"),
    status_change("on-demand", StatusChange.FREEZE, "arrears: freeze", requires=("on-demand.new",)),
    status_change("on-demand", StatusChange.UNFREEZE, "paid: unfreeze", requires=("on-demand.new",)),
    release("on-demand"),
    Case("negative.query-unknown", "query of an unknown id: success, left out of info", CallKind.BASIC,
         Activity.QUERY_INSTANCE.value,
         lambda run: {"activity": Activity.QUERY_INSTANCE.value, "instanceId": unknown_instance_id(run),
                      "testFlag": DEBUG_FLAG},
         verify=_not_listed),
    Case("negative.refresh-unknown", "renewal of an unknown instance: 000003", CallKind.BASIC,
         Activity.REFRESH_INSTANCE.value,
         lambda run: {"activity": Activity.REFRESH_INSTANCE.value, "scene": RenewalScene.RENEWAL.value,
                      "orderId": run.order_id("MOCKMONTYRENEW", "-U"),
                      "orderLineId": run.order_id("MOCKMONTYRENEW", "-U-000001"),
                      "instanceId": unknown_instance_id(run), "expireTime": run.time_text(days=30),
                      "testFlag": DEBUG_FLAG},
         codes=(INSTANCE_NOT_FOUND,)),
    kit("kit.tenantSync", "tenant sync: bind the enterprise (flag 1)", tenant_sync_fields),
    kit("kit.tenantSync.repeat", "tenant sync resent: success again", tenant_sync_fields),
    kit("kit.applicationSync", "application sync: clientSecret RSA-OAEP encrypted", _application_sync,
        needs_rsa_key=True),
    kit("kit.allOrgSync", "all departments (orgInfoList array)", all_org_sync_fields),
    kit("kit.authSync", "authorize an admin and a user (userList array)", auth_sync_fields),
    kit("kit.singleOrgSync", "one new department under an existing one",
        lambda run: single_org_sync_fields(run, code=f"{run.run_id}-D3", name="开发部", parent=f"{run.run_id}-D1")),
)

FLOWS: tuple[str, ...] = tuple(dict.fromkeys(case.flow for case in DEBUG_CASES))


class Selectable(Protocol):
    """What `select_cases` reads of a case: its name, its flow and the cases it needs."""

    @property
    def name(self) -> str: ...

    @property
    def flow(self) -> str: ...

    @property
    def requires(self) -> tuple[str, ...]: ...


CaseT = TypeVar("CaseT", bound=Selectable)


def select_cases(names: Sequence[str], catalog: Sequence[CaseT]) -> list[CaseT]:
    """The cases named (a case name or a flow), with the cases they require, in catalog order."""
    if not names:
        return list(catalog)
    by_name = {case.name: case for case in catalog}
    wanted: set[str] = set()

    def add(case: CaseT) -> None:
        if case.name not in wanted:
            wanted.add(case.name)
            for required in case.requires:
                add(by_name[required])

    for name in names:
        matched = [case for case in catalog if name in (case.name, case.flow)]
        if not matched:
            raise UnknownCaseError(name)
        for case in matched:
            add(case)
    return [case for case in catalog if case.name in wanted]
