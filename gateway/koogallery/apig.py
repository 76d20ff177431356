"""Huawei Cloud API Gateway AK/SK signing (`SDK-HMAC-SHA256`), both ways, over plain values.

The canonical request is built exactly as huaweicloudsdkcore's `Signer` builds it:

    METHOD \\n canonical URI \\n canonical query \\n canonical headers \\n signed headers \\n hex(sha256(body))

- canonical URI: the path percent-decoded, split on "/", each segment encoded (only
  `A-Z a-z 0-9 - _ . ~` stay raw), joined, and always ending in "/";
- canonical query: `key=value` pairs percent-decoded (a "+" stays a "+"), sorted by key then
  value, each side re-encoded as above, joined by "&";
- signed headers: every header given (names containing "_" are skipped), lower-cased and
  sorted; `Host` is taken from the URL unless given;
- body hash: the empty-body hash for no body; `UNSIGNED-PAYLOAD` when the SDK would send it
  (a `Content-Type` that is neither JSON nor BSON), else the SHA-256 of the body.

String to sign: `SDK-HMAC-SHA256 \\n <X-Sdk-Date> \\n hex(sha256(canonical request))`, and
`Authorization: SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<h1;h2>, Signature=<hex HMAC>`.
No clock of its own: the caller passes `now`.
"""

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "SDK-HMAC-SHA256"
HEADER_DATE = "X-Sdk-Date"
HEADER_AUTHORIZATION = "Authorization"
HEADER_CONTENT_SHA256 = "X-Sdk-Content-Sha256"
HEADER_HOST = "Host"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
DEFAULT_MAX_SKEW_S = 900.0

_EMPTY_BODY_HASH = hashlib.sha256(b"").hexdigest()
_REQUIRED_SIGNED_HEADERS = ("host", HEADER_DATE.lower())


class ApigAuthError(Exception):
    """Root of the APIG verification errors; `code` is stable, the message says why."""

    code = "apig_auth_error"


class ApigMalformedRequestError(ApigAuthError):
    """Authorization or X-Sdk-Date missing or unreadable, or a required header left unsigned."""

    code = "apig_malformed_request"


class ApigUnknownAccessKeyError(ApigAuthError):
    """The access key (AK) named in the Authorization header is not known."""

    code = "apig_unknown_access_key"


class ApigStaleDateError(ApigAuthError):
    """X-Sdk-Date is further from `now` than the accepted skew: a clock or replay problem."""

    code = "apig_stale_date"


class ApigSignatureMismatchError(ApigAuthError):
    """The signature does not match the request under the AK's secret key (SK)."""

    code = "apig_signature_mismatch"


def format_date(now: datetime) -> str:
    """`now` (time-zone aware) as the X-Sdk-Date text, UTC, e.g. `20241121T090846Z`."""
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    return now.astimezone(UTC).strftime(DATE_FORMAT)


def sign_request(
    *,
    ak: str,
    sk: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
) -> dict[str, str]:
    """Sign a request; return the headers to add to it (`Authorization`, `X-Sdk-Date`, ...).

    Every header in `headers` is signed (as the SDK does), so pass only headers that are sent
    unchanged. `Host` is added from the URL when absent, and `X-Sdk-Content-Sha256` when the
    SDK would add it. `headers` must not hold `Authorization` or `X-Sdk-Date`.
    """
    if not ak or not sk:
        raise ValueError("ak and sk must not be empty")
    names = {name.lower() for name in headers}
    if len(names) != len(headers):
        raise ValueError("headers repeat a name in different cases")
    if HEADER_AUTHORIZATION.lower() in names or HEADER_DATE.lower() in names:
        raise ValueError("headers must not hold Authorization or X-Sdk-Date: they are the output")

    added: dict[str, str] = {}
    content_type = _get(headers, "content-type")
    if (
        content_type is not None
        and HEADER_CONTENT_SHA256.lower() not in names
        and not content_type.startswith(("application/json", "application/bson"))
    ):
        added[HEADER_CONTENT_SHA256] = UNSIGNED_PAYLOAD
    added[HEADER_DATE] = format_date(now)
    if "host" not in names:
        added[HEADER_HOST] = _host_of(url)

    all_headers = {**headers, **added}
    signed = sorted(name.lower() for name in all_headers if "_" not in name)
    signature = _signature(
        sk=sk,
        method=method,
        url=url,
        headers={name.lower(): value for name, value in all_headers.items()},
        signed_headers=signed,
        body=body,
        date=added[HEADER_DATE],
    )
    added[HEADER_AUTHORIZATION] = (
        f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return added


def verify_request(
    *,
    ak_to_sk: Callable[[str], str | None],
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
    allow_unsigned_payload: bool = False,
) -> str:
    """Check an APIG-signed request; return its access key (AK), or raise an `ApigAuthError`.

    `url` must carry the path and query exactly as received (percent-encoded); the host is read
    from the `Host` header, which must be signed, as must `X-Sdk-Date`. A body declared
    `UNSIGNED-PAYLOAD` is refused unless `allow_unsigned_payload`.
    """
    lowered: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in headers.items():
        if name.lower() in lowered:
            repeated.add(name.lower())
        lowered[name.lower()] = value
    authorization = lowered.get(HEADER_AUTHORIZATION.lower())
    if authorization is None:
        raise ApigMalformedRequestError("no Authorization header")
    access_key, signed_headers, signature = _parse_authorization(authorization)

    date = lowered.get(HEADER_DATE.lower())
    if date is None:
        raise ApigMalformedRequestError("no X-Sdk-Date header")
    try:
        signed_at = datetime.strptime(date, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ApigMalformedRequestError("X-Sdk-Date is not yyyyMMdd'T'HHmmss'Z'") from None
    for name in _REQUIRED_SIGNED_HEADERS:
        if name not in signed_headers:
            raise ApigMalformedRequestError(f"header {name} is not signed")
    for name in signed_headers:
        if name not in lowered:
            raise ApigMalformedRequestError(f"signed header {name} is missing")
        if name in repeated:
            raise ApigMalformedRequestError(f"signed header {name} is repeated")

    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    if abs(now - signed_at) > timedelta(seconds=max_skew_s):
        raise ApigStaleDateError(f"X-Sdk-Date {date} is more than {max_skew_s:g} s from now")

    secret_key = ak_to_sk(access_key)
    if not secret_key:
        raise ApigUnknownAccessKeyError("unknown access key")

    if body and HEADER_CONTENT_SHA256.lower() in signed_headers:
        declared = lowered[HEADER_CONTENT_SHA256.lower()]
        if declared.strip() == UNSIGNED_PAYLOAD:
            if not allow_unsigned_payload:
                raise ApigMalformedRequestError("UNSIGNED-PAYLOAD is not accepted")
        elif not hmac.compare_digest(
            declared.strip().encode(), hashlib.sha256(body).hexdigest().encode()
        ):
            raise ApigSignatureMismatchError("X-Sdk-Content-Sha256 does not match the body")

    expected = _signature(
        sk=secret_key,
        method=method,
        url=url,
        headers=lowered,
        signed_headers=signed_headers,
        body=body,
        date=date,
    )
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        raise ApigSignatureMismatchError("signature does not match")
    return access_key


def canonical_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    signed_headers: list[str],
    body: bytes,
) -> str:
    """The SDK's canonical request; `headers` keyed by lower-case name."""
    split = urlsplit(url)
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)
    return "\n".join(
        (
            method.upper(),
            canonical_uri(split.path),
            canonical_query(split.query),
            canonical_headers,
            ";".join(signed_headers),
            _payload_hash(headers, signed_headers, body),
        )
    )


def canonical_uri(path: str) -> str:
    """Path segments decoded and re-encoded, always ending in "/" (`/a/b` -> `/a/b/`)."""
    uri = "/".join(_encode(segment) for segment in unquote(path or "/").split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(query: str) -> str:
    """Query pairs decoded, sorted by (key, value), re-encoded, joined by "&"."""
    pairs: list[tuple[str, str]] = []
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if key:
            pairs.append((unquote(key), unquote(value)))
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in sorted(pairs))


def encode_query(params: Mapping[str, str]) -> str:
    """A query string already in canonical encoding, so the signed and the sent forms agree."""
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in sorted(params.items()))


def _signature(
    *,
    sk: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    signed_headers: list[str],
    body: bytes,
    date: str,
) -> str:
    request = canonical_request(
        method=method, url=url, headers=headers, signed_headers=signed_headers, body=body
    )
    string_to_sign = "\n".join(
        (ALGORITHM, date, hashlib.sha256(request.encode("utf-8")).hexdigest())
    )
    return hmac.new(sk.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _payload_hash(headers: Mapping[str, str], signed_headers: list[str], body: bytes) -> str:
    if not body:
        return _EMPTY_BODY_HASH
    declared = headers.get(HEADER_CONTENT_SHA256.lower())
    if declared and HEADER_CONTENT_SHA256.lower() in signed_headers:
        return declared.strip()
    return hashlib.sha256(body).hexdigest()


def _parse_authorization(value: str) -> tuple[str, list[str], str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise ApigMalformedRequestError(f"Authorization algorithm is not {ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep or key in fields:
            raise ApigMalformedRequestError(
                "Authorization is not Access=, SignedHeaders=, Signature="
            )
        fields[key] = item.strip()
    if set(fields) != {"Access", "SignedHeaders", "Signature"} or not all(fields.values()):
        raise ApigMalformedRequestError("Authorization is not Access=, SignedHeaders=, Signature=")
    signed_headers = fields["SignedHeaders"].split(";")
    if any(not name or name != name.lower() for name in signed_headers):
        raise ApigMalformedRequestError("SignedHeaders must be non-empty lower-case names")
    return fields["Access"], signed_headers, fields["Signature"]


def _host_of(url: str) -> str:
    netloc = urlsplit(url).netloc
    host = netloc.rpartition("@")[2]
    if not host:
        raise ValueError("url has no host")
    return host


def _get(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _encode(text: str) -> str:
    return quote(text, safe="~")
