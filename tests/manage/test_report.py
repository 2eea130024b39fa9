"""GET /api/orgs/{org}/report: the key hygiene report (issue 17), on both mountings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scout_auth import InMemoryKeyStore, KeyManager, LifetimePolicy

from .harness import Harness
from .test_mountings import FRAMEWORK_HEADERS
from .test_openapi import conforms

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
AT = datetime.fromtimestamp(NOW, UTC)
DAY = timedelta(days=1)
REPORT = "/api/orgs/org_1/report"
POLICY = {"lifetime_policy": LifetimePolicy(max_lifetime=365 * DAY), "clock": lambda: NOW}


def _seed(store: InMemoryKeyStore) -> dict[str, str]:
    early = [NOW - 60 * 86400]
    m = KeyManager(store, clock=lambda: early[0])
    soon = m.create_key("org_1", "expires soon", expires_at=AT + 5 * DAY)
    idle = m.create_key("org_1", "idle <script>", expires_at=AT + 200 * DAY)
    long = m.create_key("org_1", "too long", expires_at=AT + 900 * DAY)
    old = m.create_key("org_1", "rotated", expires_at=AT + 100 * DAY)
    early[0] = NOW - 3600
    new = m.rotate_key(old.key.key_id, grace=3 * DAY)
    for key in (soon, long):
        store.record_usage(key.key.key_id, 1, AT - timedelta(minutes=1), "192.0.2.1")
    store.record_usage(old.key.key_id, 2, AT - timedelta(minutes=1), "::ffff:198.51.100.9")
    return {
        "soon": soon.key.key_id,
        "idle": idle.key.key_id,
        "long": long.key.key_id,
        "old": old.key.key_id,
        "new": new.key.key_id,
    }


@pytest.fixture
def pair() -> tuple[Harness, Harness, dict[str, str]]:
    store = InMemoryKeyStore()
    ids = _seed(store)
    return (
        Harness("starlette", store, clock=lambda: NOW, manager_options=POLICY),
        Harness("flask", store, clock=lambda: NOW, manager_options=POLICY),
        ids,
    )


def test_the_report_sorts_what_needs_attention(pair) -> None:
    starlette, _flask, ids = pair
    answer = starlette.call("GET", f"{REPORT}?expiring_days=14&unused_days=30")
    assert answer.status == 200, answer.body
    assert conforms("GET", REPORT, answer) == "key_report"
    report = answer.json()
    assert (report["expiring_days"], report["unused_days"]) == (14, 30)
    assert [k["id"] for k in report["expiring"]] == [ids["soon"]]
    assert [k["id"] for k in report["unused"]] == [ids["idle"]]
    [grace] = report["grace_in_use"]
    assert (grace["key"]["id"], grace["replaced_by"]) == (ids["old"], ids["new"])
    assert grace["key"]["last_used_address"] == "198.51.100.9"  # stored normalised
    assert grace["key"]["status"] == "rotation_grace"
    assert [(b["key"]["id"], b["why"]) for b in report["policy_breaches"]] == [
        (ids["long"], "lifetime 960 days > 365 days")
    ]
    assert "public_key" not in answer.body.decode()


def test_the_same_data_as_key_manager_key_report(pair) -> None:
    starlette, _flask, ids = pair
    manager = KeyManager(starlette.store, **POLICY)  # type: ignore[arg-type]
    direct = manager.key_report("org_1", expiring_days=30, unused_days=7)
    served = starlette.call("GET", f"{REPORT}?expiring_days=30&unused_days=7").json()
    for section in ("expiring", "unused"):
        assert [k["id"] for k in served[section]] == [k.key_id for k in getattr(direct, section)]
    assert [(g["key"]["id"], g["replaced_by"]) for g in served["grace_in_use"]] == [
        (o.key_id, n.key_id) for o, n in direct.grace_in_use
    ]
    assert [(b["key"]["id"], b["why"]) for b in served["policy_breaches"]] == [
        (k.key_id, why) for k, why in direct.policy_breaches
    ]
    assert ids


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("expiring_days=0", "expiring_days", id="expiring-zero"),
        pytest.param("expiring_days=3661", "expiring_days", id="expiring-too-large"),
        pytest.param("expiring_days=-1", "expiring_days", id="expiring-negative"),
        pytest.param("unused_days=abc", "unused_days", id="unused-not-a-number"),
        pytest.param("unused_days=1.5", "unused_days", id="unused-not-an-integer"),
        pytest.param("unused_days=%EF%BC%91", "unused_days", id="unused-fullwidth-digit"),
        pytest.param("unused_days=" + "9" * 40, "unused_days", id="unused-huge"),
    ],
)
def test_bad_windows_are_422_naming_the_field(api: Harness, query: str, field: str) -> None:
    answer = api.call("GET", f"{REPORT}?{query}")
    assert answer.status == 422, answer.body
    assert [e["field"] for e in answer.json()["errors"]] == [field]
    conforms("GET", REPORT, answer)


def test_access_is_the_keys_lists(api: Harness) -> None:
    assert api.call("GET", REPORT, user="viewer").status == 200  # a viewer may read it
    assert api.call("GET", REPORT, user=None, csrf=False).status == 401
    assert api.call("GET", "/api/orgs/org_2/report").status == 404  # not one of theirs
    assert api.call("POST", REPORT).status == 405
    plain = api.manager.create_key("org_1", "reporting", scopes=["drive:read"]).token
    assert api.call("GET", REPORT, user=None, token=plain).status == 403
    admin = api.manager.create_key("org_1", "key admin", scopes=["keys:manage"]).token
    assert api.call("GET", REPORT, user=None, token=admin).status == 200


REQUESTS = [
    f"{REPORT}",
    f"{REPORT}?expiring_days=30&unused_days=1",
    f"{REPORT}?unused_days=0",
    "/api/orgs/org_2/report",
]


@pytest.mark.parametrize("path", REQUESTS)
def test_same_bytes_on_both_mountings(pair, path: str) -> None:
    starlette, flask, _ids = pair
    a = starlette.call("GET", path)
    b = flask.call("GET", path)
    assert (a.status, a.body) == (b.status, b.body)
    strip = lambda h: {k: v for k, v in h.items() if k not in FRAMEWORK_HEADERS}  # noqa: E731
    assert strip(a.headers) == strip(b.headers)


@pytest.mark.parametrize("kind", ["starlette", "flask"])
def test_the_keys_page_has_a_key_hygiene_card(kind: str) -> None:
    store = InMemoryKeyStore()
    ids = _seed(store)
    page = Harness(kind, store, clock=lambda: NOW, manager_options=POLICY)
    answer = page.call("GET", "/orgs/org_1")
    assert answer.status == 200
    html = answer.body.decode()
    card = html[html.index('id="hygiene-card"') : html.index('id="legacy-card"')]
    for kid in set(ids.values()) - {ids["new"]}:
        assert f'data-key-id="{kid}"' in card
    assert "198.51.100.9" in card
    assert "idle &lt;script&gt;" in card
    assert "<script>" not in card
    assert "lifetime 960 days &gt; 365 days" in card
    narrowed = page.call("GET", "/orgs/org_1?expiring_days=1&unused_days=3660").body.decode()
    assert 'id="hygiene-expiring"' not in narrowed
    assert 'id="hygiene-unused"' not in narrowed
    bad = page.call("GET", "/orgs/org_1?unused_days=0")
    assert bad.status == 422
