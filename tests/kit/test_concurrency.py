"""Concurrent syncs of one tenant apply one after the other: the result is a serial one."""

import asyncio

import pytest
from starlette.applications import Starlette

from tests.conftest import Marketplace
from tests.kit.helpers import TENANT_A, all_org_sync, auth_sync, directory_counts, directory_rows, org, user

pytestmark = pytest.mark.anyio


async def test_two_auth_syncs_and_an_all_org_sync_at_once(app: Starlette, marketplace: Marketplace) -> None:
    for round_ in range(3):
        # Given two authSync calls whose users overlap (u20..u40), and a department snapshot
        first = auth_sync(TENANT_A, 1, [user(f"u{n:02d}", role="user") for n in range(0, 41)])
        second = auth_sync(TENANT_A, 1, [user(f"u{n:02d}", role="admin", org="20") for n in range(20, 60)])
        snapshot = all_org_sync(
            TENANT_A, [org(f"{round_}-{n}", f"Dept {n}", "" if n == 0 else f"{round_}-0") for n in range(30)]
        )
        history_before = len((await directory_rows(app))["history"])
        # When all three arrive at once (the third round with a fresh tenant every time)
        answers = await asyncio.gather(
            marketplace.kit("alpha", "authSync", first),
            marketplace.kit("alpha", "authSync", second),
            marketplace.kit("alpha", "allOrgSync", snapshot),
        )
        # Then each is stored, and the result is that of one call after the other
        assert [answer.json()["resultCode"] for answer in answers] == ["000000"] * 3
        rows = await directory_rows(app)
        members = {row[3]: row for row in rows["members"]}
        authorizations = {row[4]: row for row in rows["authorizations"]}
        assert sorted(members) == [f"u{n:02d}" for n in range(60)]
        overlap = {(members[name][5], authorizations[name][5]) for name in (f"u{n}" for n in range(20, 41))}
        assert overlap in ({("10000", "user")}, {("20", "admin")}), overlap  # all from one call, never mixed
        assert [row[3] for row in rows["departments"]] == sorted(f"{round_}-{n}" for n in range(30))
        new_history = rows["history"][history_before:]
        if round_ == 0:
            assert sorted(entry[3] for entry in new_history) == ["changed"] * 21 + ["granted"] * 60
        assert (await directory_counts(app))["directory_authorizations"] == 60
