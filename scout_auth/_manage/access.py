"""Who may do what: principals, org access, the scope ceiling of a key, CSRF.

Rules (docs/keys-page.md, "Who may use it"):

* The host application names its users: ``authorize(request)`` returns a
  :class:`Principal` (or ``None``: 401). An org the principal may neither
  view nor administer is answered 404, so membership is not revealed; a
  viewer may read (403 on every change).
* An Org Credential whose granted scopes name :data:`MANAGE_SCOPE`
  explicitly (an unrestricted key does not count; legacy secrets never do)
  administers its own org. It may grant no scope it does not hold itself:
  not to a new key, not to an existing one, not through a role, and it may
  not rotate a key that holds more than it (the new token would).
* A principal from ``authorize`` rides on the host's cookies, so every
  change it makes must prove it came from the page: no cross-site
  ``Sec-Fetch-Site`` / ``Origin``, and the :data:`CSRF_HEADER` that only
  same-origin JavaScript can set (a cross-site form cannot send custom
  headers; a cross-site ``fetch`` that tries needs a CORS preflight this
  app never grants). Credential requests carry no ambient authority and
  need neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .._core.records import CredentialKind, OrgContext
from .._core.scopes import missing_scopes, scope_granted
from .http import ManageProblem

__all__ = [
    "CSRF_HEADER",
    "MANAGE_SCOPE",
    "Principal",
    "check_ceiling",
    "check_csrf",
    "is_key_request",
    "key_principal",
]

#: The scope that lets an Org Credential manage its own org's keys.
MANAGE_SCOPE = "keys:manage"

#: The header the page's ``fetch`` sets on every change (any non-empty value).
CSRF_HEADER = "x-scout-auth-request"

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True, init=False)
class Principal:
    """Who makes a management request, as the host application knows them.

    Args:
        user: How the audit trail names them (an email, a user id).
        admin_orgs: Orgs they administer (view and change).
        viewer_orgs: Orgs they may only view.
        scopes: For a key acting as a principal: the scopes it holds, the
            ceiling of what it may grant. ``None`` for people (no ceiling).
        is_key: Whether an Org Credential acts (set by scout_auth itself).

    Example:
        >>> p = Principal("alice@example.com", admin_orgs=["org_1"], viewer_orgs=["org_2"])
        >>> p.can_admin("org_1"), p.can_view("org_2"), p.can_admin("org_2")
        (True, True, False)
    """

    user: str
    admin_orgs: frozenset[str]
    viewer_orgs: frozenset[str]
    scopes: frozenset[str] | None
    is_key: bool

    def __init__(
        self,
        user: str,
        admin_orgs: Iterable[str] = (),
        viewer_orgs: Iterable[str] = (),
        scopes: Iterable[str] | None = None,
        *,
        is_key: bool = False,
    ) -> None:
        if not isinstance(user, str) or not user or len(user) > 200:
            raise ValueError("Principal.user must be a non-empty string of at most 200 characters")
        if isinstance(admin_orgs, str) or isinstance(viewer_orgs, str):
            raise TypeError("Principal's orgs are collections of org ids, not a string")
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "admin_orgs", frozenset(admin_orgs))
        object.__setattr__(self, "viewer_orgs", frozenset(viewer_orgs))
        object.__setattr__(self, "scopes", None if scopes is None else frozenset(scopes))
        object.__setattr__(self, "is_key", is_key)

    def can_view(self, org_id: str) -> bool:
        """Whether they may read ``org_id``'s keys."""
        return org_id in self.admin_orgs or org_id in self.viewer_orgs

    def can_admin(self, org_id: str) -> bool:
        """Whether they may change ``org_id``'s keys."""
        return org_id in self.admin_orgs

    @property
    def orgs(self) -> list[str]:
        """Every org they may view, sorted."""
        return sorted(self.admin_orgs | self.viewer_orgs)


def is_key_request(headers: Mapping[str, str]) -> bool:
    """Whether the request authenticates with an Org Credential, not the host's session.

    ``Bearer scout_sk_…`` or an RFC 9421 ``Signature`` header. Any other
    ``Authorization`` (the host's own JWTs, a browser's cached Basic login)
    goes to ``authorize``: legacy secrets never manage keys.
    """
    if "signature" in headers or "signature-input" in headers:
        return True
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    return scheme.lower() == "bearer" and token.strip().startswith("scout_sk_")


def key_principal(context: OrgContext) -> Principal:
    """The principal of a verified Org Credential, or 403 if it may not manage keys."""
    if context.kind is not CredentialKind.ORG_CREDENTIAL:
        raise ManageProblem(403, "insufficient_scope", "A legacy secret cannot manage keys.")
    # Explicit only: an unrestricted key (scopes None) was not made to manage keys.
    if context.scopes is None or not scope_granted(context.scopes, MANAGE_SCOPE):
        raise ManageProblem(
            403, "insufficient_scope", f"This key needs the {MANAGE_SCOPE!r} scope to manage keys."
        )
    return Principal(
        f"key:{context.key_id}",
        admin_orgs=frozenset({context.org_id}),
        scopes=context.scopes,
        is_key=True,
    )


def check_ceiling(principal: Principal, scopes: Iterable[str] | None, what: str) -> None:
    """403 unless ``principal`` may grant every scope of ``scopes`` (``None``: all)."""
    ceiling = principal.scopes
    if ceiling is None:
        return
    if scopes is None:
        if "*" not in ceiling:
            raise ManageProblem(
                403, "scope_ceiling", f"A key cannot grant unrestricted access ({what})."
            )
        return
    missing = missing_scopes(ceiling, sorted(scopes))
    if missing:
        raise ManageProblem(
            403,
            "scope_ceiling",
            f"A key cannot grant scopes it does not hold ({what}): {', '.join(missing)}",
        )


def check_csrf(method: str, headers: Mapping[str, str], origin: str) -> None:
    """403 for a change that did not come from this origin's page (see the module doc)."""
    if method in _SAFE_METHODS:
        return
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise ManageProblem(403, "cross_site_request", "Cross-site requests cannot change keys.")
    sent_origin = headers.get("origin")
    if sent_origin is not None and sent_origin.rstrip("/").lower() != origin.rstrip("/").lower():
        raise ManageProblem(403, "cross_site_request", "Cross-site requests cannot change keys.")
    if not headers.get(CSRF_HEADER, "").strip():
        raise ManageProblem(
            403,
            "csrf_header_missing",
            f"Changes need the {CSRF_HEADER!r} header (the keys page sets it).",
        )
