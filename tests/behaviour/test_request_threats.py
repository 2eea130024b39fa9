"""Threat table: bodies, framing, malformed credentials and log lines, on every adapter.

Issue 9 defects 3, 5, 6 and 9, and ``expected_authorities``. Every case runs
through the Starlette middleware (raw ASGI, streaming and buffered), the
plain WSGI middleware and the Flask extension (raw environ), so a server
that hands over what a test client would never send is covered too.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from scout_auth import AsyncVerifier, HttpRequest, InMemoryKeyStore, KeyManager, NewKey, Verifier
from scout_auth._core.tokens import parse_token
from scout_auth._signing.digest import content_digest
from scout_auth._signing.signature import sign_request
from tests.apps import flask_app, starlette_app, wsgi_app
from tests.behaviour.drivers import Answer, asgi, wsgi

HOST = "api.test"


@pytest.fixture(scope="module")
def store() -> InMemoryKeyStore:
    return InMemoryKeyStore()


@pytest.fixture(scope="module")
def key(store) -> NewKey:
    return KeyManager(store).create_key("org_a", "signer", scopes=["drive:*"])


def signed_headers(
    key: NewKey,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    cover_digest: bool = True,
    host: str = HOST,
    components: list[str] | None = None,
) -> list[tuple[str, str]]:
    headers = [("host", host)]
    if body and cover_digest:
        headers.append(("content-digest", content_digest(body)))
    parsed = parse_token(key.token)
    assert parsed is not None
    request = HttpRequest(method, "http", host, path, "", headers)
    if components is None:
        components = ["@method", "@authority", "@target-uri"]
        if body and cover_digest:
            components.append("content-digest")
    sig = sign_request(
        request,
        key_id=parsed.key_id,
        private_seed=parsed.seed,
        now=time.time(),
        components=components,
    )
    return [*headers, ("signature-input", sig["Signature-Input"]), ("signature", sig["Signature"])]


# Each adapter as a function (method, path, headers, body, **framing) -> Answer.
# ``framed=False`` sends the body with no Content-Length (HTTP/2, chunked
# through some ASGI servers; for WSGI: wsgi.input_terminated).
Adapter = Callable[..., Answer]


def starlette_adapter(store: InMemoryKeyStore, **options: Any) -> Adapter:
    app = starlette_app(AsyncVerifier(store), **options)

    def call(method, path, headers, body=b"", *, framed=True, length=None):
        headers = list(headers)
        if length is not None:
            headers.append(("content-length", length))
        elif framed and body:
            headers.append(("content-length", str(len(body))))
        return asgi(app, method, path, headers, body)

    return call


def buffered_adapter(store: InMemoryKeyStore, **options: Any) -> Adapter:
    return starlette_adapter(store, buffer_signed_body=True, **options)


def _wsgi_adapter(app: Callable[..., Any]) -> Adapter:
    def call(method, path, headers, body=b"", *, framed=True, length=None):
        if length is not None:
            return wsgi(app, method, path, headers, body, content_length=length)
        if framed:
            return wsgi(app, method, path, headers, body)
        return wsgi(app, method, path, headers, body, content_length=None, terminated=True)

    return call


def wsgi_adapter(store: InMemoryKeyStore, **options: Any) -> Adapter:
    return _wsgi_adapter(wsgi_app(Verifier(store), **options))


def flask_adapter(store: InMemoryKeyStore, **options: Any) -> Adapter:
    return _wsgi_adapter(flask_app(Verifier(store), **options))


ADAPTERS = [
    pytest.param(starlette_adapter, id="starlette"),
    pytest.param(buffered_adapter, id="starlette-buffered"),
    pytest.param(wsgi_adapter, id="wsgi"),
    pytest.param(flask_adapter, id="flask"),
]


def assert_problem(answer: Answer, status: int, code: str) -> None:
    assert answer.raised is None, answer.raised
    assert (answer.status, answer.code) == (status, code), answer.body
    assert answer.headers["content-type"] == "application/problem+json"


# -- defect 3: a body is only ever checked against a digest the signature covers


FORGED = b'{"transfer": "all of it"}'

BODY_CASES = [
    pytest.param(
        lambda key: (
            [*signed_headers(key, "POST", "/echo"), ("content-digest", content_digest(FORGED))]
        ),
        False,
        id="unframed-body-with-uncovered-digest",
    ),
    pytest.param(
        lambda key: (
            [*signed_headers(key, "POST", "/echo"), ("content-digest", content_digest(FORGED))]
        ),
        True,
        id="framed-body-with-uncovered-digest",
    ),
    pytest.param(
        lambda key: signed_headers(key, "POST", "/echo"),
        False,
        id="unframed-body-and-no-digest",
    ),
    pytest.param(
        lambda key: (
            [
                *signed_headers(key, "POST", "/echo", body=b"x", cover_digest=False),
                ("content-digest", content_digest(FORGED)),
            ]
        ),
        False,
        id="digest-present-but-not-in-components",
    ),
]


@pytest.mark.parametrize(("make_headers", "framed"), BODY_CASES)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_body_is_checked_only_against_a_covered_digest(store, key, adapter, make_headers, framed):
    answer = adapter(store)("POST", "/echo", make_headers(key), FORGED, framed=framed)
    assert answer.status == 401, answer.body
    assert answer.code in ("signature_missing_component",), answer.body
    assert FORGED not in answer.body


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_covered_digest_still_passes_without_framing(store, key, adapter):
    body = b'{"file": "q3.pdf"}'
    headers = signed_headers(key, "POST", "/echo", body=body)
    answer = adapter(store)("POST", "/echo", headers, body, framed=False)
    assert answer.status == 200, answer.body
    assert b'"bytes":18' in answer.body.replace(b" ", b"")


def test_buffered_mode_shows_the_app_no_byte_of_a_bad_body(store, key):
    seen: list[bytes] = []

    async def app(scope, receive, send):
        message = await receive()
        seen.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    from scout_auth.starlette import ScoutAuthMiddleware

    protected = ScoutAuthMiddleware(app, verifier=AsyncVerifier(store), buffer_signed_body=True)
    body = b"a" * 100
    headers = signed_headers(key, "POST", "/echo", body=body)
    # The right digest, then a body whose first chunk is right and whose last is not.
    answer = asgi(protected, "POST", "/echo", headers, [body[:60], b"b" * 40])
    assert_problem(answer, 401, "digest_mismatch")
    assert seen == []
    headers = signed_headers(key, "POST", "/echo", body=body)  # a fresh nonce
    answer = asgi(protected, "POST", "/echo", headers, [body[:60], body[60:]])
    assert answer.status == 200
    assert seen == [body]


# -- defects 5 and 6: malformed bytes are refused with a clear answer, never a 500

CREDENTIAL_CASES = [
    pytest.param("Basic \xe9", 401, "invalid_token", id="basic-non-ascii"),
    pytest.param("Basic \xe9\xe9\xe9\xe9", 401, "invalid_token", id="basic-non-ascii-4"),
    pytest.param("basic ////", 401, "invalid_token", id="basic-bad-base64"),
    pytest.param(
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        401,
        "invalid_token",
        id="basic-not-utf8",
    ),
    pytest.param(
        "Basic " + base64.b64encode(b"org").decode(), 401, "invalid_token", id="basic-no-colon"
    ),
    pytest.param("Bearer \xe9", 401, "invalid_token", id="bearer-non-ascii"),
    pytest.param("Bearer scout_sk_\xff\x00", 401, "invalid_token", id="bearer-control-bytes"),
    pytest.param("\xe9\xe9 abc", 401, "missing_credentials", id="scheme-non-ascii"),
]


@pytest.mark.parametrize(("value", "status", "code"), CREDENTIAL_CASES)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_malformed_credentials_are_refused_not_crashed(store, adapter, value, status, code):
    answer = adapter(store)("GET", "/whoami", [("authorization", value)])
    assert_problem(answer, status, code)


LENGTH_CASES = [
    pytest.param("\xb2", 400, "invalid_request", id="superscript-two"),
    pytest.param("\u0663", 400, "invalid_request", id="arabic-indic-three"),
    pytest.param("-1", 400, "invalid_request", id="negative"),
    pytest.param("1e3", 400, "invalid_request", id="exponent"),
    pytest.param("5, 5", 400, "invalid_request", id="list"),
    pytest.param("0x10", 400, "invalid_request", id="hex"),
    pytest.param("9" * 5000, 413, "body_too_large", id="more-digits-than-int-parses"),
    pytest.param("99999999999", 413, "body_too_large", id="huge"),
]


@pytest.mark.parametrize(("length", "status", "code"), LENGTH_CASES)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_framing_headers_parse_as_rfc_9110_says(store, key, adapter, length, status, code):
    body = b"{}"
    headers = signed_headers(key, "POST", "/echo", body=body)
    call = adapter(store)
    if adapter is flask_adapter or adapter is wsgi_adapter:
        if not length.isascii() and length != "\xb2":
            # PEP 3333 environ strings are latin-1: a server can only hand over bytes.
            length = length.encode("utf-8").decode("latin-1")
    elif not all(ord(c) < 256 for c in length):
        length = length.encode("utf-8").decode("latin-1")
    answer = call("POST", "/echo", headers, body, length=length)
    assert_problem(answer, status, code)


# -- defect 9: no client-supplied string reaches a log line raw

LOG_CASES = [
    pytest.param("/x\r\nINFO:scout_auth:forged line", id="crlf-in-path"),
    pytest.param("/x\x1b[2J", id="terminal-escape"),
    pytest.param("/" + "a" * 10_000, id="huge-path"),
    pytest.param("/\u2028line-separator", id="unicode-line-separator"),
]


@pytest.mark.parametrize("path", LOG_CASES)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_log_lines_escape_what_the_client_sent(store, adapter, path, caplog):
    if adapter in (wsgi_adapter, flask_adapter):
        path = path.encode("utf-8").decode("latin-1")  # PEP 3333
    with caplog.at_level(logging.INFO, logger="scout_auth"):
        answer = adapter(store)("GET", path, [])
    assert answer.status == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "scout_auth"]
    assert lines, "the denial was not logged"
    for line in lines:
        assert line.isprintable(), repr(line)
        assert line.isascii(), repr(line)
        assert len(line) < 600


def test_loggable_keeps_plain_text_and_caps_the_rest():
    from scout_auth._adapters.gate import LOG_LIMIT, loggable

    assert loggable("/files/q3") == "/files/q3"
    assert loggable("/a\r\nb") == "/a\\r\\nb"
    assert len(loggable("x" * 10_000)) == LOG_LIMIT + 3
    assert loggable("\u2028") == "\\u2028"


# -- expected_authorities: a signature made for another host is refused


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_expected_authorities_refuse_a_request_signed_for_another_host(store, key, adapter):
    verifier_options = {"expected_authorities": ["API.test"]}
    ok = signed_headers(key, "GET", "/whoami")
    other = signed_headers(key, "GET", "/whoami", host="evil.test")
    call = _with_verifier_options(adapter, store, verifier_options)
    assert call("GET", "/whoami", ok).status == 200
    assert_problem(call("GET", "/whoami", other), 401, "wrong_authority")


def _with_verifier_options(adapter: Any, store: InMemoryKeyStore, options: dict[str, Any]):
    # The apps of tests/apps.py build their verifier from the store: wrap it.
    if adapter in (starlette_adapter, buffered_adapter):
        app = starlette_app(
            AsyncVerifier(store, **options),
            **({"buffer_signed_body": True} if adapter is buffered_adapter else {}),
        )
        return lambda method, path, headers, body=b"": asgi(app, method, path, headers, body)
    build = wsgi_app if adapter is wsgi_adapter else flask_app
    return _wsgi_adapter(build(Verifier(store, **options)))


def test_expected_authorities_need_a_covered_authority(store, key):
    verifier = Verifier(store, expected_authorities=[HOST])
    headers = signed_headers(key, "GET", "/whoami", components=["@method", "@path", "@query"])
    request = HttpRequest("GET", "http", HOST, "/whoami", "", headers)
    from scout_auth import SignaturePolicy
    from scout_auth.exceptions import SignatureMissingComponent

    relaxed = Verifier(
        store,
        expected_authorities=[HOST],
        signature_policy=SignaturePolicy(required_components=("@method",)),
    )
    with pytest.raises(SignatureMissingComponent):
        relaxed.verify_signed(request)
    with pytest.raises(SignatureMissingComponent):
        verifier.verify_signed(request)


@pytest.mark.parametrize(
    "bad", [pytest.param("api.test", id="a-string"), pytest.param([], id="empty")]
)
def test_expected_authorities_are_validated(store, bad):
    with pytest.raises((TypeError, ValueError)):
        Verifier(store, expected_authorities=bad)
