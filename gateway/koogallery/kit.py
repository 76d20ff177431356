"""Typed requests of the five V2 Kit sync interfaces, parsed leniently, checked strictly.

Lenient where the marketplace's own examples are odd: `userList` and `orgInfoList` may be
arrays or strings holding one (JSON, or JS-style with bare keys), a department's name may be
`orgName`, `OrgName` or `name`, `flag`/`testFlag` may be integers or numeric strings, and
unknown fields are ignored. Strict on every field rule of the notes: required fields,
lengths, enums, `enable` only "true"/"false", `role` only admin/user.

Deletions (`flag` 0, and authSync's revocation `flag` 3) need only the identifying fields:
a delete the marketplace cannot repeat must not fail for a field it does not use.
"""

import enum
import json
import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from gateway.koogallery.errors import BadPayloadError
from gateway.koogallery.lenient_json import LenientJsonError, loads_lenient
from gateway.koogallery.payload import JsonObject
from gateway.koogallery.tenant_domain import check_tenant_domain

MAX_EXTENSION_CHARS = 16 * 1024
MAX_EXTENSION_DEPTH = 8
LOGGED_LIST_ITEMS = 20


class SyncName(enum.StrEnum):
    """The five Kit interfaces, by the last segment of their path."""

    TENANT = "tenantSync"
    APPLICATION = "applicationSync"
    AUTH = "authSync"
    SINGLE_ORG = "singleOrgSync"
    ALL_ORG = "allOrgSync"


class SyncFlag(enum.IntEnum):
    DELETE = 0
    ADD = 1
    MODIFY = 2
    CANCEL = 3
    """authSync only: cancel the authorization (取消授权)."""


class Role(enum.StrEnum):
    ADMIN = "admin"
    USER = "user"


class EmployeeType(enum.IntEnum):
    REGULAR = 1
    INTERN = 2
    DISPATCHED = 3
    OUTSOURCED = 4


def _clean_text(text: str) -> str:
    """Refuse text no database column can hold: NUL, or lone surrogates from `\\ud800` escapes."""
    if "\x00" in text:
        raise ValueError("text must not contain NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text is not valid Unicode") from exc
    return text


def _integer_flag(value: Any) -> Any:
    """Integers as sent, or numeric strings ("1"); never booleans or fractions."""
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 11:
        return int(value)
    raise ValueError("must be an integer or a string of digits")


def _not_cancel(flag: "SyncFlag") -> "SyncFlag":
    if flag is SyncFlag.CANCEL:
        raise ValueError("must be 0, 1 or 2")
    return flag


def _time_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _empty_as_none(value: Any) -> Any:
    return None if value == "" else value


def _none_as_empty(value: Any) -> Any:
    return "" if value is None else value


def _extension(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = loads_lenient(value)
        except LenientJsonError as exc:
            raise ValueError("extension is neither an object nor a string holding one") from exc
    if not isinstance(value, dict):
        raise ValueError("extension must be an object")
    _check_plain_json(value, depth=0)
    if len(json.dumps(value, ensure_ascii=False)) > MAX_EXTENSION_CHARS:
        raise ValueError(f"extension is longer than {MAX_EXTENSION_CHARS} characters")
    return value


def _check_plain_json(value: Any, *, depth: int) -> None:
    if depth > MAX_EXTENSION_DEPTH:
        raise ValueError("extension is nested too deeply")
    if isinstance(value, str):
        _clean_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("extension holds a number out of range")
    elif isinstance(value, dict):
        for key, item in value.items():
            _clean_text(key)
            _check_plain_json(item, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_plain_json(item, depth=depth + 1)


def _text(max_length: int, *, min_length: int = 0) -> StringConstraints:
    return StringConstraints(strict=True, min_length=min_length, max_length=max_length)


Text20 = Annotated[str, _text(20), AfterValidator(_clean_text)]
Text32 = Annotated[str, _text(32), AfterValidator(_clean_text)]
Text64 = Annotated[str, _text(64), AfterValidator(_clean_text)]
Text128 = Annotated[str, _text(128), AfterValidator(_clean_text)]
Text255 = Annotated[str, _text(255), AfterValidator(_clean_text)]
Text256 = Annotated[str, _text(256), AfterValidator(_clean_text)]
Id64 = Annotated[str, _text(64, min_length=1), AfterValidator(_clean_text)]
Name128 = Annotated[str, _text(128, min_length=1), AfterValidator(_clean_text)]
Secret = Annotated[str, _text(4096), AfterValidator(_clean_text)]
Text64NullAsEmpty = Annotated[str, BeforeValidator(_none_as_empty), _text(64), AfterValidator(_clean_text)]
"""At most 64 characters; `null` reads as "" (instanceId and orderId of the seller's own credential test)."""
ParentCode = Text64NullAsEmpty
MarketplaceTime = Annotated[
    str, BeforeValidator(_time_text), StringConstraints(strict=True, pattern=r"^\d{14}(\d{3})?$")
]
TestFlag = Annotated[Literal[0, 1], BeforeValidator(_integer_flag)]
TenantFlag = Annotated[SyncFlag, BeforeValidator(_integer_flag), AfterValidator(_not_cancel)]
AuthFlag = Annotated[SyncFlag, BeforeValidator(_integer_flag)]
OptionalText32 = Annotated[Text32 | None, BeforeValidator(_empty_as_none)]
OptionalText64 = Annotated[Text64 | None, BeforeValidator(_empty_as_none)]
OptionalText128 = Annotated[Text128 | None, BeforeValidator(_empty_as_none)]
OptionalText256 = Annotated[Text256 | None, BeforeValidator(_empty_as_none)]
OptionalText20 = Annotated[Text20 | None, BeforeValidator(_empty_as_none)]
OptionalEmployeeType = Annotated[
    EmployeeType | None, BeforeValidator(lambda value: None if value in ("", None) else _integer_flag(value))
]
Extension = Annotated[dict[str, Any] | None, BeforeValidator(_extension)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class KitRequest(_Model):
    """The fields every Kit call carries."""

    instance_id: Text64NullAsEmpty = Field(alias="instanceId")
    """Empty when the seller's own credential creation or test triggered the call."""
    tenant_id: Id64 = Field(alias="tenantId")
    test_flag: TestFlag = Field(alias="testFlag")
    time_stamp: MarketplaceTime = Field(alias="timeStamp")

    @property
    def is_test(self) -> bool:
        """Debug data (`testFlag` 1), kept apart from the real data of the same tenant."""
        return self.test_flag == 1


class TenantSync(KitRequest):
    flag: TenantFlag
    order_id: Text64NullAsEmpty = Field(alias="orderId")
    tenant_code: Text64 | None = Field(default=None, alias="tenantCode")
    name: Text255 | None = None
    domain_name: Text255 | None = Field(default=None, alias="domainName")

    @model_validator(mode="after")
    def _bound_tenant_has_identity(self) -> "TenantSync":
        if self.flag != SyncFlag.DELETE:
            _require(self, ("tenant_code", "tenantCode"), ("name", "name"), ("domain_name", "domainName"))
        return self


class ApplicationSync(KitRequest):
    flag: TenantFlag
    app_id: Id64 = Field(alias="appId")
    client_id: Text64 | None = Field(default=None, alias="clientId")
    client_secret: Secret | None = Field(default=None, alias="clientSecret", repr=False)

    @model_validator(mode="after")
    def _credentials_present(self) -> "ApplicationSync":
        if self.flag != SyncFlag.DELETE:
            _require(self, ("client_id", "clientId"), ("client_secret", "clientSecret"))
        return self


class KitUser(_Model):
    """One entry of authSync's `userList`."""

    user_name: Id64 = Field(alias="userName")
    name: Text64 | None = None
    org_code: Text64 | None = Field(default=None, alias="orgCode")
    position: OptionalText64 = None
    employee_code: OptionalText64 = Field(default=None, alias="employeeCode")
    employee_type: OptionalEmployeeType = Field(default=None, alias="employeeType")
    role: Role | None = None
    enable: Literal["true", "false"] | None = None
    mobile: OptionalText32 = Field(default=None, repr=False)
    email: OptionalText128 = Field(default=None, repr=False)
    work_place: OptionalText256 = Field(default=None, alias="workPlace")
    entry_date: OptionalText20 = Field(default=None, alias="entryDate")
    extension: Extension = None

    @model_validator(mode="before")
    @classmethod
    def _fields_from_extension(cls, data: Any) -> Any:
        """V1 examples put entryDate, employeeType and workPlace inside `extension`."""
        if not isinstance(data, dict) or not isinstance(data.get("extension"), dict):
            return data
        extension = data["extension"]
        promoted = dict(data)
        for key, limit in (("entryDate", 20), ("workPlace", 256)):
            value = extension.get(key)
            if promoted.get(key) in (None, "") and isinstance(value, str) and 0 < len(value) <= limit:
                promoted[key] = value
        value = extension.get("employeeType")
        if promoted.get("employeeType") in (None, "") and str(value) in {"1", "2", "3", "4"}:
            promoted["employeeType"] = str(value)
        return promoted

    @property
    def enabled(self) -> bool:
        return self.enable == "true"


class AuthSync(KitRequest):
    flag: AuthFlag
    app_id: Id64 = Field(alias="appId")
    current_sync_time: MarketplaceTime = Field(alias="currentSyncTime")
    user_list: tuple[KitUser, ...] = Field(alias="userList")

    @model_validator(mode="after")
    def _granted_users_complete(self) -> "AuthSync":
        if self.grants:
            for index, user in enumerate(self.user_list):
                if user.org_code is None:
                    raise ValueError(f"userList.{index}: orgCode required")
                missing = [alias for field, alias in _GRANT_FIELDS if getattr(user, field) in (None, "")]
                if missing:
                    raise ValueError(f"userList.{index}: {', '.join(missing)} required")
        return self

    @property
    def grants(self) -> bool:
        """Flags 1 and 2 add or change authorizations; 0 and 3 revoke them."""
        return self.flag in (SyncFlag.ADD, SyncFlag.MODIFY)

    def distinct_users(self) -> list[KitUser]:
        """The users, each userName once: a later entry replaces an earlier one."""
        return list({user.user_name: user for user in self.user_list}.values())


_GRANT_FIELDS = (("name", "name"), ("role", "role"), ("enable", "enable"))


def _department_name(data: Any) -> Any:
    """`orgName`, or `OrgName` (one mirror of the docs), or `name` (V1)."""
    if not isinstance(data, dict) or data.get("orgName") is not None:
        return data
    for key in ("OrgName", "name"):
        if data.get(key) is not None:
            return {**data, "orgName": data[key]}
    return data


class KitDepartment(_Model):
    """One department of allOrgSync's `orgInfoList`."""

    org_code: Id64 = Field(alias="orgCode")
    org_name: Name128 = Field(alias="orgName")
    parent_code: ParentCode = Field(default="", alias="parentCode")
    """Empty for a top-level department."""

    @model_validator(mode="before")
    @classmethod
    def _name_spellings(cls, data: Any) -> Any:
        return _department_name(data)


class SingleOrgSync(KitRequest):
    flag: TenantFlag
    org_code: Id64 = Field(alias="orgCode")
    org_name: Text128 | None = Field(default=None, alias="orgName")
    parent_code: ParentCode = Field(default="", alias="parentCode")

    @model_validator(mode="before")
    @classmethod
    def _name_spellings(cls, data: Any) -> Any:
        return _department_name(data)

    @model_validator(mode="after")
    def _name_when_stored(self) -> "SingleOrgSync":
        if self.flag != SyncFlag.DELETE:
            _require(self, ("org_name", "orgName"))
        return self


class AllOrgSync(KitRequest):
    org_info_list: tuple[KitDepartment, ...] = Field(alias="orgInfoList")

    def distinct_departments(self) -> list[KitDepartment]:
        """The snapshot, each orgCode once: a later entry replaces an earlier one."""
        return list({department.org_code: department for department in self.org_info_list}.values())


def _require(model: BaseModel, *fields: tuple[str, str]) -> None:
    missing = [alias for field, alias in fields if not getattr(model, field)]
    if missing:
        raise ValueError(f"{', '.join(missing)} required")


AnySync = TenantSync | ApplicationSync | AuthSync | SingleOrgSync | AllOrgSync

_MODELS: dict[SyncName, type[KitRequest]] = {
    SyncName.TENANT: TenantSync,
    SyncName.APPLICATION: ApplicationSync,
    SyncName.AUTH: AuthSync,
    SyncName.SINGLE_ORG: SingleOrgSync,
    SyncName.ALL_ORG: AllOrgSync,
}


def parse_kit_request(
    sync: SyncName, payload: JsonObject, *, max_users: int, domain_allow: Sequence[str] = ()
) -> AnySync:
    """The typed request of a verified Kit body; raises `BadPayloadError` naming the field at fault.

    `max_users` caps authSync's `userList`; `domain_allow` is the product's allow-list of
    tenant identity-domain hosts (empty: any public host).
    """
    data = dict(payload)
    if sync is SyncName.AUTH:
        data["userList"] = _list_field(data.get("userList"), "userList")
        if isinstance(data["userList"], list) and len(data["userList"]) > max_users:
            raise BadPayloadError(f"userList: more than {max_users} users")
    elif sync is SyncName.ALL_ORG:
        if data.get("orgInfoList") is None and data.get("orgInfo") is not None:
            data["orgInfoList"] = data["orgInfo"]  # V1's name for the same list
        data["orgInfoList"] = _list_field(data.get("orgInfoList"), "orgInfoList")
    try:
        request = _MODELS[sync].model_validate(data)
    except ValidationError as exc:
        raise BadPayloadError(_first_error(exc)) from None
    if isinstance(request, TenantSync) and request.flag != SyncFlag.DELETE:
        assert request.domain_name is not None
        domain = check_tenant_domain(request.domain_name, allow=domain_allow)
        request = request.model_copy(update={"domain_name": domain})
    assert isinstance(request, TenantSync | ApplicationSync | AuthSync | SingleOrgSync | AllOrgSync)
    return request


def _list_field(value: Any, name: str) -> Any:
    """A list sent as itself, or as a string holding one."""
    if not isinstance(value, str):
        return value
    try:
        parsed = loads_lenient(value)
    except (LenientJsonError, RecursionError):
        raise BadPayloadError(f"{name}: a string that holds no list") from None
    if not isinstance(parsed, list):
        raise BadPayloadError(f"{name}: a string that holds no list")
    return parsed


def _first_error(exc: ValidationError) -> str:
    """The first problem, by field path, never quoting the value (it may be a secret)."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"[:400]


def loggable_kit_payload(payload: JsonObject) -> JsonObject:
    """The body as the call log may keep it: list fields sent as strings are parsed first, so the
    redaction of personal fields reaches inside them (a string that does not parse is not kept),
    and long lists are cut to their first entries."""
    copy = dict(payload)
    for name in ("userList", "orgInfoList", "orgInfo"):
        value = copy.get(name)
        if isinstance(value, str):
            try:
                copy[name] = loads_lenient(value)
            except (LenientJsonError, RecursionError):
                copy[name] = f"<string of {len(value)} characters, not a list>"
    for name in ("userList", "orgInfoList", "orgInfo"):
        value = copy.get(name)
        if isinstance(value, list) and len(value) > LOGGED_LIST_ITEMS:
            # The call log keeps a few kilobytes of the body: redacting and writing 20,000 entries is waste.
            copy[name] = [*value[:LOGGED_LIST_ITEMS], f"<{len(value) - LOGGED_LIST_ITEMS} more>"]
    return copy
