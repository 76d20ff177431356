"""The order-query open API (查询订单): typed response models and the pure parts of a query.

Field names and types follow the response captured from the live endpoint for the mock order
`MOCKPERIODYEARNEW` (see the open-API note). The models are lenient where the marketplace is
undocumented: unknown fields are kept (`model_extra`), enumerations stay plain strings (compare
with `OrderType` / `ChargingMode`), buyer fields may be null, amounts arrive as strings or
numbers and are kept as text. Attributes are snake_case; the JSON names are the aliases.
"""

import enum
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from gateway.koogallery.apig import encode_query

ORDER_QUERY_PATH = "/api/mkp-openapi-public/global/v1/order/query"
SUCCESS_RESULT_CODE = "MKT.0000"
MAX_ID_LENGTH = 64
COMPACT_TIME_FORMAT = "%Y%m%d%H%M%S"


class OrderType(enum.StrEnum):
    NEW = "NEW"
    TRIAL = "TRIAL"
    TRIAL_TO_FORMAL = "TRIAL_TO_FORMAL"
    UNSUBSCRIBE = "UNSUBSCRIBE"
    RENEW = "RENEW"
    CHANGE = "CHANGE"


class ChargingMode(enum.StrEnum):
    ON_DEMAND = "ON_DEMAND"
    ONE_TIME = "ONE_TIME"
    PERIOD = "PERIOD"
    ON_DEMAND_PKG = "ON_DEMAND_PKG"


def _number_as_text(value: object) -> object:
    # Amounts are strings in the capture ("100"); a number is accepted and kept as its text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


AmountText = Annotated[str, BeforeValidator(_number_as_text)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class ExtendParam(_Model):
    """A buyer-filled extension parameter, `{"name": ..., "value": ...}`."""

    name: str
    value: str | None = None


class ProductInfo(_Model):
    """The product and spec (SKU) bought on an order line."""

    product_id: str = Field(alias="productId")
    sku_code: str = Field(alias="skuCode")
    linear_value: int | float | None = Field(default=None, alias="linearValue")
    product_name: str | None = Field(default=None, alias="productName")


class OrderLine(_Model):
    """One order line; `currency` is an amount (list price), not a currency code."""

    order_line_id: str = Field(alias="orderLineId")
    charging_mode: str = Field(alias="chargingMode")
    period_type: str | None = Field(default=None, alias="periodType")
    period_number: int | None = Field(default=None, alias="periodNumber")
    expire_time: str | None = Field(default=None, alias="expireTime")
    product_info: list[ProductInfo] = Field(default_factory=list, alias="productInfo")
    extend_params: list[ExtendParam] = Field(default_factory=list, alias="extendParams")
    currency: AmountText | None = None
    currency_after_discount: AmountText | None = Field(default=None, alias="currencyAfterDiscount")


class BuyerInfo(_Model):
    """The buyer; `user_id`/`user_name` are null when the main account bought.

    `mobile_phone` and `email` are plaintext in the mock; whether real orders encrypt or mask
    them is unconfirmed, so they are kept as received.
    """

    customer_id: str = Field(alias="customerId")
    customer_name: str | None = Field(default=None, alias="customerName")
    customer_real_name: str | None = Field(default=None, alias="customerRealName")
    customer_type: int | None = Field(default=None, alias="customerType")
    user_id: str | None = Field(default=None, alias="userId")
    user_name: str | None = Field(default=None, alias="userName")
    mobile_phone: str | None = Field(default=None, alias="mobilePhone")
    email: str | None = None


class OrderInfo(_Model):
    """An order with its lines (one line when the query named an `orderLineId`)."""

    order_id: str = Field(alias="orderId")
    order_type: str = Field(alias="orderType")
    create_time: str | None = Field(default=None, alias="createTime")
    order_line: list[OrderLine] = Field(default_factory=list, alias="orderLine")
    buyer_info: BuyerInfo | None = Field(default=None, alias="buyerInfo")
    extend_params: list[ExtendParam] = Field(default_factory=list, alias="extendParams")

    def line(self, order_line_id: str) -> OrderLine | None:
        """The line with this id, or None."""
        return next((line for line in self.order_line if line.order_line_id == order_line_id), None)


class OrderQueryResponse(_Model):
    """The whole answer; `order_info` is absent when `result_code` is not `MKT.0000`."""

    result_code: str = Field(alias="resultCode")
    result_msg: str | None = Field(default=None, alias="resultMsg")
    order_info: OrderInfo | None = Field(default=None, alias="orderInfo")

    @property
    def is_success(self) -> bool:
        return self.result_code == SUCCESS_RESULT_CODE


def build_order_query_url(*, endpoint: str, order_id: str, order_line_id: str | None) -> str:
    """`{endpoint}/api/mkp-openapi-public/global/v1/order/query?orderId=…[&orderLineId=…]`.

    The query is encoded exactly as the APIG signer canonicalises it. Raises ValueError for an
    endpoint that is not a bare http(s) base URL, or an id that is empty or over 64 characters.
    """
    split = urlsplit(endpoint)
    if split.scheme not in ("http", "https") or not split.netloc or split.query or split.fragment:
        raise ValueError("endpoint must be an http(s) base URL without query or fragment")
    params = {"orderId": _checked_id("order_id", order_id)}
    if order_line_id is not None:
        params["orderLineId"] = _checked_id("order_line_id", order_line_id)
    return f"{endpoint.rstrip('/')}{ORDER_QUERY_PATH}?{encode_query(params)}"


def parse_compact_time(value: str) -> datetime:
    """A marketplace `yyyyMMddHHmmss` time (createTime, expireTime), read as UTC.

    The time zone is not documented; UTC is assumed like elsewhere on KooGallery.
    """
    if len(value) != 14 or not value.isdigit():
        raise ValueError(f"not a yyyyMMddHHmmss time: {value!r}")
    return datetime.strptime(value, COMPACT_TIME_FORMAT).replace(tzinfo=UTC)


def format_compact_time(moment: datetime) -> str:
    """A time-zone aware moment as `yyyyMMddHHmmss` in UTC."""
    if moment.tzinfo is None:
        raise ValueError("moment must be time-zone aware")
    return moment.astimezone(UTC).strftime(COMPACT_TIME_FORMAT)


def _checked_id(name: str, value: str) -> str:
    if not value or len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{name} must hold 1 to {MAX_ID_LENGTH} characters")
    return value
