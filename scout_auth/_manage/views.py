"""Records as JSON: keys with their status, legacy status, roles, scopes, events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .._audit.events import AuditEvent, event_to_dict
from .._audit.query import decode_cursor, encode_cursor
from .._core.records import KeyRecord, LegacyStatus, RoleRecord, ScopeInfo
from .._core.report import KeyReport
from .parse import invalid

__all__ = [
    "EXPIRES_SOON",
    "KEY_STATUSES",
    "event_view",
    "key_status",
    "key_view",
    "keys_page",
    "legacy_view",
    "report_view",
    "role_view",
    "scope_view",
]

#: A key that expires within this is ``expires_soon``.
EXPIRES_SOON = timedelta(days=7)

#: Every status a key can have, in the order the rules below try them.
KEY_STATUSES = ("disabled", "expired", "rotation_grace", "expires_soon", "active")


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    try:
        return value.astimezone(UTC).isoformat(timespec="seconds")
    except OverflowError:  # a stored instant past UTC's year 9999: show it as it is
        return value.isoformat(timespec="seconds")


def key_status(key: KeyRecord, now: datetime) -> str:
    """``disabled``, ``expired``, ``rotation_grace`` (rotated, old key still valid),
    ``expires_soon`` (within :data:`EXPIRES_SOON`) or ``active``."""
    if not key.enabled:
        return "disabled"
    if key.is_expired(now):
        return "expired"
    if key.replaced_by is not None:
        return "rotation_grace"
    if key.expires_at is not None and key.expires_at - now <= EXPIRES_SOON:
        return "expires_soon"
    return "active"


def key_view(key: KeyRecord, now: datetime) -> dict[str, Any]:
    """A key's public data (never its public key bytes: nothing a client needs)."""
    return {
        "id": key.key_id,
        "org_id": key.org_id,
        "name": key.name,
        "description": key.description,
        "status": key_status(key, now),
        "enabled": key.enabled,
        "created_at": _time(key.created_at),
        "created_by": key.created_by,
        "expires_at": _time(key.expires_at),
        "scopes": None if key.scopes is None else sorted(key.scopes),
        "roles": sorted(key.roles),
        "allowed_ips": None if key.allowed_ips is None else list(key.allowed_ips),
        "replaced_by": key.replaced_by,
        "last_used_at": _time(key.last_used_at),
        "last_used_address": key.last_used_address,
        "use_count": key.use_count,
        "recoverable": key.recoverable,
        "token_prefix": f"scout_sk_{key.key_id}_",
    }


def legacy_view(status: LegacyStatus) -> dict[str, Any]:
    """An org's legacy status."""
    return {
        "exists": status.exists,
        "enabled": status.enabled,
        "last_used_at": _time(status.last_used_at),
        "requests": status.requests,
        "days": status.days,
    }


def report_view(report: KeyReport) -> dict[str, Any]:
    """The org's key hygiene report (``KeyManager.key_report``): keys as :func:`key_view`."""
    at = report.at

    def key(record: KeyRecord) -> dict[str, Any]:
        return key_view(record, at)

    return {
        "at": _time(at),
        "expiring_days": report.expiring_days,
        "unused_days": report.unused_days,
        "expiring": [key(k) for k in report.expiring],
        "unused": [key(k) for k in report.unused],
        "grace_in_use": [
            {"key": key(old), "replaced_by": new.key_id, "rotated_at": _time(new.created_at)}
            for old, new in report.grace_in_use
        ],
        "policy_breaches": [{"key": key(k), "why": why} for k, why in report.policy_breaches],
    }


def role_view(role: RoleRecord) -> dict[str, Any]:
    """A role."""
    return {"name": role.name, "scopes": sorted(role.scopes)}


def scope_view(info: ScopeInfo) -> dict[str, Any]:
    """An entry of the org's scope catalogue."""
    return {"name": info.name, "description": info.description}


def event_view(event: AuditEvent) -> dict[str, Any]:
    """An audit event (the audit module's own JSON form)."""
    return dict(event_to_dict(event))


def _after(cursor: str) -> tuple[datetime, str]:
    # The audit trail's keyset cursor, reused: a position is a (time, id) pair.
    try:
        return decode_cursor(cursor)
    except ValueError:
        raise invalid("cursor", "is not a cursor this API gave out") from None


def keys_page(
    keys: Sequence[KeyRecord],
    now: datetime,
    *,
    limit: int,
    cursor: str | None,
    statuses: Sequence[str] = (),
    search: str | None = None,
) -> tuple[list[dict[str, Any]], str | None, int]:
    """One page of an org's keys (oldest first), the next cursor and the match count.

    The cursor names the last key shown by ``(created_at, key_id)``, the
    order stores list in: keys created meanwhile are newer and land on
    later pages; none repeats or is skipped.
    """
    wanted = set(statuses)
    needle = search.casefold() if search else None
    matching = [
        k
        for k in keys
        if (not wanted or key_status(k, now) in wanted)
        and (needle is None or needle in k.name.casefold() or needle in k.key_id)
    ]
    start = 0
    if cursor is not None:
        after = _after(cursor)
        start = next(
            (i for i, k in enumerate(matching) if (k.created_at, k.key_id) > after),
            len(matching),
        )
    page = matching[start : start + limit]
    more = start + limit < len(matching)
    return (
        [key_view(k, now) for k in page],
        (encode_cursor(page[-1].created_at, page[-1].key_id) if more else None),
        len(matching),
    )
