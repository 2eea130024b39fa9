"""The in-memory key store: the reference every other adapter must match."""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from dataclasses import replace
from datetime import datetime

from .._audit.sinks import InMemoryAuditSink
from .._core.records import KeyRecord, LegacyRecord, RoleRecord, ScopeInfo
from .._core.store import KeyEvent, KeyUpdate, StoreEventsMixin, apply_update, utc_day
from .._core.usage import normalise_address

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
        self._digests: dict[bytes, str] = {}  # lookup digest -> org id
        self._roles: dict[tuple[str, str], RoleRecord] = {}
        self._scope_infos: dict[tuple[str, str], ScopeInfo] = {}
        # org -> {UTC day: uses}, and org -> last legacy use
        self._legacy_days: dict[str, dict[str, int]] = {}
        self._legacy_last: dict[str, datetime] = {}
        self._audit = InMemoryAuditSink()
        self._pepper = secrets.token_bytes(32)

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
            new = apply_update(old, update)
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
        """Create or replace the org's legacy key hash (see :meth:`KeyStore.put_legacy`)."""
        with self._lock:
            old = self._legacy.get(record.org_id)
            if old is not None:  # the switch survives a new hash
                record = replace(record, enabled=old.enabled)
            digest = record.lookup_digest
            if digest is not None and self._digests.get(digest, record.org_id) != record.org_id:
                record = replace(record, lookup_digest=None, pepper_id=None)
            self._store_legacy(old, record)
        self._publish(KeyEvent("legacy_imported", record.org_id))

    def _store_legacy(self, old: LegacyRecord | None, new: LegacyRecord | None) -> None:
        # The record and the digest index change together (under the lock).
        if old is not None:
            del self._legacy[old.org_id]
            if old.lookup_digest is not None:
                del self._digests[old.lookup_digest]
        if new is not None:
            self._legacy[new.org_id] = new
            if new.lookup_digest is not None:
                self._digests[new.lookup_digest] = new.org_id

    def delete_legacy(self, org_id: str) -> bool:
        """Delete the org's legacy key; ``False`` if there was none."""
        with self._lock:
            old = self._legacy.get(org_id)
            self._store_legacy(old, None)
        if old is not None:
            self._publish(KeyEvent("legacy_deleted", org_id))
        return old is not None

    def set_legacy_enabled(self, org_id: str, enabled: bool) -> LegacyRecord | None:
        """Switch legacy authentication on or off; ``None`` without a legacy key."""
        with self._lock:
            old = self._legacy.get(org_id)
            if old is None:
                return None
            new = replace(old, enabled=enabled)
            self._legacy[org_id] = new
        self._publish(KeyEvent("legacy_updated", org_id))
        return new

    def find_legacy(self, lookup_digest: bytes) -> LegacyRecord | None:
        """The legacy record holding ``lookup_digest``, or ``None`` (a dict look-up)."""
        with self._lock:
            org_id = self._digests.get(lookup_digest)
            return None if org_id is None else self._legacy.get(org_id)

    def set_legacy_digest(
        self, org_id: str, secret_hash: str, lookup_digest: bytes, pepper_id: str
    ) -> bool:
        """See :meth:`KeyStore.set_legacy_digest`."""
        with self._lock:
            old = self._legacy.get(org_id)
            if old is None or old.secret_hash != secret_hash:
                return False
            if self._digests.get(lookup_digest, org_id) != org_id:
                return False
            new = replace(old, lookup_digest=lookup_digest, pepper_id=pepper_id)
            self._store_legacy(old, new)
        return True

    def legacy_digest_counts(self) -> dict[str | None, int]:
        """How many legacy records hold a digest of each pepper id (``None``: none)."""
        with self._lock:
            return dict(Counter(r.pepper_id for r in self._legacy.values()))

    def legacy_pepper_ids(self) -> frozenset[str]:
        """The pepper ids of the digests held now."""
        with self._lock:
            return frozenset(r.pepper_id for r in self._legacy.values() if r.pepper_id)

    def embedded_legacy_pepper(self) -> bytes:
        """This store's own pepper (random, in process memory like the store itself).

        Used when no pepper is configured: the data and the pepper live and
        die together, so nothing persists that a dump could expose.
        """
        return self._pepper

    def put_role(self, role: RoleRecord) -> None:
        """Create or replace a role."""
        with self._lock:
            self._roles[(role.org_id, role.name)] = role
        self._publish(KeyEvent("role_updated", role.org_id))

    def get_role(self, org_id: str, name: str) -> RoleRecord | None:
        """Return one role, or ``None``."""
        return self._roles.get((org_id, name))

    def delete_role(self, org_id: str, name: str) -> bool:
        """Delete a role; ``False`` if there was none."""
        with self._lock:
            existed = self._roles.pop((org_id, name), None) is not None
        if existed:
            self._publish(KeyEvent("role_deleted", org_id))
        return existed

    def list_roles(self, org_id: str) -> list[RoleRecord]:
        """Return the org's roles, by name."""
        with self._lock:
            roles = [r for (o, _), r in self._roles.items() if o == org_id]
        return sorted(roles, key=lambda r: r.name)

    def put_scope_info(self, info: ScopeInfo) -> None:
        """Create or replace one scope of the org's catalogue (no event)."""
        with self._lock:
            self._scope_infos[(info.org_id, info.name)] = info

    def delete_scope_info(self, org_id: str, name: str) -> bool:
        """Delete one scope from the catalogue; ``False`` if it was not there."""
        with self._lock:
            return self._scope_infos.pop((org_id, name), None) is not None

    def list_scope_infos(self, org_id: str) -> list[ScopeInfo]:
        """Return the org's scope catalogue, by name."""
        with self._lock:
            infos = [i for (o, _), i in self._scope_infos.items() if o == org_id]
        return sorted(infos, key=lambda i: i.name)

    def list_sealed_seeds(
        self, after: str | None = None, limit: int = 500
    ) -> list[tuple[str, str]]:
        """``(key_id, kek_id)`` of keys with a sealed seed, by key id, after ``after``."""
        with self._lock:
            pairs = [
                (k.key_id, k.sealed_seed.kek_id)
                for k in self._keys.values()
                if k.sealed_seed is not None and (after is None or k.key_id > after)
            ]
        return sorted(pairs)[: max(limit, 0)]

    def record_usage(
        self, key_id: str, uses: int, last_used_at: datetime, address: str | None = None
    ) -> None:
        """Add ``uses``, raise ``last_used_at``, its ``address`` with it (no event)."""
        with self._lock:
            old = self._keys.get(key_id)
            if old is None:
                return
            last = old.last_used_at
            latest = last is None or last <= last_used_at
            self._keys[key_id] = old.evolve(
                use_count=old.use_count + uses,
                last_used_at=last_used_at if latest else last,
                last_used_address=normalise_address(address) if latest else old.last_used_address,
            )

    def record_legacy_usage(self, org_id: str, uses: int, last_used_at: datetime) -> None:
        """Add ``uses`` to the org's legacy count for the UTC day of ``last_used_at``."""
        day = utc_day(last_used_at)
        with self._lock:
            days = self._legacy_days.setdefault(org_id, {})
            days[day] = days.get(day, 0) + uses
            last = self._legacy_last.get(org_id)
            if last is None or last < last_used_at:
                self._legacy_last[org_id] = last_used_at

    def legacy_usage(self, org_id: str, since: datetime) -> tuple[datetime | None, int]:
        """``(last legacy use, legacy uses on UTC days from since's day on)``."""
        first = utc_day(since)
        with self._lock:
            days = self._legacy_days.get(org_id, {})
            return self._legacy_last.get(org_id), sum(n for d, n in days.items() if d >= first)

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

    async def aset_legacy_enabled(self, org_id: str, enabled: bool) -> LegacyRecord | None:
        """Async :meth:`set_legacy_enabled`."""
        return self.set_legacy_enabled(org_id, enabled)

    async def afind_legacy(self, lookup_digest: bytes) -> LegacyRecord | None:
        """Async :meth:`find_legacy`."""
        return self.find_legacy(lookup_digest)

    async def aset_legacy_digest(
        self, org_id: str, secret_hash: str, lookup_digest: bytes, pepper_id: str
    ) -> bool:
        """Async :meth:`set_legacy_digest`."""
        return self.set_legacy_digest(org_id, secret_hash, lookup_digest, pepper_id)

    async def alegacy_digest_counts(self) -> dict[str | None, int]:
        """Async :meth:`legacy_digest_counts`."""
        return self.legacy_digest_counts()

    async def alegacy_pepper_ids(self) -> frozenset[str]:
        """Async :meth:`legacy_pepper_ids`."""
        return self.legacy_pepper_ids()

    async def aput_role(self, role: RoleRecord) -> None:
        """Async :meth:`put_role`."""
        self.put_role(role)

    async def aget_role(self, org_id: str, name: str) -> RoleRecord | None:
        """Async :meth:`get_role`."""
        return self.get_role(org_id, name)

    async def adelete_role(self, org_id: str, name: str) -> bool:
        """Async :meth:`delete_role`."""
        return self.delete_role(org_id, name)

    async def alist_roles(self, org_id: str) -> list[RoleRecord]:
        """Async :meth:`list_roles`."""
        return self.list_roles(org_id)

    async def aput_scope_info(self, info: ScopeInfo) -> None:
        """Async :meth:`put_scope_info`."""
        self.put_scope_info(info)

    async def adelete_scope_info(self, org_id: str, name: str) -> bool:
        """Async :meth:`delete_scope_info`."""
        return self.delete_scope_info(org_id, name)

    async def alist_scope_infos(self, org_id: str) -> list[ScopeInfo]:
        """Async :meth:`list_scope_infos`."""
        return self.list_scope_infos(org_id)

    async def alist_sealed_seeds(
        self, after: str | None = None, limit: int = 500
    ) -> list[tuple[str, str]]:
        """Async :meth:`list_sealed_seeds`."""
        return self.list_sealed_seeds(after, limit)

    async def arecord_usage(
        self, key_id: str, uses: int, last_used_at: datetime, address: str | None = None
    ) -> None:
        """Async :meth:`record_usage`."""
        self.record_usage(key_id, uses, last_used_at, address)

    async def arecord_legacy_usage(self, org_id: str, uses: int, last_used_at: datetime) -> None:
        """Async :meth:`record_legacy_usage`."""
        self.record_legacy_usage(org_id, uses, last_used_at)

    async def alegacy_usage(self, org_id: str, since: datetime) -> tuple[datetime | None, int]:
        """Async :meth:`legacy_usage`."""
        return self.legacy_usage(org_id, since)

    async def aclose(self) -> None:
        """Nothing to release."""
