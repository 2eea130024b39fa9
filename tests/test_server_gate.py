"""The server gate: laptops skip with a reason, CI=true fails."""

from __future__ import annotations

import socket

import pytest

from tests import conftest


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again once the socket is


def test_missing_server_skips_on_a_laptop(monkeypatch):
    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="not reachable"):
        conftest.require_server("PostgreSQL", "127.0.0.1", closed_port())


def test_missing_server_fails_under_ci(monkeypatch):
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        conftest.require_server("PostgreSQL", "127.0.0.1", closed_port())
