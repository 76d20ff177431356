"""Carries out the five Kit syncs, once verified, and tells the products about them.

A sync is prepared first (parsed, checked, its client secret decrypted): anything wrong is
refused there, before the nonce is used and before any write. It is then stored in one
transaction that holds the tenant's lock and also writes one outbox job per directory event,
so the marketplace is answered `000000` only once the change and its events are durable.
The adapter hears of it afterwards, in order per (product, tenant), at least once.

An authSync that changes the effective product roles of members (an authorization granted,
revoked, enabled, disabled or changed in role; a member moved to another department) also
tells the adapter, in the same transaction, with a `member_roles.changed` event listing those
members and their roles now, as the admin API's grants do. Unbinding a tenant forgets its grants.
"""

import asyncio
import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.adapters.contract import DirectoryEvent, DirectoryEventType
from gateway.basic_calls import Answer
from gateway.clock import Clock
from gateway.koogallery.client_secret import (
    KeyFormatError,
    OaepVariant,
    UndecryptableSecretError,
    decrypt_client_secret,
    load_private_key,
)
from gateway.koogallery.kit import (
    AllOrgSync,
    AnySync,
    ApplicationSync,
    AuthSync,
    KitUser,
    SingleOrgSync,
    SyncFlag,
    SyncName,
    TenantSync,
    parse_kit_request,
)
from gateway.koogallery.payload import JsonObject
from gateway.koogallery.results import ResultCode
from gateway.products import Product
from gateway.settings import ConfigError, ProductConfig
from gateway.worker import JobHandler, JobRunner, PermanentJobError
from tenants import directory, jobs, roles
from tenants.admin import TenantScope
from tenants.database import Database
from tenants.directory import DepartmentRecord, MemberGrant, MemberRecord, TenantIdentity
from tenants.directory_models import MemberRole
from tenants.models import Job
from tenants.roles import RoleCatalog
from tenants.secretbox import SecretBox

log = structlog.get_logger(__name__)

EVENT_JOB_KIND = "directory_event"
ACCESS_JOB_KIND = "member_access_lost"
_EVENT_NAMESPACE = uuid.UUID("5b0d6c1e-2f42-4f3a-9a57-6d1c3b8e9f10")
_ACCESS_WAIT_S = 2.0
_ANSWER_MARGIN_S = 0.2


class MemberAccessListener(Protocol):
    """Told when members lose the access they had: revoked, disabled or changed authorizations,
    or the whole tenant unbound. SSO ends their live sessions (gateway/sso)."""

    async def end_member_sessions(
        self, *, product: str, tenant_id: str, is_test: bool, user_names: Sequence[str] | None
    ) -> int:
        """End the sessions of these members, or of every member of the tenant when None; idempotent."""
        ...


@functools.lru_cache(maxsize=16)
def _load_key(text: str) -> RSAPrivateKey:
    # Checking an RSA key takes a tenth of a second; an app made again (tests, reloads) reuses it.
    return load_private_key(text)


def private_keys(products: Mapping[str, ProductConfig]) -> dict[str, RSAPrivateKey]:
    """Each product's RSA key for client secrets, loaded (and checked) once, at start-up."""
    keys: dict[str, RSAPrivateKey] = {}
    for slug, product in products.items():
        if product.rsa_private_key is not None:
            try:
                keys[slug] = _load_key(product.rsa_private_key.get_secret_value())
            except KeyFormatError as exc:
                raise ConfigError(f"product {slug!r}: rsa_private_key: {exc}") from exc
    return keys


def sequence_key(product: str, tenant_id: str, *, is_test: bool) -> str:
    """Events of one tenant of one product are delivered one at a time, in order."""
    return f"directory:{product}:{int(is_test)}:{tenant_id}"


def event_id(job: Job) -> str:
    """The same id on every delivery of one event: derived from its outbox job."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{job.product}/{job.id}"))


@dataclass(frozen=True, slots=True)
class PreparedSync:
    """A sync that passed every check; what remains is to store it."""

    sync: SyncName
    request: AnySync
    client_secret: str | None = None
    oaep_variant: OaepVariant | None = None

    def __repr__(self) -> str:
        return f"PreparedSync(sync={self.sync.value}, tenant_id={self.request.tenant_id!r})"


@dataclass(frozen=True, slots=True)
class _Event:
    type: DirectoryEventType
    data: dict[str, Any]


class KitSyncs:
    """Prepares and stores Kit syncs; its `handlers` deliver their events to the adapters."""

    def __init__(
        self,
        *,
        database: Database,
        runner: JobRunner | None,
        products: Mapping[str, Product],
        secret_box: SecretBox,
        private_keys: Mapping[str, RSAPrivateKey],
        clock: Clock,
        access_listener: MemberAccessListener | None = None,
        catalogs: Mapping[str, RoleCatalog] | None = None,
    ) -> None:
        self._database = database
        self._runner = runner
        self._products = products
        self._secret_box = secret_box
        self._private_keys = private_keys
        self._clock = clock
        self._access_listener = access_listener
        self._catalogs: Mapping[str, RoleCatalog] = catalogs or {}

    def attach(self, runner: JobRunner) -> None:
        """The runner to wake when events are stored (it is built with these handlers)."""
        self._runner = runner

    @property
    def handlers(self) -> dict[str, JobHandler]:
        return {EVENT_JOB_KIND: self.deliver, ACCESS_JOB_KIND: self.end_lost_access}

    # -- preparing -------------------------------------------------------------------------

    def prepare(self, product: Product, sync: SyncName, payload: JsonObject) -> PreparedSync:
        """Parse and check a verified body; raises a `ProtocolError` for anything to refuse."""
        config = product.config
        request = parse_kit_request(
            sync, payload, max_users=config.max_users_per_sync, domain_allow=config.tenant_domain_allow
        )
        if isinstance(request, ApplicationSync) and request.flag != SyncFlag.DELETE:
            key = self._private_keys.get(product.slug)
            if key is None:
                raise UndecryptableSecretError("the product has no rsa_private_key to decrypt clientSecret")
            assert request.client_secret is not None
            secret, variant = decrypt_client_secret(request.client_secret, key)
            return PreparedSync(sync, request, client_secret=secret, oaep_variant=variant)
        return PreparedSync(sync, request)

    # -- storing ---------------------------------------------------------------------------

    async def store(self, product: Product, prepared: PreparedSync, *, request_id: str, deadline: float) -> Answer:
        """Store a prepared sync with its events, in one transaction under the tenant's lock."""
        request = prepared.request
        access_job: Job | None = None
        async with self._database.transaction() as session:
            events = await self._apply(session, product, prepared, request_id=request_id)
            now = self._clock.now()
            any_lost, lost = _lost_access(events)
            if any_lost and self._access_listener is not None:
                # Ended at once below, and durably: the job is retried if this process dies first.
                access_job = await jobs.create_job(
                    session,
                    product=product.slug,
                    kind=ACCESS_JOB_KIND,
                    payload={"tenant_id": request.tenant_id, "is_test": request.is_test, "user_names": lost},
                    now=now,
                    lease_owner=self._runner.owner if self._runner is not None else None,
                    lease_s=self._runner.lease_s if self._runner is not None else 0.0,
                )
            for event in events:
                await jobs.create_job(
                    session,
                    product=product.slug,
                    kind=EVENT_JOB_KIND,
                    payload={
                        "type": event.type.value,
                        "tenant_id": request.tenant_id,
                        "is_test": request.is_test,
                        "data": event.data,
                    },
                    now=now,
                    sequence_key=sequence_key(product.slug, request.tenant_id, is_test=request.is_test),
                )
        if access_job is not None and self._runner is not None and access_job.lease_owner == self._runner.owner:
            # Sessions end before the marketplace hears 000000 (unless that takes unusually long).
            # Never past the answer deadline: the sync is stored, and must be answered 000000.
            wait_s = min(_ACCESS_WAIT_S, max(0.0, deadline - asyncio.get_running_loop().time() - _ANSWER_MARGIN_S))
            await asyncio.wait([self._runner.run_now(access_job)], timeout=wait_s)
        if events and self._runner is not None:
            self._runner.wake()
        summary = ", ".join(event.type.value for event in events) or "no change"
        return Answer(ResultCode.SUCCESS, reason=f"stored: {summary}"[:512], instance_id=request.instance_id or None)

    async def _apply(
        self, session: AsyncSession, product: Product, prepared: PreparedSync, *, request_id: str
    ) -> list[_Event]:
        request = prepared.request
        match request:
            case TenantSync():
                return await self._tenant_sync(session, product, request, request_id=request_id)
            case ApplicationSync():
                return await self._application_sync(session, product, prepared, request)
            case AuthSync():
                return await self._auth_sync(session, product, request, request_id=request_id)
            case SingleOrgSync():
                return await self._single_org_sync(session, product, request)
            case AllOrgSync():
                return await self._all_org_sync(session, product, request)

    @staticmethod
    def _scope(product: Product, request: AnySync) -> dict[str, Any]:
        return {"product": product.slug, "tenant_id": request.tenant_id, "is_test": request.is_test}

    async def _locked(self, session: AsyncSession, product: Product, request: AnySync, *, create: bool) -> bool:
        """Take the tenant's lock; a deletion does not create a tenant it has never heard of."""
        scope = self._scope(product, request)
        if create:
            await directory.lock_tenant(session, **scope, now=self._clock.now())
            return True
        return await directory.lock_existing_tenant(session, **scope) is not None

    async def _tenant_sync(
        self, session: AsyncSession, product: Product, request: TenantSync, *, request_id: str
    ) -> list[_Event]:
        scope = self._scope(product, request)
        now = self._clock.now()
        if request.flag == SyncFlag.DELETE:
            tenant = await directory.lock_existing_tenant(session, **scope)
            if tenant is None:
                return []
            code = tenant.tenant_code
            unbound = await directory.unbind_tenant(
                session, **scope, cause="tenantSync:0", request_id=request_id, now=now
            )
            # The grants go with the directory they name: a later binding starts without them.
            await roles.delete_tenant_grants(session, scope=TenantScope(**scope))
            data = {"tenant_code": code, "instance_id": request.instance_id}
            return [_Event(DirectoryEventType.TENANT_UNBOUND, data)] if unbound else []
        tenant = await directory.lock_tenant(session, **scope, now=now)
        assert request.tenant_code and request.name and request.domain_name
        identity = TenantIdentity(
            tenant_code=request.tenant_code,
            name=request.name,
            domain_name=request.domain_name,
            instance_id=request.instance_id,
            order_id=request.order_id,
        )
        change = await directory.bind_tenant(
            session, tenant=tenant, identity=identity, keep_tenant_code=request.flag == SyncFlag.MODIFY, now=now
        )
        if change is directory.TenantChange.UNCHANGED:
            return []
        data = {
            "tenant_code": tenant.tenant_code,
            "name": tenant.name,
            "domain_name": tenant.domain_name,
            "instance_id": tenant.instance_id,
            "order_id": tenant.order_id,
        }
        kind = (
            DirectoryEventType.TENANT_BOUND
            if change is directory.TenantChange.BOUND
            else (DirectoryEventType.TENANT_CHANGED)
        )
        return [_Event(kind, data)]

    async def _application_sync(
        self, session: AsyncSession, product: Product, prepared: PreparedSync, request: ApplicationSync
    ) -> list[_Event]:
        scope = self._scope(product, request)
        if request.flag == SyncFlag.DELETE:
            if not await self._locked(session, product, request, create=False):
                return []
            deleted = await directory.delete_app_credentials(session, **scope, app_id=request.app_id)
            data: dict[str, Any] = {"app_id": request.app_id, "deleted": True}
            return [_Event(DirectoryEventType.APP_CREDENTIALS_CHANGED, data)] if deleted else []
        await self._locked(session, product, request, create=True)
        assert request.client_id and prepared.client_secret and prepared.oaep_variant
        changed = await directory.upsert_app_credentials(
            session,
            **scope,
            app_id=request.app_id,
            client_id=request.client_id,
            client_secret=prepared.client_secret,
            oaep_variant=prepared.oaep_variant.value,
            secret_box=self._secret_box,
            now=self._clock.now(),
        )
        if changed:
            log.info(
                "kit_client_secret_stored",
                product=product.slug,
                tenant_id=request.tenant_id,
                app_id=request.app_id,
                oaep=prepared.oaep_variant.value,
            )
        data = {"app_id": request.app_id, "client_id": request.client_id, "deleted": False}
        return [_Event(DirectoryEventType.APP_CREDENTIALS_CHANGED, data)] if changed else []

    async def _auth_sync(
        self, session: AsyncSession, product: Product, request: AuthSync, *, request_id: str
    ) -> list[_Event]:
        scope = self._scope(product, request)
        users = request.distinct_users()
        cause = f"authSync:{request.flag}"
        now = self._clock.now()
        names = [user.user_name for user in users]
        if not request.grants:
            if not users or not await self._locked(session, product, request, create=False):
                return []
            before = await self._effective_roles(session, product, request, names)
            revocations = await directory.revoke_members(
                session,
                **scope,
                app_id=request.app_id,
                user_names=names,
                remove_members=request.flag == SyncFlag.DELETE,
                cause=cause,
                request_id=request_id,
                now=now,
            )
            if not revocations:
                return []
            members = [{"user_name": item.user_name, "removed": item.removed} for item in revocations]
            revoked = [_Event(DirectoryEventType.MEMBERS_REVOKED, {"app_id": request.app_id, "members": members})]
            return revoked + await self._roles_changed(
                session, product, request, before, [item.user_name for item in revocations]
            )
        if not users:
            return []
        await self._locked(session, product, request, create=True)
        before = await self._effective_roles(session, product, request, names)
        changes = await directory.grant_members(
            session,
            **scope,
            app_id=request.app_id,
            grants=[_grant(user) for user in users],
            cause=cause,
            request_id=request_id,
            now=now,
        )
        events = []
        for kind, grants in (
            (DirectoryEventType.MEMBERS_AUTHORIZED, changes.authorized),
            (DirectoryEventType.MEMBERS_CHANGED, changes.changed),
        ):
            if grants:
                members = [_member_data(grant) for grant in grants]
                events.append(_Event(kind, {"app_id": request.app_id, "members": members}))
        touched = [grant.member.user_name for grant in (*changes.authorized, *changes.changed)]
        return events + await self._roles_changed(session, product, request, before, touched)

    async def _effective_roles(
        self, session: AsyncSession, product: Product, request: AuthSync, user_names: Sequence[str]
    ) -> dict[str, list[str]] | None:
        """The members' effective product roles now; None when the product declares no roles."""
        catalog = self._catalogs.get(product.slug)
        if catalog is None or not catalog.roles or not user_names:
            return None
        scope = TenantScope(product.slug, request.tenant_id, request.is_test)
        return await roles.list_effective_roles(session, scope=scope, catalog=catalog, user_names=user_names)

    async def _roles_changed(
        self,
        session: AsyncSession,
        product: Product,
        request: AuthSync,
        before: Mapping[str, Sequence[str]] | None,
        touched: Sequence[str],
    ) -> list[_Event]:
        """`member_roles.changed` events for the members among `touched` whose effective roles the
        sync changed (authorized, revoked, enabled, disabled, another role or department)."""
        if before is None or not touched:
            return []
        after = await self._effective_roles(session, product, request, touched) or {}
        earlier = {name: before[name] for name in touched if name in before}
        return [
            _Event(DirectoryEventType.MEMBER_ROLES_CHANGED, data)
            for data in roles.changed_roles_events(cause="authSync", before=earlier, after=after)
        ]

    async def _single_org_sync(self, session: AsyncSession, product: Product, request: SingleOrgSync) -> list[_Event]:
        scope = self._scope(product, request)
        if request.flag == SyncFlag.DELETE:
            if not await self._locked(session, product, request, create=False):
                return []
            changes = await directory.delete_departments(session, **scope, org_codes=[request.org_code])
        else:
            await self._locked(session, product, request, create=True)
            assert request.org_name is not None
            department = DepartmentRecord(request.org_code, request.org_name, request.parent_code)
            changes = await directory.upsert_departments(
                session, **scope, departments=[department], now=self._clock.now()
            )
        return [_departments_event(changes, snapshot=False)] if changes else []

    async def _all_org_sync(self, session: AsyncSession, product: Product, request: AllOrgSync) -> list[_Event]:
        await self._locked(session, product, request, create=True)
        departments = [
            DepartmentRecord(item.org_code, item.org_name, item.parent_code) for item in request.distinct_departments()
        ]
        changes = await directory.replace_departments(
            session, **self._scope(product, request), departments=departments, now=self._clock.now()
        )
        return [_departments_event(changes, snapshot=True)] if changes else []

    # -- delivering ------------------------------------------------------------------------

    async def end_lost_access(self, job: Job) -> None:
        """The outbox handler of access losses: end the members' live sessions."""
        if self._access_listener is None:
            return
        payload = job.payload
        names = payload["user_names"]
        ended = await self._access_listener.end_member_sessions(
            product=job.product,
            tenant_id=payload["tenant_id"],
            is_test=bool(payload["is_test"]),
            user_names=list(names) if names is not None else None,
        )
        if ended:
            log.info("kit_sessions_ended", product=job.product, tenant_id=payload["tenant_id"], sessions=ended)

    async def deliver(self, job: Job) -> None:
        """The outbox handler: hand one stored event to the product's adapter."""
        product = self._products.get(job.product)
        if product is None:
            raise PermanentJobError(f"product {job.product!r} is no longer configured")
        payload = job.payload
        if not product.reaches_adapter(is_test=bool(payload["is_test"])):
            return
        hook = getattr(product.adapter, "on_directory_event", None)
        if hook is None:  # an adapter written for contract 1
            return
        event = DirectoryEvent(
            event_id=event_id(job),
            type=DirectoryEventType(payload["type"]),
            product=job.product,
            tenant_id=payload["tenant_id"],
            is_test=bool(payload["is_test"]),
            data=payload["data"],
        )
        await hook(event)


def _lost_access(events: list[_Event]) -> tuple[bool, list[str] | None]:
    """Whether anyone lost the access they had, and who: user names, or None for the whole tenant.

    A changed authorization (role, enabled flag, member data) counts: the member signs in again
    and their new role applies from then on.
    """
    names: list[str] = []
    for event in events:
        if event.type is DirectoryEventType.TENANT_UNBOUND:
            return True, None
        if event.type in (DirectoryEventType.MEMBERS_REVOKED, DirectoryEventType.MEMBERS_CHANGED):
            names += [member["user_name"] for member in event.data["members"]]
    return bool(names), list(dict.fromkeys(names))


def _grant(user: KitUser) -> MemberGrant:
    assert user.name is not None and user.org_code is not None and user.role is not None
    member = MemberRecord(
        user_name=user.user_name,
        name=user.name,
        org_code=user.org_code,
        position=user.position,
        employee_code=user.employee_code,
        employee_type=int(user.employee_type) if user.employee_type is not None else None,
        mobile=user.mobile,
        email=user.email,
        work_place=user.work_place,
        entry_date=user.entry_date,
        extension=user.extension,
    )
    return MemberGrant(member=member, role=MemberRole(user.role.value), enabled=user.enabled)


def _member_data(grant: MemberGrant) -> dict[str, Any]:
    member = grant.member  # field by field: dataclasses.asdict deep-copies, slowly, thousands of times
    return {
        "user_name": member.user_name,
        "name": member.name,
        "org_code": member.org_code,
        "position": member.position,
        "employee_code": member.employee_code,
        "employee_type": member.employee_type,
        "mobile": member.mobile,
        "email": member.email,
        "work_place": member.work_place,
        "entry_date": member.entry_date,
        "extension": dict(member.extension) if member.extension is not None else None,
        "role": grant.role.value,
        "enabled": grant.enabled,
    }


def _departments_event(changes: directory.DepartmentChanges, *, snapshot: bool) -> _Event:
    upserted = [
        {"org_code": item.org_code, "org_name": item.org_name, "parent_code": item.parent_code}
        for item in changes.upserted
    ]
    return _Event(
        DirectoryEventType.DEPARTMENTS_CHANGED,
        {"upserted": upserted, "removed": list(changes.removed), "snapshot": snapshot},
    )
