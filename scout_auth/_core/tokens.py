"""The Org Credential token format.

Theory of operation
-------------------
An Org Credential is an Ed25519 key pair. Its private half travels as a
*bearer token* that people and secret scanners can recognise (GitHub's token
format is the model)::

    scout_sk_<key id: 20 x [a-z2-7]>_<seed: 43 x base62><crc32: 6 x base62>

* ``scout_sk_`` — fixed prefix: says "secret key" and names the product.
* key id — 100 random bits, lower-case base32 (a store may mint it instead,
  with at least 80: :func:`~.store.new_key_id`). Public and stable: it is
  the store's primary key and the ``keyid`` of signed requests (RFC 9421).
* seed — the 32-byte Ed25519 private seed, base62, fixed width.
* checksum — CRC32 of everything before it, base62, fixed width. It lets a
  scanner (and the verifier) discard typos and random strings offline, so a
  malformed token is rejected *before* any store access.

The whole token is 79 ASCII characters and matches :data:`TOKEN_REGEX`.
Nothing here touches a store, a clock or a framework.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "KEY_ID_LENGTH",
    "TOKEN_PREFIX",
    "TOKEN_REGEX",
    "ParsedToken",
    "format_token",
    "generate_key_id",
    "parse_token",
    "public_key_from_seed",
]

TOKEN_PREFIX = "scout_sk_"  # noqa: S105 - a public prefix, not a secret
KEY_ID_LENGTH = 20
_SEED_LENGTH = 43
_CRC_LENGTH = 6
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE62_INDEX = {c: i for i, c in enumerate(_BASE62)}
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"

#: A regular expression matching a well-formed token (publish it to secret scanners).
TOKEN_REGEX = r"\bscout_sk_[a-z2-7]{20}_[0-9A-Za-z]{49}\b"  # noqa: S105
_TOKEN_RE = re.compile(r"scout_sk_([a-z2-7]{20})_([0-9A-Za-z]{43})([0-9A-Za-z]{6})")
KEY_ID_RE = re.compile(r"[a-z2-7]{20}")
TOKEN_LENGTH = len(TOKEN_PREFIX) + KEY_ID_LENGTH + 1 + _SEED_LENGTH + _CRC_LENGTH


def _b62encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(_BASE62[rem])
    if value:
        raise ValueError("value does not fit the width")
    return "".join(reversed(chars))


def _b62decode(text: str) -> int:
    value = 0
    for c in text:
        value = value * 62 + _BASE62_INDEX[c]
    return value


def _checksum(body: str) -> str:
    return _b62encode(zlib.crc32(body.encode("ascii")), _CRC_LENGTH)


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token split into its parts. The seed never appears in ``repr``."""

    key_id: str
    seed: bytes = field(repr=False)


def generate_key_id() -> str:
    """Return a new random key id (100 bits, lower-case base32)."""
    return "".join(secrets.choice(_BASE32) for _ in range(KEY_ID_LENGTH))


def format_token(key_id: str, seed: bytes) -> str:
    """Build the bearer token for ``key_id`` and a 32-byte Ed25519 seed."""
    if not KEY_ID_RE.fullmatch(key_id):
        raise ValueError("malformed key id")
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    body = f"{TOKEN_PREFIX}{key_id}_{_b62encode(int.from_bytes(seed, 'big'), _SEED_LENGTH)}"
    return body + _checksum(body)


def parse_token(token: str) -> ParsedToken | None:
    """Split a token, or return ``None`` if it is malformed or its checksum fails.

    Pure string work, no crypto and no I/O: this runs before any store access.
    """
    if len(token) != TOKEN_LENGTH:
        return None
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        return None
    key_id, seed_text, crc = match.groups()
    # Six base62 digits encode each value below 62**6 (> 2**32) exactly once,
    # so comparing the decoded digits with the CRC is comparing the text with
    # its encoding, without building the string (this runs per cold request).
    if _b62decode(crc) != zlib.crc32(token[:-_CRC_LENGTH].encode("ascii")):
        return None
    seed_int = _b62decode(seed_text)
    if seed_int >> 256:
        return None
    return ParsedToken(key_id=key_id, seed=seed_int.to_bytes(32, "big"))


def public_key_from_seed(seed: bytes) -> bytes:
    """Derive the raw 32-byte Ed25519 public key from a private seed."""
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
