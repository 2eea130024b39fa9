"""Plain data: what a store keeps and what a verification returns."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network

IPNetwork = IPv4Network | IPv6Network

__all__ = [
    "CredentialKind",
    "KeyList",
    "KeyRecord",
    "LegacyRecord",
    "LegacyStatus",
    "NewKey",
    "OrgContext",
    "RoleRecord",
    "ScopeInfo",
    "SealedSeed",
]


class CredentialKind(enum.StrEnum):
    """How a request proved who it is."""

    ORG_CREDENTIAL = "org_credential"
    LEGACY = "legacy"


@dataclass(frozen=True, slots=True)
class SealedSeed:
    """A key's Ed25519 seed as a :class:`~scout_auth.KeyVault` sealed it: all a store keeps.

    The seed is encrypted with AES-256-GCM under a data key of its own,
    bound to the key's id and org (a ciphertext copied onto another key's
    row fails to open); the data key is wrapped by the key-encryption key
    (KEK) ``kek_id`` names, which never reaches the store. Without that KEK
    these bytes reveal nothing (docs/vault.md).

    Attributes:
        ciphertext: The sealed seed (32 bytes of seed, 16 of GCM tag).
        nonce: The 12-byte GCM nonce of ``ciphertext``.
        wrapped_key: The data key, wrapped by the KEK (opaque: the KEK's own
            format, or whatever a KMS callback returned).
        kek_id: Which KEK wrapped the data key (a public id).
    """

    ciphertext: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    wrapped_key: bytes = field(repr=False)
    kek_id: str


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One Org Credential as stored: the public half only.

    Attributes:
        key_id: Public, stable id (also the RFC 9421 ``keyid``).
        org_id: The organization that owns the key.
        name: Human-readable name, unique per org only by convention.
        public_key: Raw 32-byte Ed25519 public key.
        enabled: ``False`` once disabled; verification then answers 401.
        created_at: Creation time (UTC).
        expires_at: When the key stops working (UTC), or ``None``.
        scopes: Granted scopes; ``None`` means unrestricted.
        replaced_by: Key id of the successor after a rotation, else ``None``.
        roles: Names of the org's roles whose scopes the key also grants.
            A key with ``scopes=None`` and no roles is unrestricted.
        allowed_ips: CIDR ranges (IPv4 or IPv6) the key may be used from,
            normalised (``"10.0.0.0/8"``); ``None`` means from anywhere.
        last_used_at: When the key last verified (written in the background,
            at most once per interval per instance), or ``None``.
        use_count: How many requests the key verified (same bookkeeping).
        description: What the key is for, in a person's words (``""``: none).
            Plain text, never a secret: it is shown wherever the key is.
        created_by: Who created the key (the ``actor=`` of the creating or
            rotating call), or ``None`` when not known (keys created before
            the field existed, or without an actor).
        sealed_seed: The private key, sealed by a :class:`~scout_auth.KeyVault`,
            for a key created with ``recoverable=True``; ``None`` (every
            other key) means the private key exists nowhere server-side and
            can never be shown again. Verification never reads it.
        last_used_address: The client address of the use at ``last_used_at``
            (as the adapters resolved it, trusted proxies honoured;
            normalised, IPv4-mapped IPv6 as IPv4), written with it in the
            same throttled background write; ``None`` when not known (no
            use yet, or that use came without a parseable address).
    """

    key_id: str
    org_id: str
    name: str
    public_key: bytes = field(repr=False)
    enabled: bool
    created_at: datetime
    expires_at: datetime | None = None
    scopes: frozenset[str] | None = None
    replaced_by: str | None = None
    roles: frozenset[str] = frozenset()
    allowed_ips: tuple[str, ...] | None = None
    last_used_at: datetime | None = None
    use_count: int = 0
    description: str = ""
    created_by: str | None = None
    sealed_seed: SealedSeed | None = field(default=None, repr=False)
    last_used_address: str | None = None

    @property
    def recoverable(self) -> bool:
        """Whether the key's token can be revealed again (it has a sealed seed)."""
        return self.sealed_seed is not None

    def is_expired(self, now: datetime) -> bool:
        """Whether the key has expired at ``now``."""
        return self.expires_at is not None and now >= self.expires_at

    def evolve(self, **changes: object) -> KeyRecord:
        """Return a copy with ``changes`` applied."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class LegacyRecord:
    """An org's legacy symmetric secret, as an argon2id hash only.

    ``enabled`` is the org's legacy switch: ``False`` answers legacy
    requests 401 ``legacy_disabled``. Replacing the hash keeps the switch.

    Attributes:
        org_id: The organization.
        secret_hash: The argon2id hash of the secret.
        created_at: When the secret was imported (UTC).
        enabled: The org's legacy switch.
        lookup_digest: HMAC-SHA-256 of the secret under a server-side
            pepper (:class:`~scout_auth.LegacyPepper`) that never lives in
            the store: how a secret sent as ``Bearer`` finds its org without
            a scan. ``None`` until the first successful use or a re-import
            with a pepper configured. Useless without the pepper: it tests
            no guess faster than argon2id does.
        pepper_id: Which pepper made ``lookup_digest`` (a public id, see
            :attr:`LegacyPepper.ids <scout_auth.LegacyPepper.ids>`).
    """

    org_id: str
    secret_hash: str = field(repr=False)
    created_at: datetime
    enabled: bool = True
    lookup_digest: bytes | None = field(default=None, repr=False)
    pepper_id: str | None = None


@dataclass(frozen=True, slots=True)
class RoleRecord:
    """A named set of scopes an org defines; keys reference it by ``name``.

    Changing a role changes every key that references it, at once.
    """

    org_id: str
    name: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class ScopeInfo:
    """A scope the org publishes, with a human description, that a key-creation
    form offers as a picker.

    The catalogue only describes scopes: a key may be granted a scope that is
    not in it, and publishing or unpublishing one changes no key.

    Attributes:
        org_id: The organization that publishes the scope.
        name: The scope itself (``drive:read``): a scope token, no wildcard.
        description: What the scope allows, for people (plain text).
    """

    org_id: str
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class LegacyStatus:
    """Where an org stands in its migration off the legacy secret.

    Attributes:
        org_id: The organization.
        exists: Whether the org still has a legacy secret.
        enabled: Whether legacy authentication is switched on for it.
        last_used_at: The last legacy request seen (any time), or ``None``.
        requests: Legacy requests in the last ``days`` days (UTC days).
        days: The window ``requests`` counts.
    """

    org_id: str
    exists: bool
    enabled: bool
    last_used_at: datetime | None
    requests: int
    days: int


class KeyList(list[KeyRecord]):
    """An org's keys, oldest first, with the org's legacy usage alongside.

    What :meth:`KeyManager.list_keys <scout_auth.KeyManager.list_keys>`
    returns: a plain ``list`` of :class:`KeyRecord` in every way (iteration,
    indexing, ``len``, ``==``), plus one read-only attribute.

    Attributes:
        legacy: The org's :class:`LegacyStatus` over the last
            ``legacy.days`` days (``exists=False`` when the org has no legacy
            secret; its past usage, if any, still shows).

    Example:
        >>> from scout_auth import InMemoryKeyStore, KeyManager
        >>> manager = KeyManager(InMemoryKeyStore())
        >>> _ = manager.create_key("org_1", "billing-sync prod")
        >>> keys = manager.list_keys("org_1")
        >>> [k.name for k in keys], keys.legacy.exists
        (['billing-sync prod'], False)

    It compares as a list: ``legacy`` takes no part in ``==``. Slices and
    copies are plain lists.
    """

    __slots__ = ("_legacy",)

    def __init__(self, keys: Iterable[KeyRecord], *, legacy: LegacyStatus) -> None:
        super().__init__(keys)
        self._legacy = legacy

    @property
    def legacy(self) -> LegacyStatus:
        """The org's legacy status (see the class docstring)."""
        return self._legacy

    def __repr__(self) -> str:
        return f"KeyList({list.__repr__(self)}, legacy={self._legacy!r})"


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly created key. ``token`` is shown once: store it now.

    Attributes:
        token: The bearer token (the private key). Never stored server-side.
        key: The stored record.
    """

    token: str = field(repr=False)
    key: KeyRecord

    def __repr__(self) -> str:
        return f"NewKey(token='scout_sk_{self.key.key_id}_…', key={self.key!r})"


@dataclass(frozen=True, slots=True)
class OrgContext:
    """Who made a verified request.

    Attributes:
        org_id: The authenticated organization.
        key_id: The key used (for legacy credentials: ``"legacy:<org_id>"``).
        key_name: The key's name (``"legacy"`` for legacy credentials).
        scopes: Granted scopes, roles resolved; ``None`` means unrestricted.
        kind: Org Credential or legacy secret.
        allowed_ips: The key's IP allowlist, parsed; ``None``: anywhere.
        expires_at: The key's expiry (UTC), or ``None`` (never; legacy secrets).
    """

    org_id: str
    key_id: str
    key_name: str
    scopes: frozenset[str] | None
    kind: CredentialKind
    allowed_ips: tuple[IPNetwork, ...] | None = None
    expires_at: datetime | None = None
