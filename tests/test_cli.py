"""The scout-auth command line."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from scout_auth import TOKEN_REGEX, InMemoryKeyStore, KeyManager, Verifier, __version__
from scout_auth.cli import main
from scout_auth.exceptions import InvalidToken, KeyDisabled, KeyExpired, LegacyDisabled


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


# -- key management against real stores --------------------------------------


def run(capsys, *argv: str) -> tuple[int, list[dict[str, Any]]]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture
def sqlite_store_url(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    assert main(["--store", url, "migrate"]) == 0
    capsys.readouterr()
    return url


def test_lifecycle_through_the_cli_on_sqlite(sqlite_store_url, capsys):
    from scout_auth.stores.sql import SQLKeyStore

    url = sqlite_store_url
    code, [created] = run(
        capsys, "--store", url, "create", "org_cli", "ci deploys", "--scope", "files:read"
    )
    assert code == 0
    assert created["scopes"] == ["files:read"]
    token, key_id = created["token"], created["key_id"]
    store = SQLKeyStore(url)
    verifier = Verifier(store, cache_ttl=0)  # another process's view: no shared cache
    assert verifier.verify_token(token).org_id == "org_cli"
    assert run(capsys, "--store", url, "disable", key_id)[1][0]["enabled"] is False
    with pytest.raises(KeyDisabled):
        verifier.verify_token(token)
    assert run(capsys, "--store", url, "enable", key_id)[1][0]["enabled"] is True
    assert (
        run(capsys, "--store", url, "rename", key_id, "ci deploys (prod)")[1][0]["name"]
        == "ci deploys (prod)"
    )
    code, [rotated] = run(capsys, "--store", url, "rotate", key_id, "--grace-hours", "0")
    assert verifier.verify_token(rotated["token"]).key_id == rotated["key_id"]
    with pytest.raises(KeyExpired):
        verifier.verify_token(token)
    code, listed = run(capsys, "--store", url, "list", "org_cli")
    assert [k["key_id"] for k in listed] == [key_id, rotated["key_id"]]
    assert all("token" not in k for k in listed)
    assert run(capsys, "--store", url, "delete", rotated["key_id"])[0] == 0
    with pytest.raises(InvalidToken):
        verifier.verify_token(rotated["token"])
    store.close()


def test_legacy_secret_comes_from_stdin_not_argv(sqlite_store_url, capsys, monkeypatch):
    from scout_auth.stores.sql import SQLKeyStore

    monkeypatch.setattr("sys.stdin", io.StringIO("old-system-secret\n"))
    code, [out] = run(capsys, "--store", sqlite_store_url, "legacy-import", "org_cli")
    assert code == 0
    assert "old-system-secret" not in json.dumps(out)
    store = SQLKeyStore(sqlite_store_url)
    assert Verifier(store).verify_legacy("org_cli", "old-system-secret").org_id == "org_cli"
    assert run(capsys, "--store", sqlite_store_url, "legacy-delete", "org_cli")[0] == 0
    with pytest.raises(InvalidToken):
        Verifier(store).verify_legacy("org_cli", "old-system-secret")
    store.close()


def test_roles_allowlist_and_the_legacy_switch_through_the_cli(
    sqlite_store_url, capsys, monkeypatch
):
    from scout_auth.stores.sql import SQLKeyStore

    url = sqlite_store_url
    code, [created] = run(
        capsys,
        "--store", url, "create", "org_cli", "office importer",
        "--role", "viewer", "--allow-ip", "192.0.2.0/24", "--allow-ip", "2001:db8::/32",
    )  # fmt: skip
    assert code == 0
    assert created["roles"] == ["viewer"]
    assert created["allowed_ips"] == ["192.0.2.0/24", "2001:db8::/32"]
    assert (created["use_count"], created["last_used_at"]) == (0, None)
    monkeypatch.setattr("sys.stdin", io.StringIO("old-system-secret\n"))
    run(capsys, "--store", url, "legacy-import", "org_cli")
    code, [status] = run(capsys, "--store", url, "legacy-status", "org_cli", "--days", "7")
    assert status == {
        "org_id": "org_cli",
        "exists": True,
        "enabled": True,
        "last_used_at": None,
        "requests": 0,
        "days": 7,
    }
    assert run(capsys, "--store", url, "legacy-disable", "org_cli")[1] == [
        {"org_id": "org_cli", "enabled": False}
    ]
    store = SQLKeyStore(url)
    with pytest.raises(LegacyDisabled):
        Verifier(store).verify_legacy("org_cli", "old-system-secret")
    assert run(capsys, "--store", url, "legacy-enable", "org_cli")[1][0]["enabled"] is True
    store.close()


def test_create_takes_a_description_that_list_shows(sqlite_store_url, capsys):
    url = sqlite_store_url
    code, [created] = run(
        capsys,
        "--store", url, "create", "org_cli_described", "invoice exporter",
        "--description", "Nightly export.\nOwner: billing",
    )  # fmt: skip
    assert code == 0
    assert (created["description"], created["created_by"]) == (
        "Nightly export.\nOwner: billing",
        None,
    )
    code, listed = run(capsys, "--store", url, "list", "org_cli_described")
    assert [k["description"] for k in listed] == ["Nightly export.\nOwner: billing"]
    code, _ = run(
        capsys, "--store", url, "create", "org_cli_described", "other exporter",
        "--description", "bell\x07",
    )  # fmt: skip
    assert code != 0
    assert len(run(capsys, "--store", url, "list", "org_cli_described")[1]) == 1


def test_list_ends_with_the_legacy_secret_and_its_usage(sqlite_store_url, capsys, monkeypatch):
    from scout_auth.stores.sql import SQLKeyStore

    url = sqlite_store_url
    _code, [created] = run(capsys, "--store", url, "create", "org_cli", "ci deploys")
    code, listed = run(capsys, "--store", url, "list", "org_cli")
    assert (code, [k["key_id"] for k in listed]) == (0, [created["key_id"]])  # no legacy line
    monkeypatch.setattr("sys.stdin", io.StringIO("old-system-secret\n"))
    run(capsys, "--store", url, "legacy-import", "org_cli")
    store = SQLKeyStore(url)
    used = datetime.now(UTC)
    store.record_legacy_usage("org_cli", 3, used)
    legacy = {
        "legacy": True,
        "org_id": "org_cli",
        "exists": True,
        "enabled": True,
        "last_used_at": used.isoformat(),
        "requests": 3,
        "days": 30,
    }
    _code, listed = run(capsys, "--store", url, "list", "org_cli")
    assert listed == [{k: v for k, v in created.items() if k != "token"}, legacy]
    run(capsys, "--store", url, "legacy-delete", "org_cli")
    _code, listed = run(capsys, "--store", url, "list", "org_cli")
    assert listed[-1] == {**legacy, "exists": False}  # deleted, but its usage still shows
    assert run(capsys, "--store", url, "list", "org_other")[1] == []
    store.close()


def test_errors_are_one_line_and_exit_1(sqlite_store_url, capsys):
    assert main(["--store", sqlite_store_url, "disable", "a" * 20]) == 1
    err = capsys.readouterr().err
    assert err.startswith("scout-auth: ")
    assert "Traceback" not in err


def test_a_store_is_required_for_key_commands(capsys, monkeypatch):
    monkeypatch.delenv("SCOUT_AUTH_STORE", raising=False)
    assert main(["list", "org"]) == 2
    assert "--store" in capsys.readouterr().err


def test_a_cli_disable_reaches_a_running_redis_verifier(capsys, redis_url):
    import uuid

    from scout_auth.stores.redis import RedisKeyStore

    running = RedisKeyStore.from_url(redis_url, prefix="scout")  # default prefix, as the CLI
    assert running.wait_listening(5)
    verifier = Verifier(running, cache_ttl=60)
    org_id = f"org_cli_{uuid.uuid4().hex[:8]}"
    _code, [created] = run(capsys, "--store", redis_url, "create", org_id, "ci deploys")
    verifier.verify_token(created["token"])  # cached now
    run(capsys, "--store", redis_url, "disable", created["key_id"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            verifier.verify_token(created["token"])
        except KeyDisabled:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the running verifier never saw the CLI's disable")
    run(capsys, "--store", redis_url, "delete", created["key_id"])
    running.close()


# -- the legacy pepper (issue 10) ---------------------------------------------


def test_legacy_pepper_new_prints_a_usable_pepper(capsys):
    from scout_auth import LegacyPepper

    assert main(["legacy-pepper", "new"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["legacy-pepper", "new"]) == 0
    second = capsys.readouterr().out.strip()
    assert first != second
    assert len(first) >= 43
    LegacyPepper(first)  # long enough to be accepted


def test_a_legacy_import_through_the_cli_works_as_bearer(sqlite_store_url, capsys, monkeypatch):
    from scout_auth.stores.sql import SQLKeyStore

    monkeypatch.setattr("sys.stdin", io.StringIO("old-system-secret\n"))
    code, [out] = run(capsys, "--store", sqlite_store_url, "legacy-import", "org_cli")
    assert code == 0
    assert out["bearer"] is True
    store = SQLKeyStore(sqlite_store_url)
    assert Verifier(store).verify_token("old-system-secret").org_id == "org_cli"
    store.close()


def test_legacy_pepper_status_reports_digests_per_pepper(sqlite_store_url, capsys, monkeypatch):
    from scout_auth import LegacyPepper

    monkeypatch.setattr("sys.stdin", io.StringIO("old-system-secret\n"))
    run(capsys, "--store", sqlite_store_url, "legacy-import", "org_cli")
    current = LegacyPepper.from_env()
    assert current is not None
    code, [report] = run(capsys, "--store", sqlite_store_url, "legacy-pepper", "status")
    assert code == 0
    assert report["current"] == current.current_id
    assert report["records"] == {current.current_id: 1}
    assert report["unknown"] == {}
    # Another pepper configured: the store's digests fit none of it → exit 1.
    monkeypatch.setenv("SCOUT_AUTH_LEGACY_PEPPER", "a-completely-different-pepper-" + "x" * 20)
    code = main(["--store", sqlite_store_url, "legacy-pepper", "status"])
    captured = capsys.readouterr()
    assert code == 1
    assert json.loads(captured.out)["unknown"] == {current.current_id: 1}
    assert "SCOUT_AUTH_LEGACY_PEPPER does not hold" in captured.err


# -- Redis Cluster (issue 11) ---------------------------------------------------


def test_the_cli_manages_keys_on_a_redis_cluster_url(capsys, redis_cluster):
    import uuid

    from scout_auth.stores.redis import RedisKeyStore

    url = redis_cluster.url
    assert url.startswith("redis+cluster://")
    running = RedisKeyStore.from_url(url, prefix="scout")  # a service: the CLI's prefix
    assert running.wait_listening(5)
    verifier = Verifier(running, cache_ttl=60)
    orgs = [f"org_cli_{uuid.uuid4().hex[:8]}" for _ in range(4)]  # slots on several primaries
    created = []
    for org_id in orgs:
        code, [new] = run(capsys, "--store", url, "create", org_id, "ci deploys")
        assert code == 0
        verifier.verify_token(new["token"])  # cached now
        created.append(new)
    code, listed = run(capsys, "--store", url, "list", orgs[0])
    assert (code, [k["key_id"] for k in listed]) == (0, [created[0]["key_id"]])
    for new in created:
        assert run(capsys, "--store", url, "disable", new["key_id"])[0] == 0
    deadline = time.monotonic() + 10
    for new in created:  # the running verifier hears of each through the cluster's feed
        while time.monotonic() < deadline:
            try:
                verifier.verify_token(new["token"])
            except KeyDisabled:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the running verifier never saw the CLI's disable")
        assert run(capsys, "--store", url, "delete", new["key_id"])[0] == 0
    running.close()


def test_the_cli_on_one_cluster_nodes_plain_url_says_to_use_a_cluster_url(capsys, redis_cluster):
    import uuid

    import redis

    from scout_auth.stores.redis import Layout

    host, port = redis_cluster.nodes[0]
    client = redis.RedisCluster(host=host, port=port)
    org_id = next(  # an org whose slot another node serves
        o
        for o in (f"org_cli_{uuid.uuid4().hex[:8]}" for _ in range(100))
        if client.get_node_from_key(Layout("scout").index(o)).port != port
    )
    client.close()
    assert main(["--store", redis_cluster.node_url, "list", org_id]) == 1
    err = capsys.readouterr().err
    assert err.startswith("scout-auth: ")
    assert "redis+cluster://" in err
    assert "Traceback" not in err


def test_the_cli_on_an_unreachable_cluster_exits_1(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["--store", f"redis+cluster://127.0.0.1:{port}/", "list", "org_x"]) == 1
    assert capsys.readouterr().err.strip() == "scout-auth: Key store unreachable"


def test_a_malformed_cluster_url_is_one_line_exit_2(capsys):
    assert main(["--store", "redis+cluster://u:hunter2@a:1/3", "list", "org_x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scout-auth: ")
    assert "database" in err
    assert "hunter2" not in err


# -- a missing extra is one line (issue 16) -------------------------------------

_WITHOUT_EXTRA = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError("No module named " + repr(name), name=name)
        return None

sys.meta_path.insert(0, Block())
from scout_auth.cli import main
sys.exit(main({argv!r}))
"""


@pytest.mark.parametrize(
    ("blocked", "argv", "extra"),
    [
        pytest.param(
            ("sqlalchemy",), ["--store", "sqlite:///x.db", "migrate"], "sql", id="migrate"
        ),
        pytest.param(("sqlalchemy",), ["--store", "sqlite:///x.db", "list", "o"], "sql", id="sql"),
        pytest.param(
            ("redis",), ["--store", "redis://127.0.0.1:1/0", "list", "o"], "redis", id="redis"
        ),
        pytest.param(
            ("psycopg",),
            ["--store", "postgresql+psycopg://u@127.0.0.1:1/x", "list", "o"],
            "postgres",
            id="driver",
        ),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(tmp_path, blocked, argv, extra):
    code = _WITHOUT_EXTRA.format(blocked=blocked, argv=argv)
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback
    assert f"pip install 'scout-auth[{extra}]'" in done.stderr


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        pytest.param("scout_auth.stores.sql", "sqlalchemy", "sql", id="sql"),
        pytest.param("scout_auth.stores.redis", "redis", "redis", id="redis"),
    ],
)
def test_importing_a_store_without_its_extra_names_the_extra(module, blocked, extra):
    code = _WITHOUT_EXTRA.split("from scout_auth.cli")[0].format(blocked=(blocked,)) + (
        f"try:\n    import {module}\nexcept ImportError as e:\n    print(e)\n"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == f"{blocked} is not installed: pip install 'scout-auth[{extra}]'"


# -- the vault ------------------------------------------------------------------


def test_vault_new_kek_prints_a_loadable_entry(capsys):
    from scout_auth import KeyVault

    assert main(["vault", "new-kek", "--id", "kek-a"]) == 0
    entry = capsys.readouterr().out.strip()
    assert entry.startswith("kek-a:")
    assert KeyVault.from_string(entry).current_kek_id == "kek-a"
    assert main(["vault", "new-kek"]) == 0
    assert capsys.readouterr().out.strip() != entry
    assert main(["vault", "new-kek", "--id", "bad id"]) == 2


def test_recoverable_keys_reveal_status_and_rewrap_through_the_cli(
    sqlite_store_url, capsys, monkeypatch
):
    from scout_auth import KeyVault
    from scout_auth.stores.sql import SQLKeyStore

    url = sqlite_store_url
    old, new = KeyVault.new_kek("kek-old"), KeyVault.new_kek("kek-new")
    monkeypatch.setenv("SCOUT_AUTH_VAULT_KEKS", old)
    code, [created] = run(capsys, "--store", url, "create", "org_v", "ci deploys", "--recoverable")
    assert code == 0
    assert created["recoverable"] is True
    code, [plain] = run(capsys, "--store", url, "create", "org_v", "ci deploys (plain)")
    assert plain["recoverable"] is False
    code, [revealed] = run(capsys, "--store", url, "reveal", created["key_id"])
    assert code == 0
    assert revealed["token"] == created["token"]
    store = SQLKeyStore(url)
    [event] = [e for e in store.audit_sink().query("org_v").events if e.action == "revealed"]
    assert (event.key_id, event.actor) == (created["key_id"], "cli")
    store.close()
    assert main(["--store", url, "reveal", plain["key_id"]]) == 1
    assert "shown once" in capsys.readouterr().err
    code, [status] = run(capsys, "--store", url, "vault", "status")
    assert (code, status["keys"], status["unknown"]) == (0, {"kek-old": 1}, [])
    # A new current KEK, the old one still configured: rewrap, then drop the old.
    monkeypatch.setenv("SCOUT_AUTH_VAULT_KEKS", f"{new},{old}")
    code, [report] = run(capsys, "--store", url, "vault", "rewrap")
    assert (code, report["rewrapped"], report["current"], report["failed"]) == (0, 1, 0, [])
    code, [report] = run(capsys, "--store", url, "vault", "rewrap")  # idempotent
    assert (report["rewrapped"], report["current"]) == (0, 1)
    monkeypatch.setenv("SCOUT_AUTH_VAULT_KEKS", new)
    code, [revealed] = run(capsys, "--store", url, "reveal", created["key_id"])
    assert revealed["token"] == created["token"]
    code, [rotated] = run(capsys, "--store", url, "rotate", created["key_id"])
    assert rotated["recoverable"] is True
    assert (
        run(capsys, "--store", url, "reveal", rotated["key_id"])[1][0]["token"] == rotated["token"]
    )
    # A KEK id the vault lacks: status says so and exits 1.
    monkeypatch.setenv("SCOUT_AUTH_VAULT_KEKS", KeyVault.new_kek("kek-other"))
    code, [status] = run(capsys, "--store", url, "vault", "status")
    assert (code, status["unknown"]) == (1, ["kek-new"])
    assert main(["--store", url, "reveal", created["key_id"]]) == 1
    err = capsys.readouterr().err
    assert "not configured" in err
    assert created["token"] not in err


def test_without_the_vault_variable_recoverable_and_reveal_exit_1(
    sqlite_store_url, capsys, monkeypatch
):
    monkeypatch.delenv("SCOUT_AUTH_VAULT_KEKS", raising=False)
    url = sqlite_store_url
    assert main(["--store", url, "create", "org_v", "ci deploys", "--recoverable"]) == 1
    assert "SCOUT_AUTH_VAULT_KEKS" in capsys.readouterr().err
    assert run(capsys, "--store", url, "list", "org_v")[1] == []  # nothing written
    assert main(["--store", url, "vault", "rewrap"]) == 1
    monkeypatch.setenv("SCOUT_AUTH_VAULT_KEKS", "k1:not-a-key")
    assert main(["--store", url, "vault", "status"]) == 1
    assert "entry 1" in capsys.readouterr().err
