"""The scope catalogue's lifecycle operations, written once (as in :mod:`.lifecycle`).

An org publishes the scopes its API understands, each with a description
for people, so a key-creation form can offer them as a picker. The
catalogue describes; it grants nothing: a key may hold a scope that is not
published, and unpublishing one changes no key. So its writes are no
credential changes and publish no :class:`~.store.KeyEvent`; they are
audited like role changes (``key_name`` holds the scope).
"""

from __future__ import annotations

from .._audit.events import AuditAction
from ..exceptions import InvalidKeyOperation, KeyNotFound
from .lifecycle import (
    MAX_NAME_LENGTH,
    Op,
    StoreCall,
    _check_id,
    _role_audit,
    _scopes,
    check_actor,
    check_description,
)
from .records import ScopeInfo

__all__ = [
    "MAX_SCOPE_DESCRIPTION_LENGTH",
    "list_scope_catalogue",
    "publish_scope",
    "unpublish_scope",
]

MAX_SCOPE_DESCRIPTION_LENGTH = 500


def _check_scope_name(name: str) -> str:
    scopes = _scopes([name]) if isinstance(name, str) else None
    if scopes is None or len(name) > MAX_NAME_LENGTH:
        raise InvalidKeyOperation("a scope is 1 to 200 printable ASCII characters without spaces")
    if "*" in name:
        # A wildcard grants a family of scopes; the catalogue lists real ones.
        raise InvalidKeyOperation("a published scope is one scope, without '*'")
    return name


def publish_scope(
    org_id: str, name: str, description: str, now: float, actor: str | None = None
) -> Op[ScopeInfo]:
    """Create or replace one scope of the org's catalogue."""
    info = ScopeInfo(
        _check_id(org_id, "org_id"),
        _check_scope_name(name),
        check_description(description, "a scope description", MAX_SCOPE_DESCRIPTION_LENGTH),
    )
    check_actor(actor)
    yield StoreCall("put_scope_info", (info,))
    yield _role_audit(AuditAction.SCOPE_PUBLISHED, org_id, name, actor, now)
    return info


def unpublish_scope(org_id: str, name: str, now: float, actor: str | None = None) -> Op[None]:
    """Remove one scope from the catalogue (``KeyNotFound`` if it is not there)."""
    check_actor(actor)
    existed = yield StoreCall("delete_scope_info", (org_id, name))
    if not existed:
        raise KeyNotFound(f"scope:{name}")
    yield _role_audit(AuditAction.SCOPE_UNPUBLISHED, org_id, name, actor, now)
    return None


def list_scope_catalogue(org_id: str) -> Op[list[ScopeInfo]]:
    """The org's published scopes, by name."""
    infos: list[ScopeInfo] = yield StoreCall("list_scope_infos", (org_id,))
    return infos
