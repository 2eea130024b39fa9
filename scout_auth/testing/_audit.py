"""The audit contract: every store's ``audit_sink()`` behaves like the in-memory one.

Mixed into :class:`~scout_auth.testing.StoreContract`, so it runs against
every store adapter with the same ``store`` fixture. Tests use unique org and
key ids (a shared database is fine) and write events in ``at`` order, the
order in which every sink lists them (Redis lists by arrival).
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from itertools import count
from typing import Any

import pytest

from .. import KeyManager
from ..audit import AuditEvent, InMemoryAuditSink, denial_event
from ._support import cheap_hasher

__all__ = ["AuditContract"]

_T = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
_tick = count()
TOKEN = "scout_sk_abcdefghijklmnopqrst_" + "A" * 49


def at() -> datetime:
    """A fresh instant, later than every earlier one in this run."""
    return _T + timedelta(milliseconds=next(_tick))


def org() -> str:
    return f"org_{uuid.uuid4().hex[:12]}"


def key() -> str:
    return uuid.uuid4().hex[:20]


def event(org_id: str, key_id: str | None = None, **over: Any) -> AuditEvent:
    fields: dict[str, Any] = {"action": "disabled", "org_id": org_id, "at": at(), "key_id": key_id}
    fields.update(over)
    return AuditEvent(**fields)


def walk(
    sink: Any, org_id: str | None = None, key_id: str | None = None, *, limit: int
) -> list[AuditEvent]:
    """Every event, page by page."""
    found: list[AuditEvent] = []
    cursor = None
    for _ in range(1000):
        page = sink.query(org_id, key_id, limit=limit, before=cursor)
        assert len(page.events) <= limit
        found += page.events
        if page.next is None:
            return found
        cursor = page.next
    raise AssertionError("pagination did not end")


class AuditContract:
    """Behaviour every store's audit sink must have. Subclasses provide ``store``."""

    @pytest.fixture
    def sink(self, store: Any) -> Any:
        return store.audit_sink()

    def test_audit_write_then_query_round_trips_every_field(self, sink: Any) -> None:
        o, k = org(), key()
        when = at().replace(microsecond=999999).astimezone(timezone(timedelta(hours=2)))
        e = AuditEvent(
            action="denied",
            org_id=o,
            at=when,
            key_id=k,
            key_name="ünïcode ✓ name",
            actor="alice@example.com",
            reason="key_disabled",
            method="DELETE",
            path="/v1/files/ä%20b",
            client_ip="2001:db8::1",
            replaced_by=key(),
        )
        sink.write([e])
        (got,) = sink.query(o).events
        assert got == e
        assert got.at == when
        assert got.at.tzinfo == UTC
        assert got.at.microsecond == 999999
        minimal = AuditEvent("created", o, at() + timedelta(seconds=1))  # required fields only
        sink.write([minimal])
        assert sink.query(o).events == (minimal, e)

    def test_audit_newest_first_and_every_page_exactly_once(self, sink: Any) -> None:
        o = org()
        events = [event(o, key()) for _ in range(7)]
        sink.write(events[:3])
        sink.write(events[3:])
        newest_first = events[::-1]
        assert sink.query(o).events == tuple(newest_first)
        for limit in (1, 2, 3, 7, 50):
            assert walk(sink, o, limit=limit) == newest_first
        last = sink.query(o, limit=7)
        assert last.next is None

    def test_audit_pages_stay_put_while_events_are_appended(self, sink: Any) -> None:
        o, k = org(), key()
        old = [event(o, k) for _ in range(6)]
        sink.write(old)
        first = sink.query(o, limit=2)
        assert first.events == (old[5], old[4])
        sink.write([event(o, k), event(org(), key()), event(o)])  # newer: above the cursor
        second = sink.query(o, limit=2, before=first.next)
        assert second.events == (old[3], old[2])
        by_key = sink.query(key_id=k, limit=3)
        sink.write([event(o, k)])
        assert sink.query(key_id=k, limit=10, before=by_key.next).events == tuple(old[::-1][2:])

    def test_audit_concurrent_appends_never_shift_a_walk(self, sink: Any) -> None:
        o = org()
        old = [event(o, key()) for _ in range(12)]
        sink.write(old)
        stop = threading.Event()
        errors: list[BaseException] = []

        def append() -> None:
            try:
                while not stop.is_set():
                    sink.write([event(o, key()), event(o)])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        writer = threading.Thread(target=append)
        writer.start()
        try:
            seen: list[AuditEvent] = []
            cursor = None
            while True:
                page = sink.query(o, limit=3, before=cursor)
                seen += page.events
                if page.next is None:
                    break
                cursor = page.next
        finally:
            stop.set()
            writer.join()
        assert not errors
        assert [e for e in seen if e in old] == old[::-1]  # each old one once, in order
        assert len({e.id for e in seen}) == len(seen)

    def test_audit_per_org_and_per_key_isolation(self, sink: Any) -> None:
        o1, o2, k1, k2 = org(), org(), key(), key()
        a = event(o1, k1)
        b = event(o1, k2)
        c = event(o2, None, action="legacy_imported")
        d = event(o1, None, action="legacy_deleted")
        sink.write([a, b, c, d])
        assert sink.query(o1).events == (d, b, a)
        assert sink.query(o2).events == (c,)
        assert sink.query(key_id=k1).events == (a,)
        assert sink.query(o1, k2).events == (b,)
        assert sink.query(o2, k1).events == ()  # the key belongs to another org
        assert sink.query(org()).events == ()
        assert sink.query(key_id=key()).events == ()
        assert sink.query(org()).next is None

    @pytest.mark.parametrize("shape", ["org", "key", "org-and-key"])
    def test_audit_a_cursor_continues_the_query_it_came_from(self, sink: Any, shape: str) -> None:
        o, k, other = org(), key(), key()
        events = [event(o, kid) for kid in (k, other, other, k, other, k, k)]
        sink.write(events)  # one batch: in Redis, the org's and the key's stream ids differ
        org_id, key_id = {"org": (o, None), "key": (None, k), "org-and-key": (o, k)}[shape]
        newest_first = [e for e in events[::-1] if key_id is None or e.key_id == key_id]
        for limit in (1, 2, 3):
            assert walk(sink, org_id, key_id, limit=limit) == newest_first

    def test_audit_the_last_page_has_no_cursor(self, sink: Any) -> None:
        o, k = org(), key()
        elsewhere = event(org(), k)  # the same key id in another org: not this query's
        mine = event(o, k)
        sink.write([elsewhere, mine])
        page = sink.query(o, k, limit=1)
        assert page.events == (mine,)
        assert page.next is None

    def test_audit_a_retried_batch_is_stored_once(self, sink: Any) -> None:
        o, k = org(), key()
        other = org()
        batch = [event(o, k), event(other), event(o, k)]
        sink.write(batch)
        sink.write(batch)  # the audit buffer's retry after a lost reply
        assert sink.query(o).events == (batch[2], batch[0])
        assert sink.query(other).events == (batch[1],)
        assert sink.query(key_id=k).events == (batch[2], batch[0])
        sink.write([])  # nothing to do

    @pytest.mark.parametrize(
        ("args", "kwargs"),
        [
            pytest.param((), {}, id="no-filter"),
            pytest.param(("org_x",), {"limit": 0}, id="limit-zero"),
            pytest.param(("org_x",), {"limit": 1001}, id="limit-too-large"),
            pytest.param(("org_x",), {"limit": True}, id="limit-bool"),
            pytest.param(("org_x",), {"before": "not a cursor!"}, id="garbage-cursor"),
            pytest.param(("org_x",), {"before": ""}, id="empty-cursor"),
        ],
    )
    def test_audit_bad_queries_are_refused(
        self, sink: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
            sink.query(*args, **kwargs)

    def test_audit_no_token_material_is_stored(self, sink: Any) -> None:
        o, k = org(), key()
        e = denial_event(
            error_code="insufficient_scope",
            org_id=o,
            key_id=k,
            key_name=f"pasted {TOKEN} here",
            method="GET",
            path=f"/v1/{TOKEN}/x?access_token={TOKEN}",
            client_ip="203.0.113.9",
            at=at(),
        )
        sink.write([e, event(o, k, actor=TOKEN.upper())])
        for got in sink.query(o).events:
            for value in vars_of(got):
                assert "abcdefghijklmnopqrst_" not in value.lower()
        assert sink.query(o).events[1].path == "/v1/scout_sk_…/x"

    def test_audit_key_manager_records_every_change_in_the_store_sink(
        self, store: Any, sink: Any
    ) -> None:
        ticks = count(at().timestamp() + 10**6, 1.0)  # one second per call: no ties
        clock = ticks.__next__
        manager = KeyManager(store, audit=sink, password_hasher=cheap_hasher(), clock=clock)
        o = org()
        new = manager.create_key(o, "billing-sync prod", actor="alice")
        kid = new.key.key_id
        manager.rename_key(kid, "billing-sync staging", actor="bob")
        manager.disable_key(kid, actor="bob")
        manager.enable_key(kid, actor="bob")
        rotated = manager.rotate_key(kid, actor="carol")
        manager.delete_key(kid, actor="carol")
        manager.import_legacy_key(o, "legacy-secret-value", actor="ops")
        manager.delete_legacy_key(o, actor="ops")
        events = walk(sink, o, limit=3)
        assert [(e.action, e.actor) for e in events] == [
            ("legacy_deleted", "ops"),
            ("legacy_imported", "ops"),
            ("deleted", "carol"),
            ("rotated", "carol"),
            ("enabled", "bob"),
            ("disabled", "bob"),
            ("renamed", "bob"),
            ("created", "alice"),
        ]
        assert events[3].replaced_by == rotated.key.key_id
        assert [e.action for e in sink.query(key_id=kid, limit=20).events][-1] == "created"
        assert all(new.token not in str(vars_of(e)) for e in events)

    def test_audit_behaves_like_the_in_memory_reference(self, sink: Any) -> None:
        rng = random.Random(20260304)  # noqa: S311 - a reproducible test sequence
        orgs, keys = [org() for _ in range(2)], [key() for _ in range(3)]
        ref = InMemoryAuditSink()
        for _ in range(6):
            batch = [
                event(rng.choice(orgs), rng.choice([*keys, None])) for _ in range(rng.randint(1, 5))
            ]
            sink.write(batch)
            ref.write(batch)
        for o in orgs:
            for k in [*keys, None]:
                limit = rng.randint(1, 4)
                assert walk(sink, o, k, limit=limit) == walk(ref, o, k, limit=limit)

    # -- async twins ------------------------------------------------------
    @pytest.mark.anyio
    async def test_audit_async_twins_behave_like_sync(self, sink: Any) -> None:
        o, k = org(), key()
        events = [event(o, k) for _ in range(3)]
        await sink.awrite(events[:2])
        sink.write(events[2:])
        page = await sink.aquery(o, limit=2)
        assert page.events == (events[2], events[1])
        # A cursor continues the query it came from (Redis cursors are stream
        # ids of that org's or key's own stream).
        rest = await sink.aquery(o, before=page.next)
        assert rest.events == (events[0],)
        assert rest.next is None
        assert sink.query(o).events == tuple(events[::-1])  # what async wrote, sync reads
        with pytest.raises(ValueError):  # noqa: PT011
            await sink.aquery()


def vars_of(e: AuditEvent) -> list[str]:
    values = (getattr(e, name) for name in AuditEvent.__dataclass_fields__)
    return [v for v in values if isinstance(v, str)]
