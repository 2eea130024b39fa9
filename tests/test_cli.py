"""The scout-auth command line."""

from __future__ import annotations

import io
import re

import pytest

from scout_auth import TOKEN_REGEX, InMemoryKeyStore, KeyManager, __version__
from scout_auth.cli import main


@pytest.fixture
def token():
    return KeyManager(InMemoryKeyStore()).create_key("org_a", "ci deploys").token


def test_check_accepts_a_token_and_never_echoes_it(token, capsys):
    assert main(["check", token]) == 0
    out = capsys.readouterr()
    assert token not in out.out + out.err
    assert token.split("_")[2] in out.out  # the public key id


def test_check_reads_stdin(token, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
    assert main(["check"]) == 0


@pytest.mark.parametrize("bad", ["", "scout_sk_", "nope"], ids=["empty", "prefix-only", "garbage"])
def test_check_rejects_malformed(bad, capsys):
    assert main(["check", bad]) == 1
    assert "invalid" in capsys.readouterr().err


def test_check_rejects_a_typo(token, capsys):
    typo = token[:40] + ("a" if token[40] != "a" else "b") + token[41:]
    assert main(["check", typo]) == 1


def test_regex_and_version(token, capsys):
    assert main(["regex"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == TOKEN_REGEX
    assert re.fullmatch(printed, token)
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__
