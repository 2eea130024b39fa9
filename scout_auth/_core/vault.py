"""The opt-in vault: a recoverable key's seed, sealed so that a store dump reveals nothing.

Theory of operation
-------------------
Envelope encryption, as a KMS does it. Each recoverable key gets a fresh
random 256-bit *data key*; the key's 32-byte Ed25519 seed is encrypted with
AES-256-GCM under it, with the key's id and org as associated data, so a
ciphertext copied onto another key's row fails its tag. The data key is then
*wrapped* by a key-encryption key (KEK) the operator holds (environment,
file, or a KMS behind two callbacks). The store keeps only the ciphertext,
its nonce, the wrapped data key and the KEK's public id: a
:class:`~scout_auth.SealedSeed`.

A dump of the store alone opens nothing; the KEK alone has nothing to open;
both together open every recoverable key (and no other: a key created
without ``recoverable=True`` has no sealed seed). docs/vault.md is the
threat model.

Several KEKs may be configured, the first is current: sealing uses it, and
opening uses whichever KEK the sealed seed names. Rotating a KEK is adding a
new one first, re-wrapping every data key under it (``scout-auth vault
rewrap``: the ciphertext is untouched, only the 60-byte wrapped key changes),
then removing the old one.

A KEK wraps a data key with AES-256-GCM as well (nonce || ciphertext+tag),
its own id as associated data, so a wrapped key relabelled with another
KEK's id fails too.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..exceptions import ConfigurationError, VaultError
from .records import SealedSeed

__all__ = [
    "ENV_VAR",
    "KEK_LENGTH",
    "KeyVault",
    "RewrapReport",
    "UnwrapCallback",
    "WrapCallback",
]

#: The environment variable :meth:`KeyVault.from_env` reads: ``id:base64,id:base64``.
ENV_VAR = "SCOUT_AUTH_VAULT_KEKS"

#: A KEK and a data key are AES-256 keys.
KEK_LENGTH = 32

_SEED_LENGTH = 32
_NONCE_LENGTH = 12
_TAG_LENGTH = 16
# Domain separation: a sealed seed and a wrapped data key are never valid as each other.
_SEED_LABEL = b"scout_auth vault seed v1\x00"
_WRAP_LABEL = b"scout_auth vault kek v1\x00"
# Printable ASCII without space or ",": ids sit in a comma-separated variable,
# a SQL column of 200 characters and a Redis hash field. ":" is allowed (KMS
# ARNs); an entry's id is everything before its last ":".
_KEK_ID = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,200}")
_SEPARATORS = re.compile(r"[\s,]+")

#: ``wrap(data_key) -> (kek_id, wrapped)``: a KMS wraps a 32-byte data key.
WrapCallback = Callable[[bytes], tuple[str, bytes]]
#: ``unwrap(kek_id, wrapped) -> data_key``: a KMS unwraps what ``wrap`` returned.
UnwrapCallback = Callable[[str, bytes], bytes]


@dataclass(frozen=True, slots=True)
class RewrapReport:
    """What :meth:`KeyManager.rewrap_vault <scout_auth.KeyManager.rewrap_vault>` did.

    Attributes:
        rewrapped: Sealed seeds whose data key is now wrapped by the current KEK.
        current: Sealed seeds already under the current KEK (left alone).
        gone: Keys deleted while the rewrap ran (nothing to do).
        failed: Key ids whose sealed seed could not be opened (an unknown
            KEK id, a wrong KEK, changed bytes): left as they were.
    """

    rewrapped: int
    current: int
    gone: int
    failed: tuple[str, ...]


def _seed_aad(key_id: str, org_id: str) -> bytes:
    # Length-prefixed, so no pair of ids can spell another pair.
    parts = [p.encode("utf-8", "surrogatepass") for p in (key_id, org_id)]
    return _SEED_LABEL + b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _shown(kek_id: object) -> str:
    # A KEK id is public, but one read back from a store may be anything.
    return repr(kek_id)[:80]


def _check_kek_id(kek_id: object, where: str) -> str:
    if not isinstance(kek_id, str) or not _KEK_ID.fullmatch(kek_id):
        raise ConfigurationError(
            f"{where}: a KEK id is 1 to 200 printable ASCII characters without spaces or ','"
        )
    return kek_id


class _Wrapper(Protocol):
    current: str
    blocking: bool

    def wrap(self, data_key: bytes) -> tuple[str, bytes]: ...

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes: ...

    def knows(self, kek_id: str) -> bool: ...


class _LocalKeks:
    """KEKs held in process memory (environment, file, or passed in)."""

    blocking = False

    def __init__(self, keks: Mapping[str, bytes], current: str) -> None:
        self._aead = {kek_id: AESGCM(kek) for kek_id, kek in keks.items()}
        self.ids = tuple(keks)
        self.current = current

    def knows(self, kek_id: str) -> bool:
        return kek_id in self._aead

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        nonce = secrets.token_bytes(_NONCE_LENGTH)
        aad = _WRAP_LABEL + self.current.encode("ascii")
        return self.current, nonce + self._aead[self.current].encrypt(nonce, data_key, aad)

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        aead = self._aead.get(kek_id)
        if aead is None:
            raise VaultError(f"KEK {_shown(kek_id)} is not configured in this vault")
        if len(wrapped) != _NONCE_LENGTH + KEK_LENGTH + _TAG_LENGTH:
            raise VaultError("a wrapped data key has the wrong length (changed in the store?)")
        nonce, body = wrapped[:_NONCE_LENGTH], wrapped[_NONCE_LENGTH:]
        try:
            return aead.decrypt(nonce, body, _WRAP_LABEL + kek_id.encode("ascii"))
        except InvalidTag:
            raise VaultError(
                f"the data key wrapped by KEK {_shown(kek_id)} did not open: the KEK "
                "configured under that id is another one, or the wrapped key was changed"
            ) from None


class _Callbacks:
    """A KMS behind two callbacks (which may block: the async manager runs them in a thread)."""

    blocking = True

    def __init__(self, wrap: WrapCallback, unwrap: UnwrapCallback, current: str) -> None:
        self._wrap = wrap
        self._unwrap = unwrap
        self.current = current

    def knows(self, kek_id: str) -> bool:
        return True  # only the KMS can tell; unwrap answers

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        try:
            kek_id, wrapped = self._wrap(data_key)
        except Exception as exc:
            raise VaultError("the KMS wrap callback failed") from exc
        if kek_id != self.current or not isinstance(wrapped, bytes) or not wrapped:
            raise VaultError(
                f"the KMS wrap callback must return ({self.current!r}, non-empty bytes); "
                f"it named KEK {_shown(kek_id)}"
            )
        return kek_id, wrapped

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        try:
            data_key = self._unwrap(kek_id, wrapped)
        except Exception as exc:
            raise VaultError(
                f"the KMS could not unwrap a data key of KEK {_shown(kek_id)}"
            ) from exc
        if not isinstance(data_key, bytes) or len(data_key) != KEK_LENGTH:
            raise VaultError("the KMS unwrap callback must return the 32-byte data key")
        return data_key


class KeyVault:
    """Seals recoverable keys' seeds for the store, and opens them again.

    Off unless configured: a :class:`~scout_auth.KeyManager` without a vault
    stores public keys only, as always. With one, ``create_key(...,
    recoverable=True)`` keeps a :class:`~scout_auth.SealedSeed` with the key
    and ``reveal_key`` opens it. Verifiers never need the vault.

    Args:
        keks: KEK id -> 32 random bytes (AES-256), the current one first
            (or named by ``current``). Make one with :meth:`new_kek`.
        current: The id new seeds are sealed with (default: the first).

    Raises:
        ConfigurationError: No KEK, an id that is not printable ASCII
            (without spaces or ``,``), a KEK that is not 32 bytes, or an
            unknown ``current``. Messages never contain a KEK.

    Example:
        >>> import os
        >>> from scout_auth import InMemoryKeyStore, KeyManager, KeyVault
        >>> vault = KeyVault({"kek-1": os.urandom(32)})
        >>> manager = KeyManager(InMemoryKeyStore(), vault=vault)
        >>> new = manager.create_key("org_1", "billing-sync prod", recoverable=True)
        >>> manager.reveal_key(new.key.key_id, actor="ada") == new.token
        True

    Other sources: :meth:`from_env` (``$SCOUT_AUTH_VAULT_KEKS``),
    :meth:`from_file`, :meth:`from_string`, and :meth:`from_callbacks` for
    a KMS that keeps the KEK itself.
    """

    __slots__ = ("_wrapper",)

    def __init__(self, keks: Mapping[str, bytes], *, current: str | None = None) -> None:
        if not isinstance(keks, Mapping) or not keks:
            raise ConfigurationError("a KeyVault needs at least one KEK (id -> 32 bytes)")
        checked: dict[str, bytes] = {}
        for kek_id, kek in keks.items():
            _check_kek_id(kek_id, "KeyVault")
            if not isinstance(kek, bytes) or len(kek) != KEK_LENGTH:
                raise ConfigurationError(
                    f"KeyVault: KEK {kek_id!r} must be {KEK_LENGTH} random bytes (AES-256)"
                )
            checked[kek_id] = kek
        current = next(iter(checked)) if current is None else current
        if current not in checked:
            raise ConfigurationError(f"KeyVault: the current KEK {_shown(current)} is not given")
        self._wrapper: _Wrapper = _LocalKeks(checked, current)

    # -- sources ----------------------------------------------------------
    @classmethod
    def from_string(cls, spec: str, *, source: str = "the KEK list") -> KeyVault:
        """A vault from ``"id1:base64,id2:base64"`` (commas or whitespace between; first = current).

        Raises:
            ConfigurationError: A malformed entry (named by its position, never quoted).
        """
        entries = [e for e in _SEPARATORS.split(spec or "") if e]
        if not entries:
            raise ConfigurationError(f"{source} holds no KEK ('id:base64key', comma-separated)")
        keks: dict[str, bytes] = {}
        for position, entry in enumerate(entries, 1):
            kek_id, sep, encoded = entry.rpartition(":")
            try:
                kek = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                kek = b""
            if not sep or len(kek) != KEK_LENGTH:
                raise ConfigurationError(
                    f"{source}: entry {position} is not 'id:base64' of {KEK_LENGTH} bytes"
                )
            _check_kek_id(kek_id, f"{source}: entry {position}")
            if kek_id in keks:
                raise ConfigurationError(f"{source}: KEK id {kek_id!r} appears twice")
            keks[kek_id] = kek
        return cls(keks)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyVault | None:
        """The vault of ``$SCOUT_AUTH_VAULT_KEKS``, or ``None`` when it is unset or empty.

        ``None`` is "no vault": keys are shown once, as by default. Pass the
        result straight to ``KeyManager(store, vault=...)``.
        """
        value = (os.environ if environ is None else environ).get(ENV_VAR, "")
        if not value.strip():
            return None
        return cls.from_string(value, source=f"${ENV_VAR}")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeyVault:
        """A vault from a file holding ``id:base64`` entries (one a line, or commas).

        Keep the file readable by the service only (``chmod 600``), or mount
        it from a secret manager.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"cannot read the KEK file {os.fspath(path)!r}: {exc}"
            ) from None
        return cls.from_string(text, source=f"KEK file {os.fspath(path)!r}")

    @classmethod
    def from_callbacks(
        cls, wrap: WrapCallback, unwrap: UnwrapCallback, *, current_kek_id: str
    ) -> KeyVault:
        """A vault whose KEK stays in a KMS: two callbacks wrap and unwrap data keys.

        Args:
            wrap: ``wrap(data_key) -> (kek_id, wrapped)``; must name
                ``current_kek_id``.
            unwrap: ``unwrap(kek_id, wrapped) -> data_key`` (32 bytes).
            current_kek_id: The id ``wrap`` uses now; ``scout-auth vault
                rewrap`` moves every other id's data keys to it.

        The callbacks may block (a network call): the async manager runs
        them in a worker thread. Their exceptions become :class:`VaultError`
        (the original is its ``__cause__``).

        Example:
            >>> vault = KeyVault.from_callbacks(  # doctest: +SKIP
            ...     wrap=lambda dk: ("arn:aws:kms:…:key/1", kms.encrypt(KeyId=ARN, Plaintext=dk)["CiphertextBlob"]),
            ...     unwrap=lambda kid, blob: kms.decrypt(KeyId=kid, CiphertextBlob=blob)["Plaintext"],
            ...     current_kek_id="arn:aws:kms:…:key/1",
            ... )
        """  # noqa: E501
        if not callable(wrap) or not callable(unwrap):
            raise ConfigurationError("KeyVault.from_callbacks needs two callables, wrap and unwrap")
        vault = cls.__new__(cls)
        current = _check_kek_id(current_kek_id, "KeyVault.from_callbacks")
        vault._wrapper = _Callbacks(wrap, unwrap, current)
        return vault

    @staticmethod
    def new_kek(kek_id: str | None = None) -> str:
        """A fresh random KEK as an ``id:base64`` entry for ``$SCOUT_AUTH_VAULT_KEKS``.

        The default id is ``kek-<UTC date>-<4 random hex>``: public, unique
        enough to tell KEKs apart in ``scout-auth vault status``.
        """
        if kek_id is None:
            kek_id = f"kek-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"
        _check_kek_id(kek_id, "new_kek")
        return f"{kek_id}:{base64.b64encode(secrets.token_bytes(KEK_LENGTH)).decode('ascii')}"

    # -- what it holds ----------------------------------------------------
    @property
    def current_kek_id(self) -> str:
        """The KEK id new seeds are sealed (and re-wrapped) with."""
        return self._wrapper.current

    @property
    def kek_ids(self) -> tuple[str, ...] | None:
        """The configured KEK ids, current first; ``None`` for a KMS (it knows its own)."""
        wrapper = self._wrapper
        if isinstance(wrapper, _LocalKeks):
            return (wrapper.current, *(i for i in wrapper.ids if i != wrapper.current))
        return None

    @property
    def blocking(self) -> bool:
        """Whether sealing and opening may block (a KMS callback): run them in a thread."""
        return self._wrapper.blocking

    def knows(self, kek_id: str) -> bool:
        """Whether this vault can unwrap data keys of ``kek_id`` (a KMS: always assumed)."""
        return self._wrapper.knows(kek_id)

    def __repr__(self) -> str:
        ids = self.kek_ids
        if ids is None:
            return f"KeyVault(kms, current={self.current_kek_id!r})"
        return f"KeyVault(current={self.current_kek_id!r}, kek_ids={ids!r})"

    # -- sealing ----------------------------------------------------------
    def seal(self, seed: bytes, *, key_id: str, org_id: str) -> SealedSeed:
        """Encrypt a key's 32-byte seed under a fresh data key wrapped by the current KEK.

        Raises:
            VaultError: A KMS callback failed.
        """
        if not isinstance(seed, bytes) or len(seed) != _SEED_LENGTH:
            raise ValueError("a seed is 32 bytes")
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(_NONCE_LENGTH)
        ciphertext = AESGCM(data_key).encrypt(nonce, seed, _seed_aad(key_id, org_id))
        kek_id, wrapped = self._wrapper.wrap(data_key)
        return SealedSeed(ciphertext=ciphertext, nonce=nonce, wrapped_key=wrapped, kek_id=kek_id)

    def unseal(self, sealed: SealedSeed, *, key_id: str, org_id: str) -> bytes:
        """The seed of the key ``key_id`` of ``org_id``, from its sealed seed.

        Raises:
            VaultError: The KEK it names is not configured or is another one,
                any of its bytes was changed, or it belongs to another key.
        """
        if not isinstance(sealed, SealedSeed):
            raise VaultError(f"key {key_id!r} has no sealed seed")
        if not (
            isinstance(sealed.ciphertext, bytes)
            and isinstance(sealed.nonce, bytes)
            and isinstance(sealed.wrapped_key, bytes)
            and isinstance(sealed.kek_id, str)
            and len(sealed.nonce) == _NONCE_LENGTH
            and len(sealed.ciphertext) == _SEED_LENGTH + _TAG_LENGTH
        ):
            raise VaultError(
                f"the sealed seed of key {key_id!r} is malformed (changed in the store?)"
            )
        data_key = self._wrapper.unwrap(sealed.kek_id, sealed.wrapped_key)
        try:
            return AESGCM(data_key).decrypt(
                sealed.nonce, sealed.ciphertext, _seed_aad(key_id, org_id)
            )
        except InvalidTag:
            raise VaultError(
                f"the sealed seed of key {key_id!r} did not open: it was changed in the store, "
                "or copied from another key"
            ) from None

    def rewrap(self, sealed: SealedSeed) -> SealedSeed:
        """The same sealed seed with its data key wrapped by the current KEK.

        The ciphertext and nonce are kept; only the wrapped data key and the
        KEK id change. A seed already under the current KEK is re-wrapped
        all the same (callers skip those).

        Raises:
            VaultError: As for :meth:`unseal` (the wrapped data key part).
        """
        data_key = self._wrapper.unwrap(sealed.kek_id, sealed.wrapped_key)
        kek_id, wrapped = self._wrapper.wrap(data_key)
        return SealedSeed(sealed.ciphertext, sealed.nonce, wrapped, kek_id)
