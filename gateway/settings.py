"""MarketGate's one settings object, and the products file it loads at start-up.

Environment variables carry the prefix `MARKETGATE_`. Products are declared in a TOML file
(`MARKETGATE_CONFIG`) under `[products.<slug>]`; tests build `Settings(products=...)` directly.
Every secret field of a product also accepts `<field>_env = "VAR"` and `<field>_file = "path"`.
"""

import base64
import binascii
import enum
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

SLUG_PATTERN = re.compile(r"^[a-z0-9-]{1,48}$")
MIN_KEY_BYTES = 8
"""The shortest access key accepted at all (production asks for 16 characters, without placeholders)."""
ROLE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
DEFAULT_DATA_DIR = Path(".marketgate")
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-do-not-use"  # noqa: S105 - refused in production
_PLACEHOLDERS = ("change-me", "changeme", "placeholder", "example", "secret", "xxx")


class ConfigError(Exception):
    """The settings or the products file are unusable; the message names what is at fault."""

    code = "config_error"


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class KeyEncoding(enum.StrEnum):
    RAW = "raw"
    BASE64 = "base64"


class ProductConfig(BaseModel):
    """One product behind MarketGate: its keys, adapter and limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=128)]
    adapter: Annotated[str, Field(min_length=1, max_length=64)]
    adapter_settings: dict[str, Any] = Field(default_factory=dict)
    access_key: SecretStr
    kit_access_key: SecretStr | None = None
    previous_access_keys: list[SecretStr] = Field(default_factory=list)
    previous_kit_access_keys: list[SecretStr] = Field(default_factory=list)
    key_encoding: KeyEncoding = KeyEncoding.RAW
    answer_deadline_s: Annotated[float, Field(gt=0, le=19)] = 3.0
    timestamp_window_s: Annotated[float, Field(gt=0, le=900)] = 60.0
    sign_responses: bool = False
    max_body_bytes: Annotated[int, Field(gt=0, le=1024 * 1024)] = 64 * 1024
    kit_max_body_bytes: Annotated[int, Field(gt=0, le=64 * 1024 * 1024)] = 10 * 1024 * 1024
    max_users_per_sync: Annotated[int, Field(gt=0, le=100_000)] = 5000
    open_api_endpoint: Annotated[str, Field(pattern=r"^https?://[^\s/@]+(/[^\s]*)?$")] = "https://mkt.myhuaweicloud.com"
    """Scheme, host and optional path prefix; no user:password (the request is AK/SK signed)."""
    open_api_ak: SecretStr | None = None
    open_api_sk: SecretStr | None = None
    rsa_private_key: SecretStr | None = None
    tenant_domain_allow: list[str] = Field(default_factory=list)
    roles: list[Annotated[str, Field(pattern=ROLE_PATTERN)]] = Field(default_factory=list)
    """The product's own roles, which tenant admins grant to members and departments (admin API)."""
    default_roles: dict[Literal["admin", "user"], list[Annotated[str, Field(pattern=ROLE_PATTERN)]]] = Field(
        default_factory=dict
    )
    """The product roles a member holds by default, by marketplace role (`admin`, `user`)."""
    sso_app_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """The application credential's appId, for the unified login page; unset: the appId Kit syncs last sent."""
    sso_redirect_allow: list[str] = Field(default_factory=list)
    """URL prefixes (`https://host[/path]`) that SSO's `next` and logout `redirect_url` may point at."""
    sso_logout_redirect_url: str | None = None
    """Where the identity domain sends the browser after logout; unset: MarketGate's signed-out page."""
    sso_redeem_key: SecretStr | None = None
    """The key a product presents to redeem login tokens at POST /sso/<slug>/redeem; unset: no redemption over HTTP."""

    @field_validator("sso_redirect_allow")
    @classmethod
    def _redirect_prefixes(cls, prefixes: list[str]) -> list[str]:
        for prefix in prefixes:
            _require_plain_url(prefix, "sso_redirect_allow entries")
        return prefixes

    @field_validator("sso_logout_redirect_url")
    @classmethod
    def _logout_redirect(cls, url: str | None) -> str | None:
        if url is not None:
            _require_plain_url(url, "sso_logout_redirect_url")
        return url

    @field_validator("sso_redeem_key")
    @classmethod
    def _redeem_key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must have at least 16 characters")
        return value

    @model_validator(mode="after")
    def _keys_usable(self) -> "ProductConfig":
        # An empty key would let anyone sign: every key, current or previous, must have content.
        for key in self._all_keys():
            try:
                decoded = self._decode(key)
            except binascii.Error as exc:
                raise ValueError("key_encoding is base64 but a key is not valid Base64") from exc
            if len(decoded) < MIN_KEY_BYTES:
                raise ValueError(f"every access key must have at least {MIN_KEY_BYTES} bytes")
        return self

    def _all_keys(self) -> list[SecretStr]:
        keys = [self.access_key, *self.previous_access_keys, *self.previous_kit_access_keys]
        return keys + ([self.kit_access_key] if self.kit_access_key else [])

    def _decode(self, key: SecretStr) -> bytes:
        text = key.get_secret_value()
        if self.key_encoding is KeyEncoding.BASE64:
            return base64.b64decode(text, validate=True)
        return text.encode("utf-8")

    @property
    def basic_keys(self) -> list[bytes]:
        """Keys that verify basic calls: the current one first, then those being rotated out."""
        return [self._decode(key) for key in (self.access_key, *self.previous_access_keys)]

    @property
    def kit_keys(self) -> list[bytes]:
        """Keys that verify Kit calls: `kit_access_key` and its previous keys, or, when it is unset,
        the basic keys (a rotation of `access_key` then covers Kit calls too)."""
        current = [self._decode(self.kit_access_key)] if self.kit_access_key else self.basic_keys
        return [*current, *(self._decode(key) for key in self.previous_kit_access_keys)]


def _require_plain_url(url: str, what: str) -> None:
    """An absolute http(s) URL with a host and no credentials, query or fragment."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"{what} must be URLs") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ValueError(f"{what} must be http(s) URLs with a host and no user info")
    if parts.query or parts.fragment or "\\" in url:
        raise ValueError(f"{what} must not carry a query or fragment")


def _resolve_secret_sources(product: dict[str, Any], *, base_dir: Path) -> dict[str, Any]:
    """Replace `<field>_env` and `<field>_file` entries by the secret they point at."""
    resolved = dict(product)
    for entry in list(product):
        for suffix in ("_env", "_file"):
            if not entry.endswith(suffix) or entry.removesuffix(suffix) not in _SECRET_FIELDS:
                continue
            field = entry.removesuffix(suffix)
            if field in product:
                raise ConfigError(f"{entry}: give either {field} or {entry}, not both")
            if f"{field}_env" in product and f"{field}_file" in product:
                raise ConfigError(f"{entry}: give either {field}_env or {field}_file, not both")
            sources = resolved.pop(entry)
            many = isinstance(sources, list)
            values = [_read_secret(entry, source, suffix, base_dir) for source in (sources if many else [sources])]
            resolved[field] = values if many else values[0]
    return resolved


def _read_secret(entry: str, source: Any, suffix: str, base_dir: Path) -> str:
    if not isinstance(source, str) or not source:
        raise ConfigError(f"{entry}: must be a non-empty string")
    if suffix == "_env":
        value = os.environ.get(source, "")
        if not value:
            raise ConfigError(f"{entry}: environment variable {source} is not set or empty")
        return value
    path = base_dir / source
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{entry}: cannot read {path}: {exc.strerror}") from exc
    if not value:
        raise ConfigError(f"{entry}: {path} is empty")
    return value


_SECRET_FIELDS = frozenset(
    name for name, field in ProductConfig.model_fields.items() if "SecretStr" in str(field.annotation)
)


def parse_products(document: dict[str, Any], *, base_dir: Path) -> dict[str, ProductConfig]:
    """Validate the `[products.<slug>]` tables of a products document."""
    unknown = set(document) - {"products"}
    if unknown:
        raise ConfigError(f"unknown top-level keys: {', '.join(sorted(unknown))}")
    tables = document.get("products", {})
    if not isinstance(tables, dict) or not tables:
        raise ConfigError("no [products.<slug>] table")
    products: dict[str, ProductConfig] = {}
    for slug, table in tables.items():
        if not SLUG_PATTERN.match(slug):
            raise ConfigError(f"product {slug!r}: slug must match [a-z0-9-]{{1,48}}")
        if not isinstance(table, dict):
            raise ConfigError(f"product {slug!r}: must be a table")
        try:
            products[slug] = ProductConfig.model_validate(_resolve_secret_sources(table, base_dir=base_dir))
        except ConfigError as exc:
            raise ConfigError(f"product {slug!r}: {exc}") from exc
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            key = ".".join(str(part) for part in first["loc"]) or "table"
            raise ConfigError(f"product {slug!r}: {key}: {first['msg']}") from exc
    return products


def load_products(path: Path) -> dict[str, ProductConfig]:
    """Read and validate a products file; `ConfigError` names the product and key at fault."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read products file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"products file {path} is not valid TOML: {exc}") from exc
    return parse_products(document, base_dir=path.parent)


class _EnvironmentWithoutProducts(PydanticBaseSettingsSource):
    """The environment, less `MARKETGATE_PRODUCTS`: products come from the products file (or, in
    tests, `Settings(products=...)`), which resolves `_env`/`_file` secrets and whose errors
    never echo a key. From the environment they would silently replace the file."""

    def __init__(self, inner: PydanticBaseSettingsSource) -> None:
        super().__init__(inner.settings_cls)
        self._inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        values = self._inner()
        values.pop("products", None)
        return values


class Settings(BaseSettings):
    """Everything MarketGate reads from its environment (prefix `MARKETGATE_`)."""

    model_config = SettingsConfigDict(env_prefix="MARKETGATE_", extra="forbid", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _EnvironmentWithoutProducts(env_settings), dotenv_settings, file_secret_settings

    environment: Environment = Environment.PRODUCTION
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = Field(default=f"sqlite:///{DEFAULT_DATA_DIR / 'marketgate.db'}")
    database_pool_size: Annotated[int, Field(ge=1, le=500)] = 32
    """Database connections a process keeps open once it needed them (about the calls it has in flight
    at its busiest); bursts open up to a quarter as many again, closed after use."""
    redis_url: str | None = None
    config: Path | None = None
    secret_key: SecretStr | None = None
    public_url: Annotated[str, Field(pattern=r"^https?://[^\s/]+$")] = "http://127.0.0.1:8000"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    auto_migrate: bool = True
    job_poll_interval_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    job_lease_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    job_max_attempts: Annotated[int, Field(gt=0, le=1000)] = 25
    job_concurrency: Annotated[int, Field(gt=0, le=256)] = 8
    job_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    """How long done background jobs are kept (their dedupe keys answer repeated renewals)."""
    call_log_body_bytes: Annotated[int, Field(ge=0, le=1024 * 1024)] = 16 * 1024
    graphql_introspection: bool = False
    """Let the admin API describe its own schema (on in the demo; the schema is in graphql_api/schema.graphql)."""
    graphiql: bool = False
    """Serve the GraphiQL page at GET /graphql (on in the demo)."""
    cors_origins: list[Annotated[str, Field(pattern=r"^https?://[^\s/]+$")]] = Field(default_factory=list)
    """Browser origins allowed to call the admin API, as https://admin.example.com (JSON list in the environment)."""
    graphql_max_depth: Annotated[int, Field(gt=0, le=100)] = 10
    graphql_max_aliases: Annotated[int, Field(ge=0, le=1000)] = 30
    graphql_max_tokens: Annotated[int, Field(gt=0, le=100_000)] = 2000
    graphql_max_body_bytes: Annotated[int, Field(gt=0, le=64 * 1024 * 1024)] = 1024 * 1024
    sso_session_ttl_s: Annotated[float, Field(gt=0, le=30 * 86400)] = 8 * 3600.0
    """How long a MarketGate SSO session lasts at most (the identity domain's tokens are refreshed meanwhile)."""
    sso_state_ttl_s: Annotated[float, Field(gt=0, le=3600)] = 600.0
    sso_login_token_ttl_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    sso_bearer_ttl_s: Annotated[float, Field(gt=0, le=3600)] = 300.0
    sso_refresh_margin_s: Annotated[float, Field(ge=0, le=3600)] = 300.0
    sso_identity_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    sso_callback_rate_limit: Annotated[int, Field(gt=0, le=100_000)] = 30
    sso_callback_rate_window_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    sso_unified_login_url: str = (
        "https://macroverse.huaweicloud.com/unified-login/#/portal-login?ind=UNOP&appId={app_id}"
    )
    """The marketplace's unified login page; `{app_id}` is replaced by the product's appId."""
    dev_identity_domain_overrides: dict[str, str] = Field(default_factory=dict)
    """Development only: tenant identity domain (as tenantSync sent it) -> base URL to use instead,
    e.g. a local identity stand-in on http://127.0.0.1:9000. Refused in production."""
    products: dict[str, ProductConfig] = Field(default_factory=dict)

    @field_validator("sso_unified_login_url")
    @classmethod
    def _unified_login_template(cls, url: str) -> str:
        if "{app_id}" not in url or not url.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL holding {app_id}")
        return url

    @field_validator("dev_identity_domain_overrides")
    @classmethod
    def _override_targets(cls, overrides: dict[str, str]) -> dict[str, str]:
        for target in overrides.values():
            _require_plain_url(target, "dev_identity_domain_overrides targets")
        return {domain.rstrip("/"): target.rstrip("/") for domain, target in overrides.items()}

    @model_validator(mode="after")
    def _products_and_secrets(self) -> "Settings":
        if not self.products and self.config is not None:
            object.__setattr__(self, "products", load_products(self.config))
        for slug in self.products:
            if not SLUG_PATTERN.match(slug):
                raise ConfigError(f"product {slug!r}: slug must match [a-z0-9-]{{1,48}}")
        if self.environment is Environment.PRODUCTION:
            self._refuse_placeholders()
        return self

    def _refuse_placeholders(self) -> None:
        if self.dev_identity_domain_overrides:
            raise ConfigError("MARKETGATE_DEV_IDENTITY_DOMAIN_OVERRIDES is for development only")
        if self.secret_key is None or len(self.secret_key.get_secret_value()) < 32:
            raise ConfigError("MARKETGATE_SECRET_KEY must be set to at least 32 characters in production")
        if self.secret_key.get_secret_value() == DEVELOPMENT_SECRET_KEY:
            raise ConfigError("MARKETGATE_SECRET_KEY is the development placeholder")
        for slug, product in self.products.items():
            for key in product._all_keys():
                text = key.get_secret_value().lower()
                if len(text) < 16 or any(marker in text for marker in _PLACEHOLDERS):
                    raise ConfigError(f"product {slug!r}: an access key looks like a placeholder or is too short")
            redeem = product.sso_redeem_key.get_secret_value().lower() if product.sso_redeem_key else None
            if redeem is not None and any(marker in redeem for marker in _PLACEHOLDERS):
                raise ConfigError(f"product {slug!r}: sso_redeem_key looks like a placeholder")

    @property
    def secret(self) -> bytes:
        """The master key: MARKETGATE_SECRET_KEY, or a fixed key in development only."""
        key = self.secret_key.get_secret_value() if self.secret_key else DEVELOPMENT_SECRET_KEY
        return key.encode("utf-8")
