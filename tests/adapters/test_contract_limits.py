"""The marketplace's limits on an adapter's AppInfo (notes §3.2)."""

import pytest

from gateway.adapters.contract import AppInfo
from gateway.products import app_info_problem


@pytest.mark.parametrize(
    ("app_info", "problem"),
    [
        (AppInfo(front_end_url="https://a.example/" + "x" * 494), None),  # 512 exactly
        (AppInfo(front_end_url=""), "frontEndUrl is empty"),
        (AppInfo(front_end_url="https://a.example/" + "x" * 495), "frontEndUrl over 512 characters"),
        (AppInfo(front_end_url="https://a", admin_url="https://b/" + "x" * 503), "adminUrl over 512 characters"),
        (AppInfo(front_end_url="https://a", user_name="u" * 129), "userName over 128 characters"),
        (AppInfo(front_end_url="https://a", password="p" * 129), "password over 128 characters"),
        (AppInfo(front_end_url="https://a", memo="m" * 1024, user_name="u" * 128, password="p" * 128), None),
        (
            AppInfo(front_end_url="https://a", memo="m" * 1025, user_name="u" * 129),
            "userName over 128 characters, memo over 1024 characters",
        ),
    ],
)
def test_app_info_limits(app_info: AppInfo, problem: str | None) -> None:
    assert app_info_problem(app_info) == problem


def test_the_problem_never_shows_a_value() -> None:
    problem = app_info_problem(AppInfo(front_end_url="https://a", password="secret-" + "p" * 200))
    assert problem is not None and "secret" not in problem
