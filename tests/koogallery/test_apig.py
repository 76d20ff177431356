"""APIG AK/SK signing: identical to huaweicloudsdkcore's signer, and verification that refuses."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from gateway.koogallery import apig

AK = "HPUAXXXXXXXXXXXXXXXX"
SK = "test-secret-key-0123456789abcdefghijklmn"
NOW = datetime(2024, 11, 21, 9, 8, 46, tzinfo=UTC)
SDK_DATE = "20241121T090846Z"
ORDER_QUERY = "/api/mkp-openapi-public/global/v1/order/query"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    host: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def url(self) -> str:
        # Encoded independently of the module under test (quote leaves "~" raw, encodes "+").
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.query)
        return f"https://{self.host}{self.path}" + (f"?{query}" if query else "")


CASES = [
    Case(
        "order query, JSON content type, no body",
        "GET",
        "mkt.myhuaweicloud.com",
        ORDER_QUERY,
        [("orderId", "MOCKPERIODYEARNEW"), ("orderLineId", "MOCKPERIODYEARNEW-000001")],
        {"Content-Type": "application/json;charset=UTF-8"},
    ),
    Case(
        "no trailing slash, query needing encoding incl. Chinese, no content type",
        "GET",
        "mkt.myhuaweicloud.com",
        "/v1/orders",
        [("orderId", "订单 001+a/b=c&d~e"), ("Zeta", ""), ("alpha", "中文")],
    ),
    Case(
        "trailing slash, JSON body, port in host",
        "POST",
        "127.0.0.1:8001",
        "/v1/items/",
        [("b", "2"), ("a", "1")],
        {"Content-Type": "application/json", "X-Project-Id": " p-1 "},
        b'{"name":"\xe6\xb5\x8b\xe8\xaf\x95","n":1}',
    ),
    Case(
        "encoded Chinese path segment, repeated query key, text body (UNSIGNED-PAYLOAD)",
        "PUT",
        "mkt-intl.myhuaweicloud.com",
        "/v1/%E4%B8%AD%E6%96%87%20x/files",
        [("k", "2"), ("k", "1")],
        {"Content-Type": "text/plain"},
        b"plain body",
    ),
    Case("root path, nothing else", "DELETE", "mkt.myhuaweicloud.eu", "/", []),
]


def _sdk_sign(case: Case) -> dict[str, str]:
    request = SdkRequest(
        method=case.method,
        schema="https",
        host=case.host,
        resource_path=case.path,
        query_params=list(case.query),
        header_params={**case.headers, "X-Sdk-Date": SDK_DATE},
        body=case.body,
    )
    signed: dict[str, str] = Signer(BasicCredentials(AK, SK)).sign(request).header_params
    return signed


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_sign_request_matches_the_sdk_signer(case: Case) -> None:
    # given the SDK's signer driven with the same request at the same fixed time
    expected = _sdk_sign(case)

    # when we sign it
    added = apig.sign_request(
        ak=AK,
        sk=SK,
        method=case.method,
        url=case.url,
        headers=case.headers,
        body=case.body,
        now=NOW,
    )

    # then the Authorization is identical, and so is every header the SDK sends
    assert added["Authorization"] == expected["Authorization"]
    assert {k: v.strip() for k, v in {**case.headers, **added}.items()} == expected


def test_the_date_is_written_in_utc_whatever_the_time_zone_of_now() -> None:
    beijing = NOW.astimezone(timezone(timedelta(hours=8)))
    added = apig.sign_request(
        ak=AK, sk=SK, method="GET", url="https://h/p", headers={}, body=b"", now=beijing
    )
    assert added["X-Sdk-Date"] == SDK_DATE


@pytest.mark.parametrize("header", ["Authorization", "x-sdk-date"])
def test_sign_request_refuses_headers_that_are_its_output(header: str) -> None:
    with pytest.raises(ValueError, match="Authorization or X-Sdk-Date"):
        apig.sign_request(
            ak=AK, sk=SK, method="GET", url="https://h/p", headers={header: "x"}, body=b"", now=NOW
        )


def test_sign_request_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        apig.sign_request(
            ak=AK,
            sk=SK,
            method="GET",
            url="https://h/p",
            headers={},
            body=b"",
            now=datetime(2024, 11, 21, 9, 8, 46),  # naive on purpose
        )


# --- verification -------------------------------------------------------------------------------

URL = f"https://mkt.myhuaweicloud.com{ORDER_QUERY}?orderId=MOCKPERIODYEARNEW&orderLineId=MOCKPERIODYEARNEW-000001"
JSON_HEADERS = {"Content-Type": "application/json;charset=UTF-8"}


def _keys(ak: str) -> str | None:
    return {AK: SK}.get(ak)


def _signed(
    *, url: str = URL, body: bytes = b"", sk: str = SK, headers: dict[str, str] | None = None
) -> dict[str, str]:
    given = JSON_HEADERS if headers is None else headers
    return {
        **given,
        **apig.sign_request(ak=AK, sk=sk, method="GET", url=url, headers=given, body=body, now=NOW),
    }


def _verify(
    headers: dict[str, str],
    *,
    url: str = URL,
    body: bytes = b"",
    now: datetime = NOW,
    allow_unsigned_payload: bool = False,
) -> str:
    return apig.verify_request(
        ak_to_sk=_keys,
        method="GET",
        url=url,
        headers=headers,
        body=body,
        now=now,
        allow_unsigned_payload=allow_unsigned_payload,
    )


def test_verify_accepts_what_sign_produces() -> None:
    assert _verify(_signed()) == AK


def test_verify_accepts_a_body_and_an_encoded_chinese_query() -> None:
    url = "https://h:8443/v1/x?q=%E4%B8%AD%E6%96%87&a=%2B"
    assert _verify(_signed(url=url, body=b'{"a":1}'), url=url, body=b'{"a":1}') == AK


def test_verify_accepts_what_the_sdk_signer_produces() -> None:
    case = CASES[0]
    assert _verify(_sdk_sign(case), url=case.url) == AK


def test_verify_accepts_lower_case_header_names_as_servers_give_them() -> None:
    headers = {name.lower(): value for name, value in _signed().items()}
    assert _verify(headers) == AK


@pytest.mark.parametrize("skew_s", [-900, 900])
def test_verify_accepts_a_date_at_the_edge_of_the_window(skew_s: int) -> None:
    assert _verify(_signed(), now=NOW + timedelta(seconds=skew_s)) == AK


def test_verify_rejects_a_tampered_query() -> None:
    with pytest.raises(apig.ApigSignatureMismatchError) as caught:
        _verify(_signed(), url=URL.replace("orderId=MOCKPERIODYEARNEW", "orderId=MOCKONETIMENEW"))
    assert caught.value.code == "apig_signature_mismatch"


def test_verify_rejects_an_added_query_parameter() -> None:
    with pytest.raises(apig.ApigSignatureMismatchError):
        _verify(_signed(), url=URL + "&extra=1")


def test_verify_rejects_a_tampered_body() -> None:
    with pytest.raises(apig.ApigSignatureMismatchError):
        _verify(_signed(body=b'{"a":1}'), body=b'{"a":2}')


def test_verify_rejects_a_tampered_signed_header() -> None:
    headers = _signed()
    headers["Host"] = "evil.example"
    with pytest.raises(apig.ApigSignatureMismatchError):
        _verify(headers)


def test_verify_rejects_a_wrong_secret_key() -> None:
    with pytest.raises(apig.ApigSignatureMismatchError):
        _verify(_signed(sk="not-the-secret-key"))


def test_verify_rejects_an_unknown_access_key() -> None:
    headers = _signed()
    headers["Authorization"] = headers["Authorization"].replace(f"Access={AK}", "Access=UNKNOWN")
    with pytest.raises(apig.ApigUnknownAccessKeyError) as caught:
        _verify(headers)
    assert caught.value.code == "apig_unknown_access_key"


@pytest.mark.parametrize("skew_s", [-901, 901, 86400])
def test_verify_rejects_a_stale_or_future_date(skew_s: int) -> None:
    with pytest.raises(apig.ApigStaleDateError) as caught:
        _verify(_signed(), now=NOW + timedelta(seconds=skew_s))
    assert caught.value.code == "apig_stale_date"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h: h.pop("Authorization"), "no Authorization"),
        (lambda h: h.pop("X-Sdk-Date"), "no X-Sdk-Date"),
        (lambda h: h.update({"X-Sdk-Date": "2024-11-21T09:08:46Z"}), "X-Sdk-Date is not"),
        (
            lambda h: h.update(
                {"Authorization": h["Authorization"].replace("SDK-HMAC-SHA256", "SDK-HMAC-SM3")}
            ),
            "algorithm",
        ),
        (
            lambda h: h.update({"Authorization": "SDK-HMAC-SHA256 Access=x"}),
            "Access=, SignedHeaders=",
        ),
        (
            lambda h: h.update(
                {
                    "Authorization": h["Authorization"].replace(
                        "content-type;host;x-sdk-date", "content-type;host"
                    )
                }
            ),
            "x-sdk-date is not signed",
        ),
        (
            lambda h: h.update(
                {
                    "Authorization": h["Authorization"].replace(
                        "content-type;host;x-sdk-date", "host;x-sdk-date;x-b"
                    )
                }
            ),
            "x-b is missing",
        ),
    ],
)
def test_verify_rejects_a_malformed_request(
    change: Callable[[dict[str, str]], object], reason: str
) -> None:
    headers = _signed()
    change(headers)
    with pytest.raises(apig.ApigMalformedRequestError, match=reason) as caught:
        _verify(headers)
    assert caught.value.code == "apig_malformed_request"


def test_verify_refuses_an_unsigned_payload_unless_allowed() -> None:
    # given a text body, which the SDK signs as UNSIGNED-PAYLOAD
    headers = _signed(body=b"text", headers={"Content-Type": "text/plain"})
    assert headers["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"

    # then it is refused by default, and accepted (with any body) only when allowed
    with pytest.raises(apig.ApigMalformedRequestError, match="UNSIGNED-PAYLOAD"):
        _verify(headers, body=b"text")
    assert _verify(headers, body=b"other text", allow_unsigned_payload=True) == AK


def test_verify_checks_a_declared_body_hash_against_the_body() -> None:
    headers = _signed(
        body=b"{}", headers={"Content-Type": "application/json", "X-Sdk-Content-Sha256": "0" * 64}
    )
    with pytest.raises(apig.ApigSignatureMismatchError, match="X-Sdk-Content-Sha256"):
        _verify(headers, body=b"{}")


def test_canonical_pieces_follow_the_sdk_rules() -> None:
    assert apig.canonical_uri("/a/b") == "/a/b/"
    assert apig.canonical_uri("/a/b/") == "/a/b/"
    assert apig.canonical_uri("") == "/"
    assert apig.canonical_uri("/%E4%B8%AD x") == "/%E4%B8%AD%20x/"
    assert apig.canonical_query("b=2&a=%2b&a=+&c") == "a=%2B&a=%2B&b=2&c="
    assert apig.encode_query({"orderId": "中 ~"}) == "orderId=%E4%B8%AD%20~"
