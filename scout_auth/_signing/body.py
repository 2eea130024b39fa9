"""Checking a signed request's body against its ``Content-Digest``. Sans-I/O.

The signature (RFC 9421) covers the ``Content-Digest`` *header*; only the
body bytes can prove the body matches it (RFC 9530 §1, §6.3). The adapters
feed every chunk through a :class:`BodyGuard` as it streams and hand the
application the end of the body only after :meth:`BodyGuard.feed` accepted
the final chunk, so an application never sees a complete body that fails
its digest.
"""

from __future__ import annotations

from ..exceptions import BodyTooLarge, SignatureMissingComponent
from .digest import DigestChecker

__all__ = ["DEFAULT_MAX_BODY_SIZE", "BodyGuard"]

#: Largest signed body accepted by default (10 MiB); bigger ones get 413.
DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024


class BodyGuard:
    """Size limit and digest check for one signed request's body.

    Args:
        content_digest: The request's ``Content-Digest`` value, or ``None``.
        max_size: Most body bytes accepted.

    Raises:
        DigestInvalid: ``content_digest`` is malformed or names no supported
            algorithm.
    """

    __slots__ = ("_checker", "_max_size", "size")

    def __init__(self, content_digest: str | None, *, max_size: int) -> None:
        self._checker = (
            None if content_digest is None else DigestChecker.from_header(content_digest)
        )
        self._max_size = max_size
        self.size = 0

    def check_length(self, content_length: int | None) -> None:
        """Refuse a declared length over the limit before reading anything."""
        if content_length is not None and content_length > self._max_size:
            raise BodyTooLarge()

    def feed(self, chunk: bytes, *, final: bool) -> None:
        """Account for ``chunk``; on the ``final`` one, verify the digest.

        Raises:
            BodyTooLarge: The body grew past ``max_size``.
            SignatureMissingComponent: Body bytes arrived but no
                ``Content-Digest`` covers them.
            DigestMismatch: The complete body does not match its digest.
        """
        self.size += len(chunk)
        if self.size > self._max_size:
            raise BodyTooLarge()
        if self._checker is None:
            if chunk:
                raise SignatureMissingComponent(
                    "content-digest", "A signed request body needs a covered Content-Digest"
                )
            return
        self._checker.update(chunk)
        if final:
            self._checker.verify()
