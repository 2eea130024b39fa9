"""A covered field on several lines: why SigningAuth refuses it, shown on real servers.

RFC 9421 §2.1 joins a field's lines with ", ". A WSGI server has one environ
value per name (PEP 3333) and joins the lines itself, with "," (werkzeug,
gunicorn), so a WSGI verifier rebuilds another base and the signature fails;
an ASGI server keeps the lines apart and the signature verifies. The same
values on one line verify everywhere. So SigningAuth refuses, before
anything is sent, unless told ``allow_multiline_fields=True``.
"""

from __future__ import annotations

import httpx
import pytest
import requests

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth.client import SigningAuth
from tests.apps import starlette_app, wsgi_app
from tests.live_servers import uvicorn_server, werkzeug_server

TWO_LINES = [("x-tags", "a"), ("x-tags", "b")]
ONE_LINE = [("x-tags", "a, b")]


@pytest.fixture
def store_and_token():
    store = InMemoryKeyStore()
    return store, KeyManager(store).create_key("org_lines", "tags client").token


def test_signing_auth_refuses_a_covered_field_on_two_lines_before_sending(store_and_token):
    _, token = store_and_token
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    transport = httpx.MockTransport(handler)
    auth = SigningAuth(token, components=["x-tags"])
    with (
        httpx.Client(transport=transport, auth=auth) as client,
        pytest.raises(ValueError, match=r"'x-tags' on 2 lines.*allow_multiline_fields"),
    ):
        client.post("https://api.example.com/echo", content=b"{}", headers=TWO_LINES)
    assert sent == []


@pytest.mark.anyio
async def test_the_async_client_refuses_too(store_and_token):
    _, token = store_and_token
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    auth = SigningAuth(token, components=['"x-tags"'])  # the Structured Fields spelling
    async with httpx.AsyncClient(transport=transport, auth=auth) as client:
        with pytest.raises(ValueError, match="'x-tags' on 2 lines"):
            await client.get("https://api.example.com/echo", headers=TWO_LINES)


def test_uncovered_repeated_fields_and_one_line_values_are_fine(store_and_token):
    _, token = store_and_token
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with httpx.Client(transport=transport, auth=SigningAuth(token)) as client:
        assert client.get("https://api.example.com/", headers=TWO_LINES).status_code == 200
    auth = SigningAuth(token, components=["x-tags"])
    with httpx.Client(transport=transport, auth=auth) as client:
        assert client.get("https://api.example.com/", headers=ONE_LINE).status_code == 200


def test_signature_headers_refuses_too(store_and_token):
    _, token = store_and_token
    auth = SigningAuth(token, components=["X-Tags"])
    with pytest.raises(ValueError, match="'x-tags' on 2 lines"):
        auth.signature_headers(
            "GET", "https://api.example.com/", [("X-Tags", "a"), *TWO_LINES[1:]], b""
        )
    allowed = SigningAuth(token, components=["x-tags"], allow_multiline_fields=True)
    assert "Signature" in allowed.signature_headers(
        "GET", "https://api.example.com/", TWO_LINES, b""
    )


def test_requests_sends_one_line_per_name_and_signs(store_and_token):
    _, token = store_and_token
    prepared = requests.Request(
        "POST", "https://api.example.com/echo", data=b"{}", headers=dict(ONE_LINE)
    ).prepare()
    signed = SigningAuth(token, components=["x-tags"])(prepared)
    assert '"x-tags"' in signed.headers["Signature-Input"]


def asgi(store: InMemoryKeyStore):
    return uvicorn_server(starlette_app(AsyncVerifier(store)))


def wsgi(store: InMemoryKeyStore):
    return werkzeug_server(wsgi_app(Verifier(store)))


@pytest.mark.parametrize(
    ("serve", "headers", "status"),
    [
        pytest.param(asgi, TWO_LINES, 200, id="asgi-two-lines-verifies"),
        pytest.param(wsgi, TWO_LINES, 401, id="wsgi-two-lines-merged-with-comma-fails"),
        pytest.param(asgi, ONE_LINE, 200, id="asgi-one-line"),
        pytest.param(wsgi, ONE_LINE, 200, id="wsgi-one-line"),
    ],
)
def test_what_real_servers_make_of_two_lines(store_and_token, serve, headers, status):
    store, token = store_and_token
    auth = SigningAuth(token, components=["x-tags"], allow_multiline_fields=True)
    with serve(store) as base, httpx.Client(auth=auth) as client:
        response = client.post(f"{base}/echo", content=b"{}", headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert "signature_invalid" in response.text
