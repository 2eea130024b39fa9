"""Rebuilding the signed request from an ASGI scope or a WSGI environ."""

from __future__ import annotations

from typing import Any

import pytest

from scout_auth._adapters.options import AdapterOptions
from scout_auth._adapters.requests import (
    TrustedProxies,
    asgi_client_ip,
    asgi_request,
    wsgi_client_ip,
    wsgi_request,
)
from scout_auth._signing.components import component_from_parts, component_value
from scout_auth.exceptions import SignatureInvalid

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
    proxies = TrustedProxies.parse(["10.0.0.0/8"], header="forwarded")
    a = asgi_request(
        scope("10.0.0.1", forwarded='for=1.2.3.4;proto=https;host="api.example.com"'), proxies
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


# -- trusting proxies: which header, how many hops (werkzeug ProxyFix style) --

PROXY = "10.0.0.1"
XF, FWD = "x-forwarded", "forwarded"
HUGE = 1_000_000


def proxies(header: str = XF, hops: int = 1) -> TrustedProxies:
    return TrustedProxies.parse(["10.0.0.0/8", "::1"], header=header, hops=hops)


# (header family, hops, peer, forwarding headers, client address)
CLIENT_IP_CASES = [
    # -- X-Forwarded-For ------------------------------------------------------
    pytest.param(XF, 1, PROXY, {"x-forwarded-for": "192.0.2.7"}, "192.0.2.7", id="xff-one-hop"),
    pytest.param(
        XF, 1, PROXY, {"x-forwarded-for": "203.0.113.5, 192.0.2.7"}, "192.0.2.7", id="xff-last"
    ),
    pytest.param(
        XF,
        2,
        PROXY,
        {"x-forwarded-for": "203.0.113.5, 192.0.2.7, 10.0.0.2"},
        "192.0.2.7",
        id="xff-two-hops",
    ),
    pytest.param(
        XF, 2, PROXY, {"x-forwarded-for": "192.0.2.7"}, None, id="xff-short-chain-fails-closed"
    ),
    pytest.param(XF, 1, PROXY, {}, None, id="xff-trusted-peer-without-header-fails-closed"),
    pytest.param(XF, 1, PROXY, {"x-forwarded-for": ""}, None, id="xff-empty"),
    pytest.param(XF, 1, PROXY, {"x-forwarded-for": "192.0.2.7, "}, None, id="xff-empty-last"),
    pytest.param(
        XF,
        1,
        "203.0.113.9",
        {"x-forwarded-for": "192.0.2.7"},
        "203.0.113.9",
        id="xff-spoof-from-untrusted-peer",
    ),
    pytest.param(
        XF, 1, "testclient", {"x-forwarded-for": "192.0.2.7"}, "testclient", id="unparsable-peer"
    ),
    pytest.param(XF, 1, None, {"x-forwarded-for": "192.0.2.7"}, None, id="no-peer"),
    pytest.param(
        FWD,
        1,
        PROXY,
        {"x-forwarded-for": "192.0.2.7", "forwarded": "for=203.0.113.5"},
        "203.0.113.5",
        id="xff-spoof-behind-forwarded-proxy",
    ),
    pytest.param(
        FWD,
        1,
        PROXY,
        {"x-forwarded-for": "192.0.2.7"},
        None,
        id="xff-never-a-fallback-for-forwarded",
    ),
    pytest.param(
        XF,
        1,
        PROXY,
        {"forwarded": "for=192.0.2.7"},
        None,
        id="forwarded-never-a-fallback-for-xff",
    ),
    pytest.param(XF, 1, PROXY, {"x-forwarded-for": "192.0.2.7:4711"}, "192.0.2.7", id="xff-port"),
    pytest.param(XF, 1, PROXY, {"x-forwarded-for": "2001:db8::7"}, "2001:db8::7", id="xff-v6"),
    pytest.param(
        XF, 1, PROXY, {"x-forwarded-for": "[2001:db8::7]:443"}, "2001:db8::7", id="xff-v6-port"
    ),
    pytest.param(XF, 1, PROXY, {"x-forwarded-for": "[2001:db8::7"}, None, id="xff-v6-unclosed"),
    pytest.param(XF, 1, PROXY, {"x-forwarded-for": "[2001:db8::7]x"}, None, id="xff-v6-junk"),
    pytest.param(XF, 1, PROXY, {"x-forwarded-for": "192.0.2.7:http"}, None, id="xff-bad-port"),
    pytest.param(XF, 1, PROXY, {"x-forwarded-for": "unknown"}, None, id="xff-unknown"),
    pytest.param(
        XF, 1, PROXY, {"x-forwarded-for": "\uff11\uff19\uff12.0.2.7"}, None, id="xff-non-ascii"
    ),
    pytest.param(XF, 1, PROXY, {"x-forwarded-for": "fe80::1%eth0"}, None, id="xff-zone-id"),
    pytest.param(
        XF,
        1,
        PROXY,
        {"x-forwarded-for": "203.0.113.5, " * (HUGE // 13) + "192.0.2.7"},
        "192.0.2.7",
        id="xff-huge-chain-last-hop",
    ),
    pytest.param(
        XF, 2, PROXY, {"x-forwarded-for": "x" * HUGE}, None, id="xff-huge-value-short-chain"
    ),
    pytest.param(
        XF,
        1,
        PROXY,
        {"x-forwarded-for": " " * 5000 + "192.0.2.7"},
        None,
        id="xff-hop-longer-than-a-hop-may-be",
    ),
    # -- RFC 7239 Forwarded ---------------------------------------------------
    pytest.param(FWD, 1, PROXY, {"forwarded": "for=192.0.2.7"}, "192.0.2.7", id="fwd-one-hop"),
    pytest.param(
        FWD,
        1,
        PROXY,
        {"forwarded": "for=203.0.113.5, for=192.0.2.7"},
        "192.0.2.7",
        id="fwd-last-element",
    ),
    pytest.param(
        FWD,
        2,
        PROXY,
        {"forwarded": "for=203.0.113.5, for=192.0.2.7;proto=https, for=10.0.0.2"},
        "192.0.2.7",
        id="fwd-two-hops",
    ),
    pytest.param(
        FWD, 2, PROXY, {"forwarded": "for=192.0.2.7"}, None, id="fwd-short-chain-fails-closed"
    ),
    pytest.param(
        FWD,
        1,
        "203.0.113.9",
        {"forwarded": "for=192.0.2.7"},
        "203.0.113.9",
        id="fwd-spoof-from-untrusted-peer",
    ),
    pytest.param(FWD, 1, PROXY, {"forwarded": "For=192.0.2.7"}, "192.0.2.7", id="fwd-name-case"),
    pytest.param(
        FWD, 1, PROXY, {"forwarded": "for=192.0.2.7 ; proto=https"}, "192.0.2.7", id="fwd-ows"
    ),
    pytest.param(
        FWD,
        1,
        PROXY,
        {"forwarded": 'for="[2001:db8::1]:443"'},
        "2001:db8::1",
        id="fwd-quoted-v6-port",
    ),
    pytest.param(
        FWD, 1, PROXY, {"forwarded": 'for="[2001:db8::1]"'}, "2001:db8::1", id="fwd-v6-no-port"
    ),
    pytest.param(
        FWD, 1, PROXY, {"forwarded": 'for="192.0.2.7:8080"'}, "192.0.2.7", id="fwd-v4-port"
    ),
    pytest.param(
        FWD, 1, PROXY, {"forwarded": 'for="192.0.2.7:_p1"'}, "192.0.2.7", id="fwd-obfuscated-port"
    ),
    pytest.param(
        FWD, 1, PROXY, {"forwarded": "for=192.0.2.7:8080"}, "192.0.2.7", id="fwd-unquoted-port"
    ),
    pytest.param(FWD, 1, PROXY, {"forwarded": "for=192.0.2.7:"}, None, id="fwd-empty-port"),
    pytest.param(FWD, 1, PROXY, {"forwarded": "for=unknown"}, None, id="fwd-unknown"),
    pytest.param(FWD, 1, PROXY, {"forwarded": "for=_hidden"}, None, id="fwd-obfuscated-node"),
    pytest.param(FWD, 1, PROXY, {"forwarded": 'for="[2001:db8::1"'}, None, id="fwd-v6-unclosed"),
    pytest.param(FWD, 1, PROXY, {"forwarded": "proto=https"}, None, id="fwd-no-for"),
    pytest.param(FWD, 1, PROXY, {"forwarded": "for=192.0.2.7, "}, None, id="fwd-empty-last"),
    pytest.param(
        FWD,
        1,
        PROXY,
        {"forwarded": "for=192.0.2.7;for=203.0.113.5"},
        None,
        id="fwd-duplicate-parameter",
    ),
    pytest.param(
        FWD,
        1,
        PROXY,
        {"forwarded": 'for=192.0.2.7;host="a,for=203.0.113.5"'},
        "192.0.2.7",
        id="fwd-comma-inside-quoted-host",
    ),
    pytest.param(
        FWD,
        1,
        PROXY,
        {"forwarded": r'for=192.0.2.7;host="a\",for=203.0.113.5"'},
        "192.0.2.7",
        id="fwd-escaped-quote-inside-quoted-host",
    ),
    pytest.param(
        FWD,
        1,
        PROXY,
        # The client opened a quote; the proxy appended its element, whose host
        # (the client's Host header) is quoted. Read left to right the client's
        # quote would pair with the proxy's and "for=192.0.2.10" come out last.
        {"forwarded": 'a=", for=198.51.100.1;host=",b=x,for=192.0.2.10;c="'},
        "198.51.100.1",
        id="fwd-client-quote-cannot-shift-the-proxy-element",
    ),
    pytest.param(FWD, 1, PROXY, {"forwarded": 'for="192.0.2.7'}, None, id="fwd-unclosed-quote"),
    pytest.param(
        FWD,
        1,
        PROXY,
        # A proxy copying Host: x";for=192.0.2.10;a=" into host="…" unescaped.
        {"forwarded": 'for=198.51.100.1;host="x";for=192.0.2.10;a=""'},
        None,
        id="fwd-unescaped-host-injecting-a-second-for",
    ),
    pytest.param(
        FWD,
        1,
        PROXY,
        {"forwarded": r'for=192.0.2.7;host="a\\"'},
        "192.0.2.7",
        id="fwd-escaped-backslash-before-closing-quote",
    ),
    pytest.param(
        FWD,
        1,
        PROXY,
        {"forwarded": "for=192.0.2.7" + ';x=""' * 9},
        None,
        id="fwd-more-quoted-strings-than-a-hop-writes",
    ),
    pytest.param(FWD, 1, PROXY, {"forwarded": "for"}, None, id="fwd-garbage-no-equals"),
    pytest.param(FWD, 1, PROXY, {"forwarded": "for=a b"}, None, id="fwd-garbage-space"),
    pytest.param(FWD, 1, PROXY, {"forwarded": "=,="}, None, id="fwd-garbage-no-name"),
    pytest.param(FWD, 1, PROXY, {"forwarded": "for=\u00e9"}, None, id="fwd-non-ascii"),
    pytest.param(
        FWD,
        1,
        PROXY,
        {"forwarded": "for=203.0.113.5, " * (HUGE // 17) + "for=192.0.2.7"},
        "192.0.2.7",
        id="fwd-huge-chain-last-hop",
    ),
    pytest.param(FWD, 1, PROXY, {"forwarded": '"' * HUGE}, None, id="fwd-huge-quotes"),
    pytest.param(FWD, 3, PROXY, {"forwarded": '", ' * HUGE}, None, id="fwd-huge-quoted-commas"),
    pytest.param(
        FWD,
        1,
        PROXY,
        {"forwarded": 'for=192.0.2.7;host="' + "a" * 5000 + '"'},
        None,
        id="fwd-hop-longer-than-a-hop-may-be",
    ),
]


@pytest.mark.parametrize(("header", "hops", "peer", "headers", "expected"), CLIENT_IP_CASES)
def test_client_ip_believes_one_header_and_n_hops(header, hops, peer, headers, expected):
    assert proxies(header, hops).client_ip(peer, headers) == expected


@pytest.mark.parametrize(("header", "hops", "peer", "headers", "expected"), CLIENT_IP_CASES)
def test_asgi_and_wsgi_client_ip_agree_with_the_table(header, hops, peer, headers, expected):
    fwd = {k.replace("-", "_"): v for k, v in headers.items()}
    trusted = proxies(header, hops)
    assert asgi_client_ip(scope(peer, **fwd), trusted) == expected
    if peer is not None:
        assert wsgi_client_ip(environ(peer, **fwd), trusted) == expected


# (header family, hops, peer, forwarding headers, (scheme, authority))
OWN = ("http", "internal:8080")
ORIGIN_CASES = [
    pytest.param(
        XF,
        1,
        PROXY,
        {"x-forwarded-proto": "https", "x-forwarded-host": "api.example.com"},
        ("https", "api.example.com"),
        id="xf-one-hop",
    ),
    pytest.param(
        XF,
        2,
        PROXY,
        {"x-forwarded-proto": "HTTPS, http", "x-forwarded-host": "api.example.com, inner"},
        ("https", "api.example.com"),
        id="xf-two-hops-same-position",
    ),
    pytest.param(
        XF,
        2,
        PROXY,
        {"x-forwarded-proto": "https", "x-forwarded-host": "api.example.com"},
        OWN,
        id="xf-short-chain-is-the-connections-own",
    ),
    pytest.param(
        XF, 1, PROXY, {"x-forwarded-proto": "https"}, ("https", "internal:8080"), id="xf-proto-only"
    ),
    pytest.param(
        XF,
        1,
        "203.0.113.9",
        {"x-forwarded-proto": "https", "x-forwarded-host": "evil.example"},
        OWN,
        id="xf-untrusted-peer",
    ),
    pytest.param(
        XF,
        1,
        PROXY,
        {"forwarded": "proto=https;host=evil.example"},
        OWN,
        id="xf-proxy-ignores-forwarded",
    ),
    pytest.param(
        FWD,
        1,
        PROXY,
        {"x-forwarded-proto": "https", "x-forwarded-host": "evil.example"},
        OWN,
        id="forwarded-proxy-ignores-x-forwarded",
    ),
    pytest.param(
        FWD,
        2,
        PROXY,
        {
            "forwarded": 'for=a;proto=https;host="api.example.com", for=b;proto=http;host=inner',
            "x-forwarded-host": "evil.example",
        },
        ("https", "api.example.com"),
        id="fwd-two-hops-same-element",
    ),
    pytest.param(
        FWD,
        1,
        PROXY,
        {"forwarded": "for=192.0.2.7;proto=https"},
        ("https", "internal:8080"),
        id="fwd-no-host",
    ),
    pytest.param(FWD, 1, PROXY, {"forwarded": 'proto="https'}, OWN, id="fwd-malformed"),
]


@pytest.mark.parametrize(("header", "hops", "peer", "headers", "expected"), ORIGIN_CASES)
def test_scheme_and_authority_from_the_same_header_and_hop(header, hops, peer, headers, expected):
    fwd = {k.replace("-", "_"): v for k, v in headers.items()}
    trusted = proxies(header, hops)
    assert trusted.origin(peer, headers, "http", "internal:8080") == expected
    a = asgi_request(scope(peer, **fwd), trusted)
    w = wsgi_request(environ(peer, **fwd), trusted)
    assert (a.scheme, a.authority) == (w.scheme, w.authority) == expected


def test_a_non_ascii_forwarded_host_is_refused_by_the_signature_check():
    # Passed on as found, not replaced: the signature base refuses it (401),
    # so a malformed forwarded host can never make a signature verify.
    trusted = proxies(FWD)
    request = wsgi_request(environ(PROXY, forwarded='host="h\u00e9.example"'), trusted)
    assert request.authority == "h\u00e9.example"
    with pytest.raises(SignatureInvalid):
        component_value(request, component_from_parts("@authority", None))


def test_repeated_header_lines_are_joined_before_counting():
    # RFC 9110 §5.3: a proxy may add its own line rather than append to the
    # client's; either way the proxy's value is on the right.
    s = scope(PROXY)
    s["headers"] += [
        (b"forwarded", b"for=192.0.2.7"),
        (b"x-forwarded-for", b"192.0.2.8"),
        (b"forwarded", b"for=203.0.113.5;proto=https"),
        (b"x-forwarded-for", b"203.0.113.6"),
    ]
    assert asgi_client_ip(s, proxies(FWD)) == "203.0.113.5"
    assert asgi_client_ip(s, proxies(FWD, 2)) == "192.0.2.7"
    assert asgi_client_ip(s, proxies(XF)) == "203.0.113.6"
    assert asgi_client_ip(s, proxies(XF, 2)) == "192.0.2.8"
    assert asgi_request(s, proxies(FWD)).scheme == "https"


@pytest.mark.parametrize(
    ("header", "hops"),
    [
        pytest.param("X-Forwarded-For", 1, id="a-header-name-not-a-family"),
        pytest.param("X-Forwarded", 1, id="family-names-are-lower-case"),
        pytest.param("", 1, id="empty-header"),
        pytest.param(None, 1, id="no-header"),
        pytest.param(XF, 0, id="zero-hops"),
        pytest.param(XF, -1, id="negative-hops"),
        pytest.param(XF, True, id="bool-is-not-a-hop-count"),
        pytest.param(XF, 1.0, id="float-hops"),
        pytest.param(XF, "1", id="string-hops"),
    ],
)
def test_bad_proxy_header_or_hops_fail_at_construction(header, hops):
    with pytest.raises(ValueError, match="proxy"):
        TrustedProxies.parse(["10.0.0.0/8"], header=header, hops=hops)
    with pytest.raises(ValueError, match="proxy"):
        AdapterOptions.build(trusted_proxies=["10.0.0.0/8"], proxy_header=header, proxy_hops=hops)


def test_adapter_options_carry_header_and_hops():
    options = AdapterOptions.build(trusted_proxies=["10.0.0.0/8"], proxy_header=FWD, proxy_hops=2)
    assert (options.proxies.header, options.proxies.hops) == (FWD, 2)
    assert AdapterOptions.build().proxies == TrustedProxies()


def _reference_wsgi_headers(env: dict[str, Any]) -> list[tuple[str, str]]:
    # What wsgi_request read before its names were remembered (issue 15).
    headers = []
    for key, value in env.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].lower().replace("_", "-"), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers.append((key.lower().replace("_", "-"), value))
    return headers


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({}, id="plain"),
        pytest.param(
            {"CONTENT_TYPE": "", "HTTP_X_EMPTY": ""}, id="empty-content-skipped-empty-http-kept"
        ),
        pytest.param({"CONTENT_TYPE": "a/b", "HTTP_CONTENT_TYPE": "c/d"}, id="both-spellings"),
        pytest.param({"CONTENT_LENGTH": "5", "SERVER_NAME": "h", "wsgi.x": "y"}, id="non-headers"),
        pytest.param({"HTTP_": "nameless", "HTTP_X__Y": "v"}, id="odd-names"),
    ],
)
def test_wsgi_headers_are_read_as_before(extra):
    env = {**environ(), **extra}
    for _ in range(2):  # cold, then from the remembered names
        assert list(wsgi_request(env, TrustedProxies()).headers) == _reference_wsgi_headers(env)


def test_remembered_wsgi_names_stay_bounded_and_right():
    from scout_auth._adapters import requests as module

    for i in range(module._MAX_WSGI_NAMES * 2 + 7):
        env = {**environ(), f"HTTP_X_FLOOD_{i}": str(i)}
        request = wsgi_request(env, TrustedProxies())
        assert request.field(f"x-flood-{i}") == str(i)
        assert len(module._WSGI_NAMES) <= module._MAX_WSGI_NAMES
