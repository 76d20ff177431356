"""Every sample body of the spec, quirks included, is accepted as sent."""

import json

import pytest
from starlette.applications import Starlette

from tests.conftest import Marketplace
from tests.kit.helpers import SAMPLES, TENANT_A, directory_rows, encrypt_secret, settle_events

pytestmark = pytest.mark.anyio

ORDER = [
    "kit-tenantSync.json",
    "kit-applicationSync.json",
    "kit-allOrgSync-array.json",
    "kit-allOrgSync-lenient-string.json",
    "kit-singleOrgSync.json",
    "kit-authSync.json",
    "kit-authSync-userList-as-string.json",
]


def sample(name: str) -> bytes:
    raw = (SAMPLES / name).read_bytes()
    if name == "kit-applicationSync.json":
        # The sample's clientSecret is a placeholder: put a real ciphertext in its place, bytes otherwise as sent.
        placeholder = json.loads(raw)["clientSecret"]
        raw = raw.replace(placeholder.encode(), encrypt_secret("sEcReT-client-9f3a1c").encode())
    return raw


def test_every_kit_sample_is_covered() -> None:
    assert sorted(path.name for path in SAMPLES.glob("kit-*.json")) == sorted(ORDER)


async def test_samples_are_accepted_in_binding_order(app: Starlette, marketplace: Marketplace) -> None:
    # Given the sample bodies byte for byte (duplicate keys, lists as strings, unquoted keys, OrgName)
    for name in ORDER:
        sync = name.removeprefix("kit-").removesuffix(".json").split("-")[0]
        # When each is sent as the marketplace sends it
        response = await marketplace.kit("alpha", sync, sample(name))
        # Then each is stored and answered 000000
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "application/json;charset=UTF-8"
        assert response.json()["resultCode"] == "000000", (name, response.json())
    await settle_events(app)
    rows = await directory_rows(app)
    assert rows["tenants"] == [
        (
            "alpha",
            TENANT_A,
            False,
            "huawei",
            "huaiweitest",
            "https://example.tenantaccount.com",
            "huaiweitest123456",
            "CS1906666666ABCDE",
            False,
        )
    ]
    assert rows["apps"] == [("alpha", TENANT_A, False, "app-001", "NzZeWuiJa91dPSRdZQChMazIh13AW", "sha256-mgf1-sha1")]
    assert rows["departments"] == [
        ("alpha", TENANT_A, False, "00000001", "产品部", ""),
        ("alpha", TENANT_A, False, "00000002", "测试部", "00000001"),
        ("alpha", TENANT_A, False, "10000", "开发部", ""),
    ]
    assert rows["members"] == [
        ("alpha", TENANT_A, False, "lisi02", "李四", "10001", False),
        ("alpha", TENANT_A, False, "zhangsan01", "张三", "10000", False),
    ]
    # The last sample (flag 3) revoked lisi02's authorization.
    assert rows["authorizations"] == [
        ("alpha", TENANT_A, False, "app-001", "lisi02", "user", True, False),
        ("alpha", TENANT_A, False, "app-001", "zhangsan01", "admin", True, True),
    ]
