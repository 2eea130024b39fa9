"""RFC 9530 ``Content-Digest``: build it (client) and check it in a stream (server).

Theory of operation
-------------------
``Content-Digest`` is a Structured Fields Dictionary (RFC 9530 §2): each key
names a hashing algorithm, each value is a Byte Sequence holding the digest of
the message *content* (the bytes on the wire after transfer coding is removed,
before any content coding is undone).

The server side never buffers the body: :meth:`DigestChecker.from_header`
parses the header once, the caller feeds each received chunk to
:meth:`DigestChecker.update`, and :meth:`DigestChecker.verify` compares in
constant time at the end. Limiting the body size is the caller's job (see
:class:`~scout_auth.exceptions.BodyTooLarge`).

Only ``sha-256`` and ``sha-512`` are accepted: the IANA registry marks them
"Active"; ``md5``, ``sha``, ``unixsum`` and friends are "Deprecated".
RFC 9530 §2 lets a recipient ignore any digest (see also §6.6, algorithm
agility). Unknown
algorithms are skipped, but a header with nothing we support is rejected:
silently accepting it would mean the body is not protected at all.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

import http_sf

from ..exceptions import DigestInvalid, DigestMismatch
from .sf import match_byte_sequence_member

__all__ = ["SUPPORTED_DIGEST_ALGORITHMS", "DigestChecker", "content_digest"]


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


# RFC 9530 §5 / IANA "Hash Algorithms for HTTP Digest Fields": status "Active".
_ALGORITHMS: Mapping[str, Callable[[], _Hash]] = MappingProxyType(
    {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
)
_DIGEST_SIZES = MappingProxyType({"sha-256": 32, "sha-512": 64})

#: Algorithm keys this module computes and checks.
SUPPORTED_DIGEST_ALGORITHMS: frozenset[str] = frozenset(_ALGORITHMS)


def content_digest(body: bytes, algorithms: Iterable[str] = ("sha-256",)) -> str:
    """Return the ``Content-Digest`` header value for ``body``.

    Args:
        body: The exact content bytes that will be sent.
        algorithms: Dictionary keys to emit, in order; each must be in
            :data:`SUPPORTED_DIGEST_ALGORITHMS`.

    Returns:
        The serialized Dictionary, e.g. ``sha-256=:X48E...=:``.

    Raises:
        ValueError: If no algorithm is given or one is unsupported.

    Example::

        headers["Content-Digest"] = content_digest(b'{"hello": "world"}')
    """
    names = list(algorithms)
    if not names:
        raise ValueError("at least one digest algorithm is needed")
    members: http_sf.DictionaryType = {}
    for name in names:
        factory = _ALGORITHMS.get(name)
        if factory is None:
            raise ValueError(f"unsupported digest algorithm {name!r}")
        hasher = factory()
        hasher.update(body)
        members[name] = (hasher.digest(), {})
    return http_sf.ser(members)


def _reject_duplicates(key: str, context: str) -> None:
    # RFC 9651 lets the last duplicate win; for a security field an
    # ambiguous header is an error instead.
    raise http_sf.StructuredFieldError(f"duplicate {context} key {key!r}")


@dataclass(slots=True)
class DigestChecker:
    """Checks a body against its ``Content-Digest`` one chunk at a time.

    Build it with :meth:`from_header`, call :meth:`update` for every chunk,
    then :meth:`verify` once the body is complete. Every supported digest in
    the header must match.

    Example::

        checker = DigestChecker.from_header(request_headers["content-digest"])
        for chunk in body_chunks:
            checker.update(chunk)
        checker.verify()  # raises DigestMismatch
    """

    _expected: dict[str, bytes] = field(repr=False)
    _hashers: dict[str, _Hash] = field(repr=False)
    _done: bool = False

    @classmethod
    def from_header(cls, value: str) -> DigestChecker:
        """Parse a ``Content-Digest`` value.

        Args:
            value: The field value (several field lines already joined with
                ``", "``).

        Raises:
            DigestInvalid: If the value is not a Dictionary of Byte Sequences,
                a digest has the wrong length, or no algorithm is supported.
        """
        # The usual one canonical digest takes the strict fast path (see _sf);
        # anything else is parsed by http_sf.
        fast = match_byte_sequence_member(value)
        if fast is not None:
            name, digest = fast
            factory = _ALGORITHMS.get(name)
            if factory is not None and len(digest) == _DIGEST_SIZES[name]:
                return cls({name: digest}, {name: factory()})
            parsed: http_sf.DictionaryType = {name: (digest, {})}
        else:
            try:
                parsed_any = http_sf.parse(
                    value.encode("ascii"), tltype="dictionary", on_duplicate_key=_reject_duplicates
                )
            except (UnicodeEncodeError, http_sf.StructuredFieldError):
                raise DigestInvalid(
                    "Content-Digest is not a valid Structured Fields Dictionary"
                ) from None
            assert isinstance(parsed_any, dict)
            parsed = parsed_any
        expected: dict[str, bytes] = {}
        for name, member in parsed.items():
            # RFC 9530 §2: each value is a Byte Sequence; parameters are ignored.
            if not isinstance(member, tuple) or not isinstance(member[0], bytes):
                raise DigestInvalid(f"Content-Digest member {name!r} is not a Byte Sequence")
            if name not in _ALGORITHMS:
                continue  # RFC 9530 §2: a recipient MAY ignore any digest.
            if len(member[0]) != _DIGEST_SIZES[name]:
                raise DigestInvalid(f"Content-Digest {name} has the wrong length")
            expected[name] = member[0]
        if not expected:
            raise DigestInvalid("Content-Digest names no supported algorithm (sha-256, sha-512)")
        return cls(expected, {name: _ALGORITHMS[name]() for name in expected})

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms that will be checked."""
        return tuple(self._expected)

    def update(self, chunk: bytes) -> None:
        """Feed the next chunk of the body.

        Raises:
            RuntimeError: If called after :meth:`verify`.
        """
        if self._done:
            raise RuntimeError("DigestChecker already verified")
        for hasher in self._hashers.values():
            hasher.update(chunk)

    def verify(self) -> None:
        """Compare the digests of everything fed so far with the header.

        Raises:
            DigestMismatch: If any supported digest differs.
            RuntimeError: If called twice.
        """
        if self._done:
            raise RuntimeError("DigestChecker already verified")
        self._done = True
        ok = True
        for name, want in self._expected.items():
            # Constant-time, and no early exit, so timing says nothing about
            # which digest (or which byte) differed.
            ok &= hmac.compare_digest(self._hashers[name].digest(), want)
        if not ok:
            raise DigestMismatch()
