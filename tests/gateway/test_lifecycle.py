"""One product driven through its whole life by signed basic calls."""

import pytest

from tests.conftest import Marketplace
from tests.fakes import Behaviour

pytestmark = pytest.mark.anyio

NEW = {"activity": "newInstance", "orderId": "CS1", "orderLineId": "CS1-000001", "businessId": "biz-1"}


async def test_full_lifecycle(marketplace: Marketplace, behaviours: dict[str, Behaviour]) -> None:
    # Given a new purchase
    created = await marketplace.answer("alpha", NEW)
    assert created == {"resultCode": "000000", "resultMsg": "success.", "instanceId": "biz-1"}
    assert behaviours["alpha"].provisioned["biz-1"] == 1, behaviours

    # When the marketplace queries it, it gets the adapter's access info with the password
    queried = await marketplace.answer("alpha", {"activity": "queryInstance", "instanceId": "biz-1,unknown"})
    assert queried["resultCode"] == "000000"
    assert queried["info"] == [
        {
            "instanceId": "biz-1",
            "appInfo": {
                "frontEndUrl": "https://alpha.example.com/biz-1",
                "userName": "admin",
                "password": "initial-Pa55",
            },
        }
    ]

    renewed = await marketplace.answer(
        "alpha",
        {
            "activity": "refreshInstance",
            "instanceId": "biz-1",
            "orderId": "CS2",
            "orderLineId": "CS2-000001",
            "scene": "RENEWAL",
            "expireTime": "20301124023618256",
        },
    )
    assert renewed["resultCode"] == "000000"
    for status in ("FREEZE", "FREEZE", "UNFREEZE"):
        answer = await marketplace.answer(
            "alpha", {"activity": "updateInstanceStatus", "instanceId": "biz-1", "status": status}
        )
        assert answer["resultCode"] == "000000"
    upgraded = await marketplace.answer(
        "alpha", {"activity": "upgradeInstance", "instanceId": "biz-1", "orderId": "CS3", "orderLineId": "CS3-000001"}
    )
    assert upgraded["resultCode"] == "000000"
    for _ in range(2):
        released = await marketplace.answer("alpha", {"activity": "releaseInstance", "instanceId": "biz-1"})
        assert released["resultCode"] == "000000"
    gone = await marketplace.answer(
        "alpha", {"activity": "updateInstanceStatus", "instanceId": "biz-1", "status": "FREEZE"}
    )
    assert gone["resultCode"] == "000003"
