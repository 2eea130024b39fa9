"""Who may do what: principals, org access, the scope ceiling of a key, CSRF.

Rules (docs/keys-page.md, "Who may use it"):

* The host application names its users: ``authorize(request)`` returns a
  :class:`Principal` (or ``None``: 401). An org the principal may neither
  view nor administer is answered 404, so membership is not revealed; a
  viewer may read (403 on every change).
* An Org Credential whose granted scopes contain :data:`MANAGE_SCOPE`
  itself (not through ``*`` or ``keys:*``; an unrestricted key does not
  count; legacy secrets never do) administers its own org, under a
  ceiling: every key it creates, changes, enables or rotates must end up
  within what the acting key has — no scope it lacks (its effective
  scopes, roles included, judged *after* the change), never unrestricted,
  no later expiry than its own, no wider allowlist than its own. It may
  disable and delete any key of its org (that hands it nothing).
* A principal from ``authorize`` rides on the host's cookies, so every
  change it makes must prove it came from the page: no cross-site
  ``Sec-Fetch-Site`` / ``Origin``, and the :data:`CSRF_HEADER` that only
  same-origin JavaScript can set (a cross-site form cannot send custom
  headers; a cross-site ``fetch`` that tries needs a CORS preflight this
  app never grants). Credential requests carry no ambient authority and
  need neither.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from .._core.records import CredentialKind, IPNetwork, OrgContext
from .._core.scopes import missing_scopes
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
        expires_at: For a key: its own expiry, the latest one it may give.
        allowed_ips: For a key: its own allowlist, the widest it may give.

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
    expires_at: datetime | None
    allowed_ips: tuple[IPNetwork, ...] | None

    def __init__(
        self,
        user: str,
        admin_orgs: Iterable[str] = (),
        viewer_orgs: Iterable[str] = (),
        scopes: Iterable[str] | None = None,
        *,
        is_key: bool = False,
        expires_at: datetime | None = None,
        allowed_ips: tuple[IPNetwork, ...] | None = None,
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
        object.__setattr__(self, "expires_at", expires_at)
        object.__setattr__(self, "allowed_ips", allowed_ips)

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


def may_manage(context: OrgContext) -> bool:
    """Whether a verified credential may manage keys: an Org Credential naming the scope.

    Exactly :data:`MANAGE_SCOPE`: an unrestricted key, ``*`` and ``keys:*``
    were granted for the API, not made root keys by accident of matching.
    """
    return (
        context.kind is CredentialKind.ORG_CREDENTIAL
        and context.scopes is not None
        and MANAGE_SCOPE in context.scopes
    )


def key_principal(context: OrgContext) -> Principal:
    """The principal of a verified Org Credential (its key's expiry and allowlist: its ceiling)."""
    if not may_manage(context):
        detail = (
            "A legacy secret cannot manage keys."
            if context.kind is not CredentialKind.ORG_CREDENTIAL
            else f"This key needs the {MANAGE_SCOPE!r} scope itself to manage keys."
        )
        raise ManageProblem(403, "insufficient_scope", detail)
    return Principal(
        f"key:{context.key_id}",
        admin_orgs=frozenset({context.org_id}),
        scopes=context.scopes,
        is_key=True,
        expires_at=context.expires_at,
        allowed_ips=context.allowed_ips,
    )


def effective_scopes(
    scopes: frozenset[str] | None, roles: frozenset[str], role_scopes: Mapping[str, frozenset[str]]
) -> frozenset[str] | None:
    """What a key grants: its scopes, plus its roles' (no scopes and no roles: everything).

    The verifier's rule (``_core/flow.py``); ``role_scopes`` are the org's roles.
    """
    if not roles:
        return scopes
    granted = set(scopes or ())
    for name in roles:
        granted |= role_scopes.get(name, frozenset())
    return frozenset(granted)


def _networks(entries: Iterable[str]) -> list[IPNetwork]:
    try:
        return [ipaddress.ip_network(e.strip(), strict=False) for e in entries]
    except ValueError:
        raise ManageProblem(
            422, "invalid_argument", "allowed_ips: each entry must be an IP address or CIDR range",
            errors=[{"field": "allowed_ips", "message": "must be IP addresses or CIDR ranges"}],
        ) from None  # fmt: skip


def check_result(
    principal: Principal,
    *,
    granted: frozenset[str] | None,
    expires_at: datetime | None,
    allowed_ips: Iterable[str] | None,
    what: str,
) -> None:
    """403 unless a key principal could hold a key that ends up like this itself.

    ``granted``: the key's effective scopes after the change (``None``:
    unrestricted), then its expiry and allowlist. People have no ceiling.
    """
    if not principal.is_key:
        return
    if granted is None:
        raise ManageProblem(403, "scope_ceiling", f"A key cannot make a key unrestricted ({what}).")
    check_ceiling(principal, granted, what)
    own_expiry = principal.expires_at
    if own_expiry is not None and (expires_at is None or expires_at > own_expiry):
        raise ManageProblem(
            403,
            "expiry_ceiling",
            f"A key cannot give a key a later expiry than its own ({what}).",
        )
    own_ips = principal.allowed_ips
    if own_ips is not None:
        wanted = None if allowed_ips is None else _networks(allowed_ips)
        if wanted is None or not all(
            any(n.version == o.version and n.subnet_of(o) for o in own_ips)  # type: ignore[arg-type]
            for n in wanted
        ):
            raise ManageProblem(
                403,
                "allowlist_ceiling",
                f"A key cannot give a key a wider IP allowlist than its own ({what}).",
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
