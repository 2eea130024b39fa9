"""Key material of an Org Credential as pyca/cryptography objects, PEM and JWK.

Theory of operation
-------------------
A token (:mod:`~scout_auth._core.tokens`) *is* an Ed25519 private key: its
key id names it and its seed is the 32-byte private key of RFC 8032 §5.1.5.
:class:`OrgCredential` turns a token into pyca/cryptography key objects for
code that signs with another RFC 9421 library, and exports the key in the
two formats other platforms load:

* PEM — PKCS#8 ``PRIVATE KEY`` (RFC 5958, the Ed25519 algorithm identifier of
  RFC 8410 §3) for the private half, SPKI ``PUBLIC KEY`` (RFC 8410 §4) for the
  public one.
* JWK — an Octet Key Pair (RFC 8037 §2): ``kty`` ``OKP``, ``crv``
  ``Ed25519``, ``x`` the public key and, for the private key only, ``d`` the
  seed, both base64url without padding (RFC 7515 §2); ``kid`` (RFC 7517
  §4.5) is the key id, which is also the RFC 9421 ``keyid``.

A store keeps only the public half (:attr:`KeyRecord.public_key`, 32 raw
bytes); :class:`OrgPublicKey` is its twin for verifiers elsewhere.

The seed is a secret: it is in no ``repr``, ``str`` or error message, and an
:class:`OrgCredential` refuses to be pickled (a pickle is a file on disk
that nobody thinks of as a key). Pure computation: no store, no clock.
"""

from __future__ import annotations

import base64
from typing import Final, NoReturn

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .records import KeyRecord
from .tokens import KEY_ID_RE, parse_token

__all__ = ["OrgCredential", "OrgPublicKey"]

# RFC 8037 §2 and §3.1: the key type and curve of an Ed25519 JWK.
_KTY: Final = "OKP"
_CRV: Final = "Ed25519"
_RAW_LENGTH: Final = 32


def _b64url(data: bytes) -> str:
    # RFC 7515 §2 "Base64url Encoding": the URL-safe alphabet, no padding
    # (RFC 8037 §2 uses it for "x" and "d").
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_set = object.__setattr__


class _Frozen:
    # Key objects are values: an attribute once set stays (as a frozen dataclass).
    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")


def _check_key_id(key_id: object) -> str:
    if not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id):
        raise ValueError("malformed key id (20 characters of a-z and 2-7)")
    return key_id


class OrgPublicKey(_Frozen):
    """The public half of an Org Credential: what a verifier elsewhere needs.

    Build it from a stored record (:meth:`from_record`), from the raw 32
    bytes (:meth:`from_raw`) or from an :class:`OrgCredential`
    (:attr:`OrgCredential.public`). Nothing in it is secret.

    Attributes:
        key_id: The key id (the ``keyid`` of signed requests, the JWK ``kid``).
        public_key: The Ed25519 public key (pyca/cryptography).

    Example::

        record = KeyManager(store).get_key(key_id)
        print(OrgPublicKey.from_record(record).to_pem())
    """

    __slots__ = ("_raw", "key_id", "public_key")

    key_id: str
    public_key: Ed25519PublicKey
    _raw: bytes

    def __init__(self, key_id: str, public_key: Ed25519PublicKey) -> None:
        if not isinstance(public_key, Ed25519PublicKey):
            raise TypeError("public_key must be an Ed25519PublicKey")
        _set(self, "key_id", _check_key_id(key_id))
        _set(self, "public_key", public_key)
        _set(self, "_raw", public_key.public_bytes_raw())

    @classmethod
    def from_raw(cls, key_id: str, public_key: bytes) -> OrgPublicKey:
        """The public key of ``key_id`` from its 32 raw bytes (as a store keeps it).

        Raises:
            ValueError: A malformed key id, or not 32 bytes.
        """
        if not isinstance(public_key, bytes | bytearray | memoryview):
            raise TypeError("public_key must be bytes")
        raw = bytes(public_key)
        if len(raw) != _RAW_LENGTH:
            raise ValueError("an Ed25519 public key is 32 bytes")
        return cls(key_id, Ed25519PublicKey.from_public_bytes(raw))

    @classmethod
    def from_record(cls, record: KeyRecord) -> OrgPublicKey:
        """The public key a store holds for one key (:class:`~scout_auth.KeyRecord`)."""
        return cls.from_raw(record.key_id, record.public_key)

    @property
    def raw(self) -> bytes:
        """The 32 raw bytes (RFC 8032 §5.1.5), as :attr:`KeyRecord.public_key`."""
        return self._raw

    def to_pem(self) -> str:
        """The SubjectPublicKeyInfo PEM (``-----BEGIN PUBLIC KEY-----``, RFC 8410 §4)."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def to_jwk(self) -> dict[str, str]:
        """The public JWK (RFC 8037 §2): ``kty``, ``crv``, ``x`` and ``kid``; no ``d``."""
        return {"kty": _KTY, "crv": _CRV, "x": _b64url(self._raw), "kid": self.key_id}

    def verify(self, signature: bytes, data: bytes) -> None:
        """Check an Ed25519 signature over ``data``, as pyca/cryptography does.

        Raises:
            cryptography.exceptions.InvalidSignature: It does not verify.
        """
        self.public_key.verify(signature, data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OrgPublicKey):
            return NotImplemented
        return self.key_id == other.key_id and self._raw == other._raw

    def __hash__(self) -> int:
        return hash((self.key_id, self._raw))

    def __repr__(self) -> str:
        return f"OrgPublicKey(key_id={self.key_id!r})"


class OrgCredential(_Frozen):
    """An Org Credential's key pair, loaded from its ``scout_sk_…`` token.

    For signing with another RFC 9421 library, or handing the key to a
    client on another platform (PEM, JWK). The seed stays inside: the
    ``repr`` shows the key id only, errors never quote the token, and
    pickling is refused. ``OrgCredential(key_id, private_key)`` builds one
    from a pyca/cryptography key.

    Attributes:
        key_id: The key id (public; the ``keyid`` of signed requests).
        private_key: The Ed25519 private key (pyca/cryptography). Secret.
        public_key: Its public key (pyca/cryptography).

    Example::

        cred = OrgCredential.from_token(os.environ["SCOUT_API_KEY"])
        signature = cred.private_key.sign(signature_base)
        jwk = cred.private_jwk()  # {"kty": "OKP", "crv": "Ed25519", "x": ..., "d": ..., "kid": ...}
    """

    __slots__ = ("_public", "key_id", "private_key", "public_key")

    key_id: str
    private_key: Ed25519PrivateKey
    public_key: Ed25519PublicKey
    _public: OrgPublicKey

    def __init__(self, key_id: str, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("private_key must be an Ed25519PrivateKey")
        _set(self, "key_id", _check_key_id(key_id))
        _set(self, "private_key", private_key)
        _set(self, "public_key", private_key.public_key())
        _set(self, "_public", OrgPublicKey(self.key_id, self.public_key))

    @classmethod
    def from_token(cls, token: str) -> OrgCredential:
        """Load a ``scout_sk_…`` token (surrounding whitespace is ignored).

        Offline: the format and checksum are checked, no store is asked
        whether the key exists or is enabled.

        Raises:
            TypeError: ``token`` is not a ``str``.
            ValueError: Not a well-formed token (the message never quotes it).
        """
        if not isinstance(token, str):
            # Never the value: it may be the token as bytes.
            raise TypeError("token must be a str")
        parsed = parse_token(token.strip())
        if parsed is None:
            raise ValueError("not a well-formed scout_sk_ token (format or checksum)") from None
        return cls(parsed.key_id, Ed25519PrivateKey.from_private_bytes(parsed.seed))

    @property
    def public(self) -> OrgPublicKey:
        """The public half, for verifiers (:class:`OrgPublicKey`)."""
        return self._public

    def private_pem(self, password: bytes | None = None) -> str:
        """The private key as PKCS#8 PEM (``-----BEGIN PRIVATE KEY-----``, RFC 8410 §7).

        Args:
            password: Encrypt the PEM with it (``ENCRYPTED PRIVATE KEY``, the
                best scheme pyca/cryptography offers); ``None`` writes it
                unencrypted. Secret either way.
        """
        encryption: serialization.KeySerializationEncryption = (
            serialization.NoEncryption()
            if password is None
            else serialization.BestAvailableEncryption(password)
        )
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        ).decode("ascii")

    def private_jwk(self) -> dict[str, str]:
        """The private JWK (RFC 8037 §2): ``kty``, ``crv``, ``x``, ``d`` and ``kid``. Secret.

        Node.js loads it with ``crypto.createPrivateKey({key: jwk, format: "jwk"})``.
        """
        public = self._public.to_jwk()
        return {
            "kty": _KTY,
            "crv": _CRV,
            "x": public["x"],
            "d": _b64url(self._seed()),
            "kid": self.key_id,
        }

    def public_pem(self) -> str:
        """The public key as SPKI PEM (see :meth:`OrgPublicKey.to_pem`)."""
        return self._public.to_pem()

    def public_jwk(self) -> dict[str, str]:
        """The public JWK, without ``d`` (see :meth:`OrgPublicKey.to_jwk`)."""
        return self._public.to_jwk()

    def _seed(self) -> bytes:
        return self.private_key.private_bytes_raw()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OrgCredential):
            return NotImplemented
        # The public halves decide: one seed, one public key (RFC 8032 §5.1.5).
        return self._public == other._public

    def __hash__(self) -> int:
        return hash(self._public)

    def __repr__(self) -> str:
        return f"OrgCredential(key_id={self.key_id!r})"

    def __reduce__(self) -> NoReturn:
        # A pickle, a cache entry or a multiprocessing message would be a copy
        # of the seed that nobody thinks of as a key.
        raise TypeError(
            "an OrgCredential is not picklable: keep the token in a secret store "
            "and load it with OrgCredential.from_token()"
        )

    def __copy__(self) -> OrgCredential:
        return self  # immutable

    def __deepcopy__(self, memo: object) -> OrgCredential:
        return self
