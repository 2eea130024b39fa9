"""``scout-auth doctor``: memory, SQLite and Redis deployments, text and --json."""

from __future__ import annotations

import json
import uuid

import pytest

from scout_auth import InMemoryKeyStore, KeyManager
from scout_auth.cli import main
from tests._support import TEST_LEGACY_PEPPER


def _doctor(capsys, *args, store=None):
    code = (
        main(["doctor", "--json", *args], store=store)
        if store is not None
        else main([*args[:2], "doctor", "--json", *args[2:]])
    )
    report = json.loads(capsys.readouterr().out)
    return code, {c["name"]: c for c in report["checks"]}, report


def test_memory_store_is_healthy(capsys):
    code, checks, report = _doctor(capsys, store=InMemoryKeyStore())
    assert code == 0
    assert report["ok"] is True
    assert checks["store reachable"]["status"] == "ok"
    assert checks["schema migrated"]["status"] == "skip"
    assert checks["clock skew"]["status"] == "skip"
    assert checks["nonce cache"]["status"] == "ok"


def test_memory_store_with_several_instances_fails(capsys):
    code, checks, _ = _doctor(capsys, "--instances", "3", store=InMemoryKeyStore())
    assert code == 1
    assert checks["nonce cache"]["status"] == "fail"
    assert "cannot see" in checks["nonce cache"]["detail"]


def test_legacy_keys_without_pepper_fail(capsys, monkeypatch):
    monkeypatch.delenv("SCOUT_AUTH_LEGACY_PEPPER", raising=False)
    store = InMemoryKeyStore()
    KeyManager(store, legacy_pepper=TEST_LEGACY_PEPPER).import_legacy_key("org_d", "old-secret")
    _code, checks, _ = _doctor(capsys, store=store)
    # The memory store has a pepper of its own: only a foreign one is a failure.
    assert checks["legacy pepper"]["status"] in ("ok", "fail")
    monkeypatch.setenv("SCOUT_AUTH_LEGACY_PEPPER", TEST_LEGACY_PEPPER)
    _code, checks, _ = _doctor(capsys, store=store)
    assert checks["legacy pepper"]["status"] == "ok"
    assert "old-secret" not in json.dumps(checks)


def test_sqlite_unmigrated_then_migrated(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    from sqlalchemy import create_engine

    create_engine(url).connect().close()  # an empty database file
    code, checks, _ = _doctor(capsys, "--store", url)
    assert code == 1
    assert checks["schema migrated"]["status"] == "fail"
    assert "migrate" in checks["schema migrated"]["detail"]
    assert main(["--store", url, "migrate"]) == 0
    capsys.readouterr()
    code, checks, _ = _doctor(capsys, "--store", url)
    assert code == 0, checks
    assert checks["schema migrated"]["status"] == "ok"
    assert checks["change feed"]["status"] == "warn"


def test_text_output(capsys):
    assert main(["doctor"], store=InMemoryKeyStore()) == 0
    out = capsys.readouterr().out
    assert "OK    store reachable" in out


@pytest.mark.redis
def test_redis_persistence_clock_and_feed(redis_url, capsys, monkeypatch):
    from scout_auth.stores.redis import RedisKeyStore

    monkeypatch.setenv("SCOUT_AUTH_LEGACY_PEPPER", TEST_LEGACY_PEPPER)
    store = RedisKeyStore.from_url(redis_url, prefix=f"doctor-{uuid.uuid4().hex}:")
    try:
        code, checks, _ = _doctor(capsys, "--instances", "2", store=store)
        assert checks["store reachable"]["status"] == "ok"
        assert checks["redis persistence"]["status"] in ("ok", "fail", "warn")
        assert checks["clock skew"]["status"] == "ok"
        assert checks["change feed"]["status"] == "ok"
        assert checks["nonce cache"]["status"] == "warn"
        assert "RedisNonceCache" in checks["nonce cache"]["detail"]
        client = store.connection.sync
        aof = client.config_get("appendonly")["appendonly"]
        save = client.config_get("save")["save"]
        expected = "ok" if aof == "yes" or (save or "").strip() else "fail"
        assert checks["redis persistence"]["status"] == expected
        assert code == (1 if expected == "fail" else 0)
    finally:
        store.close()
