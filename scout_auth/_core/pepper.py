"""The server-side pepper behind legacy look-up digests. Pure computation.

A legacy secret sent as ``Bearer <secret>`` names no org, and the store
keeps only argon2id hashes, which cannot be looked up. So beside each hash
the store keeps ``HMAC-SHA-256(pepper, secret)``, indexed: the verifier
computes it and finds the one record to check with argon2id, never scanning.

The pepper never lives in the store. A dump of the store then gives an
attacker digests that test a guess only with the pepper; without it, a
guess is tested by argon2id, as before. (An unkeyed fast hash at rest would
let a dump test billions of guesses a second.)

Several peppers may be configured, the first is current: look-ups try each
(newest first) and a record found through an older one is re-digested with
the current one after argon2 verified its secret. Each pepper has a public
id (an HMAC of a fixed label, so it says nothing about the pepper) stored
with the digest, so a store whose digests came from a pepper nobody
configured is found at startup instead of failing silently.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import NoReturn

from ..exceptions import ConfigurationError

__all__ = [
    "ENV_VAR",
    "MAX_PEPPERS",
    "MIN_PEPPER_LENGTH",
    "LegacyPepper",
    "missing_pepper_error",
    "new_pepper",
    "resolve_pepper",
    "unknown_pepper_error",
    "unknown_peppers",
]

#: The environment variable a pepper is read from when none is passed.
ENV_VAR = "SCOUT_AUTH_LEGACY_PEPPER"

#: Shortest pepper accepted, in bytes (its UTF-8 encoding for text).
MIN_PEPPER_LENGTH = 32

#: Most peppers accepted at once: a bearer token no record holds costs one
#: look-up per pepper, and a rotation needs two.
MAX_PEPPERS = 4

# Domain separation: the digest of a secret and a pepper's id are HMACs of
# different messages, so neither can stand in for the other.
_DIGEST_LABEL = b"scout_auth legacy lookup v1\x00"
_ID_LABEL = b"scout_auth pepper id v1"

_SEPARATORS = re.compile(r"[\s,]+")


def new_pepper() -> str:
    """A fresh random pepper (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def _pepper_bytes(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if len(raw) < MIN_PEPPER_LENGTH:
        raise ConfigurationError(
            f"a legacy pepper needs at least {MIN_PEPPER_LENGTH} bytes of random data "
            "(make one with `scout-auth legacy-pepper new`)"
        )
    return raw


class LegacyPepper:
    """Server-side keys for the look-up digests of legacy secrets.

    Args:
        peppers: One to four secrets of at least 32 bytes, current first.
            Later ones are accepted for look-ups only, so a pepper can be
            rotated (see docs/legacy-keys.md).

    Raises:
        ConfigurationError: No pepper, or one too short.

    Example:
        >>> pepper = LegacyPepper("an-example-pepper-of-at-least-32-bytes")
        >>> len(pepper.digest("secret")), len(pepper.current_id)
        (32, 12)
    """

    __slots__ = ("_ids", "_keys")

    def __init__(self, *peppers: str | bytes) -> None:
        if not peppers:
            raise ConfigurationError("LegacyPepper needs at least one pepper")
        if len(peppers) > MAX_PEPPERS:
            raise ConfigurationError(
                f"at most {MAX_PEPPERS} legacy peppers (each costs a look-up per unknown token)"
            )
        keys = tuple(_pepper_bytes(p) for p in peppers)
        self._keys = keys
        self._ids = tuple(hmac.new(k, _ID_LABEL, hashlib.sha256).hexdigest()[:12] for k in keys)

    @classmethod
    def parse(cls, value: str) -> LegacyPepper:
        """Read a configuration value: peppers separated by commas or whitespace, current first."""
        parts = [p for p in _SEPARATORS.split(value.strip()) if p]
        if not parts:
            raise ConfigurationError(f"${ENV_VAR} is set but holds no pepper")
        return cls(*parts)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LegacyPepper | None:
        """The pepper in ``$SCOUT_AUTH_LEGACY_PEPPER``, or ``None`` when it is unset."""
        value = (os.environ if environ is None else environ).get(ENV_VAR)
        return None if value is None else cls.parse(value)

    @property
    def ids(self) -> tuple[str, ...]:
        """The public ids of the peppers, current first (safe to log)."""
        return self._ids

    @property
    def current_id(self) -> str:
        """The id of the current pepper, stored with every digest it makes."""
        return self._ids[0]

    def digest(self, secret: str) -> bytes:
        """The current pepper's look-up digest of ``secret``."""
        return self._mac(self._keys[0], secret)

    def digests(self, secret: str) -> Iterable[tuple[str, bytes]]:
        """``(pepper id, digest)`` of ``secret`` under each pepper, current first."""
        for pepper_id, key in zip(self._ids, self._keys, strict=True):
            yield pepper_id, self._mac(key, secret)

    def knows(self, pepper_id: str) -> bool:
        """Whether ``pepper_id`` is one of these peppers."""
        return pepper_id in self._ids

    @staticmethod
    def _mac(key: bytes, secret: str) -> bytes:
        # "surrogatepass": a secret is any str; the digest never raises.
        message = _DIGEST_LABEL + secret.encode("utf-8", "surrogatepass")
        return hmac.new(key, message, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"LegacyPepper(ids={list(self._ids)!r})"

    def __reduce__(self) -> NoReturn:
        # Never pickled into a cache, a task queue or a crash dump by accident.
        raise TypeError("LegacyPepper cannot be pickled")


def resolve_pepper(
    store: object, configured: LegacyPepper | str | bytes | None, enabled: bool
) -> LegacyPepper | None:
    """The pepper a verifier or manager uses; ``None`` if disabled or none is found.

    In order: ``configured``; ``$SCOUT_AUTH_LEGACY_PEPPER``; the store's own
    (``embedded_legacy_pepper()``: the in-memory store and SQLite, whose data
    lives on this machine only). ``None`` with ``enabled`` on is a
    configuration error the caller raises (:func:`missing_pepper_error`):
    never a silent fallback.

    Raises:
        ConfigurationError: A configured pepper is malformed.
    """
    if not enabled:
        return None
    if isinstance(configured, LegacyPepper):
        return configured
    if configured is not None:
        if isinstance(configured, str):
            return LegacyPepper.parse(configured)
        return LegacyPepper(configured)
    from_env = LegacyPepper.from_env()
    if from_env is not None:
        return from_env
    embedded = getattr(store, "embedded_legacy_pepper", None)
    own = embedded() if callable(embedded) else None
    return LegacyPepper(own) if isinstance(own, bytes) else None


def missing_pepper_error(store: object) -> ConfigurationError:
    """The error for a shared store with no pepper configured."""
    return ConfigurationError(
        f"no legacy pepper for this {type(store).__name__}: a legacy secret sent as "
        "`Bearer` finds its org through a digest keyed with a server-side pepper, and this "
        f"store is shared with other machines. Set ${ENV_VAR} (the same value on every "
        "instance, kept outside the store; make one with `scout-auth legacy-pepper new`) "
        "or pass legacy_pepper=...; legacy_bearer=False accepts legacy secrets as Basic only"
    )


def unknown_peppers(counts: Mapping[str | None, int], pepper: LegacyPepper) -> dict[str, int]:
    """Records per pepper id in ``counts`` that ``pepper`` does not know."""
    return {pid: n for pid, n in counts.items() if pid is not None and not pepper.knows(pid)}


def unknown_pepper_error(unknown: Mapping[str, int] | Iterable[str]) -> ConfigurationError:
    """The error for digests made with peppers nobody configured (ids, or ids -> records)."""
    if isinstance(unknown, Mapping):
        listed = ", ".join(f"{pid} ({n} records)" for pid, n in sorted(unknown.items()))
    else:
        listed = ", ".join(sorted(unknown))
    return ConfigurationError(
        f"legacy look-up digests in the store were made with pepper ids {listed}, which "
        f"${ENV_VAR} does not hold: Bearer legacy clients of those orgs would get 401. "
        "Add the pepper they were made with after the current one (current first, "
        "comma-separated); see `scout-auth legacy-pepper status`"
    )
