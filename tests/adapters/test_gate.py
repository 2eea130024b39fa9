"""The framework-free gate and the core hardening of issue 9, without any adapter."""

from __future__ import annotations

import time

import pytest

from scout_auth import AsyncVerifier, HttpRequest, InMemoryKeyStore, KeyManager, Verifier
from scout_auth._adapters.gate import Gate, content_length, wsgi_route_path
from scout_auth._adapters.options import AdapterOptions
from scout_auth._core import flow as _flow
from scout_auth._core.cache import VerifiedCache
from scout_auth._core.tokens import format_token, parse_token, public_key_from_seed
from scout_auth._signing.digest import content_digest
from scout_auth._signing.signature import sign_request
from scout_auth.exceptions import (
    BodyTooLarge,
    DigestMismatch,
    InvalidRequest,
    InvalidToken,
    SignatureMissingComponent,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("0", 0, id="zero"),
        pytest.param(" 42 ", 42, id="ows-around"),
        pytest.param("007", 7, id="leading-zeros"),
    ],
)
def test_content_length_reads_1_digit(value, expected):
    assert content_length(value) == expected


@pytest.mark.parametrize(
    "value",
    ["", "²", "\u0661", "+1", "-1", "1.0", "1e3", "5, 5", "0x1", "1 2", "\x00"],
)
def test_content_length_refuses_anything_else(value):
    with pytest.raises(InvalidRequest):
        content_length(value)


def test_content_length_refuses_more_digits_than_int_parses():
    with pytest.raises(BodyTooLarge):
        content_length("9" * 5000)


@pytest.mark.parametrize(
    ("path_info", "expected"),
    [
        pytest.param("/files", "/files", id="ascii"),
        pytest.param("", "/", id="mount-root"),
        pytest.param("/dossiers/\xc3\xa9", "/dossiers/é", id="utf8-via-latin1"),
        pytest.param("/\xff", "/\ufffd", id="not-utf8"),
        pytest.param("//files", "/files", id="leading-slashes-fold-as-werkzeug"),
        pytest.param("files", "/files", id="no-leading-slash"),
    ],
)
def test_wsgi_route_path(path_info, expected):
    assert wsgi_route_path(path_info) == expected


def test_gate_answers_none_for_an_exempt_path_and_the_scopes_otherwise():
    gate = Gate(
        AdapterOptions.build(
            exempt_paths=["/health", "/public/*"],
            required_scopes=["base"],
            rules=[("GET", "/files*", ["files:read"])],
        )
    )
    assert gate.scopes("GET", "/health") is None
    assert gate.scopes("POST", "/public/x") is None
    assert gate.scopes("HEAD", "/files/1") == ("base", "files:read")
    assert gate.scopes("get", "/files/1") == ("base", "files:read")
    assert gate.scopes("POST", "/files/1") == ("base",)


@pytest.fixture
def store() -> InMemoryKeyStore:
    return InMemoryKeyStore()


def test_an_unknown_key_id_derives_the_public_key_like_a_known_one(store, monkeypatch):
    new = KeyManager(store).create_key("org_a", "partner")
    parsed = parse_token(new.token)
    assert parsed is not None
    derived: list[bytes] = []
    real = public_key_from_seed

    def spy(seed: bytes) -> bytes:
        derived.append(seed)
        return real(seed)

    monkeypatch.setattr(_flow, "public_key_from_seed", spy)
    verifier = Verifier(store, cache_ttl=0)
    for token in (format_token("a" * 20, parsed.seed), format_token(parsed.key_id, bytes(32))):
        with pytest.raises(InvalidToken):
            verifier.verify_token(token)
    assert len(derived) == 2  # the unknown id took the same path as the wrong secret


def test_fingerprint_parts_are_length_prefixed():
    cache = VerifiedCache(ttl=1, max_entries=1)
    assert cache.fingerprint("legacy", "a\x00b", "c") != cache.fingerprint("legacy", "a", "b\x00c")
    assert cache.fingerprint("ab", "c") != cache.fingerprint("a", "bc")


def test_cached_authorization_is_public_on_both_drivers(store):
    token = KeyManager(store).create_key("org_a", "partner", scopes=["x"]).token
    for verifier in (Verifier(store), AsyncVerifier(store)):
        assert verifier.cached_authorization(f"Bearer {token}") is None
        verifier.cache.put(
            verifier.cache.bearer_fingerprint(token),
            Verifier(store).verify_token(token),
            float("inf"),
            time.time(),
            verifier.cache.epoch,
        )
        cached = verifier.cached_authorization(f"Bearer {token}", ["x"])
        assert cached is not None
        assert cached.org_id == "org_a"


def _signed(store, body: bytes, *, cover: bool) -> HttpRequest:
    new = KeyManager(store).create_key("org_a", "signer")
    parsed = parse_token(new.token)
    assert parsed is not None
    headers = [("host", "api.test"), ("content-digest", content_digest(body))]
    components = ["@method", "@authority", "@target-uri"] + (["content-digest"] if cover else [])
    request = HttpRequest("POST", "http", "api.test", "/x", "", headers)
    sig = sign_request(
        request,
        key_id=parsed.key_id,
        private_seed=parsed.seed,
        now=time.time(),
        components=components,
    )
    headers += [("signature-input", sig["Signature-Input"]), ("signature", sig["Signature"])]
    return HttpRequest("POST", "http", "api.test", "/x", "", headers)


def test_verify_signed_request_binds_the_guard_to_the_covered_digest(store):
    verified = Verifier(store).verify_signed_request(_signed(store, b"hello", cover=True))
    verified.body.feed(b"hello", final=True)
    other = Verifier(store).verify_signed_request(_signed(store, b"hello", cover=True))
    with pytest.raises(DigestMismatch):
        other.body.feed(b"forged", final=True)


def test_an_uncovered_digest_is_never_consulted(store):
    # No Content-Length: the policy does not ask for a covered digest, so the
    # signature verifies; the body must still be refused.
    verified = Verifier(store).verify_signed_request(_signed(store, b"hello", cover=False))
    with pytest.raises(SignatureMissingComponent):
        verified.body.feed(b"hello", final=True)
    empty = Verifier(store).verify_signed_request(_signed(store, b"hello", cover=False))
    empty.body.feed(b"", final=True)  # no body at all is fine
