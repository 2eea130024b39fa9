"""Audit events, queries and the sinks without a back end (``scout_auth/_audit/events*.py``).

The stored sinks run the shared contract, :class:`scout_auth.testing.AuditContract`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest

from scout_auth import InMemoryKeyStore
from scout_auth._audit.events import event_from_dict, event_to_dict
from scout_auth._audit.query import AuditQuery, decode_cursor, encode_cursor
from scout_auth.audit import (
    AuditAction,
    AuditEvent,
    AuditSink,
    InMemoryAuditSink,
    LoggingAuditSink,
    denial_event,
)

T = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
TOKEN = "scout_sk_abcdefghijklmnopqrst_" + "Ab3" * 16 + "x"
SEED_PART = TOKEN[len("scout_sk_") + 21 :]


# -- no token material ---------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        pytest.param("path", f"/v1/{TOKEN}", "/v1/scout_sk_…", id="token-in-path"),
        pytest.param("path", f"/v1/x?api_key={TOKEN}", "/v1/x", id="query-string-dropped"),
        pytest.param("path", f"/v1/x#{TOKEN}", "/v1/x", id="fragment-dropped"),
        pytest.param("path", "/v1/scout%5Fsk%5Fabc123/y", "/v1/scout_sk_…/y", id="percent-encoded"),
        pytest.param("actor", TOKEN.upper(), "scout_sk_…", id="upper-case-token"),
        pytest.param(
            "actor", f"alice pasted {TOKEN} here", "alice pasted scout_sk_… here", id="in-text"
        ),
        pytest.param("key_name", f"a{TOKEN}", "ascout_sk_…", id="glued-to-a-word"),
        pytest.param("client_ip", TOKEN, "scout_sk_…", id="client-ip"),
        pytest.param("method", TOKEN, "scout_sk_…", id="method-trimmed-and-redacted"),
        pytest.param("key_id", TOKEN, "scout_sk_…", id="token-pasted-as-key-id"),
    ],
)
def test_token_material_never_reaches_an_event(field, value, expected):
    event = AuditEvent("denied", "org_1", T, reason="key_disabled", **{field: value})
    assert getattr(event, field) == expected
    assert SEED_PART not in repr(event)
    assert SEED_PART.lower() not in json.dumps(event_to_dict(event)).lower()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"at": datetime(2026, 1, 1)}, ValueError, id="naive-at"),
        pytest.param({"at": "2026-01-01"}, TypeError, id="at-not-a-datetime"),
        pytest.param({"org_id": ""}, ValueError, id="empty-org"),
        pytest.param({"org_id": "o" * 201}, ValueError, id="org-too-long"),
        pytest.param({"org_id": None}, TypeError, id="org-none"),
        pytest.param({"action": "Key Disabled"}, ValueError, id="action-not-a-code"),
        pytest.param({"action": ""}, ValueError, id="action-empty"),
        pytest.param({"reason": "no!"}, ValueError, id="reason-not-a-code"),
        pytest.param({"action": "denied"}, ValueError, id="denied-without-reason"),
        pytest.param({"key_id": 42}, TypeError, id="key-id-not-a-string"),
        pytest.param({"actor": 42}, TypeError, id="actor-not-a-string"),
        pytest.param({"id": "x" * 65}, ValueError, id="id-too-long"),
    ],
)
def test_bad_events_are_refused(kwargs, error):
    fields = {"action": "created", "org_id": "org_1", "at": T, **kwargs}
    with pytest.raises(error):
        AuditEvent(**fields)


def test_free_text_is_trimmed_to_its_column_and_empty_is_none():
    event = AuditEvent(
        "created", "org_1", T, path="/" + "p" * 5000, actor="", key_name="n" * 300, method="X" * 40
    )
    assert len(event.path or "") == 2048
    assert event.actor is None
    assert len(event.key_name or "") == 200
    assert len(event.method or "") == 16


def test_at_is_kept_in_utc_and_actions_are_plain_strings():
    local = T.astimezone(timezone(timedelta(hours=-7)))
    event = AuditEvent(AuditAction.ROTATED, "org_1", local)
    assert event.at == T
    assert event.at.tzinfo is UTC
    assert type(event.action) is str
    assert event.action == "rotated"
    assert len({AuditEvent("created", "o").id for _ in range(100)}) == 100


def test_dict_form_round_trips():
    event = denial_event(
        error_code="replay_detected",
        org_id="org_1",
        key_id="k" * 20,
        key_name="billing",
        method="POST",
        path="/v1/x",
        client_ip="198.51.100.4",
        at=T,
    )
    data = event_to_dict(event)
    assert data["at"] == "2026-01-02T03:04:05.678901+00:00"
    assert event_from_dict(json.loads(json.dumps(data))) == event


def test_denial_event():
    event = denial_event(
        error_code="key_expired",
        org_id="org_1",
        key_id="k" * 20,
        key_name="billing",
        method="GET",
        path=f"/v1/files?token={TOKEN}",
        client_ip="203.0.113.7",
        at=T,
    )
    assert (event.action, event.reason, event.path, event.at) == (
        "denied",
        "key_expired",
        "/v1/files",
        T,
    )
    assert event.actor is None
    assert (
        denial_event(
            error_code="ip_refused",
            org_id="o",
            key_id=None,
            key_name=None,
            method=None,
            path=None,
            client_ip=None,
        ).at.tzinfo
        is UTC
    )


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("", id="empty"),
        pytest.param("!!!", id="not-base64"),
        pytest.param("bm9kb3Q", id="no-separator"),
        pytest.param("YWJjLmRlZg", id="not-a-number"),
        pytest.param("MTIzLg", id="no-id"),
    ],
)
def test_bad_cursors_are_refused(cursor):
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor(cursor)


def test_cursor_round_trips_to_the_microsecond():
    assert decode_cursor(encode_cursor(T, "abc")) == (T, "abc")


# -- one query's page, for every sink ------------------------------------------------
def _events(*orgs: str) -> list[AuditEvent]:
    """Newest first, one second apart."""
    return [
        AuditEvent("created", o, T - timedelta(seconds=i), id=f"e{i}") for i, o in enumerate(orgs)
    ]


def test_a_page_with_one_event_past_it_names_its_last_event():
    fetched = _events("org_1", "org_1", "org_1")
    page = AuditQuery("org_1", None, 2, None).page(fetched)
    assert page.events == tuple(fetched[:2])
    assert page.next == encode_cursor(fetched[1].at, "e1")
    assert AuditQuery("org_1", None, 2, None).page(fetched[:2]).next is None


def test_a_page_takes_the_sinks_own_cursor():
    fetched = _events("org_1", "org_1")
    page = AuditQuery("org_1", None, 1, None).page(fetched, lambda i: f"entry-{i}")
    assert (page.events, page.next) == ((fetched[0],), "entry-0")


def test_a_page_never_shows_another_orgs_event():
    # A back end comparing ids loosely (a case-insensitive collation) returned ORG_1's event.
    fetched = _events("org_1", "ORG_1", "org_1")
    page = AuditQuery("org_1", None, 2, None).page(fetched)
    assert page.events == (fetched[0],)
    assert page.next == encode_cursor(fetched[1].at, "e1")  # the walk goes on below it


# -- filters: checked once, for every sink -------------------------------------------
def test_a_query_normalizes_its_filters():
    plus2 = timezone(timedelta(hours=2))
    query = AuditQuery(
        "org_1",
        None,
        10,
        None,
        actions=frozenset({AuditAction.DENIED, "no_such_action"}),
        actor=f"  bot {TOKEN} ",
        since=T.astimezone(plus2),
        until=T + timedelta(days=1),
    )
    assert query.actions == frozenset({"denied", "no_such_action"})
    assert all(type(a) is str for a in query.actions)  # plain strings, not the enum
    assert query.actor == "  bot scout_sk_… "  # cleaned like the field, not stripped
    assert query.since == T
    assert query.since.tzinfo is UTC
    assert query.filtered
    assert not AuditQuery("org_1", None, 10, None).filtered
    assert AuditQuery("o", None, 1, None, actor="a" * 300).actor == "a" * 200


def test_a_query_matches_every_filter_at_once():
    e = AuditEvent("denied", "org_1", T, key_id="k" * 20, actor="alice", reason="key_disabled")
    micro = timedelta(microseconds=1)

    def q(**filters):
        return AuditQuery("org_1", None, 10, None, **filters).matches(e)

    assert q()
    assert q(actions=frozenset({"denied", "created"}), actor="alice", since=T, until=T + micro)
    assert not q(actions=frozenset({"created"}))
    assert not q(actor="Alice")
    assert not q(since=T + micro)
    assert not q(until=T)  # until is exclusive
    assert q(since=T, until=T + micro)
    assert not q(since=T, until=T)  # an empty range matches nothing, and is allowed


@pytest.mark.parametrize(
    ("filters", "error", "message"),
    [
        pytest.param({"actions": "denied"}, TypeError, "not one string", id="one-string"),
        pytest.param({"actions": b"denied"}, TypeError, "not one string", id="bytes"),
        pytest.param({"actions": [None]}, TypeError, "string", id="not-a-string"),
        pytest.param({"actions": []}, ValueError, "at least one", id="empty"),
        pytest.param({"actions": ["DENIED"]}, ValueError, "lower-case", id="upper-case"),
        pytest.param({"actions": ["x" * 65]}, ValueError, "lower-case", id="too-long"),
        pytest.param({"actions": [f"a{i}" for i in range(101)]}, ValueError, "at most", id="many"),
        pytest.param({"actor": ""}, ValueError, "non-empty", id="actor-empty"),
        pytest.param({"actor": b"alice"}, TypeError, "actor", id="actor-bytes"),
        pytest.param({"since": datetime(2026, 1, 1)}, ValueError, "since", id="naive-since"),
        pytest.param({"until": datetime(2026, 1, 1)}, ValueError, "until", id="naive-until"),
        pytest.param({"until": 0}, TypeError, "until", id="until-a-number"),
        pytest.param(
            {"since": T, "until": T - timedelta(microseconds=1)},
            ValueError,
            "later",
            id="since-after-until",
        ),
    ],
)
def test_bad_filters_are_refused_before_any_io(filters, error, message):
    with pytest.raises(error, match=message):
        AuditQuery("org_1", None, 10, None, **filters)
    with pytest.raises(error, match=message):
        InMemoryAuditSink().query("org_1", **filters)


def test_the_memory_sink_bounds_its_walk_by_the_time_range():
    sink = InMemoryAuditSink()
    events = [
        AuditEvent("created", "org_1", T + timedelta(seconds=i), id=f"e{i}") for i in range(5)
    ]
    tie = AuditEvent("created", "org_1", T + timedelta(seconds=2), id="e2b")  # same at as e2
    sink.write([*events, tie])
    at2 = T + timedelta(seconds=2)
    assert [e.id for e in sink.query("org_1", since=at2)] == ["e4", "e3", "e2b", "e2"]
    assert [e.id for e in sink.query("org_1", until=at2)] == ["e1", "e0"]
    first = sink.query("org_1", limit=1, since=at2, until=at2 + timedelta(seconds=1))
    assert [e.id for e in first] == ["e2b"]
    rest = sink.query(
        "org_1", limit=1, since=at2, until=at2 + timedelta(seconds=1), before=first.next
    )
    assert ([e.id for e in rest], rest.next) == (["e2"], None)


# -- sinks ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sink", [InMemoryAuditSink(), LoggingAuditSink()], ids=["memory", "logging"]
)
def test_sinks_are_audit_sinks(sink):
    assert isinstance(sink, AuditSink)


def test_the_memory_store_keeps_one_sink():
    store = InMemoryKeyStore()
    assert store.audit_sink() is store.audit_sink()
    assert isinstance(store.audit_sink(), InMemoryAuditSink)


def test_memory_sink_refuses_what_is_not_an_event():
    with pytest.raises(TypeError):
        InMemoryAuditSink().write([{"action": "created"}])  # type: ignore[list-item]


def test_logging_sink_writes_one_json_object_per_event(caplog):
    events = [
        AuditEvent("created", "org_1", T, key_id="k1", key_name="ünï", actor="alice"),
        denial_event(
            error_code="insufficient_scope",
            org_id="org_1",
            key_id="k1",
            key_name="ünï",
            method="GET",
            path="/v1/x\n{forged}",
            client_ip="203.0.113.7",
            at=T,
        ),
    ]
    with caplog.at_level(logging.INFO, logger="scout_auth.audit"):
        LoggingAuditSink().write(events)
    records = [r for r in caplog.records if r.name == "scout_auth.audit"]
    assert len(records) == 2
    for record, event in zip(records, events, strict=True):
        line = record.getMessage()
        assert "\n" not in line  # one line: a path cannot forge a log entry
        assert line.isascii()
        data = json.loads(line)
        assert data == event_to_dict(event)
        assert set(data) >= {"id", "at", "action", "org_id", "actor", "reason", "client_ip"}
        assert record.audit == data
    assert json.loads(records[1].getMessage())["reason"] == "insufficient_scope"


def test_logging_sink_custom_logger_level_and_no_query():
    logger = logging.getLogger("tests.audit.custom")
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        sink = LoggingAuditSink(logger, level=logging.WARNING)
        sink.write([AuditEvent("deleted", "org_1", T)])
    finally:
        logger.removeHandler(handler)
    assert [r.levelno for r in seen] == [logging.WARNING]
    with pytest.raises(NotImplementedError):
        sink.query("org_1")


@pytest.mark.anyio
async def test_logging_sink_async_twins(caplog):
    sink = LoggingAuditSink()
    with caplog.at_level(logging.INFO, logger="scout_auth.audit"):
        await sink.awrite([AuditEvent("deleted", "org_1", T)])
    assert json.loads(caplog.records[-1].getMessage())["action"] == "deleted"
    with pytest.raises(NotImplementedError):
        await sink.aquery("org_1")
