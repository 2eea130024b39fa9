"""The scanner's public keys, loaded by the operator's loader and cached."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from .._leaks.signature import KeyDocumentError, parse_key_document
from ..exceptions import StoreError

__all__ = ["KeySource", "ScannerKeys"]

logger = logging.getLogger("scout_auth.leaks")

#: A key document: a file path, or a callable returning the document
#: (JSON text or bytes, or the parsed mapping), e.g. one that fetches and
#: caches ``https://api.github.com/meta/public_keys/secret_scanning``.
KeySource = str | os.PathLike[str] | Callable[[], "str | bytes | Mapping[str, Any]"]


class ScannerKeys:
    """A scanner's published public keys, re-read when stale or when an id is unknown.

    Args:
        source: Where the document ``{"public_keys": [{"key_identifier",
            "key", "is_current"}]}`` comes from: a file path or a callable.
        ttl: Seconds a loaded document is used before it is read again.
        refresh_after: An unknown key id reloads the document at most this
            often (a scanner that rotated its key is picked up at once; a
            stream of made-up ids costs one load per interval).
        clock: Monotonic time source (tests).

    The document is loaded on first use; a load that fails keeps the last
    good keys (logged). With none, the receiver answers 503.

    Example:
        >>> keys = ScannerKeys("/etc/scout-auth/github-secret-scanning-keys.json")
    """

    def __init__(
        self,
        source: KeySource,
        *,
        ttl: float = 3600.0,
        refresh_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not callable(source) and not isinstance(source, str | os.PathLike):
            raise TypeError("source must be a file path or a callable returning the document")
        if not ttl > 0 or not refresh_after >= 0:
            raise ValueError("ttl must be > 0 and refresh_after >= 0")
        self._source = source
        self.ttl = float(ttl)
        self.refresh_after = float(refresh_after)
        self._clock = clock
        self._keys: dict[str, ec.EllipticCurvePublicKey] | None = None
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    @classmethod
    def from_document(cls, document: str | bytes | Mapping[str, Any]) -> ScannerKeys:
        """Keys from a document at hand (checked now: a bad one raises here)."""
        parse_key_document(document)
        return cls(lambda: document, ttl=float("inf"))

    def __repr__(self) -> str:
        source = "callable" if callable(self._source) else repr(os.fspath(self._source))
        return f"ScannerKeys({source})"

    def _read(self) -> str | bytes | Mapping[str, Any]:
        if callable(self._source):
            return self._source()
        return Path(self._source).read_bytes()

    def _load(self, now: float) -> None:
        try:
            self._keys = parse_key_document(self._read())
        except (OSError, KeyDocumentError) as exc:
            logger.error("secret-scanner keys not loaded: %s", exc)
        except Exception:
            logger.exception("secret-scanner key loader failed")
        self._loaded_at = now  # a failed load is not retried on every request either

    def get(self, key_id: str) -> ec.EllipticCurvePublicKey | None:
        """The key with ``key_id``, or ``None`` if the document does not list it.

        Raises:
            StoreError: No document could ever be loaded (the receiver's 503).
        """
        with self._lock:
            now = self._clock()
            age = now - self._loaded_at
            missing = self._keys is None or key_id not in self._keys
            if age >= self.ttl or (missing and age >= self.refresh_after):
                self._load(now)
            if self._keys is None:
                raise StoreError("the secret scanner's public keys are unavailable", retry_after=60)
            return self._keys.get(key_id)
