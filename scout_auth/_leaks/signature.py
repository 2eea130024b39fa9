"""Scanner signatures: GitHub's ECDSA P-256 public keys, and a shared-secret HMAC.

GitHub's secret-scanning partner program signs each report's raw body with
ECDSA over P-256 and SHA-256; the ``Github-Public-Key-Signature`` header
holds the base64 of the DER signature and ``Github-Public-Key-Identifier``
names the key in the published document
``{"public_keys": [{"key_identifier", "key", "is_current"}]}`` (``key``: a
PEM SubjectPublicKeyInfo). Pure crypto, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

__all__ = [
    "KeyDocumentError",
    "ScannerPublicKeys",
    "hmac_signature",
    "parse_key_document",
    "verify_ecdsa",
    "verify_hmac",
]

#: Key id -> public key, as a document lists them.
ScannerPublicKeys = Mapping[str, ec.EllipticCurvePublicKey]

# GitHub's ids are 64 hex digits; allow any short printable token.
_KEY_ID = re.compile(r"[A-Za-z0-9_.:+/=-]{1,200}")
_MAX_SIGNATURE = 200  # a DER P-256 signature is at most 72 bytes (96 in base64)


class KeyDocumentError(ValueError):
    """A scanner key document that is not ``{"public_keys": [...]}`` of P-256 keys."""


def parse_key_document(
    data: str | bytes | Mapping[str, Any],
) -> dict[str, ec.EllipticCurvePublicKey]:
    """The key ids and P-256 public keys of a published key document.

    Raises:
        KeyDocumentError: Not JSON, not the published shape, a key that is not
            a P-256 public key, or no key at all.
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise KeyDocumentError("the scanner key document is not JSON") from None
    entries = data.get("public_keys") if isinstance(data, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise KeyDocumentError('the scanner key document needs a non-empty "public_keys" list')
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise KeyDocumentError("each public key is an object")
        key_id, pem = entry.get("key_identifier"), entry.get("key")
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise KeyDocumentError("a key_identifier is 1 to 200 printable characters")
        if not isinstance(pem, str):
            raise KeyDocumentError(f"key {key_id!r} has no PEM key")
        try:
            key = load_pem_public_key(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError, TypeError):
            raise KeyDocumentError(f"key {key_id!r} is not a PEM public key") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise KeyDocumentError(f"key {key_id!r} is not an ECDSA P-256 key")
        keys[key_id] = key
    return keys


def valid_key_id(value: str) -> bool:
    """Whether a header's key id has the form of one (before any look-up)."""
    return bool(_KEY_ID.fullmatch(value))


def verify_ecdsa(key: ec.EllipticCurvePublicKey, signature_b64: str, body: bytes) -> bool:
    """Whether ``signature_b64`` (base64 DER) is ``key``'s ECDSA/SHA-256 signature of ``body``."""
    if len(signature_b64) > _MAX_SIGNATURE:
        return False
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
        key.verify(signature, body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def hmac_signature(secret: bytes, body: bytes) -> str:
    """The header value a sender puts on ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_hmac(secret: bytes, header: str, body: bytes) -> bool:
    """Whether ``header`` (``sha256=<hex>`` or bare hex) is the HMAC of ``body``."""
    value = header.strip()
    if value[:7].lower() == "sha256=":
        value = value[7:]
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    # compare_digest on ASCII only (it refuses other str); case-insensitive hex.
    return value.isascii() and hmac.compare_digest(value.lower(), expected)
