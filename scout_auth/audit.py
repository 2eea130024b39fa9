"""Audit trail: append-only events for key lifecycle changes and refused requests.

Every lifecycle change made through :class:`~scout_auth.KeyManager` /
:class:`~scout_auth.AsyncKeyManager` (given ``audit=``) and every refusal of
a request that named a real key (the verifier and middlewares build it with
:func:`denial_event`) becomes one :class:`AuditEvent`: who, what, when,
which org and key, why. Never a secret, never a token.

Events go to an :class:`AuditSink`: a key store's own
(``store.audit_sink()``: memory, the SQL ``scout_auth_audit_events`` table,
Redis streams) or :class:`LoggingAuditSink` (JSON through stdlib logging).
Put an :class:`AuditBuffer` in front of it on the request path: recording
never waits for the sink. See ``docs/audit.md``.

Example::

    from scout_auth import InMemoryKeyStore, KeyManager
    from scout_auth.audit import AuditBuffer

    store = InMemoryKeyStore()
    with AuditBuffer(store.audit_sink()) as audit:
        manager = KeyManager(store, audit=audit)
        manager.create_key("org_1", "billing-sync prod", actor="alice@example.com")
    page = store.audit_sink().query("org_1")   # newest first
"""

from __future__ import annotations

from ._audit.events import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    AuditAction,
    AuditEvent,
    AuditPage,
    AuditSink,
    denial_event,
)
from ._audit.sinks import InMemoryAuditSink, LoggingAuditSink
from ._drivers.audit_buffer import AuditBuffer, DropPolicy

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "AuditAction",
    "AuditBuffer",
    "AuditEvent",
    "AuditPage",
    "AuditSink",
    "DropPolicy",
    "InMemoryAuditSink",
    "LoggingAuditSink",
    "denial_event",
]
