"""The key-store protocol.

A store offers every operation twice, side by side: ``get_key`` and
``aget_key``, ``close`` and ``aclose`` (the httpx transport bases are the
model). Both must behave the same; the shared contract suite in
:mod:`scout_auth.testing` holds every adapter to the in-memory reference
(docs/writing-a-store.md).

Every write is atomic: it happens whole or not at all. After a successful
write the store calls its subscribers with a :class:`KeyEvent`, so verifiers
in the same process drop cached entries at once; networked stores also
deliver events written by other processes through the same subscribers.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol, runtime_checkable

from .records import KeyRecord, LegacyRecord, RoleRecord, ScopeInfo, SealedSeed
from .tokens import KEY_ID_RE, generate_key_id

__all__ = [
    "KEEP",
    "ROLE_ACTIONS",
    "KeyEvent",
    "KeyStore",
    "KeyUpdate",
    "Listener",
    "StoreEventsMixin",
    "new_key_id",
]


class _Keep(enum.Enum):
    KEEP = "keep"


#: "Leave this field as it is" in a :class:`KeyUpdate` whose ``None`` means something.
KEEP = _Keep.KEEP

#: Event actions of a role change: they affect every key of the org using the
#: role, so verifiers drop every cached entry (roles change rarely).
ROLE_ACTIONS = frozenset({"role_updated", "role_deleted"})

logger = logging.getLogger("scout_auth")


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """A change to stored credentials.

    Attributes:
        action: ``created``, ``updated``, ``rotated``, ``deleted``,
            ``legacy_imported``, ``legacy_updated``, ``legacy_deleted``,
            ``role_updated`` or ``role_deleted``; or ``flush`` (org ``"*"``),
            delivered by a change feed that may have missed events: drop
            every cached entry.
        org_id: The organization concerned.
        key_id: The key concerned, or ``None`` for legacy and role events.
    """

    action: str
    org_id: str
    key_id: str | None = None


Listener = Callable[[KeyEvent], None]


@dataclass(frozen=True, slots=True)
class KeyUpdate:
    """Fields to change on a key; ``None`` (``KEEP`` where ``None`` means
    something) leaves a field as it is.

    ``scopes=None`` makes a key unrestricted by scopes, ``allowed_ips=None``
    usable from anywhere, ``expires_at=None`` never expire;
    ``roles=frozenset()`` removes every role, ``description=""`` the
    description; ``sealed_seed`` replaces the key's sealed seed (``scout-auth
    vault rewrap``: the same seed, its data key wrapped by another KEK).
    A store applies every field of one update atomically.
    """

    name: str | None = None
    enabled: bool | None = None
    scopes: frozenset[str] | Literal[_Keep.KEEP] | None = KEEP
    roles: frozenset[str] | None = None
    allowed_ips: tuple[str, ...] | Literal[_Keep.KEEP] | None = KEEP
    description: str | None = None
    expires_at: datetime | Literal[_Keep.KEEP] | None = KEEP
    sealed_seed: SealedSeed | None = field(default=None, repr=False)


def apply_update(record: KeyRecord, update: KeyUpdate) -> KeyRecord:
    """``record`` with ``update`` applied (the reference semantics)."""
    return record.evolve(
        name=record.name if update.name is None else update.name,
        enabled=record.enabled if update.enabled is None else update.enabled,
        scopes=record.scopes if update.scopes is KEEP else update.scopes,
        roles=record.roles if update.roles is None else update.roles,
        allowed_ips=record.allowed_ips if update.allowed_ips is KEEP else update.allowed_ips,
        description=record.description if update.description is None else update.description,
        expires_at=record.expires_at if update.expires_at is KEEP else update.expires_at,
        sealed_seed=record.sealed_seed if update.sealed_seed is None else update.sealed_seed,
    )


def utc_day(value: datetime) -> str:
    """The UTC day of ``value`` as ``YYYY-MM-DD`` (legacy usage buckets)."""
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(UTC).date().isoformat()


def new_key_id(store: object, org_id: str) -> str:
    """A key id for a new key of ``org_id`` in ``store`` (create and rotate).

    A store may choose it: an optional ``new_key_id(org_id) -> str`` method,
    pure computation (the Redis store mints ids in the org's hash slot, so a
    cluster look-up is one round trip). Otherwise, and for any store without
    it: :func:`~.tokens.generate_key_id`. A store's id must be a well-formed
    key id (``[a-z2-7]{20}``) with at least 80 random bits.
    """
    mint = getattr(store, "new_key_id", None)
    if not callable(mint):
        return generate_key_id()
    key_id = mint(org_id)
    if not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id):
        raise TypeError(f"{type(store).__name__}.new_key_id returned a malformed key id")
    return key_id


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
        """Create or replace the org's legacy key hash (and its look-up digest).

        The switch survives a new hash. When another org's record already
        holds ``record.lookup_digest``, the record is stored without a digest
        (see :meth:`set_legacy_digest`).
        """

    def delete_legacy(self, org_id: str) -> bool:
        """Delete the org's legacy key; ``False`` if there was none."""

    def set_legacy_enabled(self, org_id: str, enabled: bool) -> LegacyRecord | None:
        """Switch legacy authentication on or off; ``None`` if the org has no legacy key."""

    def find_legacy(self, lookup_digest: bytes) -> LegacyRecord | None:
        """Return the legacy record whose ``lookup_digest`` is this one, or ``None``.

        An indexed look-up, never a scan. The record returned holds exactly
        this digest (a stale index entry reads as ``None``).
        """

    def set_legacy_digest(
        self, org_id: str, secret_hash: str, lookup_digest: bytes, pepper_id: str
    ) -> bool:
        """Give the org's record this look-up digest, if it still holds ``secret_hash``.

        ``False`` (writing nothing) when the org has no record, its hash
        changed meanwhile (a re-import wins), or another org's record holds
        the same digest (two orgs with one secret: Bearer cannot tell them
        apart; both keep working as Basic). No event: no credential changes.
        """

    def legacy_digest_counts(self) -> dict[str | None, int]:
        """How many legacy records hold a digest of each pepper id (``None``: no digest).

        Exact, and may read every legacy record (Redis: a ``SCAN``): for
        reports (``scout-auth legacy-pepper status``), not for every start.
        """

    def legacy_pepper_ids(self) -> frozenset[str]:
        """The pepper ids the store's digests may have been made with; cheap.

        At least the ids of every digest held now; a store may also keep
        ids it no longer holds (Redis keeps every id it ever stored). Every
        verifier asks at startup, to refuse a pepper that made none of them.
        """

    def put_role(self, role: RoleRecord) -> None:
        """Create or replace a role (publishes ``role_updated``)."""

    def get_role(self, org_id: str, name: str) -> RoleRecord | None:
        """Return one role, or ``None``."""

    def delete_role(self, org_id: str, name: str) -> bool:
        """Delete a role (publishes ``role_deleted``); ``False`` if there was none."""

    def list_roles(self, org_id: str) -> list[RoleRecord]:
        """Return the org's roles, by name."""

    def put_scope_info(self, info: ScopeInfo) -> None:
        """Create or replace one scope of the org's catalogue (``(org_id, name)``).

        No event: the catalogue describes scopes for people and changes no
        credential.
        """

    def delete_scope_info(self, org_id: str, name: str) -> bool:
        """Delete one scope from the org's catalogue; ``False`` if it was not there."""

    def list_scope_infos(self, org_id: str) -> list[ScopeInfo]:
        """Return the org's scope catalogue, by name."""

    def list_sealed_seeds(
        self, after: str | None = None, limit: int = 500
    ) -> list[tuple[str, str]]:
        """``(key_id, kek_id)`` of keys holding a sealed seed, a page at a time.

        Every org's keys, ordered by key id as the store compares ids, the
        first ``limit`` after ``after`` (``None``: from the start); pass the
        last id of a page as ``after`` for the next, until a page is shorter
        than ``limit``. For ``scout-auth vault rewrap`` and ``status``, not
        for requests: a store may read every key (Redis: a ``SCAN``).
        """

    def record_usage(
        self, key_id: str, uses: int, last_used_at: datetime, address: str | None = None
    ) -> None:
        """Add ``uses`` to the key's count and raise ``last_used_at`` to at least this.

        Atomic increment and max, so instances flushing concurrently merge
        exactly. ``address`` (normalised by the caller, at most 64
        characters, ``None``: not known) becomes ``last_used_address`` when
        ``last_used_at`` is at least the stored one, in the same atomic
        write: the address goes with the latest use. No event: usage is not
        a credential change. An unknown key is ignored.
        """

    def record_legacy_usage(self, org_id: str, uses: int, last_used_at: datetime) -> None:
        """Add ``uses`` to the org's legacy count of the UTC day of ``last_used_at``."""

    def legacy_usage(self, org_id: str, since: datetime) -> tuple[datetime | None, int]:
        """``(last legacy use ever, legacy uses on UTC days from since's day on)``."""

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

    async def aset_legacy_enabled(self, org_id: str, enabled: bool) -> LegacyRecord | None:
        """Async :meth:`set_legacy_enabled`."""

    async def afind_legacy(self, lookup_digest: bytes) -> LegacyRecord | None:
        """Async :meth:`find_legacy`."""

    async def aset_legacy_digest(
        self, org_id: str, secret_hash: str, lookup_digest: bytes, pepper_id: str
    ) -> bool:
        """Async :meth:`set_legacy_digest`."""

    async def alegacy_digest_counts(self) -> dict[str | None, int]:
        """Async :meth:`legacy_digest_counts`."""

    async def alegacy_pepper_ids(self) -> frozenset[str]:
        """Async :meth:`legacy_pepper_ids`."""

    async def aput_role(self, role: RoleRecord) -> None:
        """Async :meth:`put_role`."""

    async def aget_role(self, org_id: str, name: str) -> RoleRecord | None:
        """Async :meth:`get_role`."""

    async def adelete_role(self, org_id: str, name: str) -> bool:
        """Async :meth:`delete_role`."""

    async def alist_roles(self, org_id: str) -> list[RoleRecord]:
        """Async :meth:`list_roles`."""

    async def aput_scope_info(self, info: ScopeInfo) -> None:
        """Async :meth:`put_scope_info`."""

    async def adelete_scope_info(self, org_id: str, name: str) -> bool:
        """Async :meth:`delete_scope_info`."""

    async def alist_scope_infos(self, org_id: str) -> list[ScopeInfo]:
        """Async :meth:`list_scope_infos`."""

    async def alist_sealed_seeds(
        self, after: str | None = None, limit: int = 500
    ) -> list[tuple[str, str]]:
        """Async :meth:`list_sealed_seeds`."""

    async def arecord_usage(
        self, key_id: str, uses: int, last_used_at: datetime, address: str | None = None
    ) -> None:
        """Async :meth:`record_usage`."""

    async def arecord_legacy_usage(self, org_id: str, uses: int, last_used_at: datetime) -> None:
        """Async :meth:`record_legacy_usage`."""

    async def alegacy_usage(self, org_id: str, since: datetime) -> tuple[datetime | None, int]:
        """Async :meth:`legacy_usage`."""

    async def aclose(self) -> None:
        """Async :meth:`close`."""


class StoreEventsMixin:
    """Subscriber bookkeeping shared by store adapters: :meth:`subscribe` for a KeyStore.

    A store that mixes it in calls ``super().__init__()`` and then, after each
    write has taken effect (committed, visible to every reader):

    * ``self._publish(event)`` for its own writes, in the writing thread: a
      failing subscriber's exception reaches the writer;
    * ``self._deliver_remote(event)`` for events its change feed received
      from other processes, on the feed's thread: each subscriber is called,
      a failing one is logged and the others still run.

    Thread-safe; subscribers are called outside the lock.
    """

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
