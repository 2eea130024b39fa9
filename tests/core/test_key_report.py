"""Key hygiene reports: expiring, unused, old halves still used, policy breaches (issue 17)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from scout_auth import InMemoryKeyStore, KeyManager, LifetimePolicy
from scout_auth.cli import main
from scout_auth.exceptions import InvalidKeyOperation

DAY = timedelta(days=1)
T0 = 1_800_000_000.0
AT0 = datetime.fromtimestamp(T0, UTC)


def test_the_report_sorts_what_needs_attention() -> None:
    now = [T0]
    store = InMemoryKeyStore()
    m = KeyManager(store, clock=lambda: now[0])
    soon = m.create_key("org_1", "expires soon", expires_at=AT0 + 50 * DAY)
    later = m.create_key("org_1", "expires later", expires_at=AT0 + 400 * DAY)
    idle = m.create_key("org_1", "idle integration")
    busy = m.create_key("org_1", "busy integration")
    off = m.create_key("org_1", "switched off")
    m.disable_key(off.key.key_id)
    rotated = m.create_key("org_1", "rotated integration")
    quiet = m.create_key("org_1", "rotated quietly")
    now[0] = T0 + 40 * 86400
    new = m.rotate_key(rotated.key.key_id, grace=3 * DAY)
    m.rotate_key(quiet.key.key_id, grace=3 * DAY)
    used = datetime.fromtimestamp(now[0], UTC) + timedelta(hours=1)
    for key in (busy, rotated):
        store.record_usage(key.key.key_id, 1, used)
    now[0] += 2 * 3600
    m.lifetime_policy = LifetimePolicy(max_lifetime=365 * DAY)

    report = m.key_report("org_1", expiring_days=14, unused_days=30)
    assert [k.key_id for k in report.expiring] == [soon.key.key_id]
    assert {k.key_id for k in report.unused} == {
        soon.key.key_id,
        later.key.key_id,
        idle.key.key_id,
    }
    assert [(o.key_id, n.key_id) for o, n in report.grace_in_use] == [
        (rotated.key.key_id, new.key.key_id)
    ]
    breaches = {k.key_id: why for k, why in report.policy_breaches}
    assert breaches[later.key.key_id].startswith("lifetime 400 days")
    assert breaches[idle.key.key_id] == "no expiry"
    assert off.key.key_id not in breaches
    data = json.loads(json.dumps(report.to_dict()))
    assert data["grace_in_use"][0]["replaced_by"] == new.key.key_id
    with pytest.raises(InvalidKeyOperation):
        m.key_report("org_1", expiring_days=0)


def test_the_report_writes_nothing() -> None:
    store = InMemoryKeyStore()
    m = KeyManager(store, clock=lambda: T0)
    key = m.create_key("org_2", "billing-sync prod")
    before = store.list_keys("org_2")
    m.key_report("org_2")
    assert store.list_keys("org_2") == before
    assert m.key_report("org_2").unused == ()  # made just now
    assert key.key.key_id


def test_cli_report(capsys: pytest.CaptureFixture[str]) -> None:
    store = InMemoryKeyStore()
    m = KeyManager(store)
    m.create_key("org_3", "nightly\u202esync", expires_at=datetime.now(UTC) + 2 * DAY)
    assert main(["report", "org_3", "--json"], store=store) == 0
    data = json.loads(capsys.readouterr().out)
    assert [k["name"] for k in data["expiring"]] == ["nightly\u202esync"]
    assert main(["report", "org_3"], store=store) == 0
    text = capsys.readouterr().out
    assert "Expiring within 14 days: 1" in text
    assert "nightly?sync" in text
    assert "\u202e" not in text
    assert main(["report", "org_3", "--unused-days", "0"], store=store) == 1


def test_the_report_names_where_a_key_was_last_used(capsys: pytest.CaptureFixture[str]) -> None:
    now = [T0]
    store = InMemoryKeyStore()
    m = KeyManager(store, clock=lambda: now[0])
    old = m.create_key("org_4", "old integration")
    quiet = m.create_key("org_4", "quiet integration")
    now[0] = T0 + 40 * 86400
    m.rotate_key(old.key.key_id, grace=3 * DAY)
    store.record_usage(old.key.key_id, 1, datetime.fromtimestamp(now[0] + 60, UTC), "2001:db8::7")
    now[0] += 3600
    report = m.key_report("org_4", unused_days=30)
    [(stale, _new)] = report.grace_in_use
    assert stale.last_used_address == "2001:db8::7"
    data = report.to_dict()
    assert data["grace_in_use"][0]["last_used_address"] == "2001:db8::7"
    assert [(k["id"], k["last_used_address"]) for k in data["unused"]] == [(quiet.key.key_id, None)]
    # The command line (the wall clock): a rotated-out key used from an address.
    live = InMemoryKeyStore()
    cli = KeyManager(live)
    was = cli.create_key("org_5", "rotated integration")
    cli.rotate_key(was.key.key_id, grace=3 * DAY)
    live.record_usage(was.key.key_id, 1, datetime.now(UTC) + timedelta(seconds=1), "192.0.2.7")
    assert main(["report", "org_5", "--json"], store=live) == 0
    [row] = json.loads(capsys.readouterr().out)["grace_in_use"]
    assert row["last_used_address"] == "192.0.2.7"
    assert main(["report", "org_5"], store=live) == 0
    assert "192.0.2.7" in capsys.readouterr().out
