"""The receiver's OpenAPI document: valid 3.1, served by both mountings, true of real answers.

As for the management API (tests/manage/test_openapi.py): the document is
checked against the OAS 3.1 meta-schema, then real answers of the
Starlette app and the Flask blueprint (good, tampered, replayed,
oversize, unknown token, and every other refusal) against what it says
for their status: the status is documented, the media type too, the body
validates (its ``code`` among the status's codes), required headers are sent.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from scout_auth import InMemoryKeyStore, KeyManager
from scout_auth._leaks.flow import REFUSALS, ReceiverSettings, refuse
from scout_auth._leaks.openapi import OPERATION_STATUSES, document
from tests.openapi_checks import check_answer, dangling_refs, meta_errors

from .scanner import HMAC_SECRET, MOUNT, Answer, Receiver, Scanner, hmac_headers, labels, report
from .test_parts import FlakyStore

SETTINGS = ReceiverSettings(has_scanner_keys=True, hmac_secret=HMAC_SECRET)
DOC = document(MOUNT, SETTINGS)
OPERATION = DOC["paths"]["/"]["post"]


@pytest.fixture(params=["starlette", "flask"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- the document itself ---------------------------------------------------


def test_document_is_valid_openapi_3_1() -> None:
    assert meta_errors(DOC) == []
    assert meta_errors(document("/", ReceiverSettings(hmac_secret=HMAC_SECRET))) == []
    assert dangling_refs(DOC) == []


def test_every_refusal_is_documented_under_its_status() -> None:
    responses = DOC["components"]["responses"]
    documented = {
        code: int(status)
        for status, response in responses.items()
        for code in response["content"]["application/problem+json"]["schema"]["allOf"][1][
            "properties"
        ]["code"]["enum"]
    }
    assert documented == {code: status for code, (status, _) in REFUSALS.items()}
    assert set(OPERATION["responses"]) == {"200", *map(str, OPERATION_STATUSES)}
    assert set(responses) == {*map(str, OPERATION_STATUSES), "404", "405"}
    with pytest.raises(KeyError):
        refuse("made_up", "An undocumented refusal cannot be raised.")


def test_the_document_follows_the_settings() -> None:
    assert document("/x/", SETTINGS)["servers"] == [{"url": "/x"}]
    assert document("", SETTINGS)["servers"] == [{"url": "/"}]
    assert OPERATION["security"] == [
        {"githubSignature": [], "githubKeyIdentifier": []},
        {"hmac": []},
    ]
    schemes = DOC["components"]["securitySchemes"]
    assert schemes["githubSignature"]["name"] == "Github-Public-Key-Signature"
    assert schemes["githubKeyIdentifier"]["name"] == "Github-Public-Key-Identifier"
    assert schemes["hmac"]["name"] == "x-scanner-signature-256"
    github_only = document("/", ReceiverSettings(has_scanner_keys=True, max_tokens=7))
    assert github_only["paths"]["/"]["post"]["security"] == [
        {"githubSignature": [], "githubKeyIdentifier": []}
    ]
    assert "hmac" not in github_only["components"]["securitySchemes"]
    assert github_only["components"]["schemas"]["Report"]["maxItems"] == 7
    custom = document("/", ReceiverSettings(hmac_secret=HMAC_SECRET, hmac_header="x-sig"))
    assert custom["components"]["securitySchemes"] == {"hmac": {**schemes["hmac"], "name": "x-sig"}}


def test_document_is_a_fresh_copy() -> None:
    first = document(MOUNT, SETTINGS)
    first["components"]["schemas"]["Label"]["properties"].clear()
    assert document(MOUNT, SETTINGS)["components"]["schemas"]["Label"]["properties"]


# --- real answers against it -------------------------------------------------


def conforms(answer: Answer, *, operation: bool = True) -> None:
    """Assert ``answer`` is what the document says of its status (the operation's, or 404/405)."""
    responses = OPERATION["responses"] if operation else DOC["components"]["responses"]
    check_answer(DOC, responses, answer.status, answer.headers, answer.body)
    assert answer.headers["cache-control"] == "no-store"


def test_real_answers_conform(kind: str, scanner: Scanner) -> None:
    store = FlakyStore()
    admin = KeyManager(store)
    receiver = Receiver(kind, store, scanner, max_body=4096)
    roomy = Receiver(kind, store, scanner)
    seen: set[tuple[int, str]] = set()

    def check(
        body: bytes, headers: dict[str, str], status: int, code: str = "", via: Any = None
    ) -> Answer:
        answer = (via or receiver).post(body, headers)
        assert answer.status == status, answer.body
        conforms(answer)
        if code:
            assert answer.json()["code"] == code
            seen.add((status, code))
        return answer

    new = admin.create_key("org_doc", "billing-sync prod")
    other = admin.create_key("org_doc", "reports prod")
    good = report(new.token, "scout_sk_nope_nope")
    answer = check(good, scanner.sign(good), 200)
    assert labels(answer) == ["true_positive", "false_positive"]  # a real key, an unknown token
    check(good, scanner.sign(good), 409, "replayed")
    unknown = report("not-one-of-ours")
    assert labels(check(unknown, hmac_headers(unknown), 200)) == ["false_positive"]
    untyped = json.dumps([{"token": "t", "type": None, "url": None, "source": None}]).encode()
    assert check(untyped, scanner.sign(untyped), 200).json()[0]["token_type"] == ""

    body = report(other.token)
    check(body, scanner.sign(body.replace(b"content", b"contenT")), 401, "bad_signature")
    check(
        body, {**scanner.sign(body), "Github-Public-Key-Identifier": "f" * 64}, 401, "unknown_key"
    )
    check(body, {}, 401, "unsigned")
    check(body, {"X-Scanner-Signature-256": "sha256=" + "0" * 64}, 401, "bad_signature")
    big = report(other.token, url="https://example.com/" + "x" * 5000)
    check(big, scanner.sign(big), 413, "body_too_large")
    many = report(*(f"t{i}" for i in range(1001)))
    check(many, scanner.sign(many), 413, "too_many_tokens", via=roomy)
    for junk in (b"not json", b"{}", b'[{"token": 5}]', b'[{"token": "t", "url": 3}]'):
        check(junk, scanner.sign(junk), 400, "invalid_report")
    store.down = True
    outage = report(other.token, source="gist")
    assert check(outage, scanner.sign(outage), 503, "store_unavailable").headers["retry-after"]
    store.down = False

    for answer, code in (
        (receiver.post(b"", {}, method="GET"), "method_not_allowed"),
        (receiver.post(body, scanner.sign(body), path="/other"), "not_found"),
        (receiver.post(body, scanner.sign(body), method="PUT"), "method_not_allowed"),
    ):
        assert answer.json()["code"] == code
        conforms(answer, operation=False)
        seen.add((answer.status, code))

    assert seen >= {(s, c) for c, (s, _) in REFUSALS.items()} - {(400, "invalid_request")}


def test_a_bad_content_length_conforms(kind: str, scanner: Scanner) -> None:
    # The test clients fix Content-Length; the raw app gets the malformed one.
    receiver = Receiver(kind, InMemoryKeyStore(), scanner)
    if kind == "flask":
        app = receiver.client.application
        environ = {
            "REQUEST_METHOD": "POST",
            "SCRIPT_NAME": "",
            "PATH_INFO": MOUNT,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
            "CONTENT_LENGTH": "12, 13",
            "wsgi.input": io.BytesIO(b"[]"),
        }
        out: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]]) -> None:
            out["status"], out["headers"] = int(status.split()[0]), dict(headers)

        body = b"".join(app(environ, start))
        answer = Answer(out["status"], {k.lower(): v for k, v in out["headers"].items()}, body)
    else:
        answer = receiver.post(b"[]", {"content-length": "12, 13"})
    assert (answer.status, answer.json()["code"]) == (400, "invalid_request")
    conforms(answer)


def test_served_document_is_the_document(kind: str, scanner: Scanner) -> None:
    receiver = Receiver(kind, InMemoryKeyStore(), scanner)
    answer = receiver.post(b"", {}, method="GET", path="/openapi.json")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == DOC
    head = receiver.post(b"", {}, method="HEAD", path="/openapi.json")
    assert (head.status, head.body) == (200, b"")
    assert head.headers["content-type"] == "application/json"
    # Only GET and HEAD: a POST there is a path below the mount point.
    signed = report("x")
    posted = receiver.post(signed, scanner.sign(signed), path="/openapi.json")
    assert (posted.status, posted.json()["code"]) == (404, "not_found")


def test_both_mountings_serve_the_same_bytes(scanner: Scanner) -> None:
    served = {
        kind: Receiver(kind, InMemoryKeyStore(), scanner)
        .post(b"", {}, method="GET", path="/openapi.json")
        .body
        for kind in ("starlette", "flask")
    }
    assert served["starlette"] == served["flask"]


def test_the_check_catches_a_wrong_answer() -> None:
    ok = Answer(
        200,
        {"content-type": "application/json", "cache-control": "no-store"},
        b'[{"token_raw":"t","token_type":"","label":"true_positive"}]',
    )
    conforms(ok)
    problem = {
        "type": "https://x/replayed",
        "title": "Conflict",
        "status": 409,
        "detail": "d",
        "code": "replayed",
    }
    headers = {"content-type": "application/problem+json", "cache-control": "no-store"}
    conforms(Answer(409, headers, json.dumps(problem).encode()))
    outage = json.dumps({**problem, "status": 503, "code": "store_unavailable"}).encode()
    conforms(Answer(503, {**headers, "retry-after": "1"}, outage))
    for wrong in (
        Answer(200, ok.headers, b'[{"token_raw":"t","token_type":"","label":"maybe"}]'),
        Answer(200, ok.headers, b'[{"token_raw":"t","label":"true_positive"}]'),
        Answer(200, {**ok.headers, "content-type": "text/html"}, ok.body),
        Answer(201, ok.headers, ok.body),
        Answer(409, headers, json.dumps({**problem, "code": "unsigned"}).encode()),
        Answer(409, headers, json.dumps({**problem, "status": 401}).encode()),
        Answer(503, headers, outage),  # no Retry-After
    ):
        with pytest.raises(AssertionError):
            conforms(wrong)
