"""Threat table: an outside review of the issue 9 request gate, attack by attack.

Each table is a list of attacks, by id: each case either held from the
start or failed until its fix (leading slashes in WSGI, ``strict_slashes``
spellings, ``expected_authorities`` entries with a default port, NUL in
audited paths, control characters in org ids).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response as WResponse

from scout_auth import AsyncVerifier, HttpRequest, InMemoryKeyStore, KeyManager, Verifier
from scout_auth._audit.events import denial_event
from scout_auth._core.credentials import parse_basic
from scout_auth._core.tokens import parse_token
from scout_auth._signing.signature import sign_request
from scout_auth.audit import AuditBuffer
from scout_auth.exceptions import InvalidKeyOperation, InvalidToken, WrongAuthority
from scout_auth.flask import ScoutAuth
from scout_auth.stores.sql import SQLKeyStore
from scout_auth.wsgi import ScoutAuthMiddleware as WSGIMiddleware
from tests.apps import starlette_app, wsgi_app
from tests.behaviour.drivers import Answer, Seen, asgi, wsgi
from tests.behaviour.test_gate_threats import werkzeug_app
from tests.stores.conftest import (  # noqa: F401 - the SQL fixtures, used by name
    PER_TEST_LOOP,
    _namespaces,
    mariadb_url,
    postgres_url,
    sql_url,
    sqlite_url,
)

RULES = [("GET", "/files", ["files:read"])]


@pytest.fixture(scope="module")
def store() -> InMemoryKeyStore:
    return InMemoryKeyStore()


@pytest.fixture(scope="module")
def no_scopes(store: InMemoryKeyStore) -> str:
    """A valid key that a ``files:read`` rule must stop."""
    return KeyManager(store).create_key("org_review", "no scopes", scopes=[]).token


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


# -- 1. WSGI: PATH_INFO with leading slashes dodges the rules -------------------
#
# werkzeug routes on ``"/" + PATH_INFO.lstrip("/")`` (sansio/request.py), so
# ``//files`` reaches the ``/files`` view; the gate matches the raw
# PATH_INFO, no rule matches and the key's scopes are never asked for.
# DispatcherMiddleware hands ``//files`` to the app for ``/api//files`` on
# any server (the stdlib servers collapse only a *leading* ``//``).


def flask_files(seen: Seen) -> Flask:
    app = Flask(__name__)

    @app.get("/files")
    def files() -> str:
        seen.calls += 1
        return "files"

    return app


def wsgi_around_flask(store: InMemoryKeyStore, seen: Seen) -> Callable[..., Answer]:
    # The documented set-up (scout_auth/wsgi.py): app.wsgi_app = ScoutAuthMiddleware(...).
    app = flask_files(seen)
    app.wsgi_app = WSGIMiddleware(app.wsgi_app, verifier=Verifier(store), rules=RULES)  # type: ignore[method-assign]
    return lambda path, headers: wsgi(app, "GET", path, headers)


def wsgi_around_werkzeug(store: InMemoryKeyStore, seen: Seen) -> Callable[..., Answer]:
    app = WSGIMiddleware(werkzeug_app(seen), verifier=Verifier(store), rules=RULES)
    return lambda path, headers: wsgi(app, "GET", path, headers)


def dispatcher_around_wsgi_flask(store: InMemoryKeyStore, seen: Seen) -> Callable[..., Answer]:
    app = flask_files(seen)
    app.wsgi_app = WSGIMiddleware(app.wsgi_app, verifier=Verifier(store), rules=RULES)  # type: ignore[method-assign]
    outer = DispatcherMiddleware(WResponse("not found", status=404), {"/api": app})
    return lambda path, headers: wsgi(outer, "GET", "/api" + path, headers)


SLASH_CASES = [
    pytest.param(wsgi_around_flask, "/files", id="wsgi-around-flask-plain-path-held"),
    pytest.param(
        wsgi_around_flask,
        "//files",
        id="wsgi-around-flask-double-slash",
    ),
    pytest.param(
        wsgi_around_flask,
        "///files",
        id="wsgi-around-flask-triple-slash",
    ),
    pytest.param(wsgi_around_werkzeug, "/files", id="wsgi-around-werkzeug-plain-path-held"),
    pytest.param(
        wsgi_around_werkzeug,
        "//files",
        id="wsgi-around-werkzeug-double-slash",
    ),
    pytest.param(
        dispatcher_around_wsgi_flask, "/files", id="dispatcher-/api/files-plain-path-held"
    ),
    pytest.param(
        dispatcher_around_wsgi_flask,
        "//files",
        id="dispatcher-/api//files-reaches-the-view",
    ),
]


@pytest.mark.parametrize(("mount", "path"), SLASH_CASES)
def test_leading_slashes_do_not_dodge_a_rule(store, no_scopes, mount, path):
    seen = Seen()
    answer = mount(store, seen)(path, bearer(no_scopes))
    assert answer.raised is None
    assert seen.calls == 0, "the view ran for a key the rule refuses"
    assert answer.status in (403, 404, 308), answer.status


# -- 2. Flask: strict_slashes=False serves both spellings; the rule knows one --


def flask_lenient(store: InMemoryKeyStore, seen: Seen, route: str, rule: str) -> Flask:
    app = Flask(__name__)

    @app.route(route, strict_slashes=False)
    def files() -> str:
        seen.calls += 1
        return "files"

    ScoutAuth(app, verifier=Verifier(store), rules=[("GET", rule, ["files:read"])])
    return app


LENIENT_CASES = [
    pytest.param("/files", "/files", "/files", id="route-and-rule-agree-held"),
    pytest.param(
        "/files",
        "/files",
        "/files/",
        id="trailing-slash-on-a-lenient-route",
    ),
    pytest.param(
        "/files/",
        "/files/",
        "/files",
        id="no-slash-on-a-lenient-slash-route",
    ),
]


@pytest.mark.parametrize(("route", "rule", "path"), LENIENT_CASES)
def test_a_lenient_flask_route_is_governed_by_its_rule(store, no_scopes, route, rule, path):
    seen = Seen()
    app = flask_lenient(store, seen, route, rule)
    answer = wsgi(app, "GET", path, bearer(no_scopes))
    assert answer.raised is None
    assert seen.calls == 0, "the view ran for a key the rule refuses"
    assert answer.status == 403, answer.status


# -- 3. Audit: one denied request must not stop the audit trail (fixed) --------
#
# The path of a denied request is the client's. PostgreSQL refuses NUL in
# text, so an event with ``/x%00`` in its path failed its batch, and the
# AuditBuffer retries a refused batch first, forever: from then on no event
# (denials, key changes) reached the sink. Text fields are now made storable.

UNSTORABLE = [
    pytest.param({"path": "/files\x00"}, "path", id="nul-in-path"),
    pytest.param({"path": "/files\udcff"}, "path", id="lone-surrogate-in-path"),
    pytest.param({"method": "GE\x00T"}, "method", id="nul-in-method"),
    pytest.param({"key_name": "billing\x00"}, "key_name", id="nul-in-key-name"),
    pytest.param({"client_ip": "203.0.113.9\x00"}, "client_ip", id="nul-in-client-ip"),
]


def _denial(**fields: Any):
    values: dict[str, Any] = {
        "error_code": "key_disabled",
        "org_id": f"org_{uuid.uuid4().hex[:10]}",
        "key_id": "k" * 20,
        "key_name": "billing",
        "method": "GET",
        "path": "/files",
        "client_ip": "203.0.113.9",
    }
    values.update(fields)
    return denial_event(**values)


@pytest.mark.parametrize(("fields", "name"), UNSTORABLE)
def test_audit_text_fields_hold_only_storable_characters(fields, name):
    value = getattr(_denial(**fields), name)
    assert "\x00" not in value
    value.encode("utf-8")  # no lone surrogate: every driver can send it
    assert "\ufffd" in value


@pytest.mark.parametrize(("fields", "name"), UNSTORABLE)
def test_every_sql_sink_stores_a_hostile_denial(sql_url, fields, name):  # noqa: F811
    sink = SQLKeyStore(sql_url, async_engine_options=PER_TEST_LOOP).audit_sink()
    event = _denial(**fields)
    sink.write([event])
    assert [e.id for e in sink.query(event.org_id)] == [event.id]


ADAPTERS = [
    pytest.param("starlette", id="starlette"),
    pytest.param("wsgi", id="wsgi"),
]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_nul_in_a_denied_path_does_not_stop_the_audit_trail(sql_url, adapter):  # noqa: F811
    keys = InMemoryKeyStore()
    manager = KeyManager(keys)
    org = f"org_{uuid.uuid4().hex[:10]}"
    paused = manager.create_key(org, "paused partner")
    manager.disable_key(paused.key.key_id)
    buffer = AuditBuffer(SQLKeyStore(sql_url, async_engine_options=PER_TEST_LOOP).audit_sink())
    try:
        verifier: Any = (
            AsyncVerifier(keys, audit=buffer)
            if adapter == "starlette"
            else Verifier(keys, audit=buffer)
        )
        app = starlette_app(verifier) if adapter == "starlette" else wsgi_app(verifier)
        drive = asgi if adapter == "starlette" else wsgi

        def send(path: str) -> Answer:
            return drive(app, "GET", path, bearer(paused.token))

        assert send("/whoami\x00").status == 401  # what uvicorn hands over for /whoami%00
        assert buffer.flush(timeout=30)
        assert send("/whoami").status == 401
        assert buffer.flush(timeout=30), "the audit trail stopped after one hostile path"
        sink = buffer.sink
        assert [e.path for e in sink.query(org)] == ["/whoami", "/whoami\ufffd"]
    finally:
        buffer.close(timeout=10)


# -- 4. Basic credentials: an org id the store cannot take is a 401 (fixed) ----
#
# The Basic org id went to the store as sent: on PostgreSQL a NUL raised,
# which the verifier answers 503 store_unavailable (and logs a store error)
# for any anonymous client. KeyManager now refuses control characters in org
# ids, and so does the Basic parser.

HOSTILE_ORG_IDS = [
    pytest.param("org\x00", id="nul"),
    pytest.param("org\r\nINFO forged", id="crlf"),
    pytest.param("org\x1b[2J", id="terminal-escape"),
    pytest.param("org\x7f", id="del"),
]


def basic(org_id: str) -> str:
    return "Basic " + base64.b64encode(f"{org_id}:s3cret-legacy".encode()).decode()


@pytest.mark.parametrize("org_id", HOSTILE_ORG_IDS)
def test_a_basic_org_id_with_control_characters_is_not_a_credential(org_id):
    with pytest.raises(InvalidToken):
        parse_basic(basic(org_id).removeprefix("Basic "))


@pytest.mark.parametrize("org_id", HOSTILE_ORG_IDS)
def test_every_sql_store_answers_a_hostile_basic_org_id_401(sql_url, org_id):  # noqa: F811
    verifier = Verifier(SQLKeyStore(sql_url, async_engine_options=PER_TEST_LOOP))
    with pytest.raises(InvalidToken):
        verifier.verify_authorization(basic(org_id))


def test_a_plain_basic_org_id_still_parses():
    assert parse_basic(basic("org_ünïcode").removeprefix("Basic ")).org_id == "org_ünïcode"


LIFECYCLE = [
    pytest.param(lambda m, org: m.create_key(org, "billing-sync prod"), id="create_key"),
    pytest.param(lambda m, org: m.import_legacy_key(org, "s3cret-legacy"), id="import_legacy_key"),
    pytest.param(lambda m, org: m.put_role(org, "reader", ["files:read"]), id="put_role"),
]


@pytest.mark.parametrize("org_id", HOSTILE_ORG_IDS)
@pytest.mark.parametrize("call", LIFECYCLE)
def test_org_ids_with_control_characters_are_refused_before_the_store(call, org_id):
    store = InMemoryKeyStore()
    with pytest.raises(InvalidKeyOperation, match="control characters"):
        call(KeyManager(store), org_id)
    assert store.list_keys(org_id) == []


# -- 5. expected_authorities: entries spelled with a port never match ----------
#
# A request's @authority drops the scheme's default port (RFC 9421 §2.2.3);
# the configured entries are only lower-cased, so "api.test:443" (what an
# operator copies from a URL) refuses every request to https://api.test:443.
# Fail closed, but silently misconfigured: normalise the entries (or refuse
# a default port) when the verifier is built.


AUTHORITY_CASES = [
    pytest.param("api.test", "https", "api.test", id="bare-host-held"),
    pytest.param("API.Test", "https", "api.test:443", id="upper-case-entry-held"),
    pytest.param(
        "api.test:443",
        "https",
        "api.test:443",
        id="entry-with-https-default-port",
    ),
    pytest.param("api.test:80", "http", "api.test", id="entry-with-http-default-port"),
]


@pytest.mark.parametrize(("entry", "scheme", "host"), AUTHORITY_CASES)
def test_expected_authorities_match_however_the_entry_is_spelled(store, entry, scheme, host):
    key = KeyManager(store).create_key("org_review", "signer")
    parsed = parse_token(key.token)
    assert parsed is not None
    unsigned = HttpRequest("GET", scheme, host, "/whoami", "", [("host", host)])
    sig = sign_request(
        unsigned,
        key_id=parsed.key_id,
        private_seed=parsed.seed,
        now=time.time(),
        components=["@method", "@authority", "@target-uri"],
    )
    headers = [("host", host), ("signature-input", sig["Signature-Input"])]
    request = HttpRequest(
        "GET", scheme, host, "/whoami", "", [*headers, ("signature", sig["Signature"])]
    )
    verifier = Verifier(store, expected_authorities=[entry])
    try:
        verifier.verify_signed(request)
    except WrongAuthority:
        pytest.fail(f"{entry!r} refused a request to {scheme}://{host}")
