"""The key-store protocol.

A store offers every operation twice, side by side: ``get_key`` and
``aget_key``, ``close`` and ``aclose`` (the httpx transport bases are the
model). Both must behave the same; the shared contract suite in
``tests/stores/contract.py`` holds every adapter to the in-memory reference.

Every write is atomic: it happens whole or not at all. After a successful
write the store calls its subscribers with a :class:`KeyEvent`, so verifiers
in the same process drop cached entries at once; networked stores also
deliver events written by other processes through the same subscribers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from .._records import KeyRecord, LegacyRecord

__all__ = ["KeyEvent", "KeyStore", "KeyUpdate", "Listener", "StoreEventsMixin"]

logger = logging.getLogger("scout_auth")


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """A change to stored credentials.

    Attributes:
        action: ``created``, ``updated``, ``rotated``, ``deleted``,
            ``legacy_imported`` or ``legacy_deleted``; or ``flush`` (org
            ``"*"``), delivered by a change feed that may have missed
            events: drop every cached entry.
        org_id: The organization concerned.
        key_id: The key concerned, or ``None`` for legacy events.
    """

    action: str
    org_id: str
    key_id: str | None = None


Listener = Callable[[KeyEvent], None]


@dataclass(frozen=True, slots=True)
class KeyUpdate:
    """Fields to change on a key; ``None`` leaves a field as it is."""

    name: str | None = None
    enabled: bool | None = None


@runtime_checkable
class KeyStore(Protocol):
    """What the verifier and the key managers need from a store."""

    # -- sync -----------------------------------------------------------
    def get_key(self, key_id: str) -> KeyRecord | None:
        """Return the key with ``key_id``, or ``None``."""

    def list_keys(self, org_id: str) -> list[KeyRecord]:
        """Return the org's keys, oldest first."""

    def add_key(self, record: KeyRecord) -> None:
        """Insert a new key; ``ValueError("duplicate key id")`` if the id exists."""

    def update_key(self, key_id: str, update: KeyUpdate) -> KeyRecord | None:
        """Apply ``update`` atomically; return the new record or ``None`` if absent."""

    def rotate_key(
        self, old_key_id: str, new_record: KeyRecord, grace_until: datetime
    ) -> KeyRecord | None:
        """Atomically insert ``new_record`` and end the old key at ``grace_until``.

        The old key's ``expires_at`` becomes ``min(expires_at, grace_until)``
        (a grace period never extends a key) and its ``replaced_by`` the new
        id. Returns the updated old record, or ``None`` (writing nothing) if
        the old key does not exist.
        """

    def delete_key(self, key_id: str) -> KeyRecord | None:
        """Delete permanently; return the deleted record or ``None``."""

    def get_legacy(self, org_id: str) -> LegacyRecord | None:
        """Return the org's legacy key hash, or ``None``."""

    def put_legacy(self, record: LegacyRecord) -> None:
        """Create or replace the org's legacy key hash."""

    def delete_legacy(self, org_id: str) -> bool:
        """Delete the org's legacy key; ``False`` if there was none."""

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every change; returns an unsubscribe function."""

    def close(self) -> None:
        """Release resources."""

    # -- async ----------------------------------------------------------
    async def aget_key(self, key_id: str) -> KeyRecord | None:
        """Async :meth:`get_key`."""

    async def alist_keys(self, org_id: str) -> list[KeyRecord]:
        """Async :meth:`list_keys`."""

    async def aadd_key(self, record: KeyRecord) -> None:
        """Async :meth:`add_key`."""

    async def aupdate_key(self, key_id: str, update: KeyUpdate) -> KeyRecord | None:
        """Async :meth:`update_key`."""

    async def arotate_key(
        self, old_key_id: str, new_record: KeyRecord, grace_until: datetime
    ) -> KeyRecord | None:
        """Async :meth:`rotate_key`."""

    async def adelete_key(self, key_id: str) -> KeyRecord | None:
        """Async :meth:`delete_key`."""

    async def aget_legacy(self, org_id: str) -> LegacyRecord | None:
        """Async :meth:`get_legacy`."""

    async def aput_legacy(self, record: LegacyRecord) -> None:
        """Async :meth:`put_legacy`."""

    async def adelete_legacy(self, org_id: str) -> bool:
        """Async :meth:`delete_legacy`."""

    async def aclose(self) -> None:
        """Async :meth:`close`."""


class StoreEventsMixin:
    """Subscriber bookkeeping shared by store adapters."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every change; returns an unsubscribe function."""
        with self._listeners_lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._listeners_lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _publish(self, event: KeyEvent) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)

    def _deliver_remote(self, event: KeyEvent) -> None:
        # On a change-feed thread: one failing subscriber must not keep a
        # revocation from the others.
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("key event subscriber failed")
