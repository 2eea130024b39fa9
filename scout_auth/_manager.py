"""Key managers: the lifecycle operations of :mod:`._lifecycle`, driven sync or async."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
from argon2 import PasswordHasher

from . import _lifecycle as ops
from ._lifecycle import DEFAULT_ROTATION_GRACE, HashSecret, Op
from ._records import KeyRecord, LegacyRecord, NewKey
from .stores._base import KeyStore, KeyUpdate

__all__ = ["AsyncKeyManager", "KeyManager"]


class _BaseManager:
    def __init__(
        self,
        store: KeyStore,
        *,
        password_hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._hasher = password_hasher or PasswordHasher()
        self._clock = clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self.store!r})"


class KeyManager(_BaseManager):
    """Create, list, rename, enable, disable, rotate and delete Org Credentials.

    Args:
        store: Any :class:`~scout_auth.stores.KeyStore`.
        password_hasher: argon2 hasher for legacy secrets (default: argon2id,
            RFC 9106 low-memory profile).
        clock: POSIX time source (for tests).

    Example:
        >>> from scout_auth import InMemoryKeyStore, KeyManager
        >>> manager = KeyManager(InMemoryKeyStore())
        >>> new = manager.create_key("org_1", "billing-sync prod", scopes=["drive:read"])
        >>> new.token.startswith("scout_sk_")  # shown once: hand it to the client now
        True

    Every method raises :class:`~scout_auth.exceptions.KeyNotFound` for an
    unknown id and :class:`~scout_auth.exceptions.InvalidKeyOperation` for bad
    arguments, writing nothing in either case.
    """

    def _run(self, op: Op) -> Any:
        try:
            need = next(op)
            while True:
                if isinstance(need, HashSecret):
                    answer: Any = self._hasher.hash(need.secret)
                else:
                    answer = getattr(self.store, need.method)(*need.args)
                need = op.send(answer)
        except StopIteration as stop:
            return stop.value
        finally:
            op.close()

    def create_key(
        self,
        org_id: str,
        name: str,
        *,
        scopes: Iterable[str] | None = None,
        expires_at: datetime | None = None,
    ) -> NewKey:
        """Create a key for ``org_id``.

        Args:
            org_id: The owning organization.
            name: What the key is for; names like ``key1`` or ``test`` warn
                with :class:`~scout_auth.WeakKeyNameWarning`.
            scopes: Granted scopes; ``None`` (default) means unrestricted.
            expires_at: Timezone-aware expiry, or ``None``.

        Returns:
            A :class:`~scout_auth.NewKey`; its ``token`` is never shown again.
        """
        return self._run(ops.create_key(org_id, name, scopes, expires_at, self._clock()))  # type: ignore[no-any-return]

    def list_keys(self, org_id: str) -> list[KeyRecord]:
        """The org's keys, oldest first (public data only)."""
        return self._run(ops.list_keys(org_id))  # type: ignore[no-any-return]

    def get_key(self, key_id: str) -> KeyRecord:
        """One key by id."""
        return self._run(ops.get_key(key_id))  # type: ignore[no-any-return]

    def rename_key(self, key_id: str, name: str) -> KeyRecord:
        """Rename a key; returns the updated record."""
        return self._run(ops.rename_key(key_id, name))  # type: ignore[no-any-return]

    def enable_key(self, key_id: str) -> KeyRecord:
        """Re-enable a disabled key."""
        return self._run(ops.update_key(key_id, KeyUpdate(enabled=True)))  # type: ignore[no-any-return]

    def disable_key(self, key_id: str) -> KeyRecord:
        """Disable a key: requests with it get 401 ``key_disabled`` at once."""
        return self._run(ops.update_key(key_id, KeyUpdate(enabled=False)))  # type: ignore[no-any-return]

    def delete_key(self, key_id: str) -> KeyRecord:
        """Delete a key permanently; returns the deleted record."""
        return self._run(ops.delete_key(key_id))  # type: ignore[no-any-return]

    def rotate_key(self, key_id: str, *, grace: timedelta = DEFAULT_ROTATION_GRACE) -> NewKey:
        """Replace a key with a new one of the same name, scopes and expiry.

        The old key keeps working for ``grace`` (default 24 h) and then
        answers 401 ``key_expired``; ``grace=timedelta(0)`` ends it at once. A
        grace period never extends the old key's own expiry.
        """
        return self._run(ops.rotate_key(key_id, grace, self._clock()))  # type: ignore[no-any-return]

    def import_legacy_key(self, org_id: str, secret: str) -> LegacyRecord:
        """Store an org's legacy secret from the old system, as an argon2id hash only.

        Replaces any legacy secret the org had. Clients present it as HTTP
        Basic credentials ``org_id:secret``.
        """
        return self._run(ops.import_legacy_key(org_id, secret, self._clock()))  # type: ignore[no-any-return]

    def get_legacy_key(self, org_id: str) -> LegacyRecord:
        """The org's legacy record (hash only)."""
        return self._run(ops.get_legacy_key(org_id))  # type: ignore[no-any-return]

    def delete_legacy_key(self, org_id: str) -> None:
        """Delete the org's legacy secret: legacy requests then get 401."""
        self._run(ops.delete_legacy_key(org_id))


class AsyncKeyManager(_BaseManager):
    """The async twin of :class:`KeyManager`: same methods, as coroutines.

    Store calls use the store's ``a*`` methods; argon2 hashing runs in a
    worker thread.
    """

    async def _run(self, op: Op) -> Any:
        try:
            need = next(op)
            while True:
                if isinstance(need, HashSecret):
                    answer: Any = await anyio.to_thread.run_sync(self._hasher.hash, need.secret)
                else:
                    answer = await getattr(self.store, "a" + need.method)(*need.args)
                need = op.send(answer)
        except StopIteration as stop:
            return stop.value
        finally:
            op.close()

    async def create_key(
        self,
        org_id: str,
        name: str,
        *,
        scopes: Iterable[str] | None = None,
        expires_at: datetime | None = None,
    ) -> NewKey:
        """See :meth:`KeyManager.create_key`."""
        return await self._run(ops.create_key(org_id, name, scopes, expires_at, self._clock()))  # type: ignore[no-any-return]

    async def list_keys(self, org_id: str) -> list[KeyRecord]:
        """See :meth:`KeyManager.list_keys`."""
        return await self._run(ops.list_keys(org_id))  # type: ignore[no-any-return]

    async def get_key(self, key_id: str) -> KeyRecord:
        """See :meth:`KeyManager.get_key`."""
        return await self._run(ops.get_key(key_id))  # type: ignore[no-any-return]

    async def rename_key(self, key_id: str, name: str) -> KeyRecord:
        """See :meth:`KeyManager.rename_key`."""
        return await self._run(ops.rename_key(key_id, name))  # type: ignore[no-any-return]

    async def enable_key(self, key_id: str) -> KeyRecord:
        """See :meth:`KeyManager.enable_key`."""
        return await self._run(ops.update_key(key_id, KeyUpdate(enabled=True)))  # type: ignore[no-any-return]

    async def disable_key(self, key_id: str) -> KeyRecord:
        """See :meth:`KeyManager.disable_key`."""
        return await self._run(ops.update_key(key_id, KeyUpdate(enabled=False)))  # type: ignore[no-any-return]

    async def delete_key(self, key_id: str) -> KeyRecord:
        """See :meth:`KeyManager.delete_key`."""
        return await self._run(ops.delete_key(key_id))  # type: ignore[no-any-return]

    async def rotate_key(self, key_id: str, *, grace: timedelta = DEFAULT_ROTATION_GRACE) -> NewKey:
        """See :meth:`KeyManager.rotate_key`."""
        return await self._run(ops.rotate_key(key_id, grace, self._clock()))  # type: ignore[no-any-return]

    async def import_legacy_key(self, org_id: str, secret: str) -> LegacyRecord:
        """See :meth:`KeyManager.import_legacy_key`."""
        return await self._run(ops.import_legacy_key(org_id, secret, self._clock()))  # type: ignore[no-any-return]

    async def get_legacy_key(self, org_id: str) -> LegacyRecord:
        """See :meth:`KeyManager.get_legacy_key`."""
        return await self._run(ops.get_legacy_key(org_id))  # type: ignore[no-any-return]

    async def delete_legacy_key(self, org_id: str) -> None:
        """See :meth:`KeyManager.delete_legacy_key`."""
        await self._run(ops.delete_legacy_key(org_id))
