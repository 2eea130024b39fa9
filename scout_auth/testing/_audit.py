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
from .._audit.query import AuditQuery
from ..audit import AuditAction, AuditEvent, InMemoryAuditSink, denial_event
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
    sink: Any, org_id: str | None = None, key_id: str | None = None, *, limit: int, **filters: Any
) -> list[AuditEvent]:
    """Every event, page by page (the same ``filters`` on every page)."""
    found: list[AuditEvent] = []
    cursor = None
    for _ in range(1000):
        page = sink.query(org_id, key_id, limit=limit, before=cursor, **filters)
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

    # -- filters ---------------------------------------------------------
    def test_audit_filter_by_actions(self, sink: Any) -> None:
        o, k = org(), key()
        actions = ["created", "denied", "disabled", "denied", "rotated", "legacy_imported"]
        events = [
            event(o, None if a.startswith("legacy") else k, action=a, reason="key_disabled")
            for a in actions
        ]
        sink.write(events)
        newest_first = events[::-1]

        def only(*wanted: str) -> tuple[AuditEvent, ...]:
            return tuple(e for e in newest_first if e.action in wanted)

        assert sink.query(o, actions=["denied"]).events == only("denied")
        assert sink.query(o, actions=("denied", "created")).events == only("denied", "created")
        assert sink.query(o, actions={AuditAction.ROTATED}).events == only("rotated")
        assert sink.query(o, actions=iter(["legacy_imported"])).events == only("legacy_imported")
        assert sink.query(key_id=k, actions=["legacy_imported"]).events == ()
        assert sink.query(o, k, actions=["denied", "rotated"]).events == only("denied", "rotated")
        unknown = sink.query(o, actions=["no_such_action"])  # well-formed, unknown: nothing
        assert unknown.events == ()
        assert unknown.next is None
        assert sink.query(o, actions=[*actions, "no_such_action"]).events == tuple(newest_first)

    def test_audit_filter_by_actor_is_exact(self, sink: Any) -> None:
        o, k = org(), key()
        long_name = "x" * 250  # stored trimmed to 200
        events = [
            event(o, k, actor="alice"),
            event(o, k, actor="Alice"),
            event(o, k, actor="alice "),
            event(o, k),  # no actor
            event(o, None, actor="alice"),
            event(o, k, actor=long_name),
            event(o, k, actor=f"bot {TOKEN}"),  # stored redacted
        ]
        sink.write(events)
        assert sink.query(o, actor="alice").events == (events[4], events[0])
        assert sink.query(o, actor="Alice").events == (events[1],)
        assert sink.query(o, actor="alice ").events == (events[2],)
        assert sink.query(key_id=k, actor="alice").events == (events[0],)
        assert sink.query(o, actor="bob").events == ()
        # The filter is cleaned like the field: what was passed as actor= matches.
        assert sink.query(o, actor=long_name).events == (events[5],)
        assert sink.query(o, actor=f"bot {TOKEN}").events == (events[6],)
        assert sink.query(o, actor="bot scout_sk_…").events == (events[6],)
        assert sink.query(o, actor="a\x00b").events == ()  # never sent as NUL to a back end

    def test_audit_time_range_is_since_inclusive_until_exclusive(self, sink: Any) -> None:
        o, k = org(), key()
        events = [event(o, k) for _ in range(5)]
        sink.write(events)
        t = [e.at for e in events]
        micro = timedelta(microseconds=1)

        def between(since: Any, until: Any, **more: Any) -> list[AuditEvent]:
            return list(sink.query(o, since=since, until=until, **more).events)

        assert between(t[1], t[3]) == [events[2], events[1]]
        assert between(t[1], None) == events[:0:-1]
        assert between(None, t[3]) == [events[2], events[1], events[0]]
        assert between(t[1] + micro, t[3] + micro) == [events[3], events[2]]
        assert between(t[1] - micro, t[3] - micro) == [events[2], events[1]]
        assert between(t[2], t[2]) == []  # an empty range is no error
        assert between(t[4] + micro, None) == []
        assert between(None, t[0]) == []
        tz = timezone(timedelta(hours=-7))  # any zone: instants compare
        assert between(t[1].astimezone(tz), t[3].astimezone(tz)) == [events[2], events[1]]
        assert between(t[1], t[3], limit=1) == [events[2]]
        assert list(sink.query(key_id=k, since=t[3]).events) == [events[4], events[3]]
        assert walk(sink, o, limit=1, since=t[1], until=t[4]) == [events[3], events[2], events[1]]

    def test_audit_time_range_at_the_ends_of_the_calendar(self, sink: Any) -> None:
        o = org()
        e = event(o)
        sink.write([e])
        first = datetime.min.replace(tzinfo=UTC)
        last = datetime.max.replace(tzinfo=UTC)
        assert sink.query(o, since=first, until=last).events == (e,)
        assert sink.query(o, since=first + timedelta(minutes=1)).events == (e,)
        assert sink.query(o, until=first).events == ()
        assert sink.query(o, since=last).events == ()
        with pytest.raises(ValueError, match="out of range"):
            sink.query(o, since=datetime.min.replace(tzinfo=timezone(timedelta(hours=1))))

    def test_audit_filters_combine(self, sink: Any) -> None:
        o, k, other = org(), key(), key()
        rows = [
            ("alice", "disabled", k),
            ("alice", "enabled", k),
            ("bob", "disabled", k),
            ("alice", "disabled", other),
            ("alice", "disabled", k),
            ("alice", "disabled", k),
            ("alice", "renamed", k),
        ]
        events = [event(o, kid, actor=a, action=act) for a, act, kid in rows]
        sink.write(events)
        got = sink.query(
            o,
            k,
            actions=["disabled", "renamed"],
            actor="alice",
            since=events[0].at,
            until=events[6].at,
        )
        assert got.events == (events[5], events[4], events[0])
        by_org = sink.query(o, actions=["disabled"], actor="alice", since=events[3].at)
        assert by_org.events == (events[5], events[4], events[3])

    def test_audit_filtered_pages_never_repeat_or_skip(self, sink: Any) -> None:
        o, k = org(), key()
        rng = random.Random(13)  # noqa: S311 - a reproducible test sequence
        events = [
            event(
                o,
                rng.choice([k, key(), None]),
                action=rng.choice(["created", "disabled", "denied"]),
                reason="key_disabled",
                actor=rng.choice(["alice", "bob", None]),
            )
            for _ in range(40)
        ]
        for start in range(0, 40, 7):
            sink.write(events[start : start + 7])
        other = [event(org(), k, action="denied", reason="x", actor="alice") for _ in range(3)]
        sink.write(other)  # another org, same key id and actor: never shown
        ref = InMemoryAuditSink()
        ref.write(events)
        cases: list[dict[str, Any]] = [
            {"actions": ["denied"]},
            {"actor": "alice"},
            {"since": events[5].at, "until": events[33].at},
            {"actions": ["created", "denied"], "actor": "bob", "since": events[10].at},
            {"until": events[20].at, "actor": "alice"},
        ]
        for filters in cases:
            expected = [
                e for e in events[::-1] if AuditQuery(o, None, 1, None, **filters).matches(e)
            ]
            assert expected, filters
            for limit in (1, 2, 3, 50):
                got = walk(sink, o, limit=limit, **filters)
                assert got == expected, (filters, limit)
                assert walk(ref, o, limit=limit, **filters) == expected
                assert walk(sink, o, k, limit=limit, **filters) == [
                    e for e in expected if e.key_id == k
                ]

    def test_audit_filters_never_cross_orgs(self, sink: Any) -> None:
        o1, o2, k = org(), org(), key()
        mine = event(o1, k, action="denied", reason="key_disabled", actor="alice")
        theirs = event(o2, k, action="denied", reason="key_disabled", actor="alice")
        sink.write([mine, theirs])
        filters: dict[str, Any] = {"actions": ["denied"], "actor": "alice", "since": mine.at}
        assert sink.query(o1, **filters).events == (mine,)
        assert sink.query(o2, **filters).events == (theirs,)
        assert sink.query(o1, k, **filters).events == (mine,)
        assert sink.query(org(), **filters).events == ()

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            pytest.param({"actions": "denied"}, TypeError, id="actions-one-string"),
            pytest.param({"actions": [1]}, TypeError, id="actions-not-strings"),
            pytest.param({"actions": []}, ValueError, id="actions-empty"),
            pytest.param({"actions": ["Denied"]}, ValueError, id="actions-upper-case"),
            pytest.param({"actions": ["no spaces"]}, ValueError, id="actions-malformed"),
            pytest.param({"actions": [""]}, ValueError, id="actions-empty-code"),
            pytest.param({"actions": ["a" * 65]}, ValueError, id="actions-too-long"),
            pytest.param({"actions": [f"a{i}" for i in range(101)]}, ValueError, id="actions-many"),
            pytest.param({"actor": ""}, ValueError, id="actor-empty"),
            pytest.param({"actor": 7}, TypeError, id="actor-not-a-string"),
            pytest.param({"since": datetime(2026, 1, 1)}, ValueError, id="since-naive"),
            pytest.param({"until": datetime(2026, 1, 1)}, ValueError, id="until-naive"),
            pytest.param({"since": "2026-01-01T00:00:00Z"}, TypeError, id="since-a-string"),
            pytest.param(
                {"since": _T, "until": _T - timedelta(microseconds=1)},
                ValueError,
                id="since-after-until",
            ),
        ],
    )
    def test_audit_bad_filters_are_refused(
        self, sink: Any, kwargs: dict[str, Any], error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            sink.query("org_x", **kwargs)

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

    @pytest.mark.anyio
    async def test_audit_async_filters_behave_like_sync(self, sink: Any) -> None:
        o, k = org(), key()
        events = [
            event(o, k, action=a, actor=who, reason="key_disabled")
            for a, who in [("denied", None), ("disabled", "alice"), ("denied", None)] * 3
        ]
        await sink.awrite(events)
        filters: dict[str, Any] = {"actions": ["denied"], "since": events[1].at}
        first = await sink.aquery(o, limit=2, **filters)
        rest = await sink.aquery(o, limit=10, before=first.next, **filters)
        assert [*first.events, *rest.events] == walk(sink, o, limit=2, **filters)
        assert [*first.events, *rest.events] == [e for e in events[:1:-1] if e.action == "denied"]
        assert (await sink.aquery(key_id=k, actor="alice", until=events[4].at)).events == (
            events[1],
        )
        with pytest.raises(ValueError):  # noqa: PT011
            await sink.aquery(o, since=events[2].at, until=events[1].at)
        with pytest.raises(TypeError):
            await sink.aquery(o, actions="denied")


def vars_of(e: AuditEvent) -> list[str]:
    values = (getattr(e, name) for name in AuditEvent.__dataclass_fields__)
    return [v for v in values if isinstance(v, str)]
