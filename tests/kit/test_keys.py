"""Which keys verify Kit calls while keys are rotated (contract §2.8)."""

import pytest
from starlette.applications import Starlette

from gateway.settings import ProductConfig, Settings
from tests.conftest import ALPHA_KEY, Marketplace
from tests.kit.helpers import TENANT_A, directory_counts, tenant_sync

pytestmark = pytest.mark.anyio

CURRENT = "the-current-access-key-00002"
PREVIOUS = "the-previous-access-key-0001"
KIT_CURRENT = "the-current-kit-access-key-03"
KIT_PREVIOUS = "the-previous-kit-access-key-4"


def keys(**fields: object) -> list[bytes]:
    return ProductConfig.model_validate({"name": "A", "adapter": "demo", "access_key": CURRENT, **fields}).kit_keys


def test_without_a_kit_key_kit_calls_take_the_basic_keys_being_rotated_out() -> None:
    assert keys(previous_access_keys=[PREVIOUS]) == [CURRENT.encode(), PREVIOUS.encode()]
    assert keys(previous_access_keys=[PREVIOUS], previous_kit_access_keys=[KIT_PREVIOUS]) == [
        CURRENT.encode(),
        PREVIOUS.encode(),
        KIT_PREVIOUS.encode(),
    ]


def test_with_a_kit_key_kit_calls_take_only_the_kit_keys() -> None:
    fields = {"previous_access_keys": [PREVIOUS], "previous_kit_access_keys": [KIT_PREVIOUS]}
    assert keys(kit_access_key=KIT_CURRENT, **fields) == [KIT_CURRENT.encode(), KIT_PREVIOUS.encode()]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # alpha's key is being rotated out; it has no Kit key of its own
    products = dict(settings.products)
    alpha = products["alpha"].model_dump() | {"access_key": CURRENT, "previous_access_keys": [ALPHA_KEY]}
    products["alpha"] = ProductConfig.model_validate(alpha)
    return settings.model_copy(update={"products": products})


async def test_a_rotation_of_the_basic_key_does_not_break_kit_syncs(app: Starlette, marketplace: Marketplace) -> None:
    # Given the marketplace still signs with alpha's previous key
    response = await marketplace.kit("alpha", "tenantSync", tenant_sync(TENANT_A, 1), key=ALPHA_KEY.encode())
    # Then the sync is accepted and stored
    assert response.json()["resultCode"] == "000000", response.json()
    assert (await directory_counts(app))["directory_tenants"] == 1
