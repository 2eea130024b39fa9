"""Signed requests for the signing suites: one key, one request, the verifier's steps.

Not a test module: :mod:`test_parse`, :mod:`test_base`, :mod:`test_verify`
and ``test_nonce`` import it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from scout_auth._signing.components import HttpRequest
from scout_auth._signing.digest import DigestChecker, content_digest
from scout_auth._signing.signature import (
    DEFAULT_POLICY,
    RequestSignature,
    SignaturePolicy,
    parse_request_signature,
    sign_request,
    verify_ed25519,
)
from scout_auth.exceptions import SignatureInvalid

# A policy that checks nothing but syntax: the RFC vectors are from 2021, have
# no nonce and cover what the RFC chose, not what our default policy demands.
LENIENT = SignaturePolicy(
    required_components=(), body_components=(), require_nonce=False, max_age=1e10
)
RFC_NOW = 1618884473


def with_headers(request: HttpRequest, *extra: tuple[str, str]) -> HttpRequest:
    return dataclasses.replace(request, headers=[*request.headers, *extra])


NOW = 1_700_000_000
KEY_SEED = hashlib.sha256(b"scout-auth test key").digest()
OTHER_SEED = hashlib.sha256(b"scout-auth other key").digest()
KEY_ID = "aaaaaaaaaaaaaaaaaaaa"
OTHER_ID = "bbbbbbbbbbbbbbbbbbbb"
PUBLIC_KEYS = {
    KEY_ID: Ed25519PrivateKey.from_private_bytes(KEY_SEED).public_key().public_bytes_raw(),
    OTHER_ID: Ed25519PrivateKey.from_private_bytes(OTHER_SEED).public_key().public_bytes_raw(),
}
BODY = b'{"name": "scout", "size": 3}'
COMPONENTS = ["@method", "@authority", "@target-uri", "content-digest", "content-type", "x-org"]
UNSIGNED = HttpRequest(
    method="POST",
    scheme="https",
    authority="api.example.com",
    path="/v1/items",
    query="limit=10&cursor=abc",
    headers=[
        ("Host", "api.example.com"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(BODY))),
        ("Content-Digest", content_digest(BODY)),
        ("X-Org", "org_123"),
    ],
)


def signed(request: HttpRequest = UNSIGNED, **overrides: Any) -> HttpRequest:
    kwargs: dict[str, Any] = {
        "key_id": KEY_ID,
        "private_seed": KEY_SEED,
        "now": NOW,
        "components": COMPONENTS,
        "nonce": "n-0123456789",
    }
    kwargs.update(overrides)
    headers = sign_request(request, **kwargs)
    return with_headers(request, *headers.items())


def verify(
    request: HttpRequest,
    *,
    body: bytes = BODY,
    now: float = NOW,
    label: str | None = None,
    policy: SignaturePolicy = DEFAULT_POLICY,
) -> RequestSignature:
    """What the verifier will do: parse, look the key up, verify, check the digest."""
    parsed = parse_request_signature(request, policy, now=now, label=label)
    key = PUBLIC_KEYS.get(parsed.key_id)
    if key is None:
        raise SignatureInvalid("unknown key")
    verify_ed25519(key, parsed.signature, parsed.base)
    digest = request.field("content-digest")
    if digest is not None:
        checker = DigestChecker.from_header(digest)
        checker.update(body)
        checker.verify()
    return parsed


def replace_header(request: HttpRequest, name: str, value: str | None) -> HttpRequest:
    headers = [(n, v) for n, v in request.headers if n.lower() != name.lower()]
    if value is not None:
        headers.append((name, value))
    return dataclasses.replace(request, headers=headers)
