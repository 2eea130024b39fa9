"""The legacy-key half of the SQL key store's methods (issue 10), sync and async.

Legacy secrets: their argon2id hashes, the keyed look-up digests that find
an org from a secret sent as ``Bearer``, the pepper that keys them where the
database can keep one apart (SQLite: :mod:`.pepper`), and legacy usage by
UTC day. Apart from :mod:`.store` only so that each file stays small:
:class:`~.store.SQLKeyStore` is the one class that derives from it.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime
from functools import partial

from sqlalchemy import exc as sa_exc

from ..._core.records import LegacyRecord
from . import ops as ops
from .base import StoreBase
from .database import Database
from .pepper import load_or_create, pepper_file

__all__ = ["LegacyMethods"]


class LegacyMethods(StoreBase):
    """The legacy-key methods of :class:`~.store.SQLKeyStore` (see the module docstring)."""

    def __init__(self, database: Database, channel: str) -> None:
        super().__init__(database, channel)
        self._pepper: bytes | None = None
        self._pepper_lock = threading.Lock()

    def get_legacy(self, org_id: str) -> LegacyRecord | None:
        """Return the org's legacy key hash, or ``None``."""
        return self._read(partial(ops.get_legacy, org_id))

    def put_legacy(self, record: LegacyRecord) -> None:
        """Create or replace the org's legacy key hash and its look-up digest, atomically.

        A digest another org holds is not stored: the record gets none (see
        :meth:`KeyStore.put_legacy <scout_auth.stores.KeyStore.put_legacy>`).
        """
        self._write(partial(ops.put_legacy, record), rerun_on_conflict=True)

    def delete_legacy(self, org_id: str) -> bool:
        """Delete the org's legacy key; ``False`` if there was none."""
        return self._write(partial(ops.delete_legacy, org_id))

    def set_legacy_enabled(self, org_id: str, enabled: bool) -> LegacyRecord | None:
        """Switch legacy auth on or off for one org; ``None`` without a legacy key."""
        return self._write(partial(ops.set_legacy_enabled, org_id, enabled))

    def find_legacy(self, lookup_digest: bytes) -> LegacyRecord | None:
        """The legacy record holding ``lookup_digest``, or ``None`` (one unique-index look-up)."""
        return self._read(partial(ops.find_legacy, bytes(lookup_digest)))

    def set_legacy_digest(
        self, org_id: str, secret_hash: str, lookup_digest: bytes, pepper_id: str
    ) -> bool:
        """Give the org's record this digest if it still holds ``secret_hash`` (no event).

        ``False``, writing nothing, when the org has no record, its hash
        changed, or another org holds the digest (see
        :meth:`KeyStore.set_legacy_digest <scout_auth.stores.KeyStore.set_legacy_digest>`).
        """
        op = partial(ops.set_legacy_digest, org_id, secret_hash, bytes(lookup_digest), pepper_id)
        try:
            return self._write(op, rerun_on_conflict=True)
        except ValueError as exc:
            if _unique_violation(exc):  # still lost after the reruns: another org has it
                return False
            raise

    def legacy_digest_counts(self) -> dict[str | None, int]:
        """How many legacy records hold a digest of each pepper id (``None``: no digest)."""
        return self._read(ops.legacy_digest_counts)

    def legacy_pepper_ids(self) -> frozenset[str]:
        """The pepper ids of the digests held now (one ``SELECT DISTINCT``)."""
        return self._read(ops.legacy_pepper_ids)

    def embedded_legacy_pepper(self) -> bytes | None:
        """A pepper for legacy look-up digests kept outside the database, where one can be.

        The digests are only as safe as the pepper is far from them: a pepper
        stored in the database would make a dump of it test guesses at HMAC
        speed. So:

        * a SQLite file: 32 random bytes in ``<database path>.legacy-pepper``
          (mode 0600), made atomically by the first store that needs it and
          read by every later one. A copy of the database file alone (a
          backup, an ``.dump``) then tests guesses only through argon2id.
          Keep the pepper file out of database backups; back it up
          separately, or digests stop matching after a restore (they are
          made again as each org's secret is next used).
        * in-memory SQLite: a random pepper of this store object, which lives
          and dies with it, like the data.
        * PostgreSQL and MariaDB: ``None``. Several hosts share the database
          and no file is beside it; production configures the pepper in
          ``$SCOUT_AUTH_LEGACY_PEPPER`` (:class:`~scout_auth.LegacyPepper`).

        Raises:
            ConfigurationError: The pepper file exists but is too short.
        """
        url = self.database.url
        if url.get_backend_name() != "sqlite":
            return None
        with self._pepper_lock:
            if self._pepper is None:
                path = pepper_file(url)
                self._pepper = secrets.token_bytes(32) if path is None else load_or_create(path)
            return self._pepper

    def record_legacy_usage(self, org_id: str, uses: int, last_used_at: datetime) -> None:
        """Add ``uses`` to the org's legacy bucket of that UTC day (one upsert)."""
        self._write(partial(ops.record_legacy_usage, org_id, uses, last_used_at))

    def legacy_usage(self, org_id: str, since: datetime) -> tuple[datetime | None, int]:
        """``(last legacy use, legacy uses on UTC days from since's day on)``."""
        return self._read(partial(ops.legacy_usage, org_id, since))

    # -- async ----------------------------------------------------------
    async def aget_legacy(self, org_id: str) -> LegacyRecord | None:
        """Async :meth:`get_legacy`."""
        return await self._aread(partial(ops.get_legacy, org_id))

    async def aput_legacy(self, record: LegacyRecord) -> None:
        """Async :meth:`put_legacy`."""
        await self._awrite(partial(ops.put_legacy, record), rerun_on_conflict=True)

    async def adelete_legacy(self, org_id: str) -> bool:
        """Async :meth:`delete_legacy`."""
        return await self._awrite(partial(ops.delete_legacy, org_id))

    async def aset_legacy_enabled(self, org_id: str, enabled: bool) -> LegacyRecord | None:
        """Async :meth:`set_legacy_enabled`."""
        return await self._awrite(partial(ops.set_legacy_enabled, org_id, enabled))

    async def afind_legacy(self, lookup_digest: bytes) -> LegacyRecord | None:
        """Async :meth:`find_legacy`."""
        return await self._aread(partial(ops.find_legacy, bytes(lookup_digest)))

    async def aset_legacy_digest(
        self, org_id: str, secret_hash: str, lookup_digest: bytes, pepper_id: str
    ) -> bool:
        """Async :meth:`set_legacy_digest`."""
        op = partial(ops.set_legacy_digest, org_id, secret_hash, bytes(lookup_digest), pepper_id)
        try:
            return await self._awrite(op, rerun_on_conflict=True)
        except ValueError as exc:
            if _unique_violation(exc):
                return False
            raise

    async def alegacy_digest_counts(self) -> dict[str | None, int]:
        """Async :meth:`legacy_digest_counts`."""
        return await self._aread(ops.legacy_digest_counts)

    async def alegacy_pepper_ids(self) -> frozenset[str]:
        """Async :meth:`legacy_pepper_ids`."""
        return await self._aread(ops.legacy_pepper_ids)

    async def arecord_legacy_usage(self, org_id: str, uses: int, last_used_at: datetime) -> None:
        """Async :meth:`record_legacy_usage`."""
        await self._awrite(partial(ops.record_legacy_usage, org_id, uses, last_used_at))

    async def alegacy_usage(self, org_id: str, since: datetime) -> tuple[datetime | None, int]:
        """Async :meth:`legacy_usage`."""
        return await self._aread(partial(ops.legacy_usage, org_id, since))


def _unique_violation(exc: ValueError) -> bool:
    # What translate() made of an IntegrityError. The digest UPDATE touches no
    # other constraint, and the org's own row cannot collide with itself.
    return isinstance(exc.__cause__, sa_exc.IntegrityError)
