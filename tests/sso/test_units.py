"""The pure parts of SSO: redirect allow-lists, cookie signatures, public-address egress, settings."""

import httpcore
import pytest
from pydantic import SecretStr

from gateway.settings import ConfigError, Environment, ProductConfig, Settings
from gateway.sso._egress import PublicAddressBackend, is_public_address
from gateway.sso.cookies import cookie_key, sign, unsign
from gateway.sso.redirects import allowed_redirect

PUBLIC = "https://mg.example.com"
ALLOW = ["https://crm.example.com/app", "http://localhost:3000"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/apps/crm/home?x=1", "https://mg.example.com/apps/crm/home?x=1"),
        ("https://mg.example.com/sso/crm/signed-out", "https://mg.example.com/sso/crm/signed-out"),
        ("https://crm.example.com/app", "https://crm.example.com/app"),
        ("https://crm.example.com/app/reports#x", "https://crm.example.com/app/reports#x"),
        ("http://localhost:3000/", "http://localhost:3000/"),
        ("https://CRM.example.com/app/x", "https://CRM.example.com/app/x"),
        ("https://crm.example.com/application", None),
        ("https://crm.example.com/", None),
        ("http://crm.example.com/app", None),
        ("https://crm.example.com:8443/app", None),
        ("https://crm.example.com.evil.example/app", None),
        ("https://crm.example.com@evil.example/app", None),
        ("//evil.example", None),
        ("/\\evil.example", None),
        ("https://evil.example\\@crm.example.com/app", None),
        ("javascript:alert(1)", None),
        ("data:text/html,hi", None),
        ("https://crm.example.com/app\n", None),
        ("", None),
        ("https://crm.example.com/app/" + "x" * 3000, None),
    ],
)
def test_allowed_redirects(target: str, expected: str | None) -> None:
    assert allowed_redirect(target, public_url=PUBLIC, allow=ALLOW) == expected


@pytest.mark.parametrize(
    "target",
    [
        "https://crm.example.com/app/../admin",
        "https://crm.example.com/app/%2e%2e/admin",
        "https://crm.example.com/app/%2E%2e/admin",
        "https://crm.example.com/app/.%2E/admin",
        "https://crm.example.com/app/..",
        "https://crm.example.com/app/./reports",
        "https://crm.example.com/app/x%2f..%2f..%2fadmin",
        "https://crm.example.com/app/x%5c..%5cadmin",
        "/apps/crm/../../admin",
    ],
)
def test_redirects_with_dot_segments_are_refused(target: str) -> None:
    # a browser resolves them (`/app/../admin` is `/admin`), out from under the allowed prefix
    assert allowed_redirect(target, public_url=PUBLIC, allow=ALLOW) is None


def test_dots_inside_a_segment_are_no_dot_segment() -> None:
    target = "https://crm.example.com/app/report..v2/.well"
    assert allowed_redirect(target, public_url=PUBLIC, allow=ALLOW) == target


def test_cookie_signatures() -> None:
    key = cookie_key(b"m" * 32)
    signed = sign("abcdefghijklmnopqrstuvwxyz012345", key=key)

    assert unsign(signed, key=key) == "abcdefghijklmnopqrstuvwxyz012345"
    assert unsign(signed, key=cookie_key(b"n" * 32)) is None
    assert unsign(signed[:-1] + ("A" if signed[-1] != "A" else "B"), key=key) is None
    assert unsign("abcdefghijklmnopqrstuvwxyz012346" + signed[32:], key=key) is None
    assert unsign("no-tag-at-all-but-long-enough", key=key) is None
    assert unsign("short.tag", key=key) is None
    with pytest.raises(ValueError):
        sign("not a token", key=key)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("224.0.0.1", False),
        ("not-an-address", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(address) is public


@pytest.mark.anyio
@pytest.mark.parametrize("answer", [["10.0.0.5"], ["93.184.216.34", "127.0.0.1"], []])
async def test_egress_refuses_hosts_resolving_to_private_addresses(answer: list[str]) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return answer

    backend = PublicAddressBackend(resolve=resolve)

    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("idp.tenant.example", 443)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_identity_domain_overrides_are_refused_in_production() -> None:
    with pytest.raises(ConfigError, match="development only"):
        Settings(
            environment=Environment.PRODUCTION,
            secret_key=SecretStr("s" * 40),
            dev_identity_domain_overrides={"https://idp.acme.example": "http://127.0.0.1:9000"},
        )


@pytest.mark.parametrize(
    "update",
    [
        {"sso_redirect_allow": ["ftp://x.example"]},
        {"sso_redirect_allow": ["https://x.example/?q=1"]},
        {"sso_logout_redirect_url": "https://u@x.example/"},
        {"sso_redeem_key": "short"},
    ],
)
def test_product_sso_settings_are_checked(update: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ProductConfig.model_validate({"name": "A", "adapter": "demo", "access_key": "k" * 20, **update})


def test_unified_login_url_needs_the_app_id_placeholder() -> None:
    with pytest.raises(ValueError):
        Settings(environment=Environment.DEVELOPMENT, sso_unified_login_url="https://login.example/")
