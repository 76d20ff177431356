"""Where SSO may send a browser: MarketGate's own site and the product's `sso_redirect_allow` prefixes.

Pure text checks over the target and the allow-list. A target is either a path on MarketGate's
site (`/apps/crm/home`) or an absolute http(s) URL whose scheme and host (with port) equal
those of `public_url` or of one allow-list entry, and whose path starts with that entry's
path. `//host`, `/\\host`, user info, control characters and backslashes are refused, and so
are paths with `.` or `..` segments (also percent-encoded): a browser resolves
`/app/../admin` to `/admin`, out from under the prefix the text comparison saw.
"""

import re
from collections.abc import Sequence
from urllib.parse import SplitResult, unquote, urlsplit

MAX_LENGTH = 2048

_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


def allowed_redirect(target: str, *, public_url: str, allow: Sequence[str]) -> str | None:
    """The absolute URL to send the browser to, or None when `target` is not allowed."""
    if not target or len(target) > MAX_LENGTH or _UNSAFE.search(target):
        return None
    if target.startswith("/"):
        if target.startswith("//"):
            return None
        target = public_url.rstrip("/") + target
    parts = _split(target)
    if parts is None or _has_dot_segment(parts.path):
        return None
    for prefix in (public_url, *allow):
        allowed = _split(prefix)
        if allowed is not None and _under(parts, allowed):
            return target
    return None


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    return parts


def _has_dot_segment(path: str) -> bool:
    # Decoded first: browsers treat `%2e` as `.`, and an encoded slash or backslash (which some
    # servers decode) must not hide a segment either.
    return any(segment in (".", "..") for segment in unquote(path).replace("\\", "/").split("/"))


def _under(target: SplitResult, prefix: SplitResult) -> bool:
    if (target.scheme, target.netloc.lower()) != (prefix.scheme, prefix.netloc.lower()):
        return False
    base = prefix.path.rstrip("/")
    path = target.path or "/"
    return not base or path == base or path.startswith(base + "/")
