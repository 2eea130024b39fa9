"""Key managers: the lifecycle operations of :mod:`.._core.lifecycle`, driven sync or async."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Literal, TypeVar

import anyio.to_thread
from argon2 import PasswordHasher

from .._audit.events import AuditEvent, AuditSink, event_json
from .._core import catalogue
from .._core import lifecycle as ops
from .._core.drive import adrive, drive
from .._core.leaked import LeakPolicy, report_leak
from .._core.lifecycle import (
    ASYNC_NAMES,
    DEFAULT_ROTATION_GRACE,
    Audit,
    HashSecret,
    KeyIdFor,
    LifecycleNeed,
    Op,
    VaultCall,
)
from .._core.pepper import LegacyPepper, missing_pepper_error, resolve_pepper
from .._core.policy import LifetimePolicy, PolicyFor
from .._core.records import (
    KeyList,
    KeyRecord,
    LegacyRecord,
    LegacyStatus,
    NewKey,
    RoleRecord,
    ScopeInfo,
)
from .._core.report import KeyReport, key_report
from .._core.store import KEEP, KeyStore, _Keep, new_key_id
from .._core.vault import KeyVault, RewrapReport
from ..exceptions import StoreError, StoreUnavailable, VaultError
from .audit_buffer import AuditBuffer

__all__ = ["AsyncKeyManager", "KeyManager", "LifetimePolicySource"]

#: ``lifetime_policy=``: one policy for every org, or ``org_id -> policy | None``
#: (the async manager also awaits an async callable).
LifetimePolicySource = (
    LifetimePolicy
    | Callable[[str], "LifetimePolicy | Awaitable[LifetimePolicy | None] | None"]
    | None
)

audit_logger = logging.getLogger("scout_auth.audit")


R = TypeVar("R")


def _management_error(exc: StoreUnavailable) -> StoreError:
    # The store speaks for verification (StoreUnavailable is an AuthError); a
    # management call that meets an outage is no authentication failure.
    detail = None if exc.detail == exc.title else exc.detail  # not "Authentication …"
    return StoreError(detail, retry_after=exc.retry_after)


class _BaseManager:
    def __init__(
        self,
        store: KeyStore,
        *,
        audit: AuditSink | AuditBuffer | None = None,
        password_hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
        legacy_pepper: LegacyPepper | str | bytes | None = None,
        legacy_bearer: bool = True,
        vault: KeyVault | None = None,
        lifetime_policy: LifetimePolicySource = None,
    ) -> None:
        if vault is not None and not isinstance(vault, KeyVault):
            raise TypeError("vault must be a KeyVault or None")
        if lifetime_policy is not None and not (
            isinstance(lifetime_policy, LifetimePolicy) or callable(lifetime_policy)
        ):
            raise TypeError("lifetime_policy must be a LifetimePolicy, a callable or None")
        self.lifetime_policy = lifetime_policy
        self.store = store
        self.audit = audit
        self.vault = vault
        self._hasher = password_hasher or PasswordHasher()
        self._clock = clock
        # Only import_legacy_key needs it: a manager that never imports one
        # starts without a pepper (a missing one is raised there, not here).
        self.legacy_pepper = resolve_pepper(store, legacy_pepper, legacy_bearer)
        self._legacy_bearer = legacy_bearer

    def _pepper(self) -> LegacyPepper | None:
        """The pepper an import digests with; raises when one is needed and missing."""
        if self.legacy_pepper is None and self._legacy_bearer:
            raise missing_pepper_error(self.store)
        return self.legacy_pepper

    def __repr__(self) -> str:
        vault = "" if self.vault is None else f", vault={self.vault!r}"
        return f"{type(self).__name__}(store={self.store!r}, audit={self.audit!r}{vault})"

    def _vault_call(self, need: VaultCall) -> object:
        vault = self.vault
        assert vault is not None  # the ops check before they ask
        if need.action == "seal":
            return vault.seal(need.seed, key_id=need.key_id, org_id=need.org_id)
        assert need.sealed is not None
        if need.action == "unseal":
            return vault.unseal(need.sealed, key_id=need.key_id, org_id=need.org_id)
        try:
            return vault.rewrap(need.sealed)
        except VaultError as exc:  # answered: see VaultCall
            return exc

    def _policy(self, need: PolicyFor) -> object:
        source = self.lifetime_policy
        if source is None or isinstance(source, LifetimePolicy):
            return source
        return source(need.org_id)

    def _current_kek_id(self) -> str:
        if self.vault is None:
            raise ops._no_vault("a vault rewrap")
        return self.vault.current_kek_id

    def _audit_failed(self, event: AuditEvent) -> None:
        # The change is committed: failing the call now would hide that (and
        # lose a new token). Log the event in full instead, so it is not lost.
        audit_logger.error(
            "audit sink failed; event not stored: %s", event_json(event), exc_info=True
        )


class KeyManager(_BaseManager):
    """Create, list, rename, enable, disable, rotate and delete Org Credentials.

    Args:
        store: Any :class:`~scout_auth.stores.KeyStore`.
        audit: Where each successful change goes as one
            :class:`~scout_auth.audit.AuditEvent`: an
            :class:`~scout_auth.audit.AuditBuffer` (recorded, written in the
            background) or an :class:`~scout_auth.audit.AuditSink` (written
            before the method returns; a sink failure is logged, not raised,
            because the change itself is done). ``None``: no audit trail.
        password_hasher: argon2 hasher for legacy secrets (default: argon2id,
            RFC 9106 low-memory profile).
        clock: POSIX time source (for tests).
        legacy_pepper: The pepper of legacy look-up digests, as for
            :class:`~scout_auth.Verifier` (default ``$SCOUT_AUTH_LEGACY_PEPPER``,
            else the store's own for in-memory and SQLite stores). Every
            manager and verifier of one store must use the same.
        legacy_bearer: ``False``: imported legacy secrets get no look-up
            digest (Basic only) and no pepper is needed.
        vault: A :class:`~scout_auth.KeyVault` that seals the private key of
            keys created with ``recoverable=True``, so :meth:`reveal_key`
            can show it again (docs/vault.md). ``None`` (default): every
            token is shown once and only the public key is stored.
        lifetime_policy: Each org's :class:`~scout_auth.LifetimePolicy`
            (require an expiry, a maximum lifetime, a default expiry): one
            for every org, or a callable ``org_id -> LifetimePolicy | None``
            over wherever the host keeps org settings (called once per
            create, rotate or expiry change: keep it quick). ``create_key``,
            ``rotate_key`` and expiry changes that break it raise
            :class:`~scout_auth.exceptions.InvalidKeyOperation`; existing
            keys are not changed (docs/leaked-keys.md).

    Example:
        >>> from scout_auth import InMemoryKeyStore, KeyManager
        >>> manager = KeyManager(InMemoryKeyStore())
        >>> new = manager.create_key("org_1", "billing-sync prod", scopes=["drive:read"])
        >>> new.token.startswith("scout_sk_")  # shown once: hand it to the client now
        True

    Every method raises :class:`~scout_auth.exceptions.KeyNotFound` for an
    unknown id and :class:`~scout_auth.exceptions.InvalidKeyOperation` for bad
    arguments, writing nothing in either case (and recording no audit event).
    Every method that changes something takes ``actor=``: who did it, as
    your application names them (an email, a user id, ``"cli"``); it goes
    into the audit event.
    """

    def _record(self, event: AuditEvent) -> None:
        if self.audit is None:
            return
        if isinstance(self.audit, AuditBuffer):
            self.audit.record(event)
            return
        try:
            self.audit.write([event])
        except Exception:
            self._audit_failed(event)

    def _run(self, op: Op[R]) -> R:
        return drive(op, self._perform)

    def _perform(self, need: LifecycleNeed) -> object:
        if isinstance(need, HashSecret):
            return self._hasher.hash(need.secret)
        if isinstance(need, Audit):
            self._record(need.event)
            return None
        if isinstance(need, VaultCall):
            return self._vault_call(need)
        if isinstance(need, PolicyFor):
            return self._policy(need)
        if isinstance(need, KeyIdFor):
            return new_key_id(self.store, need.org_id)
        try:
            return getattr(self.store, need.method)(*need.args)
        except StoreUnavailable as exc:
            raise _management_error(exc) from exc

    def create_key(
        self,
        org_id: str,
        name: str,
        *,
        scopes: Iterable[str] | None = None,
        expires_at: datetime | None = None,
        roles: Iterable[str] | None = None,
        allowed_ips: Iterable[str] | None = None,
        description: str = "",
        recoverable: bool = False,
        actor: str | None = None,
    ) -> NewKey:
        """Create a key for ``org_id``.

        Args:
            org_id: The owning organization.
            name: What the key is for; names like ``key1`` or ``test`` warn
                with :class:`~scout_auth.WeakKeyNameWarning`.
            scopes: Granted scopes (``drive:read``, ``drive:*``). A key with
                neither scopes nor roles (the default) is unrestricted.
            expires_at: Timezone-aware expiry, or ``None``.
            roles: Names of org roles (:meth:`put_role`) whose scopes the
                key also grants; a role's later changes apply at once.
            allowed_ips: Addresses / CIDR ranges (IPv4, IPv6) the key may be
                used from; ``None`` (default): anywhere.
            description: What the key is for, for people: at most 1000
                characters, line breaks and tabs allowed, no other control
                characters. Never put a secret in it: it is shown wherever
                the key is listed.
            recoverable: ``True``: the manager's vault seals the private
                key into the store with it, so :meth:`reveal_key` can show
                the token again. Off by default: the strongest key is one
                whose private half exists only with the client.
            actor: Who creates it (for the audit trail); stored as the
                key's ``created_by``.

        Returns:
            A :class:`~scout_auth.NewKey`; its ``token`` is never shown again
            (unless ``recoverable``).

        Raises:
            ConfigurationError: ``recoverable=True`` and no ``vault``.
        """
        op = ops.create_key(
            org_id,
            name,
            scopes,
            expires_at,
            self._clock(),
            actor,
            roles,
            allowed_ips,
            description,
            recoverable,
            self.vault is not None,
        )
        return self._run(op)

    def list_keys(self, org_id: str, *, legacy_days: int = 30) -> KeyList:
        """The org's keys, oldest first, and the org's legacy usage.

        Keys carry public data only, with ``last_used_at`` and ``use_count``
        (written by verifiers in the background, so up to their
        ``usage_interval`` behind).

        Args:
            org_id: The organization.
            legacy_days: The window of ``legacy.requests``, in UTC days
                (today included), as for :meth:`legacy_status`.

        Returns:
            A :class:`~scout_auth.KeyList`: a list of
            :class:`~scout_auth.KeyRecord` whose ``legacy`` is the org's
            :class:`~scout_auth.LegacyStatus`.
        """
        return self._run(ops.list_keys(org_id, legacy_days, self._clock()))

    def get_key(self, key_id: str) -> KeyRecord:
        """One key by id."""
        return self._run(ops.get_key(key_id))

    def rename_key(self, key_id: str, name: str, *, actor: str | None = None) -> KeyRecord:
        """Rename a key; returns the updated record."""
        return self._run(ops.rename_key(key_id, name, self._clock(), actor))

    def enable_key(self, key_id: str, *, actor: str | None = None) -> KeyRecord:
        """Re-enable a disabled key."""
        return self._run(ops.set_enabled(key_id, True, self._clock(), actor))

    def disable_key(self, key_id: str, *, actor: str | None = None) -> KeyRecord:
        """Disable a key: requests with it get 401 ``key_disabled`` at once."""
        return self._run(ops.set_enabled(key_id, False, self._clock(), actor))

    def delete_key(self, key_id: str, *, actor: str | None = None) -> KeyRecord:
        """Delete a key permanently; returns the deleted record."""
        return self._run(ops.delete_key(key_id, self._clock(), actor))

    def key_report(
        self, org_id: str, *, expiring_days: int = 14, unused_days: int = 30
    ) -> KeyReport:
        """The org's keys that need attention: expiring soon, unused, old halves still used.

        Also the keys that break the org's ``lifetime_policy`` (made before
        it). One read of the org's keys; nothing is written.

        Args:
            org_id: The organization.
            expiring_days: Keys expiring within this many days (1 to 3660).
            unused_days: Keys not used for this many days (1 to 3660).
        """
        return self._run(key_report(org_id, self._clock(), expiring_days, unused_days))

    def report_leak(
        self,
        token: str,
        *,
        url: str | None = None,
        actor: str | None = None,
        on_report: LeakPolicy = "disable",
    ) -> KeyRecord | None:
        """Stop the key whose token was found exposed (a secret scanner's report).

        The token's format and checksum are checked offline, and its seed
        must be the key's own (a real key id with another seed is a
        forgery and changes nothing). A real key is disabled at once, or
        deleted with ``on_report="delete"``; the audit trail gets a
        ``leaked`` event (``path``: ``url``) and then ``disabled`` /
        ``deleted``. Verifiers see it like any disable: through the
        store's change feed, within their revocation bound.

        Args:
            token: The raw token as the scanner found it.
            url: Where it was found (kept query-less and redacted).
            actor: Who reports it (``secret-scanner:github``).
            on_report: ``"disable"`` (default) or ``"delete"``.

        Returns:
            The key's record after the change, or ``None`` when the token is
            malformed or no real key's (nothing written, nothing recorded).
        """
        return self._run(
            report_leak(token, self._clock(), url=url, actor=actor, on_report=on_report)
        )

    def rotate_key(
        self,
        key_id: str,
        *,
        grace: timedelta = DEFAULT_ROTATION_GRACE,
        recoverable: bool | None = None,
        actor: str | None = None,
    ) -> NewKey:
        """Replace a key with a new one of the same name, description, scopes,
        roles, IP allowlist and expiry; its ``created_by`` is ``actor``.

        The old key keeps working for ``grace`` (default 24 h) and then
        answers 401 ``key_expired``; ``grace=timedelta(0)`` ends it at once. A
        grace period never extends the old key's own expiry.

        ``recoverable=None`` (default) keeps the old key's recoverability: a
        recoverable key's successor is sealed too, if this manager has a
        vault (without one it is not, and a warning is logged); ``True`` /
        ``False`` choose (``True`` needs a vault: ``ConfigurationError``).
        """
        op = ops.rotate_key(
            key_id, grace, self._clock(), actor, recoverable, self.vault is not None
        )
        return self._run(op)

    def reveal_key(self, key_id: str, *, actor: str | None = None) -> str:
        """The token of a key created with ``recoverable=True``, opened by the vault.

        Records a ``revealed`` audit event (who: ``actor``). Works for any
        recoverable key, disabled, expired or in its rotation grace period
        too; the store and the verifiers see no change.

        Raises:
            KeyNotFound: No such key.
            KeyNotRecoverable: The key was created without
                ``recoverable=True``: it can never be revealed (an HTTP API
                answers 409).
            VaultError: The sealed seed does not open: its KEK is not
                configured, another KEK has its id, or it was changed.
            ConfigurationError: This manager has no vault.
        """
        return self._run(ops.reveal_key(key_id, self._clock(), actor, self.vault is not None))

    def vault_status(self) -> dict[str, int]:
        """How many recoverable keys each KEK id wraps (reads every sealed key's id).

        Needs no vault: the ids are public. A KEK id here that the vault
        does not know (:meth:`KeyVault.knows`) is a key that cannot be revealed.
        """
        return self._run(ops.vault_status())

    def rewrap_vault(self) -> RewrapReport:
        """Re-wrap every sealed data key not under the vault's current KEK.

        The seeds' ciphertexts stay; each key's wrapped data key is replaced
        in one store write. Idempotent: run it after adding a new current
        KEK, and remove the old KEK once :meth:`vault_status` shows none
        left under it. Keys that do not open are named in the report, not raised.

        Raises:
            ConfigurationError: This manager has no vault.
        """
        return self._run(ops.rewrap_vault(self._current_kek_id()))

    def import_legacy_key(
        self, org_id: str, secret: str, *, actor: str | None = None
    ) -> LegacyRecord:
        """Store an org's legacy secret from the old system, as an argon2id hash only.

        Replaces any legacy secret the org had. Clients present it as
        ``Bearer <secret>`` (found through its peppered look-up digest) or as
        HTTP Basic credentials ``org_id:secret``.

        Raises:
            ConfigurationError: A shared store and no legacy pepper (see
                :class:`~scout_auth.LegacyPepper`), unless the manager was
                made with ``legacy_bearer=False``.
            InvalidKeyOperation: An empty secret, or one that starts with
                ``scout_sk_`` (it would be read as an Org Credential).
        """
        op = ops.import_legacy_key(org_id, secret, self._clock(), actor, self._pepper())
        return self._run(op)

    def get_legacy_key(self, org_id: str) -> LegacyRecord:
        """The org's legacy record (hash only)."""
        return self._run(ops.get_legacy_key(org_id))

    def delete_legacy_key(self, org_id: str, *, actor: str | None = None) -> None:
        """Delete the org's legacy secret: legacy requests then get 401."""
        self._run(ops.delete_legacy_key(org_id, self._clock(), actor))

    def set_scopes(
        self, key_id: str, scopes: Iterable[str] | None, *, actor: str | None = None
    ) -> KeyRecord:
        """Replace a key's own scopes (``None``: none of its own; with no roles, unrestricted)."""
        return self._run(ops.set_scopes(key_id, scopes, self._clock(), actor))

    def set_roles(
        self, key_id: str, roles: Iterable[str], *, actor: str | None = None
    ) -> KeyRecord:
        """Replace the roles a key references (``[]``: none)."""
        return self._run(ops.set_roles(key_id, roles, self._clock(), actor))

    def set_allowed_ips(
        self, key_id: str, allowed_ips: Iterable[str] | None, *, actor: str | None = None
    ) -> KeyRecord:
        """Replace a key's IP allowlist (``None``: usable from anywhere)."""
        return self._run(ops.set_allowed_ips(key_id, allowed_ips, self._clock(), actor))

    def update_key(
        self,
        key_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        scopes: Iterable[str] | Literal[_Keep.KEEP] | None = KEEP,
        roles: Iterable[str] | None = None,
        allowed_ips: Iterable[str] | Literal[_Keep.KEEP] | None = KEEP,
        expires_at: datetime | Literal[_Keep.KEEP] | None = KEEP,
        enabled: bool | None = None,
        actor: str | None = None,
    ) -> KeyRecord:
        """Change several fields of a key at once, in one atomic store write.

        Each argument left at its default keeps its field; ``None`` clears
        ``scopes`` (no scopes of its own), ``allowed_ips`` (anywhere) and
        ``expires_at`` (never expires), which therefore default to
        :data:`~scout_auth.stores.KEEP`. Every value is checked as by the
        single-field methods before anything is written; the audit trail
        gets one event per field that changed (``renamed``,
        ``description_changed``, ``enabled`` / ``disabled``,
        ``scopes_changed``, ``roles_changed``, ``allowed_ips_changed``,
        ``expiry_changed``). An update that changes nothing writes and
        records nothing and returns the key as it is.

        Args:
            key_id: The key.
            name: A new name (see :meth:`create_key`).
            description: A new description (``""``: none).
            scopes: The key's own scopes (see :meth:`set_scopes`).
            roles: The roles it references (``[]``: none).
            allowed_ips: Its IP allowlist (see :meth:`set_allowed_ips`).
            expires_at: A timezone-aware time in the future, or ``None``.
                Refused for a key in its rotation grace period
                (``replaced_by`` set): its expiry is that grace.
            enabled: ``True`` / ``False`` to enable / disable it.
            actor: Who changes it (for the audit trail).

        Returns:
            The key as stored after the update.

        Raises:
            KeyNotFound: No such key (nothing written).
            InvalidKeyOperation: Any bad value (nothing written).
        """
        op = ops.change_key(
            key_id,
            self._clock(),
            actor,
            name=name,
            description=description,
            scopes=scopes,
            roles=roles,
            allowed_ips=allowed_ips,
            expires_at=expires_at,
            enabled=enabled,
        )
        return self._run(op)

    def set_description(
        self, key_id: str, description: str, *, actor: str | None = None
    ) -> KeyRecord:
        """Replace a key's description (``""``: none); see :meth:`update_key`."""
        op = ops.set_description(key_id, description, self._clock(), actor)
        return self._run(op)

    def set_expiry(
        self, key_id: str, expires_at: datetime | None, *, actor: str | None = None
    ) -> KeyRecord:
        """Move a key's expiry (``None``: never expires); see :meth:`update_key`."""
        op = ops.change_key(key_id, self._clock(), actor, expires_at=expires_at)
        return self._run(op)

    def publish_scope(
        self, org_id: str, name: str, description: str, *, actor: str | None = None
    ) -> ScopeInfo:
        """Publish a scope in the org's catalogue, or replace its description.

        The catalogue is what a key-creation form offers as a picker; it
        grants nothing and changes no key.

        Args:
            org_id: The organization.
            name: The scope (``drive:read``), as :meth:`create_key` takes
                scopes, without ``*``.
            description: What it allows, for people: at most 500
                characters, line breaks and tabs allowed.
            actor: Who publishes it (for the audit trail).
        """
        op = catalogue.publish_scope(org_id, name, description, self._clock(), actor)
        return self._run(op)

    def unpublish_scope(self, org_id: str, name: str, *, actor: str | None = None) -> None:
        """Remove a scope from the catalogue (``KeyNotFound`` if absent); keys keep it."""
        self._run(catalogue.unpublish_scope(org_id, name, self._clock(), actor))

    def list_scope_catalogue(self, org_id: str) -> list[ScopeInfo]:
        """The org's published scopes, by name."""
        return self._run(catalogue.list_scope_catalogue(org_id))

    def put_role(
        self, org_id: str, name: str, scopes: Iterable[str], *, actor: str | None = None
    ) -> RoleRecord:
        """Create or replace an org role; every key using it changes at once."""
        return self._run(ops.put_role(org_id, name, scopes, self._clock(), actor))

    def get_role(self, org_id: str, name: str) -> RoleRecord:
        """One role (``KeyNotFound`` if absent)."""
        return self._run(ops.get_role(org_id, name))

    def list_roles(self, org_id: str) -> list[RoleRecord]:
        """The org's roles, by name."""
        return self._run(ops.list_roles(org_id))

    def delete_role(self, org_id: str, name: str, *, actor: str | None = None) -> None:
        """Delete a role: keys referencing it lose its scopes at once."""
        self._run(ops.delete_role(org_id, name, self._clock(), actor))

    def legacy_status(self, org_id: str, days: int = 30) -> LegacyStatus:
        """Where an org stands in its migration off the legacy secret.

        ``requests`` counts legacy requests on the last ``days`` UTC days
        (today included), as flushed by verifiers in the background.
        """
        return self._run(ops.legacy_status(org_id, days, self._clock()))

    def disable_legacy(self, org_id: str, *, actor: str | None = None) -> LegacyRecord:
        """Turn legacy auth off for one org: its legacy requests get 401 ``legacy_disabled``."""
        return self._run(ops.set_legacy_enabled(org_id, False, self._clock(), actor))

    def enable_legacy(self, org_id: str, *, actor: str | None = None) -> LegacyRecord:
        """Turn legacy auth back on for one org."""
        return self._run(ops.set_legacy_enabled(org_id, True, self._clock(), actor))


class AsyncKeyManager(_BaseManager):
    """The async twin of :class:`KeyManager`: same methods, as coroutines.

    Store calls use the store's ``a*`` methods; argon2 hashing, and a
    vault's KMS callbacks, run in a worker thread.
    """

    async def _record(self, event: AuditEvent) -> None:
        if self.audit is None:
            return
        if isinstance(self.audit, AuditBuffer):
            self.audit.record(event)
            return
        try:
            await self.audit.awrite([event])
        except Exception:
            self._audit_failed(event)

    async def _run(self, op: Op[R]) -> R:
        return await adrive(op, self._perform)

    async def _perform(self, need: LifecycleNeed) -> object:
        if isinstance(need, HashSecret):
            return await anyio.to_thread.run_sync(self._hasher.hash, need.secret)
        if isinstance(need, Audit):
            await self._record(need.event)
            return None
        if isinstance(need, VaultCall):
            if self.vault is not None and self.vault.blocking:  # a KMS round trip
                return await anyio.to_thread.run_sync(self._vault_call, need)
            return self._vault_call(need)
        if isinstance(need, PolicyFor):
            policy = self._policy(need)
            return await policy if inspect.isawaitable(policy) else policy
        if isinstance(need, KeyIdFor):  # pure computation: no thread
            return new_key_id(self.store, need.org_id)
        try:
            return await getattr(self.store, ASYNC_NAMES[need.method])(*need.args)
        except StoreUnavailable as exc:
            raise _management_error(exc) from exc

    async def create_key(
        self,
        org_id: str,
        name: str,
        *,
        scopes: Iterable[str] | None = None,
        expires_at: datetime | None = None,
        roles: Iterable[str] | None = None,
        allowed_ips: Iterable[str] | None = None,
        description: str = "",
        recoverable: bool = False,
        actor: str | None = None,
    ) -> NewKey:
        """See :meth:`KeyManager.create_key`."""
        op = ops.create_key(
            org_id,
            name,
            scopes,
            expires_at,
            self._clock(),
            actor,
            roles,
            allowed_ips,
            description,
            recoverable,
            self.vault is not None,
        )
        return await self._run(op)

    async def list_keys(self, org_id: str, *, legacy_days: int = 30) -> KeyList:
        """See :meth:`KeyManager.list_keys`."""
        return await self._run(ops.list_keys(org_id, legacy_days, self._clock()))

    async def get_key(self, key_id: str) -> KeyRecord:
        """See :meth:`KeyManager.get_key`."""
        return await self._run(ops.get_key(key_id))

    async def rename_key(self, key_id: str, name: str, *, actor: str | None = None) -> KeyRecord:
        """See :meth:`KeyManager.rename_key`."""
        return await self._run(ops.rename_key(key_id, name, self._clock(), actor))

    async def enable_key(self, key_id: str, *, actor: str | None = None) -> KeyRecord:
        """See :meth:`KeyManager.enable_key`."""
        return await self._run(ops.set_enabled(key_id, True, self._clock(), actor))

    async def disable_key(self, key_id: str, *, actor: str | None = None) -> KeyRecord:
        """See :meth:`KeyManager.disable_key`."""
        return await self._run(ops.set_enabled(key_id, False, self._clock(), actor))

    async def delete_key(self, key_id: str, *, actor: str | None = None) -> KeyRecord:
        """See :meth:`KeyManager.delete_key`."""
        return await self._run(ops.delete_key(key_id, self._clock(), actor))

    async def key_report(
        self, org_id: str, *, expiring_days: int = 14, unused_days: int = 30
    ) -> KeyReport:
        """See :meth:`KeyManager.key_report`."""
        return await self._run(key_report(org_id, self._clock(), expiring_days, unused_days))

    async def report_leak(
        self,
        token: str,
        *,
        url: str | None = None,
        actor: str | None = None,
        on_report: LeakPolicy = "disable",
    ) -> KeyRecord | None:
        """See :meth:`KeyManager.report_leak`."""
        op = report_leak(token, self._clock(), url=url, actor=actor, on_report=on_report)
        return await self._run(op)

    async def rotate_key(
        self,
        key_id: str,
        *,
        grace: timedelta = DEFAULT_ROTATION_GRACE,
        recoverable: bool | None = None,
        actor: str | None = None,
    ) -> NewKey:
        """See :meth:`KeyManager.rotate_key`."""
        op = ops.rotate_key(
            key_id, grace, self._clock(), actor, recoverable, self.vault is not None
        )
        return await self._run(op)

    async def reveal_key(self, key_id: str, *, actor: str | None = None) -> str:
        """See :meth:`KeyManager.reveal_key` (a KMS callback runs in a worker thread)."""
        op = ops.reveal_key(key_id, self._clock(), actor, self.vault is not None)
        return await self._run(op)

    async def vault_status(self) -> dict[str, int]:
        """See :meth:`KeyManager.vault_status`."""
        return await self._run(ops.vault_status())

    async def rewrap_vault(self) -> RewrapReport:
        """See :meth:`KeyManager.rewrap_vault`."""
        return await self._run(ops.rewrap_vault(self._current_kek_id()))

    async def import_legacy_key(
        self, org_id: str, secret: str, *, actor: str | None = None
    ) -> LegacyRecord:
        """See :meth:`KeyManager.import_legacy_key`."""
        op = ops.import_legacy_key(org_id, secret, self._clock(), actor, self._pepper())
        return await self._run(op)

    async def get_legacy_key(self, org_id: str) -> LegacyRecord:
        """See :meth:`KeyManager.get_legacy_key`."""
        return await self._run(ops.get_legacy_key(org_id))

    async def delete_legacy_key(self, org_id: str, *, actor: str | None = None) -> None:
        """See :meth:`KeyManager.delete_legacy_key`."""
        await self._run(ops.delete_legacy_key(org_id, self._clock(), actor))

    async def set_scopes(
        self, key_id: str, scopes: Iterable[str] | None, *, actor: str | None = None
    ) -> KeyRecord:
        """See :meth:`KeyManager.set_scopes`."""
        return await self._run(ops.set_scopes(key_id, scopes, self._clock(), actor))

    async def set_roles(
        self, key_id: str, roles: Iterable[str], *, actor: str | None = None
    ) -> KeyRecord:
        """See :meth:`KeyManager.set_roles`."""
        return await self._run(ops.set_roles(key_id, roles, self._clock(), actor))

    async def set_allowed_ips(
        self, key_id: str, allowed_ips: Iterable[str] | None, *, actor: str | None = None
    ) -> KeyRecord:
        """See :meth:`KeyManager.set_allowed_ips`."""
        return await self._run(ops.set_allowed_ips(key_id, allowed_ips, self._clock(), actor))

    async def update_key(
        self,
        key_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        scopes: Iterable[str] | Literal[_Keep.KEEP] | None = KEEP,
        roles: Iterable[str] | None = None,
        allowed_ips: Iterable[str] | Literal[_Keep.KEEP] | None = KEEP,
        expires_at: datetime | Literal[_Keep.KEEP] | None = KEEP,
        enabled: bool | None = None,
        actor: str | None = None,
    ) -> KeyRecord:
        """See :meth:`KeyManager.update_key`."""
        op = ops.change_key(
            key_id,
            self._clock(),
            actor,
            name=name,
            description=description,
            scopes=scopes,
            roles=roles,
            allowed_ips=allowed_ips,
            expires_at=expires_at,
            enabled=enabled,
        )
        return await self._run(op)

    async def set_description(
        self, key_id: str, description: str, *, actor: str | None = None
    ) -> KeyRecord:
        """See :meth:`KeyManager.set_description`."""
        op = ops.set_description(key_id, description, self._clock(), actor)
        return await self._run(op)

    async def set_expiry(
        self, key_id: str, expires_at: datetime | None, *, actor: str | None = None
    ) -> KeyRecord:
        """See :meth:`KeyManager.set_expiry`."""
        op = ops.change_key(key_id, self._clock(), actor, expires_at=expires_at)
        return await self._run(op)

    async def publish_scope(
        self, org_id: str, name: str, description: str, *, actor: str | None = None
    ) -> ScopeInfo:
        """See :meth:`KeyManager.publish_scope`."""
        op = catalogue.publish_scope(org_id, name, description, self._clock(), actor)
        return await self._run(op)

    async def unpublish_scope(self, org_id: str, name: str, *, actor: str | None = None) -> None:
        """See :meth:`KeyManager.unpublish_scope`."""
        await self._run(catalogue.unpublish_scope(org_id, name, self._clock(), actor))

    async def list_scope_catalogue(self, org_id: str) -> list[ScopeInfo]:
        """See :meth:`KeyManager.list_scope_catalogue`."""
        return await self._run(catalogue.list_scope_catalogue(org_id))

    async def put_role(
        self, org_id: str, name: str, scopes: Iterable[str], *, actor: str | None = None
    ) -> RoleRecord:
        """See :meth:`KeyManager.put_role`."""
        return await self._run(ops.put_role(org_id, name, scopes, self._clock(), actor))

    async def get_role(self, org_id: str, name: str) -> RoleRecord:
        """See :meth:`KeyManager.get_role`."""
        return await self._run(ops.get_role(org_id, name))

    async def list_roles(self, org_id: str) -> list[RoleRecord]:
        """See :meth:`KeyManager.list_roles`."""
        return await self._run(ops.list_roles(org_id))

    async def delete_role(self, org_id: str, name: str, *, actor: str | None = None) -> None:
        """See :meth:`KeyManager.delete_role`."""
        await self._run(ops.delete_role(org_id, name, self._clock(), actor))

    async def legacy_status(self, org_id: str, days: int = 30) -> LegacyStatus:
        """See :meth:`KeyManager.legacy_status`."""
        return await self._run(ops.legacy_status(org_id, days, self._clock()))

    async def disable_legacy(self, org_id: str, *, actor: str | None = None) -> LegacyRecord:
        """See :meth:`KeyManager.disable_legacy`."""
        return await self._run(ops.set_legacy_enabled(org_id, False, self._clock(), actor))

    async def enable_legacy(self, org_id: str, *, actor: str | None = None) -> LegacyRecord:
        """See :meth:`KeyManager.enable_legacy`."""
        return await self._run(ops.set_legacy_enabled(org_id, True, self._clock(), actor))
