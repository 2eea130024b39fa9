"""Key lifecycle operations, written once.

Theory of operation
-------------------
Each operation is a generator that yields what it needs done — a
:class:`StoreCall` (a store method by its sync name), a :class:`HashSecret`
(argon2, slow), a :class:`VaultCall` (seal, open or re-wrap a seed: a KMS
callback may be slow) or an :class:`Audit` (record an event) — and returns
the operation's result. :class:`KeyManager`
drives it with plain calls; :class:`AsyncKeyManager` with the store's ``a*``
twins and argon2 (and a blocking vault) in a worker thread. Validation happens before the first
yield, so a rejected call writes nothing; every write is one atomic store
call, so nothing is ever half written. An :class:`Audit` is yielded only
after the store call succeeded, once per operation that changed something:
a failed operation leaves no trace in the audit trail.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import unicodedata
import warnings
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, TypeVar, get_args

from .._audit.events import AuditAction, AuditEvent
from ..exceptions import (
    ConfigurationError,
    InvalidKeyOperation,
    KeyNotFound,
    KeyNotRecoverable,
    VaultError,
)
from .pepper import LegacyPepper
from .policy import PolicyFor, enforce
from .records import (
    KeyList,
    KeyRecord,
    LegacyRecord,
    LegacyStatus,
    NewKey,
    RoleRecord,
    SealedSeed,
)
from .store import KEEP, KeyUpdate, _Keep
from .tokens import TOKEN_PREFIX, format_token, public_key_from_seed
from .vault import RewrapReport

logger = logging.getLogger("scout_auth")

__all__ = [
    "ASYNC_NAMES",
    "DEFAULT_ROTATION_GRACE",
    "Audit",
    "HashSecret",
    "KeyIdFor",
    "LifecycleNeed",
    "Op",
    "StoreCall",
    "StoreMethod",
    "VaultCall",
    "WeakKeyNameWarning",
]

#: How long a rotated-out key keeps working unless told otherwise.
DEFAULT_ROTATION_GRACE = timedelta(hours=24)
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 1000

# Names that say nothing about what a key is for (the seed's naming guidance:
# name a key after the integration that holds it).
_WEAK_NAME = re.compile(
    r"(?:key|test|tmp|temp|default|foo|bar|baz|new|my ?key|api ?key|secret|token)[ _-]?\d*",
    re.IGNORECASE,
)


# RFC 6749 §3.3 scope-token: 1*( %x21 / %x23-5B / %x5D-7E ), so every scope
# can appear verbatim in an RFC 6750 ``scope="…"`` challenge.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class WeakKeyNameWarning(UserWarning):
    """A key name like ``key1`` or ``test`` that will not say what the key is for."""


#: The store methods a lifecycle op may call (sync names; ``ASYNC_NAMES`` maps
#: each to its ``a*`` twin), so a typo is a type error, not a runtime one.
StoreMethod = Literal[
    "add_key",
    "delete_key",
    "delete_legacy",
    "delete_role",
    "delete_scope_info",
    "get_key",
    "get_legacy",
    "get_role",
    "legacy_usage",
    "list_keys",
    "list_roles",
    "list_scope_infos",
    "list_sealed_seeds",
    "put_legacy",
    "put_role",
    "put_scope_info",
    "rotate_key",
    "set_legacy_enabled",
    "update_key",
]

#: Each store method's async twin.
ASYNC_NAMES: Final[Mapping[StoreMethod, str]] = {m: "a" + m for m in get_args(StoreMethod)}


@dataclass(frozen=True, slots=True)
class StoreCall:
    """Need: call store method ``method`` (sync name) with ``args``."""

    method: StoreMethod
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class HashSecret:
    """Need: the argon2id hash of ``secret``."""

    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Audit:
    """Need: record ``event`` in the audit trail (a no-op without one)."""

    event: AuditEvent


@dataclass(frozen=True, slots=True)
class VaultCall:
    """Need: the manager's :class:`~scout_auth.KeyVault` does ``action`` for one key.

    ``seal``: ``seed`` -> a :class:`SealedSeed`; ``unseal``: ``sealed`` -> the
    seed; ``rewrap``: ``sealed`` -> the same seed's data key under the current
    KEK, or the :class:`~scout_auth.exceptions.VaultError` it met (answered,
    not raised: one key that does not open must not stop a rewrap of the rest).
    """

    action: Literal["seal", "unseal", "rewrap"]
    key_id: str
    org_id: str
    seed: bytes = field(default=b"", repr=False)
    sealed: SealedSeed | None = None


@dataclass(frozen=True, slots=True)
class KeyIdFor:
    """Need: a fresh key id for a new key of ``org_id`` (answered by
    :func:`~.store.new_key_id`: the store's choice if it has one)."""

    org_id: str


R = TypeVar("R")

#: What a lifecycle op yields.
LifecycleNeed = StoreCall | HashSecret | VaultCall | Audit | PolicyFor | KeyIdFor

#: Key ids per page of ``list_sealed_seeds`` (rewrap, status).
SEALED_PAGE = 500

#: A lifecycle op whose result is an ``R`` (``Op[NewKey]``): the drivers run it
#: with :func:`~scout_auth._core.drive.drive`, and its type is theirs.
Op = Generator[LifecycleNeed, Any, R]


def _now(clock_value: float) -> datetime:
    return datetime.fromtimestamp(clock_value, UTC)


def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
        raise InvalidKeyOperation(f"{what} must be a non-empty string of at most 200 characters")
    # An id is written to stores and log lines as is: a NUL fails PostgreSQL,
    # CR/LF forge log lines (the same rule as for key names, check_name).
    if unprintable(value):
        raise InvalidKeyOperation(f"{what} may not contain control characters")
    return value


def check_actor(actor: str | None) -> str | None:
    """Validate the ``actor=`` of a lifecycle call (before anything is written)."""
    if actor is not None and (not isinstance(actor, str) or len(actor) > MAX_NAME_LENGTH):
        raise InvalidKeyOperation("actor must be a string of at most 200 characters, or None")
    return actor


def _audit(
    action: AuditAction, key: KeyRecord, actor: str | None, now: float, **more: str | None
) -> Audit:
    return Audit(
        AuditEvent(
            action=action,
            org_id=key.org_id,
            at=_now(now),
            key_id=key.key_id,
            key_name=key.name,
            actor=actor,
            **more,  # type: ignore[arg-type]
        )
    )


#: The weak-name rule as a pattern the keys page's script tests too (case-insensitive).
WEAK_NAME_PATTERN = _WEAK_NAME.pattern


def is_weak_name(name: str) -> bool:
    """Whether ``name`` says nothing about what a key is for (``key1``, ``test``)."""
    return bool(_WEAK_NAME.fullmatch(name.strip()))


def check_name(name: str) -> str:
    """Validate a key name; warn (not fail) on names that say nothing."""
    if not isinstance(name, str):
        raise InvalidKeyOperation("a key name is required")
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidKeyOperation("a key name is required (1 to 200 characters)")
    if unprintable(name):
        raise InvalidKeyOperation("a key name may not contain control characters")
    if _WEAK_NAME.fullmatch(name):
        warnings.warn(
            f"key name {name!r} does not say what the key is for; "
            "name it after the integration that uses it (e.g. 'billing-sync prod')",
            WeakKeyNameWarning,
            # check_name, the op, drive(), the manager's _run, its method:
            # the caller of KeyManager.create_key / rename_key is frame 6.
            stacklevel=6,
        )
    return name


def unprintable(value: str, allowed: str = "") -> bool:
    """Whether ``value`` holds a control character (C0, DEL, C1) or a lone surrogate.

    Control characters forge log lines and terminal output; no UTF-8 back
    end, page or JSON encoder can carry a lone surrogate (a page that
    renders one cannot be encoded at all). ``allowed``: exceptions (``"\n\t"``).
    """
    return any(c not in allowed and unicodedata.category(c) in ("Cc", "Cs") for c in value)


def check_description(value: str, what: str, limit: int) -> str:
    """Validate free text shown to people (a key's or a scope's description).

    At most ``limit`` characters; line breaks and tabs are fine, other
    control characters (they forge log lines and terminal output) and lone
    surrogates (no UTF-8 back end can store them) are refused.
    """
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidKeyOperation(f"{what} must be a string of at most {limit} characters")
    if unprintable(value, "\n\t"):
        raise InvalidKeyOperation(f"{what} may not contain control characters")
    return value


def _scopes(scopes: Iterable[str] | None) -> frozenset[str] | None:
    if scopes is None:
        return None
    if isinstance(scopes, str):
        raise InvalidKeyOperation("scopes must be a list of strings, not one string")
    result = frozenset(scopes)
    if any(not isinstance(s, str) or not _SCOPE_TOKEN.fullmatch(s) for s in result):
        raise InvalidKeyOperation(
            "each scope must be a non-empty string of printable ASCII without spaces, '\"' or '\\'"
        )
    return result


def _roles(roles: Iterable[str] | None) -> frozenset[str]:
    if roles is None:
        return frozenset()
    if isinstance(roles, str):
        raise InvalidKeyOperation("roles must be a list of role names, not one string")
    result = frozenset(roles)
    for role in result:
        check_role_name(role)
    return result


def check_role_name(name: str) -> str:
    """Validate a role name: a scope-like token (printable ASCII, no spaces)."""
    if not isinstance(name, str) or not _SCOPE_TOKEN.fullmatch(name) or len(name) > 200:
        raise InvalidKeyOperation(
            "a role name is 1 to 200 printable ASCII characters without spaces, '\"' or '\\'"
        )
    return name


def _allowed_ips(entries: Iterable[str] | None) -> tuple[str, ...] | None:
    if entries is None:
        return None
    if isinstance(entries, str):
        raise InvalidKeyOperation("allowed_ips must be a list of addresses or CIDR ranges")
    networks: list[str] = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            raise InvalidKeyOperation(f"not an IP address or CIDR range: {entry!r}") from None
        if str(network) not in networks:
            networks.append(str(network))
    if not networks:
        raise InvalidKeyOperation(
            "allowed_ips needs at least one range (None: from anywhere; disable a key to stop it)"
        )
    return tuple(networks)


def _new_key(
    org_id: str,
    name: str,
    scopes: frozenset[str] | None,
    expires_at: datetime | None,
    now: datetime,
    roles: frozenset[str] = frozenset(),
    allowed_ips: tuple[str, ...] | None = None,
    description: str = "",
    created_by: str | None = None,
) -> Op[tuple[NewKey, bytes]]:
    # The arguments are validated by the caller's call expression, before this yields.
    key_id: str = yield KeyIdFor(org_id)
    seed = secrets.token_bytes(32)
    record = KeyRecord(
        key_id=key_id,
        org_id=org_id,
        name=name,
        public_key=public_key_from_seed(seed),
        enabled=True,
        created_at=now,
        expires_at=expires_at,
        scopes=scopes,
        roles=roles,
        allowed_ips=allowed_ips,
        description=description,
        created_by=created_by,
    )
    return NewKey(token=format_token(key_id, seed), key=record), seed


def _no_vault(what: str) -> ConfigurationError:
    return ConfigurationError(
        f"{what} needs a KeyVault: KeyManager(store, vault=KeyVault.from_env()) with "
        "$SCOUT_AUTH_VAULT_KEKS set (docs/vault.md); without one, keys are shown once"
    )


def _sealed(new: NewKey, seed: bytes) -> Op[NewKey]:
    sealed = yield VaultCall("seal", new.key.key_id, new.key.org_id, seed=seed)
    return NewKey(token=new.token, key=new.key.evolve(sealed_seed=sealed))


def _check_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidKeyOperation("expires_at must be timezone-aware")
    return expires_at


def create_key(
    org_id: str,
    name: str,
    scopes: Iterable[str] | None,
    expires_at: datetime | None,
    now: float,
    actor: str | None = None,
    roles: Iterable[str] | None = None,
    allowed_ips: Iterable[str] | None = None,
    description: str = "",
    recoverable: bool = False,
    has_vault: bool = False,
) -> Op[NewKey]:
    if not isinstance(recoverable, bool):
        raise InvalidKeyOperation("recoverable must be True or False")
    if recoverable and not has_vault:
        raise _no_vault("create_key(recoverable=True)")
    new, seed = yield from _new_key(
        _check_id(org_id, "org_id"),
        check_name(name),
        _scopes(scopes),
        _check_expiry(expires_at),
        _now(now),
        _roles(roles),
        _allowed_ips(allowed_ips),
        check_description(description, "a key description", MAX_DESCRIPTION_LENGTH),
        check_actor(actor),
    )
    policy = yield PolicyFor(org_id)
    at = _now(now)
    expiry = enforce(policy, new.key.expires_at, created_at=at, now=at, fill_default=True)
    if expiry != new.key.expires_at:
        new = replace(new, key=replace(new.key, expires_at=expiry))
    if recoverable:
        new = yield from _sealed(new, seed)
    yield StoreCall("add_key", (new.key,))
    yield _audit(AuditAction.CREATED, new.key, actor, now)
    return new


def list_keys(org_id: str, legacy_days: int, now: float) -> Op[KeyList]:
    # legacy_status checks legacy_days before its first yield: a bad value reads nothing.
    legacy = yield from legacy_status(org_id, legacy_days, now)
    keys = yield StoreCall("list_keys", (org_id,))
    return KeyList(keys, legacy=legacy)


def get_key(key_id: str) -> Op[KeyRecord]:
    record: KeyRecord | None = yield StoreCall("get_key", (key_id,))
    if record is None:
        raise KeyNotFound(key_id)
    return record


def update_key(key_id: str, update: KeyUpdate) -> Op[KeyRecord]:
    record: KeyRecord | None = yield StoreCall("update_key", (key_id, update))
    if record is None:
        raise KeyNotFound(key_id)
    return record


def rename_key(key_id: str, name: str, now: float, actor: str | None = None) -> Op[KeyRecord]:
    update = KeyUpdate(name=check_name(name))
    check_actor(actor)
    record = yield from update_key(key_id, update)
    yield _audit(AuditAction.RENAMED, record, actor, now)
    return record


def set_enabled(key_id: str, enabled: bool, now: float, actor: str | None = None) -> Op[KeyRecord]:
    check_actor(actor)
    record = yield from update_key(key_id, KeyUpdate(enabled=enabled))
    yield _audit(AuditAction.ENABLED if enabled else AuditAction.DISABLED, record, actor, now)
    return record


def delete_key(key_id: str, now: float, actor: str | None = None) -> Op[KeyRecord]:
    check_actor(actor)
    record: KeyRecord | None = yield StoreCall("delete_key", (key_id,))
    if record is None:
        raise KeyNotFound(key_id)
    yield _audit(AuditAction.DELETED, record, actor, now)
    return record


def rotate_key(
    key_id: str,
    grace: timedelta,
    now: float,
    actor: str | None = None,
    recoverable: bool | None = None,
    has_vault: bool = False,
) -> Op[NewKey]:
    if not isinstance(grace, timedelta) or grace < timedelta(0):
        raise InvalidKeyOperation("grace must be a timedelta >= 0")
    if recoverable is not None and not isinstance(recoverable, bool):
        raise InvalidKeyOperation("recoverable must be True, False or None (as the old key)")
    if recoverable and not has_vault:
        raise _no_vault("rotate_key(recoverable=True)")
    check_actor(actor)
    old = yield from get_key(key_id)
    at = _now(now)
    if recoverable is None:
        recoverable = old.recoverable and has_vault
        if old.recoverable and not has_vault:
            logger.warning(
                "key %s is recoverable but this manager has no vault: its successor is not",
                key_id,
            )
    policy = yield PolicyFor(old.org_id)
    expiry = enforce(policy, old.expires_at, created_at=at, now=at, fill_default=True)
    new, seed = yield from _new_key(
        old.org_id,
        old.name,
        old.scopes,
        expiry,
        at,
        old.roles,
        old.allowed_ips,
        old.description,
        created_by=actor,
    )
    if recoverable:
        new = yield from _sealed(new, seed)
    updated = yield StoreCall("rotate_key", (key_id, new.key, at + grace))
    if updated is None:  # deleted meanwhile: the store wrote nothing
        raise KeyNotFound(key_id)
    yield _audit(AuditAction.ROTATED, updated, actor, now, replaced_by=new.key.key_id)
    return new


def reveal_key(key_id: str, now: float, actor: str | None, has_vault: bool) -> Op[str]:
    """The token of a recoverable key, opened by the vault; audited as ``revealed``."""
    check_actor(actor)
    if not has_vault:
        raise _no_vault("reveal_key")
    record = yield from get_key(key_id)
    if record.sealed_seed is None:
        raise KeyNotRecoverable(key_id)
    seed = yield VaultCall("unseal", record.key_id, record.org_id, sealed=record.sealed_seed)
    # The AAD binds the ciphertext to this row; this binds it to this key pair.
    if public_key_from_seed(seed) != record.public_key:
        raise VaultError(f"the sealed seed of key {key_id!r} is not this key's private key")
    yield _audit(AuditAction.REVEALED, record, actor, now)
    return format_token(record.key_id, seed)


def _sealed_pages() -> Generator[LifecycleNeed, Any, list[tuple[str, str]]]:
    pairs: list[tuple[str, str]] = []
    after: str | None = None
    while True:
        page: list[tuple[str, str]] = yield StoreCall("list_sealed_seeds", (after, SEALED_PAGE))
        pairs += page
        if len(page) < SEALED_PAGE:
            return pairs
        after = page[-1][0]


def vault_status() -> Op[dict[str, int]]:
    """How many sealed seeds each KEK id wraps."""
    counts: dict[str, int] = {}
    for _, kek_id in (yield from _sealed_pages()):
        counts[kek_id] = counts.get(kek_id, 0) + 1
    return dict(sorted(counts.items()))


def rewrap_vault(current_kek_id: str) -> Op[RewrapReport]:
    """Re-wrap every data key not under the current KEK (idempotent, resumable).

    Each key is one store write of its new sealed seed; a key deleted
    meanwhile is skipped, one that does not open is left as it is and named.
    """
    rewrapped = current = gone = 0
    failed: list[str] = []
    for key_id, kek_id in (yield from _sealed_pages()):
        if kek_id == current_kek_id:
            current += 1
            continue
        record: KeyRecord | None = yield StoreCall("get_key", (key_id,))
        if record is None or record.sealed_seed is None:
            gone += 1
            continue
        sealed = yield VaultCall("rewrap", record.key_id, record.org_id, sealed=record.sealed_seed)
        if isinstance(sealed, VaultError):
            logger.warning("vault rewrap: key %s left as it was: %s", key_id, sealed)
            failed.append(key_id)
            continue
        updated = yield StoreCall("update_key", (key_id, KeyUpdate(sealed_seed=sealed)))
        if updated is None:
            gone += 1
        else:
            rewrapped += 1
    return RewrapReport(rewrapped=rewrapped, current=current, gone=gone, failed=tuple(failed))


def import_legacy_key(
    org_id: str,
    secret: str,
    now: float,
    actor: str | None = None,
    pepper: LegacyPepper | None = None,
) -> Op[LegacyRecord]:
    _check_id(org_id, "org_id")
    if not isinstance(secret, str) or not secret:
        raise InvalidKeyOperation("a legacy secret is required")
    if secret[: len(TOKEN_PREFIX)].lower() == TOKEN_PREFIX:
        # A bearer token with this prefix is always read as an Org Credential.
        raise InvalidKeyOperation("a legacy secret cannot start with scout_sk_")
    check_actor(actor)
    secret_hash = yield HashSecret(secret)
    record = LegacyRecord(
        org_id=org_id,
        secret_hash=secret_hash,
        created_at=_now(now),
        lookup_digest=None if pepper is None else pepper.digest(secret),
        pepper_id=None if pepper is None else pepper.current_id,
    )
    yield StoreCall("put_legacy", (record,))
    stored = yield StoreCall("get_legacy", (org_id,))
    if pepper is not None and isinstance(stored, LegacyRecord) and stored.lookup_digest is None:
        logger.warning(
            "org %s's legacy secret is another org's too: it works as Basic only, never as "
            "Bearer (which could not tell the two orgs apart)",
            org_id,
        )
    yield Audit(AuditEvent(AuditAction.LEGACY_IMPORTED, org_id, _now(now), actor=actor))
    return stored if isinstance(stored, LegacyRecord) else record


def get_legacy_key(org_id: str) -> Op[LegacyRecord]:
    record: LegacyRecord | None = yield StoreCall("get_legacy", (org_id,))
    if record is None:
        raise KeyNotFound(f"legacy:{org_id}")
    return record


def delete_legacy_key(org_id: str, now: float, actor: str | None = None) -> Op[None]:
    check_actor(actor)
    existed = yield StoreCall("delete_legacy", (org_id,))
    if not existed:
        raise KeyNotFound(f"legacy:{org_id}")
    yield Audit(AuditEvent(AuditAction.LEGACY_DELETED, org_id, _now(now), actor=actor))
    return None


def set_scopes(
    key_id: str, scopes: Iterable[str] | None, now: float, actor: str | None = None
) -> Op[KeyRecord]:
    update = KeyUpdate(scopes=_scopes(scopes))
    check_actor(actor)
    record = yield from update_key(key_id, update)
    yield _audit(AuditAction.SCOPES_CHANGED, record, actor, now)
    return record


def set_roles(
    key_id: str, roles: Iterable[str], now: float, actor: str | None = None
) -> Op[KeyRecord]:
    update = KeyUpdate(roles=_roles(roles))
    check_actor(actor)
    record = yield from update_key(key_id, update)
    yield _audit(AuditAction.ROLES_CHANGED, record, actor, now)
    return record


def set_allowed_ips(
    key_id: str, allowed_ips: Iterable[str] | None, now: float, actor: str | None = None
) -> Op[KeyRecord]:
    update = KeyUpdate(allowed_ips=_allowed_ips(allowed_ips))
    check_actor(actor)
    record = yield from update_key(key_id, update)
    yield _audit(AuditAction.ALLOWED_IPS_CHANGED, record, actor, now)
    return record


def _future_expiry(expires_at: datetime | None, now: float) -> datetime | None:
    if expires_at is None:
        return None
    if not isinstance(expires_at, datetime):
        raise InvalidKeyOperation("expires_at must be a datetime or None")
    _check_expiry(expires_at)
    if expires_at <= _now(now):
        raise InvalidKeyOperation("expires_at must be in the future (None: never expires)")
    return expires_at


def change_key(
    key_id: str,
    now: float,
    actor: str | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    scopes: Iterable[str] | Literal[_Keep.KEEP] | None = KEEP,
    roles: Iterable[str] | None = None,
    allowed_ips: Iterable[str] | Literal[_Keep.KEEP] | None = KEEP,
    expires_at: datetime | Literal[_Keep.KEEP] | None = KEEP,
    enabled: bool | None = None,
) -> Op[KeyRecord]:
    """Several fields of one key in one atomic store write, one audit event per change.

    Every field is checked before anything is read; fields whose new value
    is the current one are left out, and an update that changes nothing
    writes and records nothing.
    """
    if enabled is not None and not isinstance(enabled, bool):
        raise InvalidKeyOperation("enabled must be True, False or None")
    asked = KeyUpdate(
        name=None if name is None else check_name(name),
        enabled=enabled,
        scopes=KEEP if scopes is KEEP else _scopes(scopes),
        roles=None if roles is None else _roles(roles),
        allowed_ips=KEEP if allowed_ips is KEEP else _allowed_ips(allowed_ips),
        description=None
        if description is None
        else check_description(description, "a key description", MAX_DESCRIPTION_LENGTH),
        expires_at=KEEP if expires_at is KEEP else _future_expiry(expires_at, now),
    )
    check_actor(actor)
    old = yield from get_key(key_id)
    changes: dict[str, Any] = {}
    actions: list[AuditAction] = []
    for field_name, value, action in (
        ("name", asked.name, AuditAction.RENAMED),
        ("description", asked.description, AuditAction.DESCRIPTION_CHANGED),
        ("enabled", asked.enabled, AuditAction.ENABLED if enabled else AuditAction.DISABLED),
        ("scopes", asked.scopes, AuditAction.SCOPES_CHANGED),
        ("roles", asked.roles, AuditAction.ROLES_CHANGED),
        ("allowed_ips", asked.allowed_ips, AuditAction.ALLOWED_IPS_CHANGED),
        ("expires_at", asked.expires_at, AuditAction.EXPIRY_CHANGED),
    ):
        # None leaves name, description, enabled and roles as they are; KEEP the others.
        keep = KEEP if field_name in ("scopes", "allowed_ips", "expires_at") else None
        if value is keep or value == getattr(old, field_name):
            continue
        changes[field_name] = value
        actions.append(action)
    if "expires_at" in changes and old.replaced_by is not None:
        # min(expiry, grace) ended it at rotation; moving it would undo that.
        raise InvalidKeyOperation("a rotated key's expiry is its grace period")
    if not changes:
        return old
    if "expires_at" in changes:
        policy = yield PolicyFor(old.org_id)
        enforce(
            policy,
            changes["expires_at"],
            created_at=old.created_at,
            now=_now(now),
            fill_default=False,
        )
    record = yield from update_key(key_id, KeyUpdate(**changes))
    for action in actions:
        yield _audit(action, record, actor, now)
    return record


def set_description(
    key_id: str, description: str, now: float, actor: str | None = None
) -> Op[KeyRecord]:
    if description is None:  # change_key reads None as "keep": say so instead
        raise InvalidKeyOperation("a key description is a string ('' for none)")
    return (yield from change_key(key_id, now, actor, description=description))


def _role_audit(
    action: AuditAction, org_id: str, name: str, actor: str | None, now: float
) -> Audit:
    return Audit(AuditEvent(action, org_id, _now(now), key_name=name, actor=actor))


def put_role(
    org_id: str, name: str, scopes: Iterable[str], now: float, actor: str | None = None
) -> Op[RoleRecord]:
    granted = _scopes(scopes)
    if granted is None:
        raise InvalidKeyOperation("a role grants a list of scopes")
    role = RoleRecord(_check_id(org_id, "org_id"), check_role_name(name), granted)
    check_actor(actor)
    yield StoreCall("put_role", (role,))
    yield _role_audit(AuditAction.ROLE_UPDATED, org_id, name, actor, now)
    return role


def get_role(org_id: str, name: str) -> Op[RoleRecord]:
    role: RoleRecord | None = yield StoreCall("get_role", (org_id, name))
    if role is None:
        raise KeyNotFound(f"role:{name}")
    return role


def list_roles(org_id: str) -> Op[list[RoleRecord]]:
    roles: list[RoleRecord] = yield StoreCall("list_roles", (org_id,))
    return roles


def delete_role(org_id: str, name: str, now: float, actor: str | None = None) -> Op[None]:
    check_actor(actor)
    existed = yield StoreCall("delete_role", (org_id, name))
    if not existed:
        raise KeyNotFound(f"role:{name}")
    yield _role_audit(AuditAction.ROLE_DELETED, org_id, name, actor, now)
    return None


def set_legacy_enabled(
    org_id: str, enabled: bool, now: float, actor: str | None = None
) -> Op[LegacyRecord]:
    check_actor(actor)
    record: LegacyRecord | None = yield StoreCall("set_legacy_enabled", (org_id, enabled))
    if record is None:
        raise KeyNotFound(f"legacy:{org_id}")
    action = AuditAction.LEGACY_ENABLED if enabled else AuditAction.LEGACY_DISABLED
    yield Audit(AuditEvent(action, org_id, _now(now), actor=actor))
    return record


def legacy_status(org_id: str, days: int, now: float) -> Op[LegacyStatus]:
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 3660:
        raise InvalidKeyOperation("days must be an int from 1 to 3660")
    record = yield StoreCall("get_legacy", (org_id,))
    # "The last N days" are UTC days: today and the N - 1 before it.
    since = _now(now) - timedelta(days=days - 1)
    last_used_at, requests = yield StoreCall("legacy_usage", (org_id, since))
    return LegacyStatus(
        org_id=org_id,
        exists=record is not None,
        enabled=record is None or record.enabled,
        last_used_at=last_used_at,
        requests=requests,
        days=days,
    )
