"""Is a tenant's identity domain (tenantSync `domainName`) safe to call with a client secret?

MarketGate later posts the tenant's OAuth client secret and authorization codes to this
address, so a forged or careless value must not point it at an internal service. The check
is pure text: `https`, a public-looking DNS host name, port 443 only, no user info, no
query or fragment, optionally restricted by the product's `tenant_domain_allow` patterns.
It cannot see where a name resolves; the HTTP client that calls the domain must still refuse
private addresses at connection time (DNS can change after the sync).
"""

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from gateway.koogallery.errors import BadPayloadError

MAX_LENGTH = 255

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_TOP_LABEL = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_PATH = re.compile(r"^(?:/[A-Za-z0-9._~-]+)*/?$")
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")
# Names that never lead to the public internet (RFC 6761, RFC 8375, ICANN name collisions).
_PRIVATE_SUFFIXES = frozenset(
    {
        "localhost",
        "local",
        "localdomain",
        "internal",
        "intranet",
        "lan",
        "home",
        "corp",
        "private",
        "arpa",
        "onion",
        "invalid",
    }
)


class UnsafeTenantDomainError(BadPayloadError):
    """`domainName` is not an https URL of a public host name the product accepts."""

    code = "unsafe_tenant_domain"


def check_tenant_domain(url: str, *, allow: Sequence[str] = ()) -> str:
    """The normalised domain (`https://host[/path]`, no trailing slash), or raise.

    `allow` holds host patterns: `idp.example.com` (that host) or `*.example.com` (any host
    under example.com, not example.com itself). An empty `allow` accepts any public host.
    """
    if len(url) > MAX_LENGTH or _FORBIDDEN_CHARACTERS.search(url):
        raise UnsafeTenantDomainError("domainName is too long or holds spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTenantDomainError("domainName is not a URL") from exc
    if parts.scheme.lower() != "https":
        raise UnsafeTenantDomainError("domainName must use https")
    if "@" in parts.netloc:
        raise UnsafeTenantDomainError("domainName must not carry user info")
    if port not in (None, 443):
        raise UnsafeTenantDomainError("domainName must use port 443")
    if parts.query or parts.fragment or "?" in url or "#" in url or not _PATH.match(parts.path):
        raise UnsafeTenantDomainError("domainName must not carry a query, fragment or unusual path")
    host = _public_host(parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc)
    if allow and not any(host_matches(host, pattern) for pattern in allow):
        raise UnsafeTenantDomainError("domainName is not in the product's tenant_domain_allow list")
    domain = f"https://{host}{parts.path.rstrip('/')}"
    if len(domain) > MAX_LENGTH:
        # An international host grows in punycode: what is stored must still fit its column.
        raise UnsafeTenantDomainError("domainName is too long once its host name is in punycode")
    return domain


def host_matches(host: str, pattern: str) -> bool:
    """Whether `host` (lowercase, ASCII) matches one allow-list pattern."""
    pattern = pattern.strip().lower().rstrip(".")
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return len(suffix) > 1 and host.endswith(suffix) and len(host) > len(suffix)
    return bool(pattern) and host == pattern


def _public_host(netloc: str) -> str:
    if not netloc:
        raise UnsafeTenantDomainError("domainName must name a host")
    if netloc.startswith("["):
        raise UnsafeTenantDomainError("domainName must name a host, not an IP address")
    try:
        host = netloc.encode("idna").decode("ascii").lower() if not netloc.isascii() else netloc.lower()
    except UnicodeError as exc:
        raise UnsafeTenantDomainError("domainName has an invalid international host name") from exc
    host = host.removesuffix(".")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise UnsafeTenantDomainError("domainName must name a host, not an IP address")
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise UnsafeTenantDomainError("domainName must be a fully qualified host name")
    if not _TOP_LABEL.match(labels[-1]):
        # A numeric last label is an IPv4 address in one of its many spellings (0x7f.1, 2130706433).
        raise UnsafeTenantDomainError("domainName must name a host, not an IP address")
    if labels[-1] in _PRIVATE_SUFFIXES or host.endswith(".home.arpa"):
        raise UnsafeTenantDomainError("domainName must be a public host name")
    return host
