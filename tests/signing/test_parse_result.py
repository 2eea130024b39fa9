"""What the signed path builds per request is frozen and behaves as a dataclass should."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from scout_auth._signing.signature import RequestSignature, parse_request_signature
from tests.signing.signatures import NOW, signed


def test_the_result_is_a_frozen_request_signature_like_any_other():
    sig = parse_request_signature(signed(), now=NOW)
    assert type(sig) is RequestSignature
    built = RequestSignature(*(getattr(sig, f.name) for f in dataclasses.fields(sig)))
    assert sig == built
    assert hash(sig) == hash(built)
    assert repr(sig) == repr(built)
    assert "base" not in repr(sig)
    assert "signature=" not in repr(sig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sig.key_id = "another"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del sig.nonce
    assert pickle.loads(pickle.dumps(sig)) == sig  # noqa: S301 - our own bytes
    assert copy.copy(sig) == sig
    assert dataclasses.replace(sig, nonce="n2").nonce == "n2"
    assert not hasattr(sig, "__dict__")


def test_an_adapter_request_is_a_frozen_http_request_like_any_other():
    from scout_auth._adapters.requests import TrustedProxies, asgi_request
    from scout_auth._signing.components import HttpRequest

    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "https",
        "path": "/v1/items",
        "raw_path": b"/v1/items",
        "query_string": b"a=1",
        "headers": [(b"host", b"api.example.com"), (b"content-type", b"text/plain")],
        "client": ("203.0.113.9", 1),
    }
    request = asgi_request(scope, TrustedProxies())
    assert type(request) is HttpRequest
    plain = HttpRequest(
        "POST",
        "https",
        "api.example.com",
        "/v1/items",
        "a=1",
        [("host", "api.example.com"), ("content-type", "text/plain")],
    )
    assert request == plain
    assert hash(request) == hash(plain)
    assert repr(request) == repr(plain)
    assert request.field("Content-Type") == "text/plain"
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.path = "/elsewhere"  # type: ignore[misc]
    assert not hasattr(request, "__dict__")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param([], False, id="none"),
        pytest.param([("Content-Length", "0")], False, id="zero"),
        pytest.param([("Content-Length", " 0 ")], False, id="zero-spaced"),
        pytest.param([("Content-Length", "")], False, id="empty"),
        pytest.param([("Content-Length", "5")], True, id="five"),
        pytest.param([("Content-Length", "0"), ("content-length", "0")], False, id="two-zeros"),
        pytest.param([("Content-Length", "0"), ("content-length", "3")], True, id="zero-three"),
        pytest.param([("Transfer-Encoding", "chunked")], True, id="chunked"),
        pytest.param([("Content-Length", "0"), ("Transfer-Encoding", "x")], True, id="te-wins"),
    ],
)
def test_has_body_reads_every_length_line(headers, expected):
    from scout_auth._signing.components import HttpRequest

    assert HttpRequest("POST", "https", "a.example", "/", "", headers).has_body() is expected
