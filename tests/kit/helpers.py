"""Building Kit bodies, encrypting client secrets, and reading back what the app stored."""

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlmodel import col, func, select
from starlette.applications import Starlette

from gateway.kit_syncs import EVENT_JOB_KIND
from tenants.directory_models import (
    DirectoryApp,
    DirectoryAuthorization,
    DirectoryAuthorizationChange,
    DirectoryDepartment,
    DirectoryMember,
    DirectoryTenant,
)
from tenants.models import Job, JobState

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec"
if not SPEC.exists():  # the checkout may sit elsewhere; the spec lives beside the main tree
    SPEC = Path("/work/shared/spec")
SAMPLES = SPEC / "samples"
VECTORS: dict[str, Any] = json.loads((SPEC / "vectors.json").read_text(encoding="utf-8"))
RSA_VECTORS: dict[str, Any] = VECTORS["rsa_oaep"]

TENANT_A = "68cbc86abc2018ab880d92f36422fa0e"
TENANT_B = "tenant-b-0000000000000000000001"
TIME = "20220413093539534"

_HASHES = {"SHA-1": hashes.SHA1, "SHA-256": hashes.SHA256}


def public_key() -> rsa.RSAPublicKey:
    der = base64.b64decode(RSA_VECTORS["public_key_x509_base64"])
    key = serialization.load_der_public_key(der)
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def encrypt_secret(plaintext: str, *, oaep: str = "SHA-256", mgf1: str = "SHA-1") -> str:
    """What the marketplace sends as clientSecret: Base64 RSA-OAEP under the product's public key."""
    scheme = padding.OAEP(mgf=padding.MGF1(algorithm=_HASHES[mgf1]()), algorithm=_HASHES[oaep](), label=None)
    return base64.b64encode(public_key().encrypt(plaintext.encode("utf-8"), scheme)).decode("ascii")


def common(tenant_id: str, *, test: bool = False, instance_id: str = "inst-1") -> dict[str, object]:
    return {"instanceId": "" if test else instance_id, "tenantId": tenant_id, "testFlag": int(test), "timeStamp": TIME}


def tenant_sync(
    tenant_id: str,
    flag: int,
    *,
    code: str = "huawei",
    name: str = "Huawei Test",
    domain: str = "https://example.tenantaccount.com",
    test: bool = False,
    order_id: str = "CS1906666666ABCDE",
) -> dict[str, object]:
    return {
        **common(tenant_id, test=test),
        "orderId": "" if test else order_id,
        "tenantCode": code,
        "name": name,
        "domainName": domain,
        "flag": flag,
    }


def application_sync(
    tenant_id: str,
    flag: int,
    *,
    secret: str = "sEcReT-client-9f3a1c",
    client_id: str = "client-1",
    app_id: str = "app-001",
    test: bool = False,
) -> dict[str, object]:
    return {
        **common(tenant_id, test=test),
        "appId": app_id,
        "clientId": client_id,
        "clientSecret": encrypt_secret(secret),
        "flag": flag,
    }


def user(
    name: str, *, org: str = "10000", role: str = "user", enable: str = "true", **extra: object
) -> dict[str, object]:
    return {"userName": name, "name": name.title(), "orgCode": org, "role": role, "enable": enable, **extra}


def auth_sync(
    tenant_id: str, flag: int, users: list[dict[str, object]], *, app_id: str = "app-001", test: bool = False
) -> dict[str, object]:
    return {**common(tenant_id, test=test), "appId": app_id, "flag": flag, "currentSyncTime": TIME, "userList": users}


def org(code: str, name: str, parent: str = "") -> dict[str, object]:
    return {"orgCode": code, "orgName": name, "parentCode": parent}


def single_org_sync(
    tenant_id: str, flag: int, code: str, name: str = "", parent: str = "", *, test: bool = False
) -> dict[str, object]:
    return {**common(tenant_id, test=test), "orgCode": code, "orgName": name, "parentCode": parent, "flag": flag}


def all_org_sync(tenant_id: str, orgs: list[dict[str, object]], *, test: bool = False) -> dict[str, object]:
    return {**common(tenant_id, test=test), "orgInfoList": orgs, "flag": 1}


# Reading back ------------------------------------------------------------------------------

DIRECTORY_TABLES = (
    DirectoryTenant,
    DirectoryApp,
    DirectoryDepartment,
    DirectoryMember,
    DirectoryAuthorization,
    DirectoryAuthorizationChange,
)


async def directory_counts(app: Starlette) -> dict[str, int]:
    """Rows per directory table, and the directory event jobs: what a refusal must leave unchanged."""
    counts: dict[str, int] = {}
    async with app.state.database.reader() as session:
        for model in DIRECTORY_TABLES:
            counts[model.__tablename__] = int((await session.exec(select(func.count()).select_from(model))).one())
        jobs = select(func.count()).select_from(Job).where(Job.kind == EVENT_JOB_KIND)
        counts["events"] = int((await session.exec(jobs)).one())
    return counts


async def directory_rows(app: Starlette) -> dict[str, list[tuple[Any, ...]]]:
    """The directory as plain tuples (no ids, no times), sorted: for exact expectations."""
    async with app.state.database.reader() as session:
        tenants = (await session.exec(select(DirectoryTenant))).all()
        apps = (await session.exec(select(DirectoryApp))).all()
        departments = (await session.exec(select(DirectoryDepartment))).all()
        members = (await session.exec(select(DirectoryMember))).all()
        authorizations = (await session.exec(select(DirectoryAuthorization))).all()
        history = (
            await session.exec(select(DirectoryAuthorizationChange).order_by(col(DirectoryAuthorizationChange.id)))
        ).all()
    return {
        "tenants": sorted(
            (
                t.product,
                t.tenant_id,
                t.is_test,
                t.tenant_code,
                t.name,
                t.domain_name,
                t.instance_id,
                t.order_id,
                t.deleted,
            )
            for t in tenants
        ),
        "apps": sorted((a.product, a.tenant_id, a.is_test, a.app_id, a.client_id, a.oaep_variant) for a in apps),
        "departments": sorted(
            (d.product, d.tenant_id, d.is_test, d.org_code, d.org_name, d.parent_code) for d in departments
        ),
        "members": sorted(
            (m.product, m.tenant_id, m.is_test, m.user_name, m.name, m.org_code, m.removed) for m in members
        ),
        "authorizations": sorted(
            (a.product, a.tenant_id, a.is_test, a.app_id, a.user_name, a.role.value, a.enabled, a.revoked_at is None)
            for a in authorizations
        ),
        "history": [
            (h.product, h.tenant_id, h.user_name, h.action.value, h.role.value, h.enabled, h.cause) for h in history
        ],
    }


async def settle_events(app: Starlette, *, timeout_s: float = 10.0) -> None:
    """Wait until every directory event job has run (done or dead)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        async with app.state.database.reader() as session:
            pending = (
                select(func.count()).select_from(Job).where(Job.kind == EVENT_JOB_KIND, Job.state == JobState.PENDING)
            )
            if int((await session.exec(pending)).one()) == 0:
                return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("directory events still pending")
        app.state.runner.wake()
        await asyncio.sleep(0.02)
