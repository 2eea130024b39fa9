"""Test doubles shared by the core suites: a clock, a store spy, a hasher spy.

Not a test module (no ``test_`` prefix); imported by the suites that need it.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher

from scout_auth import InMemoryKeyStore, LegacyPepper

#: A fixed instant every clock-driven test starts at.
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

#: Store methods that read or write credentials (``subscribe``/``close`` excluded).
STORE_METHODS = frozenset(
    {
        "get_key",
        "list_keys",
        "add_key",
        "update_key",
        "rotate_key",
        "delete_key",
        "get_legacy",
        "put_legacy",
        "delete_legacy",
        "find_legacy",
        "set_legacy_digest",
    }
)
WRITE_METHODS = frozenset(
    {
        "add_key",
        "update_key",
        "rotate_key",
        "delete_key",
        "put_legacy",
        "delete_legacy",
        "set_legacy_digest",
    }
)

#: The legacy pepper every test process runs with (tests/conftest.py sets it
#: as $SCOUT_AUTH_LEGACY_PEPPER): the shared PostgreSQL, MariaDB and Redis
#: servers only ever see digests of this one.
TEST_LEGACY_PEPPER = "scout-auth-test-suite-pepper-not-for-production-use"
TEST_PEPPER_ID = LegacyPepper(TEST_LEGACY_PEPPER).current_id


def basic_authorization(org_id: str, secret: str) -> str:
    """The ``Authorization`` value of a legacy ``Basic org_id:secret`` credential (RFC 7617)."""
    return "Basic " + base64.b64encode(f"{org_id}:{secret}".encode()).decode()


def cheap_hasher() -> PasswordHasher:
    """An argon2id hasher cheap enough for unit tests."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class Clock:
    """A settable POSIX clock for ``clock=``."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SpyStore:
    """Wraps a store and records the name of every credential read or write.

    Sync and async calls are recorded under the sync name (``aget_key`` counts
    as ``get_key``), so ``calls`` says how much store I/O happened.
    """

    def __init__(self, inner: InMemoryKeyStore | None = None) -> None:
        self.inner = inner if inner is not None else InMemoryKeyStore()
        self.calls: list[str] = []

    def __repr__(self) -> str:
        return f"SpyStore({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        base = name[1:] if name.startswith("a") and name[1:] in STORE_METHODS else name
        if base not in STORE_METHODS:
            return attr

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(base)
            return attr(*args, **kwargs)

        return recorded

    @property
    def writes(self) -> list[str]:
        return [c for c in self.calls if c in WRITE_METHODS]


class SpyHasher(PasswordHasher):
    """A cheap argon2id hasher that records the thread of every call.

    ``gate`` (if given) is called inside :meth:`verify` before the real work,
    so a test can hold the first verification until other callers queued up.
    """

    def __init__(self, gate: Callable[[], None] | None = None) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.gate = gate
        self.verify_threads: list[int] = []
        self.hash_threads: list[int] = []
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> Any:
        with self._lock:
            self.verify_threads.append(threading.get_ident())
        if self.gate is not None:
            self.gate()
        return super().verify(hash, password)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        with self._lock:
            self.hash_threads.append(threading.get_ident())
        return super().hash(password, salt=salt)


class AsAsync:
    """Presents a sync object's methods as coroutines.

    Lets one async test body drive :class:`~scout_auth.Verifier` and
    :class:`~scout_auth.AsyncVerifier` (or the two key managers) alike.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            return attr(*args, **kwargs)

        return call
