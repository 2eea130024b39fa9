"""Framework-free pieces every adapter shares: options, exempt paths, the header."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from .._signing.body import DEFAULT_MAX_BODY_SIZE
from .requests import TrustedProxies

__all__ = ["AdapterKwargs", "AdapterOptions", "ScopeRule"]


class AdapterKwargs(TypedDict, total=False):
    """The keyword options every adapter takes (see :class:`AdapterOptions`)."""

    exempt_paths: Iterable[str]
    header: str
    realm: str
    required_scopes: Iterable[str]
    max_body_size: int
    trusted_proxies: Iterable[str]
    proxy_header: str
    proxy_hops: int
    rules: Sequence[tuple[str, str, Sequence[str]]]
    buffer_signed_body: bool


_MEMO_SIZE = 4096

_PARAM = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


@dataclass(frozen=True, slots=True)
class ScopeRule:
    """``(method, path pattern) -> required scopes``, matched per request.

    ``method`` is an HTTP method or ``"*"``. In ``pattern``, ``{name}``
    matches one path segment and a trailing ``*`` any rest of the path;
    everything else matches literally (case-sensitive, like routing).
    """

    method: str
    pattern: re.Pattern[str]
    scopes: tuple[str, ...]

    @classmethod
    def parse(cls, method: str, pattern: str, scopes: Sequence[str]) -> ScopeRule:
        """Validate one rule (``ValueError`` / ``TypeError`` on a bad one)."""
        if not pattern.startswith("/"):
            raise ValueError(f"rule pattern must start with '/': {pattern!r}")
        if isinstance(scopes, str) or not scopes:
            raise TypeError("a rule's scopes are a non-empty list of strings")
        prefix = pattern.endswith("*")
        body = pattern[:-1] if prefix else pattern
        parts, last = [], 0
        for match in _PARAM.finditer(body):
            parts.append(re.escape(body[last : match.start()]))
            parts.append("[^/]+")
            last = match.end()
        parts.append(re.escape(body[last:]))
        regex = "".join(parts) + (".*" if prefix else "")
        # DOTALL: a decoded path may hold a newline ("/write%0a"), and a
        # trailing "*" must cover it as any other character.
        return cls(method.upper(), re.compile(regex, re.DOTALL), tuple(scopes))

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to ``method`` (upper case) and ``path``.

        A ``GET`` rule also governs ``HEAD``: every framework serves ``HEAD``
        with the ``GET`` view (RFC 9110 §9.3.2 — same answer, no content),
        so its headers and length would otherwise leak past the rule. A rule
        for ``/files`` also governs ``/files/`` and the other way round.
        """
        rule = self.method
        if not (rule == "*" or rule == method or (method == "HEAD" and rule == "GET")):
            return False
        if self.pattern.fullmatch(path) is not None:
            return True
        # Routers serve a path with and without its trailing slash (Flask's
        # strict_slashes=False, redirect_slashes, a lenient proxy): a rule
        # governs both spellings. Over-matching only asks for more scopes.
        other = path[:-1] if path.endswith("/") and len(path) > 1 else path + "/"
        return self.pattern.fullmatch(other) is not None


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
            believed when rebuilding what a signature covers, and for the client
            address that IP allowlists check.
        rules: Route rules ``(method, path pattern, scopes)``: a request
            matching a rule needs its scopes too (every matching rule).
        buffer_signed_body: ASGI: read a signed body whole (up to
            ``max_body_size``) and check its digest before the app sees any
            byte of it. WSGI always does.
    """

    exempt_exact: frozenset[str]
    exempt_prefixes: tuple[str, ...]
    header: str
    realm: str
    required_scopes: tuple[str, ...]
    max_body_size: int
    proxies: TrustedProxies
    rules: tuple[ScopeRule, ...] = ()
    buffer_signed_body: bool = False
    #: ``header`` as a WSGI environ key (PEP 3333: ``HTTP_`` + upper case, ``_``).
    environ_key: str = ""
    # (method, path) -> scopes: the rules are pure, so their answer is memoised
    # (bounded: emptied when full, paths with ids in them being unbounded).
    _memo: dict[tuple[str, str], tuple[str, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

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
        proxy_header: str = "x-forwarded",
        proxy_hops: int = 1,
        rules: Sequence[tuple[str, str, Sequence[str]]] = (),
        buffer_signed_body: bool = False,
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
            environ_key="HTTP_" + header.upper().replace("-", "_"),
            realm=realm,
            required_scopes=tuple(required_scopes),
            max_body_size=max_body_size,
            proxies=TrustedProxies.parse(trusted_proxies, header=proxy_header, hops=proxy_hops),
            rules=tuple(ScopeRule.parse(m, p, sc) for m, p, sc in rules),
            buffer_signed_body=bool(buffer_signed_body),
        )

    def scopes_for(self, method: str, path: str) -> tuple[str, ...]:
        """Scopes a request needs: ``required_scopes`` plus every matching rule's.

        ``method`` is matched as werkzeug routes it, upper-cased (``get``
        reaches the ``GET`` view there), so a rule cannot be dodged by case.
        """
        if not self.rules:
            return self.required_scopes
        memo = self._memo
        found = memo.get((method, path))
        if found is not None:
            return found
        needed = list(self.required_scopes)
        key = (method, path)
        method = method.upper()
        for rule in self.rules:
            if rule.matches(method, path):
                needed.extend(s for s in rule.scopes if s not in needed)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[key] = result = tuple(needed)
        return result

    def is_exempt(self, path: str) -> bool:
        """Whether ``path`` needs no credentials."""
        return path in self.exempt_exact or path.startswith(self.exempt_prefixes)

    def authorization(self, value: str | None) -> str | None:
        """The header value as an ``Authorization`` value for the verifier."""
        if value is None or self.header == "authorization":
            return value
        return "Bearer " + value.strip()
