"""The in-memory key store: the reference every other adapter must match."""

from __future__ import annotations

import threading
from datetime import datetime

from .._audit_sinks import InMemoryAuditSink
from .._records import KeyRecord, LegacyRecord
from ._base import KeyEvent, KeyUpdate, StoreEventsMixin

__all__ = ["InMemoryKeyStore"]


class InMemoryKeyStore(StoreEventsMixin):
    """A thread-safe key store in process memory.

    For tests, scripts and single-process services. It keeps public keys and
    argon2id hashes only, like every store. The ``a*`` methods never block, so
    they simply call their sync twins.

    Example:
        >>> from scout_auth import InMemoryKeyStore, KeyManager
        >>> store = InMemoryKeyStore()
        >>> new = KeyManager(store).create_key("org_1", "billing sync")
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._keys: dict[str, KeyRecord] = {}
        self._legacy: dict[str, LegacyRecord] = {}
        self._audit = InMemoryAuditSink()

    def __repr__(self) -> str:
        return f"InMemoryKeyStore(keys={len(self._keys)}, legacy={len(self._legacy)})"

    def audit_sink(self) -> InMemoryAuditSink:
        """This store's audit trail (the same sink on every call), kept in memory too.

        Example:
            >>> manager = KeyManager(store, audit=AuditBuffer(store.audit_sink()))  # doctest: +SKIP
        """
        return self._audit

    # -- sync -----------------------------------------------------------
    def get_key(self, key_id: str) -> KeyRecord | None:
        """Return the key with ``key_id``, or ``None``."""
        return self._keys.get(key_id)

    def list_keys(self, org_id: str) -> list[KeyRecord]:
        """Return the org's keys, oldest first."""
        with self._lock:
            keys = [k for k in self._keys.values() if k.org_id == org_id]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def add_key(self, record: KeyRecord) -> None:
        """Insert a new key; ``ValueError`` if the id exists."""
        with self._lock:
            if record.key_id in self._keys:
                raise ValueError("duplicate key id")
            self._keys[record.key_id] = record
        self._publish(KeyEvent("created", record.org_id, record.key_id))

    def update_key(self, key_id: str, update: KeyUpdate) -> KeyRecord | None:
        """Apply ``update`` atomically; return the new record or ``None``."""
        with self._lock:
            old = self._keys.get(key_id)
            if old is None:
                return None
            new = old.evolve(
                name=old.name if update.name is None else update.name,
                enabled=old.enabled if update.enabled is None else update.enabled,
            )
            self._keys[key_id] = new
        self._publish(KeyEvent("updated", new.org_id, key_id))
        return new

    def rotate_key(
        self, old_key_id: str, new_record: KeyRecord, grace_until: datetime
    ) -> KeyRecord | None:
        """Insert ``new_record`` and end the old key at ``grace_until``, atomically."""
        with self._lock:
            old = self._keys.get(old_key_id)
            if old is None:
                return None
            if new_record.key_id in self._keys:
                raise ValueError("duplicate key id")
            expires = grace_until if old.expires_at is None else min(old.expires_at, grace_until)
            updated = old.evolve(expires_at=expires, replaced_by=new_record.key_id)
            self._keys[old_key_id] = updated
            self._keys[new_record.key_id] = new_record
        self._publish(KeyEvent("rotated", old.org_id, old_key_id))
        self._publish(KeyEvent("created", new_record.org_id, new_record.key_id))
        return updated

    def delete_key(self, key_id: str) -> KeyRecord | None:
        """Delete permanently; return the deleted record or ``None``."""
        with self._lock:
            old = self._keys.pop(key_id, None)
        if old is not None:
            self._publish(KeyEvent("deleted", old.org_id, key_id))
        return old

    def get_legacy(self, org_id: str) -> LegacyRecord | None:
        """Return the org's legacy key hash, or ``None``."""
        return self._legacy.get(org_id)

    def put_legacy(self, record: LegacyRecord) -> None:
        """Create or replace the org's legacy key hash."""
        with self._lock:
            self._legacy[record.org_id] = record
        self._publish(KeyEvent("legacy_imported", record.org_id))

    def delete_legacy(self, org_id: str) -> bool:
        """Delete the org's legacy key; ``False`` if there was none."""
        with self._lock:
            existed = self._legacy.pop(org_id, None) is not None
        if existed:
            self._publish(KeyEvent("legacy_deleted", org_id))
        return existed

    def close(self) -> None:
        """Nothing to release."""

    # -- async: memory never blocks, so the sync methods serve ------------
    async def aget_key(self, key_id: str) -> KeyRecord | None:
        """Async :meth:`get_key`."""
        return self.get_key(key_id)

    async def alist_keys(self, org_id: str) -> list[KeyRecord]:
        """Async :meth:`list_keys`."""
        return self.list_keys(org_id)

    async def aadd_key(self, record: KeyRecord) -> None:
        """Async :meth:`add_key`."""
        self.add_key(record)

    async def aupdate_key(self, key_id: str, update: KeyUpdate) -> KeyRecord | None:
        """Async :meth:`update_key`."""
        return self.update_key(key_id, update)

    async def arotate_key(
        self, old_key_id: str, new_record: KeyRecord, grace_until: datetime
    ) -> KeyRecord | None:
        """Async :meth:`rotate_key`."""
        return self.rotate_key(old_key_id, new_record, grace_until)

    async def adelete_key(self, key_id: str) -> KeyRecord | None:
        """Async :meth:`delete_key`."""
        return self.delete_key(key_id)

    async def aget_legacy(self, org_id: str) -> LegacyRecord | None:
        """Async :meth:`get_legacy`."""
        return self.get_legacy(org_id)

    async def aput_legacy(self, record: LegacyRecord) -> None:
        """Async :meth:`put_legacy`."""
        self.put_legacy(record)

    async def adelete_legacy(self, org_id: str) -> bool:
        """Async :meth:`delete_legacy`."""
        return self.delete_legacy(org_id)

    async def aclose(self) -> None:
        """Nothing to release."""
