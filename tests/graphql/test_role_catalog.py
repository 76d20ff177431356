"""Each product's roles: the products file's `roles` and `default_roles`, and the adapter's own."""

import re
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError

from gateway.adapters.contract import AdapterContext
from gateway.app import create_app
from gateway.settings import ConfigError, ProductConfig, Settings
from gateway.store import Store
from tenants.admin_models import TokenScope
from tenants.directory_models import MemberRole
from tenants.roles import InvalidRoleCatalogError, RoleCatalog
from tests.fakes import Behaviour, RecordingAdapter
from tests.graphql.conftest import GraphQL, issue_token

pytestmark = pytest.mark.anyio


def test_the_catalog_keeps_the_files_roles_first_then_the_adapters() -> None:
    catalog = RoleCatalog.build(
        declared=["viewer", "editor", "viewer"], contributed=["editor", "robot"], defaults={"user": ["robot", "viewer"]}
    )
    assert catalog.roles == ("viewer", "editor", "robot")
    assert (catalog.default_for(MemberRole.USER), catalog.default_for(MemberRole.ADMIN)) == (("robot", "viewer"), ())
    assert catalog.unknown(["editor", "owner"]) == ["owner"]


@pytest.mark.parametrize(
    ("declared", "defaults", "message"),
    [
        (["viewer"], {"admin": ["owner"]}, "default_roles.admin: not declared in roles: owner"),
        (["viewer"], {"guest": ["viewer"]}, "default_roles: 'guest' is not admin or user"),
        ([" padded"], {}, "not a role name: ' padded'"),
    ],
)
def test_a_catalog_that_does_not_add_up_is_refused(
    declared: list[str], defaults: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(InvalidRoleCatalogError, match=re.escape(message)):
        RoleCatalog.build(declared=declared, defaults=defaults)


@pytest.mark.parametrize("name", ["", "has space", "-leading", "x" * 65, "名前"])
def test_the_products_file_refuses_malformed_role_names(name: str) -> None:
    with pytest.raises(ValidationError):
        ProductConfig.model_validate({"name": "A", "adapter": "recording", "access_key": "k" * 20, "roles": [name]})
    with pytest.raises(ValidationError):
        ProductConfig.model_validate(
            {"name": "A", "adapter": "recording", "access_key": "k" * 20, "default_roles": {"user": [name]}}
        )


class RolesAdapter(RecordingAdapter):
    product_roles = ("robot-operator", "viewer")


def _factory(behaviours: Mapping[str, Behaviour]) -> Any:
    def factory(settings: Mapping[str, Any], context: AdapterContext) -> RecordingAdapter:
        return RolesAdapter(behaviours[context.product], context)

    return factory


async def test_the_adapter_contributes_roles(
    settings: Settings, store: Store, behaviours: dict[str, Behaviour]
) -> None:
    products = dict(settings.products)
    products["alpha"] = products["alpha"].model_copy(update={"default_roles": {"admin": ["robot-operator"]}})
    application = create_app(
        settings.model_copy(update={"products": products}),
        adapter_factories={"recording": _factory(behaviours)},
        store=store,
    )
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        token = await issue_token(application, "ops", ["alpha"], TokenScope.READ)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="https://mg.test"
        ) as client:
            body = await GraphQL(client)("{ products { slug roles { name defaultFor } } }", token=token)
    assert body == {
        "data": {
            "products": [
                {
                    "slug": "alpha",
                    "roles": [
                        {"name": "viewer", "defaultFor": []},
                        {"name": "editor", "defaultFor": []},
                        {"name": "approver", "defaultFor": []},
                        {"name": "auditor", "defaultFor": []},
                        {"name": "robot-operator", "defaultFor": ["ADMIN"]},
                    ],
                }
            ]
        }
    }


async def test_a_default_role_nobody_declares_stops_start_up(
    settings: Settings, store: Store, behaviours: dict[str, Behaviour]
) -> None:
    from tests.fakes import recording_factory

    products = dict(settings.products)
    products["beta"] = products["beta"].model_copy(update={"default_roles": {"user": ["ghost"]}})
    application = create_app(
        settings.model_copy(update={"products": products}),
        adapter_factories={"recording": recording_factory(behaviours)},
        store=store,
    )
    with pytest.raises(
        ConfigError, match=re.escape("product 'beta': default_roles.user: not declared in roles: ghost")
    ):
        async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
            pass
