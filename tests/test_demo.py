"""The README's demo runs green: real servers on loopback, real HTTP."""

from __future__ import annotations

from examples import demo


def test_demo_walks_the_whole_story(capsys, monkeypatch):
    # As on a fresh machine: no pepper configured (the in-memory store has its own).
    monkeypatch.delenv("SCOUT_AUTH_LEGACY_PEPPER", raising=False)
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "BAD" not in out
    assert out.count("ok ") >= 30
    legacy = [line for line in out.splitlines() if "legacy" in line and "ok " in line]
    assert any("unchanged legacy client (Bearer <legacy>)" in line for line in legacy)
    assert any("legacy_disabled" in line for line in legacy)
