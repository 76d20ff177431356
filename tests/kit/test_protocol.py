"""The pure parts of the Kit protocol: signature vectors, RSA-OAEP vectors, lenient parsing,
tenant domain safety and field rules."""

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from gateway.koogallery.client_secret import (
    KeyFormatError,
    OaepVariant,
    UndecryptableSecretError,
    decrypt_client_secret,
    load_private_key,
    new_key_pair,
)
from gateway.koogallery.errors import BadPayloadError
from gateway.koogallery.kit import AuthSync, SyncName, TenantSync, loggable_kit_payload, parse_kit_request
from gateway.koogallery.lenient_json import LenientJsonError, loads_lenient
from gateway.koogallery.payload import canonical_payload, parse_object
from gateway.koogallery.signing import CallKind, verify
from gateway.koogallery.tenant_domain import UnsafeTenantDomainError, check_tenant_domain
from tests.kit.helpers import RSA_VECTORS, TENANT_A, VECTORS, auth_sync, encrypt_secret, public_key, tenant_sync, user


@pytest.mark.parametrize("vector", VECTORS["kit_v2"], ids=lambda vector: vector["note"])
def test_kit_signature_vectors(vector: dict[str, str]) -> None:
    payload = parse_object(vector["body"].encode("utf-8"))
    assert canonical_payload(payload) == vector["canonical"].encode("utf-8")
    key = vector["kit_access_key"].encode()
    for presented in (vector["x_sign"], vector["x_sign"].upper()):
        assert (
            verify(
                CallKind.KIT,
                keys=[key],
                signature=presented,
                nonce=vector["nonce"],
                timestamp=vector["timestamp"],
                payloads=[vector["canonical"].encode("utf-8")],
            )
            == 0
        )


@pytest.mark.parametrize("ciphertext", RSA_VECTORS["ciphertexts"], ids=lambda item: item["java_transformation"])
def test_rsa_oaep_vectors(ciphertext: dict[str, str]) -> None:
    key = load_private_key(RSA_VECTORS["private_key_pkcs8_base64"])
    secret, variant = decrypt_client_secret(ciphertext["ciphertext_base64"], key)
    assert secret == RSA_VECTORS["plaintext"]
    expected = {("SHA-256", "SHA-1"): OaepVariant.SHA256_MGF1_SHA1, ("SHA-1", "SHA-1"): OaepVariant.SHA1_MGF1_SHA1}
    assert variant is expected[(ciphertext["oaep_hash"], ciphertext["mgf1_hash"])]


def test_every_oaep_variant_and_key_format() -> None:
    der = base64.b64decode(RSA_VECTORS["private_key_pkcs8_base64"])
    pem = "-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(der).decode() + "-----END PRIVATE KEY-----\n"
    for text in (RSA_VECTORS["private_key_pkcs8_base64"], pem):
        key = load_private_key(text)
        for (oaep, mgf1), variant in [
            (("SHA-256", "SHA-1"), OaepVariant.SHA256_MGF1_SHA1),
            (("SHA-256", "SHA-256"), OaepVariant.SHA256_MGF1_SHA256),
            (("SHA-1", "SHA-1"), OaepVariant.SHA1_MGF1_SHA1),
        ]:
            ciphertext = encrypt_secret("s3cr3t-äöü", oaep=oaep, mgf1=mgf1)
            wrapped = "\n".join(ciphertext[i : i + 76] for i in range(0, len(ciphertext), 76))  # MIME line breaks
            assert decrypt_client_secret(wrapped, key) == ("s3cr3t-äöü", variant)


def test_undecryptable_secrets_and_unusable_keys() -> None:
    key = load_private_key(RSA_VECTORS["private_key_pkcs8_base64"])
    other = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA384()), algorithm=hashes.SHA384(), label=None)
    for ciphertext in (
        "",
        "***",
        base64.b64encode(b"short").decode(),
        base64.b64encode(public_key().encrypt(b"x", other)).decode(),
    ):
        with pytest.raises(UndecryptableSecretError):
            decrypt_client_secret(ciphertext, key)
    for text in ("", "not a key", base64.b64encode(b"garbage").decode(), "-----BEGIN PRIVATE KEY-----\nAA==\n"):
        with pytest.raises(KeyFormatError):
            load_private_key(text)
    with pytest.raises(KeyFormatError):
        new_key_pair(2048)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (
            '[{orgCode:"1", orgName:"产品部", parentCode:"" }]',
            [{"orgCode": "1", "orgName": "产品部", "parentCode": ""}],
        ),
        (
            "[{a:'x', 'b':1, $c:-1.5e2, d:[true,false,null],},]",
            [{"a": "x", "b": 1, "$c": -150.0, "d": [True, False, None]}],
        ),
        ('[{a:"\\u4e2d\\n\\"q\\""}]', [{"a": '中\n"q"'}]),
        ("{a:1, a:2}", {"a": 2}),
        ("[]", []),
    ],
)
def test_lenient_json_reads_js_literals(text: str, value: object) -> None:
    assert loads_lenient(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[",
        "[{a:}]",
        "[{1:2}]",
        "[{a:1}] x",
        '[{a:"x}]',
        "[{a:NaN}]",
        "[{a:" * 40 + "1" + "}]" * 40,
        "[1e999]",
        "[{a:'\\x'}]",
        "alert(1)",
        "[{a:1 b:2}]",
        "[{a:" + "9" * 100 + "}]",
        '["a\nb"]',
    ],
)
def test_lenient_json_refuses_anything_else(text: str) -> None:
    with pytest.raises(LenientJsonError):
        loads_lenient(text)


@pytest.mark.parametrize(
    ("url", "allow", "normalised"),
    [
        ("https://example.tenantaccount.com", [], "https://example.tenantaccount.com"),
        ("HTTPS://Example.TenantAccount.com:443/", [], "https://example.tenantaccount.com"),
        ("https://idp.example.com/oneaccess/", [], "https://idp.example.com/oneaccess"),
        ("https://bücher.example", [], "https://xn--bcher-kva.example"),
        ("https://a.tenantaccount.com", ["*.tenantaccount.com"], "https://a.tenantaccount.com"),
        ("https://idp.example.com", ["IDP.example.com."], "https://idp.example.com"),
    ],
)
def test_safe_tenant_domains(url: str, allow: list[str], normalised: str) -> None:
    assert check_tenant_domain(url, allow=allow) == normalised


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://example.com", []),
        ("ftp://example.com", []),
        ("//example.com", []),
        ("example.com", []),
        ("https://127.0.0.1", []),
        ("https://[::1]", []),
        ("https://0x7f.0.0.1", []),
        ("https://2130706433", []),
        ("https://017700000001", []),
        ("https://10.1.2.3:443", []),
        ("https://user:pw@example.com", []),
        ("https://example.com@evil.com", []),
        ("https://example.com:8443", []),
        ("https://example.com:0", []),
        ("https://localhost", []),
        ("https://foo.localhost", []),
        ("https://printer.local", []),
        ("https://svc.internal", []),
        ("https://router.home.arpa", []),
        ("https://1.0.0.10.in-addr.arpa", []),
        ("https://intranet", []),
        ("https://exa mple.com", []),
        ("https://example.com\\@evil.com", []),
        ("https://example.com/?q", []),
        ("https://example.com/#f", []),
        ("https://example.com/a b", []),
        ("https://-bad.example.com", []),
        ("https://" + "a" * 250 + ".com", []),
        ("https://example.com\x00", []),
        ("https://evil.com", ["*.tenantaccount.com"]),
        ("https://tenantaccount.com", ["*.tenantaccount.com"]),
        ("https://xtenantaccount.com", ["*.tenantaccount.com"]),
    ],
)
def test_unsafe_tenant_domains(url: str, allow: list[str]) -> None:
    with pytest.raises(UnsafeTenantDomainError):
        check_tenant_domain(url, allow=allow)


def test_tenant_domain_length_counts_the_host_in_punycode() -> None:
    # Given a host of 71 characters that is 215 in punycode, and paths that fit 255 characters before it
    host = ".".join(["中文域名测试标签" * 2] * 4) + ".com"
    fits, too_long = f"https://{host}/{'a' * 31}", f"https://{host}/{'a' * 32}"
    assert len(too_long) == 112
    # Then the normalised domain may reach the column's 255 characters, and not one more
    assert len(check_tenant_domain(fits)) == 255
    with pytest.raises(UnsafeTenantDomainError, match="punycode"):
        check_tenant_domain(too_long)


def test_instance_and_order_ids_may_be_null_but_not_missing() -> None:
    # Given the seller's own credential test, which may send instanceId and orderId as null
    body = {**tenant_sync(TENANT_A, 1), "instanceId": None, "orderId": None}
    # Then they read as empty
    request = parse_kit_request(SyncName.TENANT, body, max_users=5)
    assert isinstance(request, TenantSync)
    assert (request.instance_id, request.order_id) == ("", "")
    # But a call without them is still refused
    for field in ("instanceId", "orderId"):
        without = {key: value for key, value in body.items() if key != field}
        with pytest.raises(BadPayloadError, match=f"{field}: Field required"):
            parse_kit_request(SyncName.TENANT, without, max_users=5)


def test_field_leniency() -> None:
    body = {
        **auth_sync(TENANT_A, 1, [user("u1"), user("u1", role="admin")]),
        "flag": "1",
        "testFlag": "0",
        "timeStamp": 20220413093539534,
    }
    request = parse_kit_request(SyncName.AUTH, body, max_users=5)
    assert isinstance(request, AuthSync)
    assert [(item.user_name, item.role) for item in request.distinct_users()] == [("u1", "admin")]
    v1_style = {**body, "userList": json.dumps([user("u2", extension={"employeeType": 2, "workPlace": "南京"})])}
    v1_request = parse_kit_request(SyncName.AUTH, v1_style, max_users=5)
    assert isinstance(v1_request, AuthSync)
    [parsed] = v1_request.user_list
    assert (parsed.employee_type, parsed.work_place) == (2, "南京")
    tenant = parse_kit_request(SyncName.TENANT, {**tenant_sync(TENANT_A, 0), "domainName": "not a url"}, max_users=5)
    assert isinstance(tenant, TenantSync)  # a deletion does not need the domain it will not store
    with pytest.raises(BadPayloadError, match="userList: more than 1 users"):
        parse_kit_request(SyncName.AUTH, body, max_users=1)


def test_call_log_copy_parses_lists_sent_as_strings() -> None:
    body = {"userList": json.dumps([{"userName": "u", "mobile": "1"}]), "orgInfoList": "[{x:", "name": "n"}
    assert loggable_kit_payload(body) == {
        "userList": [{"userName": "u", "mobile": "1"}],
        "orgInfoList": "<string of 4 characters, not a list>",
        "name": "n",
    }
