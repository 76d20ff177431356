"""Debug and dial-test calls (`testFlag` "1") live apart from real instances.

The marketplace's console debugger signs its calls with the product's key, and a vendor may
type any instance id into it. A test call must never reach, change or reveal a real
instance (a debug releaseInstance must not delete a customer's workspace), and a real call
never acts on a test instance: each kind of call sees only the instances of its own kind.
"""

from typing import Any

import pytest
from starlette.applications import Starlette

from tests.conftest import Marketplace
from tests.fakes import Behaviour
from tests.gateway.helpers import get_instance, state_counts

pytestmark = pytest.mark.anyio

REAL = {"activity": "newInstance", "orderId": "CS1", "orderLineId": "CS1-000001", "businessId": "real-1"}
TEST = {
    "activity": "newInstance",
    "orderId": "MOCKPERIODYEARNEW",
    "orderLineId": "MOCKPERIODYEARNEW-000001",
    "businessId": "test-1",
    "testFlag": "1",
}


def _changes(instance_id: str, test_flag: str) -> list[dict[str, Any]]:
    """Every call that changes an instance, as the given kind of call."""
    flag = {"testFlag": test_flag}
    return [
        {
            "activity": "refreshInstance",
            "instanceId": instance_id,
            "orderId": "CS2",
            "orderLineId": "CS2-000001",
            "scene": "RENEWAL",
            "expireTime": "20301124023618256",
            **flag,
        },
        {"activity": "updateInstanceStatus", "instanceId": instance_id, "status": "FREEZE", **flag},
        {
            "activity": "upgradeInstance",
            "instanceId": instance_id,
            "orderId": "CS3",
            "orderLineId": "CS3-000001",
            **flag,
        },
        {
            "activity": "changeInstanceCheck",
            "instanceId": instance_id,
            "productInfo": {"productId": "OFFI1", "skuCode": "sku-2", "productName": "Pro", "linearValue": 5},
            **flag,
        },
        {"activity": "releaseInstance", "instanceId": instance_id, **flag},
    ]


async def test_a_test_call_never_touches_a_real_instance(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    # Given a real instance, provisioned, whose adapter also takes test calls
    behaviours["alpha"].handles_test_calls = True
    assert (await marketplace.answer("alpha", REAL))["resultCode"] == "000000"
    before = await get_instance(app, "alpha", "real-1")
    assert before is not None
    adapter_calls = sum(behaviours["alpha"].calls.values())
    counts = await state_counts(app)

    # When test calls name it, each is answered as for an unknown instance
    for call in _changes("real-1", "1"):
        answer = await marketplace.answer("alpha", call)
        assert answer["resultCode"] == "000003", (call["activity"], answer)
    queried = await marketplace.answer("alpha", {"activity": "queryInstance", "instanceId": "real-1", "testFlag": "1"})
    assert queried == {"resultCode": "000000", "resultMsg": "success.", "info": []}
    # and a test newInstance for its order line is refused, not answered with the real instance
    reused = await marketplace.answer("alpha", {**REAL, "businessId": "test-9", "testFlag": "1"})
    assert reused["resultCode"] == "000002"
    assert "instanceId" not in reused

    # Then the real instance, its jobs and its adapter are as they were
    after = await get_instance(app, "alpha", "real-1")
    assert after is not None
    assert (after.status, after.expire_time, after.updated_at) == (before.status, before.expire_time, before.updated_at)
    assert await state_counts(app) == counts
    assert sum(behaviours["alpha"].calls.values()) == adapter_calls


async def test_a_real_call_never_touches_a_test_instance(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    # Given a test instance (answered from MarketGate's own records: the adapter takes no test calls)
    created = await marketplace.answer("alpha", TEST)
    assert created == {"resultCode": "000000", "resultMsg": "success.", "instanceId": "test-1"}
    assert sum(behaviours["alpha"].calls.values()) == 0
    before = await get_instance(app, "alpha", "test-1")
    assert before is not None and before.is_test
    counts = await state_counts(app)

    # When real calls name it, each is answered as for an unknown instance
    for call in _changes("test-1", "0"):
        answer = await marketplace.answer("alpha", call)
        assert answer["resultCode"] == "000003", (call["activity"], answer)
    queried = await marketplace.answer("alpha", {"activity": "queryInstance", "instanceId": "test-1"})
    assert queried["info"] == []
    reused = await marketplace.answer("alpha", {**TEST, "businessId": "real-9", "testFlag": "0"})
    assert reused["resultCode"] == "000002"

    # Then the test instance is as it was
    after = await get_instance(app, "alpha", "test-1")
    assert after is not None
    assert (after.status, after.updated_at) == (before.status, before.updated_at)
    assert await state_counts(app) == counts


async def test_test_calls_drive_a_test_instance_through_its_life(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    assert (await marketplace.answer("alpha", TEST))["resultCode"] == "000000"
    queried = await marketplace.answer("alpha", {"activity": "queryInstance", "instanceId": "test-1", "testFlag": "1"})
    assert [entry["instanceId"] for entry in queried["info"]] == ["test-1"]

    for call in _changes("test-1", "1"):
        answer = await marketplace.answer("alpha", call)
        assert answer["resultCode"] == "000000", (call["activity"], answer)

    released = await get_instance(app, "alpha", "test-1")
    assert released is not None and released.status == "released"
    assert sum(behaviours["alpha"].calls.values()) == 0  # the adapter takes no test calls


async def test_a_saved_debug_case_passes_every_time_it_is_replayed(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    """The marketplace replays saved debug cases (purchase to release, the same mock order) twice
    a day and freezes a product after five failing days: a released debug instance is
    provisioned again by the next debug newInstance for its order line."""
    for replay in range(3):
        created = await marketplace.answer("alpha", {**TEST, "businessId": f"test-{replay + 1}"})
        assert created == {"resultCode": "000000", "resultMsg": "success.", "instanceId": "test-1"}, replay
        query = {"activity": "queryInstance", "instanceId": "test-1", "testFlag": "1"}
        assert [entry["instanceId"] for entry in (await marketplace.answer("alpha", query))["info"]] == ["test-1"]
        for call in _changes("test-1", "1"):
            answer = await marketplace.answer("alpha", call)
            assert answer["resultCode"] == "000000", (replay, call["activity"], answer)
    assert sum(behaviours["alpha"].calls.values()) == 0


async def test_a_released_real_instance_is_never_provisioned_again(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    assert (await marketplace.answer("alpha", REAL))["resultCode"] == "000000"
    release = {"activity": "releaseInstance", "instanceId": "real-1"}
    assert (await marketplace.answer("alpha", release))["resultCode"] == "000000"
    again = await marketplace.answer("alpha", {**REAL, "businessId": "real-2"})
    assert (again["resultCode"], again["instanceId"]) == ("000000", "real-1")
    instance = await get_instance(app, "alpha", "real-1")
    assert instance is not None and instance.status == "released"
    assert behaviours["alpha"].calls["provision"] == 1
