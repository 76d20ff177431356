"""A product at run time: its validated settings and its live adapter."""

from dataclasses import dataclass

from gateway.adapters.contract import Adapter, AppInfo, InstanceRef
from gateway.koogallery.results import APP_INFO_LIMITS
from gateway.koogallery.signing import CallKind
from gateway.settings import ProductConfig
from tenants.models import Instance


@dataclass(frozen=True, slots=True)
class Product:
    slug: str
    config: ProductConfig
    adapter: Adapter

    def reaches_adapter(self, *, is_test: bool) -> bool:
        """Debug calls reach the adapter only if it declares that it handles them."""
        return not is_test or self.adapter.handles_test_calls

    def keys(self, kind: CallKind) -> list[bytes]:
        """The keys that verify calls of `kind`, the current one (which signs answers) first."""
        return self.config.basic_keys if kind is CallKind.BASIC else self.config.kit_keys

    def ref(self, instance: Instance) -> InstanceRef:
        return InstanceRef(product=self.slug, instance_id=instance.instance_id, is_test=instance.is_test)


def app_info_problem(app_info: AppInfo) -> str | None:
    """What the marketplace would refuse in an adapter's AppInfo (never the values: one may be a
    password); None when it is fine."""
    fields = app_info_fields(app_info)
    if "frontEndUrl" not in fields:
        return "frontEndUrl is empty"
    over = [
        f"{name} over {limit} characters"
        for name, limit in APP_INFO_LIMITS.items()
        if len(fields.get(name, "")) > limit
    ]
    return ", ".join(over) or None


def app_info_fields(app_info: AppInfo) -> dict[str, str]:
    """AppInfo in the marketplace's field names, empty values left out."""
    fields = {
        "frontEndUrl": app_info.front_end_url,
        "adminUrl": app_info.admin_url,
        "userName": app_info.user_name,
        "password": app_info.password,
        "memo": app_info.memo,
    }
    return {name: value for name, value in fields.items() if value}
