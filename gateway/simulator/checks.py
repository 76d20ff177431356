"""The Seller Console debugger's checks of one answer, and the reasons it gives.

An answer passes when the call reached the server and was answered within the timeout, with
HTTP 200, a JSON content type, a JSON object holding `resultCode` (and `resultMsg` for basic
calls), every field within its documented length, the expected result code and the fields
the interface must answer. Each reason ends with the debugger's own message in brackets, so a
vendor can match what the console would show.
"""

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.koogallery.results import APP_INFO_LIMITS, MAX_RESULT_MSG

JSON_MEDIA_TYPE = "application/json"

ANSWER_LIMITS: dict[str, int] = {"resultCode": 6, "resultMsg": MAX_RESULT_MSG, "instanceId": 64}
"""Top-level answer fields and their maximum lengths (basic note §3, Kit note §1)."""

INSTANCE_INFO_LIMITS: dict[str, int] = {"instanceId": 64}
USAGE_INFO_LIMITS: dict[str, int] = {"dashboardUrl": 512}

Answer = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One call as the marketplace saw it: the HTTP answer, or why there was none."""

    status: int | None
    content_type: str
    body: bytes
    latency_s: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The parsed answer (when there is one) and the reason the check failed (None: passed)."""

    answer: Answer | None
    failure: str | None

    @property
    def passed(self) -> bool:
        return self.failure is None


def missing(name: str) -> str:
    return f"missing {name} (接口响应缺少{name})"


def too_long(path: str, name: str, limit: int) -> str:
    return f"{path} longer than {limit} (字段{name}长度不合法)"


def parse_answer(exchange: Exchange, *, result_msg_required: bool = True) -> Verdict:
    """Transport, status, content type, JSON shape, `resultCode`/`resultMsg` and field lengths."""
    if exchange.error is not None:
        return Verdict(None, exchange.error)
    if exchange.status != 200:
        return Verdict(None, f"HTTP {exchange.status} (接口响应httpCode={exchange.status})")
    media_type = exchange.content_type.split(";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        shown = exchange.content_type or "none"
        return Verdict(None, f"content type {shown!r} is not {JSON_MEDIA_TYPE}")
    try:
        answer = json.loads(exchange.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return Verdict(None, "body is not JSON (解析响应体失败)")
    if not isinstance(answer, dict):
        return Verdict(None, "body is not a JSON object (解析响应体失败)")
    required = ("resultCode", "resultMsg") if result_msg_required else ("resultCode",)
    for name in required:
        if answer.get(name) is None:
            return Verdict(answer, missing(name))
    if not isinstance(answer["resultCode"], str):
        return Verdict(answer, "resultCode is not a string (字段resultCode长度不合法)")
    return Verdict(answer, _length_failure(answer))


def check_answer(
    exchange: Exchange,
    *,
    codes: Collection[str],
    required: Sequence[str] = (),
    result_msg_required: bool = True,
) -> Verdict:
    """Everything the debugger checks: `parse_answer`, then the result code, then required fields."""
    verdict = parse_answer(exchange, result_msg_required=result_msg_required)
    if verdict.answer is None or verdict.failure is not None:
        return verdict
    answer = verdict.answer
    code = answer["resultCode"]
    if code not in codes:
        message = str(answer.get("resultMsg", ""))[:120]
        expected = " or ".join(sorted(codes))
        return Verdict(answer, f"resultCode {code}, expected {expected} (resultMsg {message!r})")
    for name in required:
        if answer.get(name) in (None, ""):
            return Verdict(answer, missing(name))
    return verdict


def _length_failure(answer: Answer) -> str | None:
    failure = _over_limit(answer, ANSWER_LIMITS, prefix="")
    if failure is not None:
        return failure
    info = answer.get("info")
    if info is None:
        return None
    if not isinstance(info, list):
        return "info is not a list (解析响应体失败)"
    for index, item in enumerate(info):
        if not isinstance(item, dict):
            return f"info[{index}] is not an object (解析响应体失败)"
        failure = _over_limit(item, INSTANCE_INFO_LIMITS, prefix=f"info[{index}].")
        app_info = item.get("appInfo")
        if failure is None and isinstance(app_info, dict):
            failure = _over_limit(app_info, APP_INFO_LIMITS, prefix=f"info[{index}].appInfo.")
        usage = item.get("usageInfo")
        for number, record in enumerate(usage if isinstance(usage, list) else []):
            if failure is None and isinstance(record, dict):
                failure = _over_limit(record, USAGE_INFO_LIMITS, prefix=f"info[{index}].usageInfo[{number}].")
        if failure is not None:
            return failure
    return None


def _over_limit(fields: dict[str, Any], limits: dict[str, int], *, prefix: str) -> str | None:
    for name, limit in limits.items():
        value = fields.get(name)
        if isinstance(value, str) and len(value) > limit:
            return too_long(prefix + name, name, limit)
    return None


def listed_instance(answer: Answer, instance_id: str) -> dict[str, Any] | None:
    """The `info` entry of a queryInstance answer for `instance_id`, if it is there."""
    info = answer.get("info")
    for item in info if isinstance(info, list) else []:
        if isinstance(item, dict) and item.get("instanceId") == instance_id:
            return item
    return None
