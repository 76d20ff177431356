"""Typed requests of the seven basic production interfaces, with the notes' field limits.

Every basic body value is a JSON string; a value of another type is a bad parameter.
Unknown fields are ignored so that a field the marketplace adds later breaks nothing.
"""

import enum
import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from gateway.koogallery.errors import BadPayloadError
from gateway.koogallery.times import parse_marketplace_time

MAX_QUERY_IDS = 100

def _storable(text: str) -> str:
    """Refuse text no database stores faithfully: NUL, and lone surrogates (valid JSON, not UTF-8)."""
    if "\x00" in text:
        raise ValueError("must not contain NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text") from exc
    return text


Id64 = Annotated[str, StringConstraints(min_length=1, max_length=64, strict=True), AfterValidator(_storable)]
OptionalId64 = Annotated[str, StringConstraints(max_length=64, strict=True), AfterValidator(_storable)] | None
TestFlag = Annotated[str, StringConstraints(max_length=2, strict=True)] | None


class Activity(enum.StrEnum):
    NEW_INSTANCE = "newInstance"
    QUERY_INSTANCE = "queryInstance"
    REFRESH_INSTANCE = "refreshInstance"
    UPDATE_INSTANCE_STATUS = "updateInstanceStatus"
    RELEASE_INSTANCE = "releaseInstance"
    UPGRADE_INSTANCE = "upgradeInstance"
    CHANGE_INSTANCE_CHECK = "changeInstanceCheck"


class RenewalScene(enum.StrEnum):
    TRIAL_TO_FORMAL = "TRIAL_TO_FORMAL"
    RENEWAL = "RENEWAL"
    UNSUBSCRIBE_RENEWAL_PERIOD = "UNSUBSCRIBE_RENEWAL_PERIOD"
    RENEWAL_CHANGE = "RENEWAL_CHANGE"


class StatusChange(enum.StrEnum):
    FREEZE = "FREEZE"
    UNFREEZE = "UNFREEZE"


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    test_flag: TestFlag = Field(default=None, alias="testFlag")

    @property
    def is_test(self) -> bool:
        """Debug and dial-test calls carry `testFlag` "1"; absent or "0" is production."""
        return self.test_flag == "1"


class NewInstance(_Request):
    activity: Literal[Activity.NEW_INSTANCE]
    order_id: Id64 = Field(alias="orderId")
    order_line_id: Id64 = Field(alias="orderLineId")
    business_id: Id64 = Field(alias="businessId")


class QueryInstance(_Request):
    activity: Literal[Activity.QUERY_INSTANCE]
    instance_ids_text: Annotated[str, StringConstraints(strict=True, max_length=6600)] = Field(alias="instanceId")

    @property
    def instance_ids(self) -> list[str]:
        return [part.strip() for part in self.instance_ids_text.split(",")]

    @field_validator("instance_ids_text")
    @classmethod
    def _one_to_a_hundred_ids(cls, text: str) -> str:
        ids = [part.strip() for part in _storable(text).split(",")]
        if not all(ids):
            raise ValueError("empty instance id")
        if len(ids) > MAX_QUERY_IDS:
            raise ValueError(f"more than {MAX_QUERY_IDS} instance ids")
        if any(len(part) > 64 for part in ids):
            raise ValueError("instance id longer than 64")
        return text


class RefreshInstance(_Request):
    activity: Literal[Activity.REFRESH_INSTANCE]
    scene: RenewalScene
    order_id: Id64 = Field(alias="orderId")
    order_line_id: Id64 = Field(alias="orderLineId")
    instance_id: Id64 = Field(alias="instanceId")
    product_id: OptionalId64 = Field(default=None, alias="productId")
    expire_time: Annotated[str, StringConstraints(strict=True, pattern=r"^(\d{14}|\d{17})$")] = Field(
        alias="expireTime"
    )

    @field_validator("expire_time")
    @classmethod
    def _a_real_time(cls, text: str) -> str:
        parse_marketplace_time(text)  # 20231399000000 has the shape but is no time
        return text


class UpdateInstanceStatus(_Request):
    activity: Literal[Activity.UPDATE_INSTANCE_STATUS]
    instance_id: Id64 = Field(alias="instanceId")
    status: StatusChange


class ReleaseInstance(_Request):
    activity: Literal[Activity.RELEASE_INSTANCE]
    instance_id: Id64 = Field(alias="instanceId")
    order_id: OptionalId64 = Field(default=None, alias="orderId")
    order_line_id: OptionalId64 = Field(default=None, alias="orderLineId")


class UpgradeInstance(_Request):
    activity: Literal[Activity.UPGRADE_INSTANCE]
    instance_id: Id64 = Field(alias="instanceId")
    order_id: Id64 = Field(alias="orderId")
    order_line_id: Id64 = Field(alias="orderLineId")


class TargetProduct(BaseModel):
    """changeInstanceCheck's `productInfo`: the spec the buyer wants at renewal."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    product_id: Id64 = Field(alias="productId")
    sku_code: Id64 = Field(alias="skuCode")
    linear_value: Annotated[int, Field(strict=True, ge=0)] | None = Field(default=None, alias="linearValue")
    product_name: Id64 = Field(alias="productName")


class ChangeInstanceCheck(_Request):
    activity: Literal[Activity.CHANGE_INSTANCE_CHECK]
    instance_id: Id64 = Field(alias="instanceId")
    product_info: TargetProduct = Field(alias="productInfo")

    @field_validator("product_info", mode="before")
    @classmethod
    def _object_or_json_text(cls, value: Any) -> Any:
        # Some marketplace editions send the nested object as a JSON string.
        if isinstance(value, str):
            try:
                return json.loads(value)
            except (ValueError, RecursionError) as exc:
                raise ValueError("productInfo is not a JSON object") from exc
        return value


BasicRequest = Annotated[
    NewInstance
    | QueryInstance
    | RefreshInstance
    | UpdateInstanceStatus
    | ReleaseInstance
    | UpgradeInstance
    | ChangeInstanceCheck,
    Field(discriminator="activity"),
]

_BASIC_REQUEST: TypeAdapter[BasicRequest] = TypeAdapter(BasicRequest)


def parse_basic_request(payload: dict[str, Any]) -> BasicRequest:
    """Validate a parsed body as one of the seven activities, or raise `BadPayloadError`."""
    activity = payload.get("activity")
    if not isinstance(activity, str) or activity not in Activity.__members__.values():
        raise BadPayloadError(f"unknown activity {str(activity)[:32]!r}")
    try:
        return _BASIC_REQUEST.validate_python(payload)
    except ValidationError as exc:
        raise BadPayloadError(describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError) -> str:
    """A short, secret-free reason naming the first fields at fault (never their values)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:3]:
        location = ".".join(str(item) for item in error["loc"] if item not in Activity.__members__.values())
        parts.append(f"{location or 'body'}: {error['msg']}")
    return "; ".join(parts)
