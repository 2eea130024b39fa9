"""Rebuilding the signed request from an ASGI scope or a WSGI environ."""

from __future__ import annotations

from typing import Any

import pytest

from scout_auth._requests import TrustedProxies, asgi_request, wsgi_request

TRUSTED = TrustedProxies.parse(["10.0.0.0/8", "::1"])


def scope(client: str | None = "203.0.113.9", **headers: str) -> dict[str, Any]:
    hs = [(b"host", b"internal:8080")] + [
        (k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()
    ]
    return {
        "type": "http",
        "method": "PATCH",
        "scheme": "http",
        "path": "/a b",
        "raw_path": b"/a%20b",
        "query_string": b"x=%2F&y",
        "headers": hs,
        "client": (client, 1234) if client else None,
    }


def environ(remote: str = "203.0.113.9", **headers: str) -> dict[str, Any]:
    env = {
        "REQUEST_METHOD": "PATCH",
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "internal:8080",
        "PATH_INFO": "/a b",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "x=%2F&y",
        "REMOTE_ADDR": remote,
        "CONTENT_LENGTH": "",
    }
    env.update({"HTTP_" + k.upper(): v for k, v in headers.items()})
    return env


FORWARDED = {"x_forwarded_proto": "https", "x_forwarded_host": "evil.example, api.example.com"}


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        pytest.param("10.1.2.3", ("https", "api.example.com"), id="trusted-proxy-last-hop"),
        pytest.param("::1", ("https", "api.example.com"), id="trusted-ipv6"),
        pytest.param("203.0.113.9", ("http", "internal:8080"), id="untrusted-peer-ignored"),
        pytest.param("not-an-ip", ("http", "internal:8080"), id="unparsable-peer-fails-closed"),
    ],
)
def test_forwarded_headers_only_from_trusted_proxies(peer, expected):
    a = asgi_request(scope(peer, **FORWARDED), TRUSTED)
    w = wsgi_request(environ(peer, **FORWARDED), TRUSTED)
    assert (a.scheme, a.authority) == (w.scheme, w.authority) == expected


def test_rfc7239_forwarded_is_understood():
    a = asgi_request(
        scope("10.0.0.1", forwarded='for=1.2.3.4;proto=https;host="api.example.com"'), TRUSTED
    )
    assert (a.scheme, a.authority) == ("https", "api.example.com")


def test_no_proxies_configured_trusts_nobody():
    a = asgi_request(scope("10.0.0.1", **FORWARDED), TrustedProxies())
    assert (a.scheme, a.authority) == ("http", "internal:8080")


def test_path_stays_percent_encoded_and_query_raw():
    a = asgi_request(scope(), TRUSTED)
    w = wsgi_request(environ(), TRUSTED)
    assert (
        (a.method, a.path, a.query) == (w.method, w.path, w.query) == ("PATCH", "/a%20b", "x=%2F&y")
    )


def test_wsgi_raw_uri_wins_over_path_info():
    env = environ()
    env["RAW_URI"] = "/a%2Fb?ignored"
    assert wsgi_request(env, TRUSTED).path == "/a%2Fb"
    assert wsgi_request(env, TRUSTED).query == "x=%2F&y"


def test_websocket_schemes_map_to_http():
    s = scope()
    s["type"], s["scheme"] = "websocket", "wss"
    del s["method"]
    r = asgi_request(s, TRUSTED)
    assert (r.method, r.scheme) == ("GET", "https")


@pytest.mark.parametrize("bad", [["nonsense"], ["10.0.0.0/33"]], ids=["word", "bad-prefix"])
def test_bad_proxy_entries_fail_at_construction(bad):
    with pytest.raises(ValueError):  # noqa: PT011
        TrustedProxies.parse(bad)


def test_a_string_is_not_a_list_of_proxies():
    with pytest.raises(TypeError):
        TrustedProxies.parse("10.0.0.0/8")
