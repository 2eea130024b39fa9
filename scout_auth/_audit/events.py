"""Audit events: plain data, the sink protocol, denial events. No I/O.

Theory of operation
-------------------
An :class:`AuditEvent` records one lifecycle change (written by the key
managers) or one refused request that named a real key (built by
:func:`denial_event` for the verifier and the middlewares). Events are
append-only: sinks insert them and never change or delete one.

Every text field is cleaned in the constructor, so no sink ever sees token
material: anything that looks like the ``scout_sk_`` prefix (also
percent-encoded, any case) is cut off after the prefix, the request path
loses its query string (where credentials travel), free text is trimmed to
its column width, and characters no back end can store (NUL, which
PostgreSQL refuses in text; lone surrogates, which no UTF-8 driver can
encode) become U+FFFD. A client chooses the path of a denied request: one
unstorable event would fail its whole batch, and the audit buffer retries
that batch first, forever, so no later event would be written. Ids that do
not fit are refused: they come from our own code, never from a client.

Sinks list events newest first, a page (:class:`AuditPage`) at a time;
how a query is checked, paged and continued by cursor lives in
``query.py``.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "AuditAction",
    "AuditEvent",
    "AuditPage",
    "AuditSink",
    "denial_event",
    "event_from_dict",
    "event_to_dict",
    "redact",
]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


class AuditAction(enum.StrEnum):
    """The ``action`` of an audit event (stable strings: stored and queried)."""

    CREATED = "created"
    RENAMED = "renamed"
    ENABLED = "enabled"
    DISABLED = "disabled"
    ROTATED = "rotated"
    DELETED = "deleted"
    LEGACY_IMPORTED = "legacy_imported"
    LEGACY_DELETED = "legacy_deleted"
    SCOPES_CHANGED = "scopes_changed"
    ROLES_CHANGED = "roles_changed"
    ALLOWED_IPS_CHANGED = "allowed_ips_changed"
    LEGACY_ENABLED = "legacy_enabled"
    LEGACY_DISABLED = "legacy_disabled"
    #: A role was created or changed (``key_name`` holds the role's name).
    ROLE_UPDATED = "role_updated"
    #: A role was deleted (``key_name`` holds the role's name).
    ROLE_DELETED = "role_deleted"
    DESCRIPTION_CHANGED = "description_changed"
    EXPIRY_CHANGED = "expiry_changed"
    #: A scope was published in the org's catalogue, or its description
    #: changed (``key_name`` holds the scope).
    SCOPE_PUBLISHED = "scope_published"
    #: A scope was removed from the org's catalogue (``key_name`` holds the scope).
    SCOPE_UNPUBLISHED = "scope_unpublished"
    #: A recoverable key's token was revealed again (KeyManager.reveal_key).
    REVEALED = "revealed"
    #: A secret scanner reported the key's token as exposed (``KeyManager.report_leak``):
    #: ``actor`` is ``secret-scanner:<source>``, ``path`` the report's URL
    #: (query cut off, tokens redacted). The issue's ``key.leaked``: action
    #: codes are ``[a-z][a-z0-9_]*``, so the dot is dropped.
    LEAKED = "leaked"
    #: A request that named a real key was refused; ``reason`` says why.
    DENIED = "denied"


# Column widths, shared with the SQL schema. Ids are refused when longer,
# free text (it may come from a client) is trimmed.
ID_WIDTHS = {
    "id": 64,
    "action": 64,
    "org_id": 200,
    "key_id": 255,
    "reason": 64,
    "replaced_by": 64,
}
TEXT_WIDTHS = {"key_name": 200, "actor": 200, "method": 16, "path": 2048, "client_ip": 64}

_CODE = re.compile(r"[a-z][a-z0-9_]*")
# The token prefix, also percent-encoded ("%5F" for "_") and in any case.
_TOKEN = re.compile(r"scout(?:_|%5f)sk(?:_|%5f)[^\s/?#&;,\"']*", re.IGNORECASE)
REDACTED = "scout_sk_…"
# NUL and lone surrogates: unstorable in PostgreSQL text / any UTF-8 column.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: str) -> str:
    return _UNSTORABLE.sub("\ufffd", value)


def redact(value: str) -> str:
    """``value`` with anything after a ``scout_sk_`` prefix cut off."""
    return _TOKEN.sub(REDACTED, value) if "sk" in value.lower() else value


def clean_text(name: str, value: str) -> str | None:
    """Free text ``value`` of field ``name`` as an event stores it (``None`` if empty).

    Also for a query's filter on that field, so it compares with what was stored.
    """
    if name == "path":
        value = value.split("?", 1)[0].split("#", 1)[0]
    return _storable(redact(value)[: TEXT_WIDTHS[name]]) or None


def action_code(value: object) -> str:
    """``value`` as a plain action string, if it has the form of one (known or not).

    Raises:
        TypeError: Not a string.
        ValueError: Not a lower-case code of 1 to 64 characters.
    """
    if isinstance(value, enum.Enum):
        value = value.value
    if not isinstance(value, str):
        raise TypeError("an action must be a string")
    if len(value) > ID_WIDTHS["action"] or not _CODE.fullmatch(value):
        raise ValueError("an action must be a lower-case code like 'denied'")
    return str(value)


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One append-only audit record. Never contains a secret or a token.

    Attributes:
        action: What happened (an :class:`AuditAction` value).
        org_id: The organization concerned.
        at: When (timezone-aware; stored as UTC). Default: now.
        key_id: The key concerned, or ``None`` (legacy import/delete).
        key_name: The key's name at the time.
        actor: Who made the change, as the caller named them.
        reason: For ``denied``: the stable error code (``key_disabled``…).
        method: For ``denied``: the request method.
        path: For ``denied``: the request path, without its query string.
        client_ip: For ``denied``: the client address.
        replaced_by: For ``rotated``: the successor's key id.
        id: Unique event id (default: a random 32-hex-digit id).

    Raises:
        ValueError: A naive ``at``, an empty ``org_id`` or ``action``, an
            action or reason that is not a lower-case code, an id too long.
        TypeError: A field of the wrong type.
    """

    action: str
    org_id: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    key_id: str | None = None
    key_name: str | None = None
    actor: str | None = None
    reason: str | None = None
    method: str | None = None
    path: str | None = None
    client_ip: str | None = None
    replaced_by: str | None = None
    id: str = field(default_factory=_new_id)

    def __post_init__(self) -> None:
        if not isinstance(self.at, datetime):
            raise TypeError("at must be a datetime")
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("at must be timezone-aware")
        object.__setattr__(self, "at", self.at.astimezone(UTC))
        if isinstance(self.action, enum.Enum):  # store the plain string
            object.__setattr__(self, "action", self.action.value)
        for name, width in ID_WIDTHS.items():
            value = getattr(self, name)
            if value is None and name in ("key_id", "reason", "replaced_by"):
                continue
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a string")
            if not value or len(value) > width:
                raise ValueError(f"{name} must be 1 to {width} characters")
            if name in ("action", "reason") and not _CODE.fullmatch(value):
                raise ValueError(f"{name} must be a lower-case code like 'key_disabled'")
            cleaned = redact(value)
            if cleaned != value:
                object.__setattr__(self, name, cleaned)
        if self.action == AuditAction.DENIED and self.reason is None:
            raise ValueError("a 'denied' event needs a reason code")
        for name in TEXT_WIDTHS:
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a string or None")
            object.__setattr__(self, name, clean_text(name, value))


#: The event fields in storage order.
FIELDS = (
    "id", "at", "action", "org_id", "key_id", "key_name", "actor",
    "reason", "method", "path", "client_ip", "replaced_by",
)  # fmt: skip
assert set(FIELDS) == {f.name for f in fields(AuditEvent)}


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of events, newest first.

    Attributes:
        events: The events, ``(at, id)`` descending.
        next: Pass as ``before=`` for the following page; ``None`` on the last.
    """

    events: tuple[AuditEvent, ...]
    next: str | None = None

    def __iter__(self) -> Iterator[AuditEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


@runtime_checkable
class AuditSink(Protocol):
    """Where audit events go: sync and async methods side by side.

    ``write`` is append-only and idempotent per event id where the back end
    allows it (a retried batch is not stored twice). ``query`` needs at
    least one of ``org_id`` / ``key_id``, takes keyword-only filters
    (``actions``, ``actor``, ``since``, ``until``) and lists newest first; a
    sink that can only write (:class:`~scout_auth.audit.LoggingAuditSink`)
    raises ``NotImplementedError``.
    """

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Append ``events``; raises on failure (nothing or everything written)."""

    def query(
        self,
        org_id: str | None = None,
        key_id: str | None = None,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        before: str | None = None,
        actions: Iterable[str] | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> AuditPage:
        """The newest ``limit`` events of an org and/or a key, below cursor ``before``.

        The filters narrow the events down, all together: ``actions`` (any
        of these), ``actor`` (exactly), ``since <= at < until``. A cursor
        continues the query it came from, filters included.
        """

    async def awrite(self, events: Sequence[AuditEvent]) -> None:
        """Async :meth:`write`."""

    async def aquery(
        self,
        org_id: str | None = None,
        key_id: str | None = None,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        before: str | None = None,
        actions: Iterable[str] | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> AuditPage:
        """Async :meth:`query`."""


def event_to_dict(event: AuditEvent) -> dict[str, str | None]:
    """The event as JSON-ready text: ``at`` in ISO 8601 UTC with microseconds."""
    out: dict[str, str | None] = {}
    for name in FIELDS:
        value = getattr(event, name)
        out[name] = value.isoformat(timespec="microseconds") if name == "at" else value
    return out


def event_from_dict(data: Mapping[str, Any]) -> AuditEvent:
    """The inverse of :func:`event_to_dict` (missing fields are ``None``)."""
    values = {name: data.get(name) or None for name in FIELDS}
    at = values.pop("at")
    return AuditEvent(at=datetime.fromisoformat(at), **values)  # type: ignore[arg-type]


def event_json(event: AuditEvent) -> str:
    """One compact JSON object (ASCII only: no control character reaches a log line)."""
    return json.dumps(event_to_dict(event), separators=(",", ":"))


def denial_event(
    *,
    error_code: str,
    org_id: str,
    key_id: str | None,
    key_name: str | None,
    method: str | None,
    path: str | None,
    client_ip: str | None,
    at: datetime | None = None,
) -> AuditEvent:
    """The audit event for a refused request that named a real key.

    For the verifier and the middlewares: call it only once the key is known
    to exist (401 ``key_disabled`` / ``key_expired``, 403, a replay, a refused
    IP), never for an unknown key or a bad token. It never contains the
    token: the query string is dropped and anything token-like redacted.

    Args:
        error_code: The stable code of the error (``AuthError.code``).
        org_id: The key's organization.
        key_id: The key's id (``legacy:<org>`` for a legacy credential).
        key_name: The key's name.
        method: The request method.
        path: The request path (a query string is cut off).
        client_ip: The client address as the adapter determined it.
        at: When (default: now).

    Returns:
        An :class:`AuditEvent` with action ``denied`` and ``reason=error_code``.

    Example:
        >>> event = denial_event(error_code="key_disabled", org_id="org_1",
        ...     key_id="k" * 20, key_name="billing", method="GET",
        ...     path="/v1/files?token=x", client_ip="203.0.113.7")
        >>> event.path
        '/v1/files'
    """
    return AuditEvent(
        action=AuditAction.DENIED,
        org_id=org_id,
        at=at if at is not None else datetime.now(UTC),
        key_id=key_id,
        key_name=key_name,
        reason=error_code,
        method=method,
        path=path,
        client_ip=client_ip,
    )
