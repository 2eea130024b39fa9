"""What a verified request carries in Starlette: ``request.auth``, ``request.user``, the org."""

from __future__ import annotations

from starlette.authentication import AuthCredentials, BaseUser
from starlette.requests import HTTPConnection

from .._core.flow import check_scopes
from .._core.records import OrgContext
from .._core.scopes import scope_granted

__all__ = ["SCOPE_KEY", "OrgCredentials", "OrgScopes", "OrgUser", "org_context", "require_scopes"]

#: Where the :class:`~scout_auth.OrgContext` lives in the ASGI scope.
SCOPE_KEY = "scout_auth.org"


_SORTED: dict[frozenset[str], tuple[str, ...]] = {}


def _sorted(scopes: frozenset[str]) -> tuple[str, ...]:
    # Every warm request lists the same few scope sets: sort each once
    # (bounded; a frozenset caches its own hash).
    found = _SORTED.get(scopes)
    if found is None:
        if len(_SORTED) >= 1024:
            _SORTED.clear()
        found = _SORTED[scopes] = tuple(sorted(scopes))
    return found


class OrgScopes(list[str]):
    """The granted scopes, with scout_auth's matching rules for ``in``.

    Starlette's ``@requires("drive:read")`` tests ``scope in
    request.auth.scopes``; this list answers with wildcard matching and
    treats an unrestricted key (``scopes=None``) as granting everything.
    """

    # A slot for ``granted``; ``__dict__`` (made only if someone sets another
    # attribute) keeps instances as open as a plain subclass.
    __slots__ = ("__dict__", "granted")

    def __init__(self, scopes: frozenset[str] | None) -> None:
        list.__init__(self, _sorted(scopes) if scopes else ())
        self.granted = scopes

    def __contains__(self, scope: object) -> bool:
        return isinstance(scope, str) and scope_granted(self.granted, scope)


class OrgCredentials(AuthCredentials):
    """``request.auth`` for a verified org: an ``AuthCredentials`` whose ``scopes``
    (an :class:`OrgScopes`) is built on first use.

    Most requests never read ``request.auth.scopes``, so the warm path does
    not pay for sorting them into a list. Setting ``scopes`` works as on
    ``AuthCredentials``.
    """

    def __init__(self, granted: frozenset[str] | None) -> None:
        # AuthCredentials.__init__ would build the list eagerly: not called.
        self._granted = granted
        self._scopes: list[str] | None = None

    @property
    def scopes(self) -> list[str]:
        if self._scopes is None:
            self._scopes = OrgScopes(self._granted)
        return self._scopes

    @scopes.setter
    def scopes(self, value: list[str]) -> None:
        self._scopes = value


class OrgUser(BaseUser):
    """``request.user`` for a verified org. ``identity`` is the org id."""

    def __init__(self, context: OrgContext) -> None:
        self.context = context

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.context.key_name

    @property
    def identity(self) -> str:
        return self.context.org_id


def org_context(conn: HTTPConnection) -> OrgContext:
    """The verified org of a request (raises ``LookupError`` on exempt paths)."""
    context: OrgContext | None = conn.scope.get(SCOPE_KEY)
    if context is None:
        raise LookupError("this request was not authenticated (exempt path?)")
    return context


def require_scopes(conn: HTTPConnection, *scopes: str) -> OrgContext:
    """Raise :class:`~scout_auth.exceptions.InsufficientScope` (answered 403) unless granted."""
    context = org_context(conn)
    check_scopes(context, scopes)
    return context
