"""Signed requests (RFC 9421 + RFC 9530) through every adapter, answered identically.

Each case builds a request signed for the host the adapter's test client
uses, sends it through the Starlette middleware, the Flask extension and the
bare WSGI middleware, and checks they answer with the same status, headers
and body.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.testclient import TestClient
from werkzeug.test import Client

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, NewKey, Verifier
from scout_auth._core.tokens import parse_token
from scout_auth._signing.components import HttpRequest
from scout_auth._signing.digest import content_digest
from scout_auth._signing.signature import sign_request
from tests.apps import flask_app, starlette_app, wsgi_app

MAX_BODY = 256
HOSTS = {"starlette": "testserver", "flask": "localhost", "wsgi": "localhost"}


@dataclass
class Req:
    method: str = "POST"
    path: str = "/echo"
    query: str = ""
    body: bytes = b'{"file": "q3.pdf"}'
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Keys:
    good: NewKey
    reader: NewKey
    disabled: NewKey
    deleted: NewKey
    store: InMemoryKeyStore


@pytest.fixture(scope="module")
def keys() -> Keys:
    store = InMemoryKeyStore()
    m = KeyManager(store)
    k = Keys(
        good=m.create_key("org_a", "billing-sync prod", scopes=["files:*"]),
        reader=m.create_key("org_a", "reporting", scopes=["files:read"]),
        disabled=m.create_key("org_a", "paused partner"),
        deleted=m.create_key("org_a", "retired partner"),
        store=store,
    )
    m.disable_key(k.disabled.key.key_id)
    m.delete_key(k.deleted.key.key_id)
    return k


def sign(
    key: NewKey,
    host: str,
    req: Req,
    *,
    sign_body: bytes | None = None,
    sign_host: str | None = None,
    sign_path: str | None = None,
    sign_query: str | None = None,
    sign_method: str | None = None,
    components: list[str] | None = None,
    **kwargs: Any,
) -> dict[str, str]:
    """Headers for ``req`` signed with ``key`` (optionally over something else)."""
    body = req.body if sign_body is None else sign_body
    headers = {"host": sign_host or host, "content-type": "application/json", **req.headers}
    if body:
        headers["content-digest"] = content_digest(body)
        headers["content-length"] = str(len(body))
    parsed = parse_token(key.token)
    assert parsed is not None
    request = HttpRequest(
        sign_method or req.method,
        "http",
        sign_host or host,
        sign_path or req.path,
        req.query if sign_query is None else sign_query,
        list(headers.items()),
    )
    if components is None:
        components = ["@method", "@authority", "@target-uri", "content-type"]
        if body:
            components.append("content-digest")
    sig = sign_request(
        request,
        key_id=parsed.key_id,
        private_seed=parsed.seed,
        now=kwargs.pop("now", time.time()),
        components=components,
        **kwargs,
    )
    headers.update({"signature-input": sig["Signature-Input"], "signature": sig["Signature"]})
    headers.pop("host")
    headers.pop("content-length", None)  # each client sets the real one
    return headers


Builder = Callable[[Keys, str], tuple[Req, dict[str, str]]]


def send_all(keys: Keys, build: Builder, *, repeat: int = 1, **options: Any) -> dict[str, Any]:
    """Send the built request ``repeat`` times to each adapter; the last answers."""
    options.setdefault("max_body_size", MAX_BODY)
    results: dict[str, Any] = {}
    with TestClient(starlette_app(AsyncVerifier(keys.store), **options)) as tc:
        req, headers = build(keys, HOSTS["starlette"])
        for _ in range(repeat):
            r = tc.request(
                req.method,
                req.path + (f"?{req.query}" if req.query else ""),
                headers=headers,
                content=req.body,
            )
        results["starlette"] = (r.status_code, r.headers, r.content)
    for name, app in (
        ("flask", flask_app(Verifier(keys.store), **options)),
        ("wsgi", wsgi_app(Verifier(keys.store), **options)),
    ):
        client = app.test_client() if name == "flask" else Client(app)  # type: ignore[union-attr]
        req, headers = build(keys, HOSTS[name])
        for _ in range(repeat):
            w = client.open(
                req.path, method=req.method, query_string=req.query, headers=headers, data=req.body
            )
        results[name] = (w.status_code, w.headers, w.data)
    return results


def normalised(status: int, headers: Any, body: bytes) -> tuple[int, dict[str, Any], Any]:
    kept = {h: headers.get(h) for h in ("content-type", "www-authenticate", "retry-after")}
    return status, kept, json.loads(body) if body.startswith(b"{") else body


def case(key: str = "good", req: Req | None = None, **sign_kwargs: Any) -> Builder:
    def build(keys: Keys, host: str) -> tuple[Req, dict[str, str]]:
        r = req or Req()
        return r, sign(getattr(keys, key), host, r, **sign_kwargs)

    return build


def with_bearer(keys: Keys, host: str) -> tuple[Req, dict[str, str]]:
    r = Req()
    headers = sign(keys.good, host, r)
    headers["authorization"] = f"Bearer {keys.good.token}"
    return r, headers


def two_signatures(keys: Keys, host: str) -> tuple[Req, dict[str, str]]:
    r = Req()
    a = sign(keys.good, host, r, label="a")
    b = sign(keys.reader, host, r, label="b")
    a["signature-input"] += ", " + b["signature-input"]
    a["signature"] += ", " + b["signature"]
    return r, a


def digest_header_swapped(keys: Keys, host: str) -> tuple[Req, dict[str, str]]:
    r = Req()
    headers = sign(keys.good, host, r)
    headers["content-digest"] = content_digest(b"something else")
    return r, headers


CASES = [
    pytest.param(case(), 200, None, id="signed-post"),
    pytest.param(case(req=Req("GET", "/whoami", body=b"")), 200, None, id="signed-get"),
    pytest.param(case(req=Req(query="a=1&b=%20x")), 200, None, id="signed-query"),
    pytest.param(case(sign_body=b'{"file": "q4.pdf"}'), 401, "digest_mismatch", id="body-tampered"),
    pytest.param(digest_header_swapped, 401, "signature_invalid", id="digest-header-tampered"),
    pytest.param(
        case(req=Req(body=b"x" * (MAX_BODY + 1))), 413, "body_too_large", id="body-too-large"
    ),
    pytest.param(
        case(components=["@method", "@authority", "@target-uri"]),
        401,
        "signature_missing_component",
        id="body-not-covered",
    ),
    pytest.param(
        case(components=["@method", "@target-uri", "content-digest"]),
        401,
        "signature_missing_component",
        id="authority-not-covered",
    ),
    pytest.param(with_bearer, 400, "invalid_request", id="bearer-and-signature"),
    pytest.param(two_signatures, 401, "signature_invalid", id="two-signatures"),
    pytest.param(case("disabled"), 401, "key_disabled", id="disabled-key"),
    pytest.param(case("deleted"), 401, "signature_invalid", id="deleted-key"),
    pytest.param(case(sign_host="api.example.com"), 401, "signature_invalid", id="other-authority"),
    pytest.param(case(sign_path="/write"), 401, "signature_invalid", id="other-path"),
    pytest.param(case(sign_query="a=2"), 401, "signature_invalid", id="other-query"),
    pytest.param(case(sign_method="PUT"), 401, "signature_invalid", id="other-method"),
    pytest.param(case(now=time.time() - 600), 401, "signature_expired", id="stale"),
    pytest.param(case(now=time.time() + 600), 401, "signature_not_yet_valid", id="from-the-future"),
    pytest.param(case(nonce=False), 200, None, id="no-nonce-accepted-once"),
    pytest.param(case(alg="hmac-sha256"), 401, "unsupported_algorithm", id="wrong-alg"),
]


@pytest.mark.parametrize(("build", "status", "code"), CASES)
def test_signed_requests_answer_the_same_everywhere(keys, build, status, code):
    results = {k: normalised(*v) for k, v in send_all(keys, build).items()}
    assert results["starlette"][0] == results["flask"][0] == results["wsgi"][0] == status, results
    if code is None:
        bodies = [r[2] for r in results.values()]
        assert bodies[0] == bodies[1] == bodies[2]
        return
    assert results["starlette"] == results["flask"] == results["wsgi"], results
    assert results["starlette"][2]["code"] == code


def test_the_app_gets_the_exact_body(keys):
    body = b'{"file": "q3.pdf"}'
    results = send_all(keys, case())
    for _status, _headers, raw in results.values():
        assert json.loads(raw)["sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    "build",
    [pytest.param(case(), id="with-nonce"), pytest.param(case(nonce=False), id="without-nonce")],
)
def test_a_replay_is_refused_everywhere(keys, build):
    # Without a nonce (RFC 9421 peers send none by default) the signature
    # value is what may be used once (issue 14).
    results = {k: normalised(*v) for k, v in send_all(keys, build, repeat=2).items()}
    assert results["starlette"] == results["flask"] == results["wsgi"]
    assert results["starlette"][2]["code"] == "replay_detected"


def test_missing_scope_is_403_after_the_signature(keys):
    results = send_all(keys, case("reader"), required_scopes=["files:write"])
    results = {k: normalised(*v) for k, v in results.items()}
    assert results["starlette"] == results["flask"] == results["wsgi"]
    assert results["starlette"][0] == 403


# -- streaming (ASGI): the final chunk is held back until the digest matched --


def signed_scope(
    keys: Keys, body: bytes, signed_body: bytes, *, chunked: bool = False
) -> dict[str, Any]:
    req = Req(body=body, headers={"transfer-encoding": "chunked"} if chunked else {})
    headers = sign(keys.good, "testserver", req, sign_body=signed_body)
    headers["host"] = "testserver"
    if not chunked:
        headers["content-length"] = str(len(body))
    return {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


async def run_streamed(keys: Keys, chunks: list[bytes], signed_body: bytes, app, chunked=False):
    from scout_auth.starlette import ScoutAuthMiddleware

    body = b"".join(chunks)
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    mw = ScoutAuthMiddleware(app, verifier=AsyncVerifier(keys.store), max_body_size=MAX_BODY)
    await mw(signed_scope(keys, body, signed_body, chunked=chunked), receive, send)
    return sent


def recording_app(seen: list[dict[str, Any]], *, answer_anyway: bool):
    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        if answer_anyway or seen[-1]["type"] != "http.disconnect":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"acted on it"})

    return app


@pytest.mark.anyio
@pytest.mark.parametrize("answer_anyway", [False, True], ids=["app-stops", "app-answers-anyway"])
async def test_a_streamed_body_failing_its_digest_never_completes(keys, answer_anyway):
    chunks = [b"a" * 40, b"b" * 40, b"c" * 40]
    seen: list[dict[str, Any]] = []
    sent = await run_streamed(
        keys, chunks, b"x" * 120, recording_app(seen, answer_anyway=answer_anyway)
    )
    # The app saw the early chunks, never the one completing the body.
    assert [m["type"] for m in seen] == ["http.request", "http.request", "http.disconnect"]
    assert all(m.get("more_body") for m in seen[:2])
    # The client got 401 digest_mismatch, not the app's answer.
    assert sent[0]["status"] == 401
    assert json.loads(sent[1]["body"])["code"] == "digest_mismatch"
    assert len(sent) == 2


@pytest.mark.anyio
async def test_a_streamed_body_matching_its_digest_arrives_whole(keys):
    chunks = [b"a" * 40, b"b" * 40, b"c" * 40]
    seen: list[dict[str, Any]] = []
    sent = await run_streamed(
        keys, chunks, b"".join(chunks), recording_app(seen, answer_anyway=False)
    )
    assert b"".join(m["body"] for m in seen) == b"".join(chunks)
    assert seen[-1]["more_body"] is False
    assert sent[0]["status"] == 200


@pytest.mark.anyio
async def test_a_chunked_body_growing_past_the_limit_is_413(keys):
    chunks = [b"a" * 200, b"b" * 200]  # no Content-Length: it only grows too big
    seen: list[dict[str, Any]] = []
    app = recording_app(seen, answer_anyway=True)
    sent = await run_streamed(keys, chunks, b"".join(chunks), app, chunked=True)
    assert [m["type"] for m in seen] == ["http.request", "http.disconnect"]
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["code"] == "body_too_large"
