"""The call log keeps bodies without secrets, and always in a form a database can store."""

from gateway.koogallery.redaction import loggable_body


def test_secrets_and_personal_fields_are_masked_at_any_depth() -> None:
    payload = {"clientSecret": "s3cret", "userList": [{"userName": "u", "mobile": "138", "Email": "a@b"}]}
    kept = loggable_body(payload, b"", limit=1000)
    masked = '[{"userName":"u","mobile":"[redacted]","Email":"[redacted]"}]'
    assert kept == f'{{"clientSecret":"[redacted]","userList":{masked}}}'


def test_lone_surrogates_are_replaced() -> None:
    kept = loggable_body({"name": "a\ud800b"}, b"", limit=1000)
    assert kept == '{"name":"a?b"}'
    assert kept.encode("utf-8")


def test_bodies_that_are_not_objects_keep_only_their_size() -> None:
    assert loggable_body(None, b"\xff\xfe", limit=1000) == "<2 bytes, not a JSON object>"


def test_long_bodies_are_cut() -> None:
    assert loggable_body({"a": "x" * 50}, b"", limit=10) == '{"a":"xxxx…'
