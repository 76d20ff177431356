"""Finds adapters in the `marketgate.adapters` entry-point group and builds one per product."""

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, cast

from gateway.adapters.contract import CONTRACT_VERSION, Adapter, AdapterConfigError, AdapterContext
from gateway.settings import ConfigError, ProductConfig

ENTRY_POINT_GROUP = "marketgate.adapters"

Factory = Callable[[Mapping[str, Any], AdapterContext], Adapter]


def available_factories() -> dict[str, Factory]:
    """Every adapter factory installed, by entry-point name; duplicate names are refused."""
    factories: dict[str, Factory] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in factories:
            raise ConfigError(f"adapter {entry.name!r} is registered twice")
        try:
            factories[entry.name] = cast(Factory, entry.load())
        except Exception as exc:  # any import failure of a plugin must stop start-up clearly
            raise ConfigError(f"adapter {entry.name!r} cannot be loaded: {exc}") from exc
    return factories


def build_adapters(
    products: Mapping[str, ProductConfig],
    *,
    context_for: Callable[[str, ProductConfig], AdapterContext],
    factories: Mapping[str, Factory] | None = None,
) -> dict[str, Adapter]:
    """One adapter per product; any problem stops start-up with a message naming the product."""
    known = available_factories() if factories is None else dict(factories)
    adapters: dict[str, Adapter] = {}
    for slug, product in products.items():
        if product.adapter not in known:
            names = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"product {slug!r}: unknown adapter {product.adapter!r} (installed: {names})")
        try:
            adapter = known[product.adapter](product.adapter_settings, context_for(slug, product))
        except AdapterConfigError as exc:
            raise ConfigError(f"product {slug!r}: adapter {product.adapter!r}: {exc}") from exc
        version = getattr(adapter, "contract_version", None)
        if not isinstance(version, int) or not 1 <= version <= CONTRACT_VERSION:
            raise ConfigError(
                f"product {slug!r}: adapter {product.adapter!r} is written for contract {version!r}, "
                f"MarketGate speaks 1 to {CONTRACT_VERSION}"
            )
        adapters[slug] = adapter
    return adapters
