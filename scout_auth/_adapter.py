"""Framework-free pieces every adapter shares: options, exempt paths, the header."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict

from ._body import DEFAULT_MAX_BODY_SIZE
from ._requests import TrustedProxies

__all__ = ["AdapterKwargs", "AdapterOptions", "declared_length"]


class AdapterKwargs(TypedDict, total=False):
    """The keyword options every adapter takes (see :class:`AdapterOptions`)."""

    exempt_paths: Iterable[str]
    header: str
    realm: str
    required_scopes: Iterable[str]
    max_body_size: int
    trusted_proxies: Iterable[str]


@dataclass(frozen=True, slots=True)
class AdapterOptions:
    """Options validated once, in the middleware's constructor.

    Attributes:
        exempt_paths: Paths that need no credentials. An entry ending in
            ``*`` is a prefix (``/public/*``); any other entry must match the
            path exactly.
        header: Header carrying the credential. ``authorization`` (default)
            takes ``Bearer`` or ``Basic`` (legacy); any other header (say
            ``x-api-key``) carries a bare ``scout_sk_`` token.
        realm: The ``realm`` of ``WWW-Authenticate`` challenges.
        required_scopes: Scopes every non-exempt request needs.
        max_body_size: Largest body of a signed request (413 above).
        proxies: Peers whose ``X-Forwarded-*`` / ``Forwarded`` headers are
            believed when rebuilding what a signature covers.
    """

    exempt_exact: frozenset[str]
    exempt_prefixes: tuple[str, ...]
    header: str
    realm: str
    required_scopes: tuple[str, ...]
    max_body_size: int
    proxies: TrustedProxies

    @classmethod
    def build(
        cls,
        *,
        exempt_paths: Iterable[str] = (),
        header: str = "authorization",
        realm: str = "api",
        required_scopes: Iterable[str] = (),
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        trusted_proxies: Iterable[str] = (),
    ) -> AdapterOptions:
        """Validate and freeze adapter options."""
        if not isinstance(max_body_size, int) or max_body_size < 0:
            raise ValueError("max_body_size must be an int >= 0")
        if isinstance(exempt_paths, str) or isinstance(required_scopes, str):
            raise TypeError("exempt_paths and required_scopes take a list, not a string")
        paths = list(exempt_paths)
        if any(not p.startswith("/") for p in paths):
            raise ValueError("exempt paths start with '/'")
        header = header.strip().lower()
        if not header:
            raise ValueError("header must name an HTTP header")
        return cls(
            exempt_exact=frozenset(p for p in paths if not p.endswith("*")),
            exempt_prefixes=tuple(p[:-1] for p in paths if p.endswith("*")),
            header=header,
            realm=realm,
            required_scopes=tuple(required_scopes),
            max_body_size=max_body_size,
            proxies=TrustedProxies.parse(trusted_proxies),
        )

    def is_exempt(self, path: str) -> bool:
        """Whether ``path`` needs no credentials."""
        return path in self.exempt_exact or path.startswith(self.exempt_prefixes)

    def authorization(self, value: str | None) -> str | None:
        """The header value as an ``Authorization`` value for the verifier."""
        if value is None or self.header == "authorization":
            return value
        return "Bearer " + value.strip()


def declared_length(value: str | None) -> int | None:
    """A ``Content-Length`` value as an int, or ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None
