"""A leaked token, reported by a secret scanner: one lifecycle op.

Theory of operation
-------------------
:func:`report_leak` takes the raw token a scanner found, checks its format
and checksum offline (:func:`~.tokens.parse_token`), reads the key its id
names and compares the public key derived from the token's seed with the
stored one. Only a token that *is* a key's private half counts: key ids are
public (they travel in signed requests), so a forged token that names a real
key id but carries another seed must change nothing, or anyone who can push
to a public repository could switch off any key by naming it.

A real key is disabled (``on_report="disable"``, reversible by an admin) or
deleted (``"delete"``) in one store write, and the op records ``leaked``
(with the report's URL and source) after the write, then the usual
``disabled`` / ``deleted`` event. A key already disabled is not written
again; the report is still recorded. Anything else returns ``None`` and
writes nothing.
"""

from __future__ import annotations

import hmac
from typing import Final, Literal, get_args

from .._audit.events import AuditAction
from ..exceptions import InvalidKeyOperation, KeyNotFound
from .lifecycle import Audit, Op, StoreCall, _audit, check_actor, update_key
from .records import KeyRecord
from .store import KeyUpdate
from .tokens import parse_token, public_key_from_seed

__all__ = ["LEAK_POLICIES", "LeakPolicy", "report_leak"]

#: What happens to a key whose token was reported.
LeakPolicy = Literal["disable", "delete"]
LEAK_POLICIES: Final = frozenset(get_args(LeakPolicy))

#: The report URL as kept in the audit trail (the ``path`` column's width).
MAX_URL_LENGTH = 2048


def check_policy(on_report: object) -> LeakPolicy:
    """``on_report`` if it is ``"disable"`` or ``"delete"``; else InvalidKeyOperation."""
    if not isinstance(on_report, str) or on_report not in LEAK_POLICIES:
        raise InvalidKeyOperation('on_report must be "disable" or "delete"')
    return on_report  # type: ignore[return-value]


def report_leak(
    token: str,
    now: float,
    *,
    url: str | None,
    actor: str | None,
    on_report: LeakPolicy = "disable",
) -> Op[KeyRecord | None]:
    """Disable or delete the key ``token`` belongs to; ``None`` if it is no real key."""
    policy = check_policy(on_report)
    check_actor(actor)
    if url is not None and not isinstance(url, str):
        raise InvalidKeyOperation("url must be a string or None")
    parsed = parse_token(token) if isinstance(token, str) else None
    if parsed is None:
        return None
    record: KeyRecord | None = yield StoreCall("get_key", (parsed.key_id,))
    if record is None:
        return None
    if not hmac.compare_digest(public_key_from_seed(parsed.seed), record.public_key):
        return None  # a real key id with a seed that is not its own: a forgery
    report_url = None if url is None else url[:MAX_URL_LENGTH]
    if policy == "delete":
        deleted: KeyRecord | None = yield StoreCall("delete_key", (record.key_id,))
        if deleted is None:  # deleted meanwhile: nothing left to stop
            return None
        yield _leaked(deleted, actor, now, report_url)
        yield _audit(AuditAction.DELETED, deleted, actor, now)
        return deleted
    if not record.enabled:
        yield _leaked(record, actor, now, report_url)
        return record
    try:
        updated = yield from update_key(record.key_id, KeyUpdate(enabled=False))
    except KeyNotFound:  # deleted meanwhile: nothing left to stop
        return None
    yield _leaked(updated, actor, now, report_url)
    yield _audit(AuditAction.DISABLED, updated, actor, now)
    return updated


def _leaked(record: KeyRecord, actor: str | None, now: float, url: str | None) -> Audit:
    return _audit(AuditAction.LEAKED, record, actor, now, path=url)
