"""The simulator's signing, case bodies, selection, answer checks and the cases' orders."""

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.koogallery import apig
from gateway.koogallery.basic import parse_basic_request
from gateway.koogallery.orders import build_order_query_url
from gateway.koogallery.signing import CallKind
from gateway.simulator.cases import (
    DEBUG_CASES,
    FLOWS,
    RunState,
    encrypt_client_secret,
    load_rsa_public_key,
    select_cases,
)
from gateway.simulator.checks import Exchange, check_answer, parse_answer
from gateway.simulator.errors import UnknownCaseError
from gateway.simulator.open_api import DEMO_ACCESS_KEY, DEMO_SECRET_KEY
from gateway.simulator.scenario_orders import ScenarioOrderBook, create_scenario_open_api_app
from gateway.simulator.signer import marketplace_body, sign_call

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[2].parent / "shared" / "spec" / "vectors.json").read_text(encoding="utf-8")
)
RSA_VECTOR: dict[str, Any] = VECTORS["rsa_oaep"]
NOW_MS = 1_680_508_066_618  # 2023-04-03T07:47:46.618Z


def fixed_run(**options: Any) -> RunState:
    return RunState(run_id="SIMTEST00001", tenant_id="68cbc86abc2018ab880d92f36422fa0e", now_ms=lambda: NOW_MS,
                    **options)


def vector_private_key() -> rsa.RSAPrivateKey:
    key = serialization.load_der_private_key(base64.b64decode(RSA_VECTOR["private_key_pkcs8_base64"]), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


# Signing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["basic_v2"], ids=lambda vector: vector["note"])
def test_basic_signing_reproduces_the_vectors(vector: dict[str, str]) -> None:
    call = sign_call(CallKind.BASIC, vector["body"].encode(), key=vector["access_key"].encode(),
                     now_ms=int(vector["timestamp"]), nonce=vector["nonce"])
    assert call.signature == vector["signature"]
    assert call.query == {"signature": vector["signature"].upper(), "timestamp": vector["timestamp"],
                          "nonce": vector["nonce"]}


@pytest.mark.parametrize("vector", VECTORS["kit_v2"], ids=lambda vector: vector["note"])
def test_kit_signing_reproduces_the_vectors(vector: dict[str, str]) -> None:
    call = sign_call(CallKind.KIT, vector["body"].encode(), key=vector["kit_access_key"].encode(),
                     now_ms=int(vector["timestamp"]), nonce=vector["nonce"])
    assert call.headers["x-sign"] == vector["x_sign"]
    assert call.headers["x-timestamp"] == vector["timestamp"]
    assert call.headers["x-nonce"] == vector["nonce"]


# Case bodies ------------------------------------------------------------------------------


def test_every_basic_case_body_is_a_valid_debug_request_in_the_marketplace_shape() -> None:
    run = fixed_run()
    run.values.update({"periodic": "inst-p", "trial": "inst-t", "one-time": "inst-o", "on-demand": "inst-d"})
    for case in DEBUG_CASES:
        if case.kind is not CallKind.BASIC:
            continue
        fields = case.build(run)
        body = marketplace_body(fields)
        assert json.loads(body) == fields
        assert list(json.loads(body)) == sorted(fields), case.name
        assert b" " not in body.replace("企业版".encode(), b""), case.name
        request = parse_basic_request(fields)
        assert request.activity.value == case.interface
        assert request.is_test, case.name


def test_a_resent_purchase_has_the_same_order_and_a_fresh_business_id() -> None:
    run = fixed_run()
    new = next(case for case in DEBUG_CASES if case.name == "periodic.new")
    first, again = new.build(run), new.build(run)
    assert first["orderId"] == again["orderId"] == "MOCKPERIODYEARNEW-SIMTEST00001"
    assert first["orderLineId"] == "MOCKPERIODYEARNEW-SIMTEST00001-000001"
    assert first["businessId"] != again["businessId"]


def test_each_run_has_its_own_orders_and_tenant() -> None:
    runs = [RunState.fresh(now_ms=lambda: NOW_MS) for _ in range(2)]
    assert runs[0].order_id("MOCKONETIMENEW") != runs[1].order_id("MOCKONETIMENEW")
    assert runs[0].tenant_id != runs[1].tenant_id
    assert all(len(run.order_id("MOCKMONTYTRIALTOFORMAL", "-U-000001")) <= 64 for run in runs)


def test_the_change_check_keeps_its_nested_object_in_the_documented_order() -> None:
    run = fixed_run()
    run.values["periodic"] = "inst-p"
    case = next(case for case in DEBUG_CASES if case.name == "periodic.change-check")
    body = marketplace_body(case.build(run)).decode()
    assert '"productInfo":{"productId":"OFFI461867333479178241","skuCode":"a1b2c3d4-sku","linearValue":10,' in body


def test_kit_bodies_carry_integer_flags_and_east_8_timestamps() -> None:
    run = fixed_run(rsa_public_key=load_rsa_public_key(RSA_VECTOR["public_key_x509_base64"].encode()))
    bodies = {case.name: case.build(run) for case in DEBUG_CASES if case.kind is CallKind.KIT}
    assert list(bodies) == ["kit.tenantSync", "kit.tenantSync.repeat", "kit.applicationSync", "kit.allOrgSync",
                            "kit.authSync", "kit.singleOrgSync"]
    tenant = bodies["kit.tenantSync"]
    assert tenant == {
        "instanceId": "SIMTEST00001-KIT",
        "tenantId": "68cbc86abc2018ab880d92f36422fa0e",
        "testFlag": 1,
        "timeStamp": "20230403154746618",  # 07:47:46.618 UTC is 15:47:46.618 East-8
        "orderId": "MOCKPERIODYEARNEW-SIMTEST00001-KIT",
        "tenantCode": "simsimtest00001",
        "name": "Simulated tenant SIMTEST00001",
        "domainName": "https://example.tenantaccount.com",
        "flag": 1,
    }
    assert all(body["testFlag"] == 1 and body["tenantId"] == tenant["tenantId"] for body in bodies.values())
    assert [org["orgCode"] for org in bodies["kit.allOrgSync"]["orgInfoList"]] == ["SIMTEST00001-D1",
                                                                                    "SIMTEST00001-D2"]
    assert {user["role"] for user in bodies["kit.authSync"]["userList"]} == {"admin", "user"}
    assert bodies["kit.singleOrgSync"]["parentCode"] == "SIMTEST00001-D1"


# RSA --------------------------------------------------------------------------------------


def test_the_client_secret_decrypts_with_the_vector_private_key_as_java_oaep_sha256() -> None:
    public_key = load_rsa_public_key(RSA_VECTOR["public_key_x509_base64"].encode())
    ciphertext = encrypt_client_secret(public_key, "sEcReT-client-9f3a1c")
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA256(), label=None)
    assert vector_private_key().decrypt(base64.b64decode(ciphertext), oaep) == b"sEcReT-client-9f3a1c"


def test_a_public_key_is_read_as_pem_or_base64_x509() -> None:
    pem = vector_private_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    wrapped = "\n".join(RSA_VECTOR["public_key_x509_base64"][i:i + 64] for i in range(0, 600, 64)).encode()
    assert load_rsa_public_key(pem).public_numbers() == load_rsa_public_key(wrapped).public_numbers()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not a key", "not an RSA public key in PEM or Base64 X.509 form"),
        (rsa.generate_private_key(65537, 2048).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
         "RSA key of 2048 bits: the marketplace takes 3072 bits or more"),
    ],
    ids=["garbage", "too short"],
)
def test_an_unusable_public_key_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        load_rsa_public_key(data)


# Selection --------------------------------------------------------------------------------


def test_all_cases_by_default_in_suite_order() -> None:
    assert select_cases([], DEBUG_CASES) == list(DEBUG_CASES)
    assert FLOWS == ("periodic", "one-time", "on-demand", "negative", "kit")


def test_a_named_case_brings_the_cases_it_needs() -> None:
    names = [case.name for case in select_cases(["periodic.release.repeat", "one-time"], DEBUG_CASES)]
    assert names == ["periodic.new", "periodic.release", "periodic.release.repeat",
                     "one-time.new", "one-time.query", "one-time.release"]
    assert [case.name for case in select_cases(["kit.authSync"], DEBUG_CASES)] == ["kit.tenantSync", "kit.authSync"]


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(UnknownCaseError, match=r"periodic\.nope"):
        select_cases(["periodic.nope"], DEBUG_CASES)


# Answer checks ----------------------------------------------------------------------------


def exchange(body: object, *, status: int = 200, content_type: str = "application/json;charset=UTF-8") -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Exchange(status, content_type, raw, 0.01)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (exchange({"resultCode": "000000"}, status=502), "HTTP 502 (接口响应httpCode=502)"),
        (exchange({"resultCode": "000000"}, content_type="text/plain"),
         "content type 'text/plain' is not application/json"),
        (exchange(b"<html>", content_type="application/json"), "body is not JSON (解析响应体失败)"),
        (exchange([1, 2]), "body is not a JSON object (解析响应体失败)"),
        (exchange({"resultMsg": "ok"}), "missing resultCode (接口响应缺少resultCode)"),
        (exchange({"resultCode": "000000"}), "missing resultMsg (接口响应缺少resultMsg)"),
        (exchange({"resultCode": 0, "resultMsg": "ok"}), "resultCode is not a string (字段resultCode长度不合法)"),
        (exchange({"resultCode": "0000000", "resultMsg": "ok"}), "resultCode longer than 6 (字段resultCode长度不合法)"),
        (exchange({"resultCode": "000000", "resultMsg": "ok", "instanceId": "i" * 65}),
         "instanceId longer than 64 (字段instanceId长度不合法)"),
        (exchange({"resultCode": "000000", "resultMsg": "ok",
                   "info": [{"instanceId": "a", "appInfo": {"frontEndUrl": "u", "memo": "m" * 1025}}]}),
         "info[0].appInfo.memo longer than 1024 (字段memo长度不合法)"),
        (Exchange(None, "", b"", 20.0, error="no answer within 20 s (调用接口超时20s)"),
         "no answer within 20 s (调用接口超时20s)"),
    ],
)
def test_the_debugger_checks(answer: Exchange, reason: str) -> None:
    assert parse_answer(answer).failure == reason


def test_the_result_code_is_checked_before_the_required_fields() -> None:
    wrong = exchange({"resultCode": "000005", "resultMsg": "boom"})
    assert check_answer(wrong, codes=("000000",), required=("instanceId",)).failure == (
        "resultCode 000005, expected 000000 (resultMsg 'boom')"
    )
    bare = exchange({"resultCode": "000000", "resultMsg": "ok"})
    assert check_answer(bare, codes=("000000",), required=("instanceId",)).failure == (
        "missing instanceId (接口响应缺少instanceId)"
    )


def test_kit_answers_need_no_result_msg() -> None:
    kit_answer = exchange({"resultCode": "000000"})
    assert check_answer(kit_answer, codes=("000000",), result_msg_required=False).passed


# The cases' orders ------------------------------------------------------------------------


def test_a_case_order_is_served_as_a_copy_of_its_mock() -> None:
    book = ScenarioOrderBook()
    order = book.find("MOCKONDEMANDPKG-SIMTEST00001")
    assert order is not None
    assert order.order_id == "MOCKONDEMANDPKG-SIMTEST00001"
    assert [line.order_line_id for line in order.order_line] == ["MOCKONDEMANDPKG-SIMTEST00001-000001"]
    assert order.order_line[0].charging_mode == "ON_DEMAND_PKG"
    trial = book.find("MOCKPERIODDAYTRIAL-SIMTEST00001")
    assert trial is not None and trial.order_type == "TRIAL"
    synthesized = book.find("CS2211181819B4LVS")
    assert synthesized is not None and synthesized.order_line[0].charging_mode == "PERIOD"


@pytest.mark.anyio
async def test_the_open_api_serves_a_case_order_over_http() -> None:
    base = "http://127.0.0.1:8001"
    url = build_order_query_url(endpoint=base, order_id="MOCKONETIMENEW-SIMTEST00001",
                                order_line_id="MOCKONETIMENEW-SIMTEST00001-000001")
    headers = {"Content-Type": "application/json;charset=UTF-8"}
    signed = apig.sign_request(ak=DEMO_ACCESS_KEY, sk=DEMO_SECRET_KEY, method="GET", url=url, headers=headers,
                               body=b"", now=datetime.now(UTC))
    transport = httpx.ASGITransport(app=create_scenario_open_api_app())
    async with httpx.AsyncClient(transport=transport, base_url=base) as http:
        response = await http.get(url, headers=headers | signed)
    assert response.status_code == 200
    answer = response.json()
    assert answer["resultCode"] == "MKT.0000"
    assert answer["orderInfo"]["orderId"] == "MOCKONETIMENEW-SIMTEST00001"
    assert answer["orderInfo"]["orderLine"][0]["chargingMode"] == "ONE_TIME"
