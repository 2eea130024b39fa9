"""``scout-auth doctor``: a deployment's configuration checked, in plain words.

Each check answers ``ok``, ``warn`` (worth a look, not wrong by itself),
``fail`` (wrong: exit 1) or ``skip`` (does not apply to this store). The
checks only read: the store, its server's settings and clock, the
environment this command runs in (``$SCOUT_AUTH_LEGACY_PEPPER``,
``$SCOUT_AUTH_VAULT_KEKS``). Run it where the service runs, with its
environment. What it cannot see — a ``Verifier``'s arguments in your
application code — it says so rather than guesses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ._core.pepper import resolve_pepper, unknown_peppers
from ._core.store import KeyStore
from ._core.vault import KeyVault

__all__ = ["Check", "run_checks"]

#: Signed requests carry ``created``; beyond this skew some are refused.
SKEW_WARN = 5.0
SKEW_FAIL = 30.0


@dataclass(frozen=True, slots=True)
class Check:
    """One check's answer."""

    name: str
    status: str  # ok | warn | fail | skip
    detail: str

    def json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


def _kind(store: KeyStore) -> str:
    if hasattr(store, "database"):
        return str(store.database.backend)
    if hasattr(store, "connection") and hasattr(store, "layout"):
        return "redis"
    return "memory" if type(store).__name__ == "InMemoryKeyStore" else type(store).__name__


def _reachable(store: KeyStore, kind: str) -> list[Check]:
    if hasattr(store, "database"):
        return _sql_schema(store, kind)
    try:
        store.legacy_pepper_ids()
    except Exception as exc:
        detail = f"the {kind} store did not answer ({type(exc).__name__})"
        return [Check("store reachable", "fail", detail)]
    return [
        Check("store reachable", "ok", f"{kind} store answered"),
        Check("schema migrated", "skip", f"no SQL schema on a {kind} store"),
    ]


def _sql_schema(store: KeyStore, kind: str) -> list[Check]:
    from alembic.script import ScriptDirectory

    from .stores._sql.migrate import alembic_config, current_revision

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    try:
        with store.engine.connect() as conn:  # type: ignore[attr-defined]
            revision = current_revision(conn)
    except Exception as exc:
        detail = f"the {kind} database did not answer ({type(exc).__name__})"
        return [Check("store reachable", "fail", detail)]
    reachable = Check("store reachable", "ok", f"{kind} database answered")
    if revision == head:
        return [reachable, Check("schema migrated", "ok", f"revision {revision} (head)")]
    detail = (
        f"schema at revision {revision or 'none'}, head is {head}: "
        "run `scout-auth --store URL migrate`"
    )
    return [reachable, Check("schema migrated", "fail", detail)]


def _feed(store: KeyStore, kind: str) -> Check:
    if type(store).__dict__.get("listening") is None and not hasattr(type(store), "listening"):
        return Check("change feed", "skip", f"a {kind} store has no change feed (one process)")
    if kind in ("sqlite", "mysql", "mariadb"):
        return Check(
            "change feed",
            "warn",
            f"{kind} has no change feed: other instances see revocations after their cache TTL",
        )
    wait = getattr(store, "wait_listening", None)
    if wait is not None and wait(5.0):
        return Check("change feed", "ok", "listening: revocations reach every instance at once")
    return Check(
        "change feed", "fail", "not listening after 5 s: revocations wait for the cache TTL"
    )


def _redis_client(store: KeyStore) -> Any:
    return store.connection.sync  # type: ignore[attr-defined]


def _per_node(reply: Any) -> list[Any]:
    # RedisCluster answers some commands per node: {node: reply}.
    if isinstance(reply, dict) and reply and all(isinstance(v, dict) for v in reply.values()):
        return list(reply.values())
    return [reply]


def _persistence(store: KeyStore, kind: str) -> Check:
    if kind != "redis":
        return Check("redis persistence", "skip", f"not a Redis store ({kind})")
    client = _redis_client(store)
    try:
        aof = _per_node(client.config_get("appendonly"))
        rdb = _per_node(client.config_get("save"))
    except Exception as exc:
        return Check(
            "redis persistence",
            "warn",
            f"could not read CONFIG ({type(exc).__name__}; managed Redis often forbids it): "
            "make sure AOF or RDB snapshots are on",
        )

    def value(reply: Any, name: str) -> str:
        got = reply.get(name, reply.get(name.encode(), ""))
        return got.decode() if isinstance(got, bytes) else str(got)

    off = [
        i
        for i, (a, r) in enumerate(zip(aof, rdb, strict=False))
        if value(a, "appendonly") != "yes" and not value(r, "save").strip()
    ]
    if off:
        return Check(
            "redis persistence",
            "fail",
            f"{len(off)} of {len(aof)} node(s) have neither AOF (appendonly) nor RDB (save): "
            "a restart loses every key",
        )
    return Check("redis persistence", "ok", "AOF or RDB snapshots on every node")


def _pepper(store: KeyStore) -> Check:
    try:
        counts = store.legacy_digest_counts()
    except Exception as exc:
        return Check(
            "legacy pepper", "warn", f"could not count legacy digests ({type(exc).__name__})"
        )
    if not counts:
        return Check("legacy pepper", "ok", "no legacy keys")
    try:
        pepper = resolve_pepper(store, None, True)
    except Exception as exc:
        return Check("legacy pepper", "fail", str(exc))
    if pepper is None:
        return Check(
            "legacy pepper",
            "fail",
            f"{sum(counts.values())} legacy key(s) and $SCOUT_AUTH_LEGACY_PEPPER is not set",
        )
    unknown = unknown_peppers(counts, pepper)
    if unknown and not any(pepper.knows(pid) for pid in counts if pid is not None):
        return Check(
            "legacy pepper", "fail", "no legacy digest was made with the configured pepper"
        )
    if unknown:
        return Check(
            "legacy pepper", "warn", f"{sum(unknown.values())} digest(s) under unknown pepper ids"
        )
    return Check("legacy pepper", "ok", f"{sum(counts.values())} legacy key(s), pepper set")


def _vault(store: KeyStore) -> Check:
    try:
        sealed = store.list_sealed_seeds(None, 500)
    except Exception as exc:
        return Check("vault KEK", "warn", f"could not list sealed keys ({type(exc).__name__})")
    if not sealed:
        return Check("vault KEK", "ok", "no recoverable keys")
    try:
        vault = KeyVault.from_env()
    except Exception as exc:
        return Check(
            "vault KEK", "fail", f"$SCOUT_AUTH_VAULT_KEKS is unreadable ({type(exc).__name__})"
        )
    if vault is None:
        return Check(
            "vault KEK", "fail", "recoverable keys exist and $SCOUT_AUTH_VAULT_KEKS is not set"
        )
    missing = sorted({kek for _, kek in sealed if not vault.knows(kek)})
    if missing:
        return Check(
            "vault KEK", "fail", f"keys sealed under KEK ids not configured: {', '.join(missing)}"
        )
    return Check("vault KEK", "ok", "every sealed key's KEK is configured (first 500 checked)")


def _store_clock(store: KeyStore, kind: str) -> float | None:
    if kind == "redis":
        reply = _redis_client(store).time()
        if isinstance(reply, dict):  # a cluster: any node's
            reply = next(iter(reply.values()))
        seconds, micros = reply
        return float(seconds) + float(micros) / 1e6
    if kind == "postgresql" or kind in ("mysql", "mariadb"):
        import sqlalchemy as sa

        expr = (
            "SELECT EXTRACT(EPOCH FROM clock_timestamp())"
            if kind == "postgresql"
            else "SELECT UNIX_TIMESTAMP(NOW(6))"
        )
        with store.engine.connect() as conn:  # type: ignore[attr-defined]
            return float(conn.execute(sa.text(expr)).scalar_one())
    return None


def _clock(store: KeyStore, kind: str) -> Check:
    try:
        before = time.time()
        theirs = _store_clock(store, kind)
        after = time.time()
    except Exception as exc:
        return Check(
            "clock skew", "warn", f"could not read the store's clock ({type(exc).__name__})"
        )
    if theirs is None:
        return Check("clock skew", "skip", f"a {kind} store runs on this machine's clock")
    skew = theirs - (before + after) / 2
    text = f"this machine is {abs(skew):.3f} s {'behind' if skew > 0 else 'ahead of'} the store"
    if abs(skew) >= SKEW_FAIL:
        return Check("clock skew", "fail", text + ": signed requests will be refused; run NTP")
    if abs(skew) >= SKEW_WARN:
        return Check("clock skew", "warn", text + ": signed requests near their window may fail")
    return Check("clock skew", "ok", text)


def _nonce(kind: str, instances: int) -> Check:
    if instances <= 1:
        return Check(
            "nonce cache",
            "ok",
            "one instance: the default in-memory nonce cache sees every signed request "
            "(pass --instances N if more run)",
        )
    if kind != "redis":
        return Check(
            "nonce cache",
            "fail" if kind in ("memory", "sqlite") else "warn",
            f"{instances} instances: each Verifier needs one shared nonce cache "
            "(RedisNonceCache) or a signed request replays on another instance; a "
            f"{kind} store offers none. The doctor cannot see your Verifier's nonce_cache",
        )
    return Check(
        "nonce cache",
        "warn",
        f"{instances} instances on Redis: pass nonce_cache=RedisNonceCache(...) to every "
        "Verifier (the doctor cannot see your application's arguments)",
    )


def run_checks(store: KeyStore, *, instances: int = 1) -> list[Check]:
    """Every check against ``store``; a failed reachability check skips the rest."""
    kind = _kind(store)
    checks = _reachable(store, kind)
    if any(c.status == "fail" for c in checks):
        return checks  # the other checks need a reachable, migrated store
    checks.append(_feed(store, kind))
    checks.append(_persistence(store, kind))
    checks.append(_pepper(store))
    checks.append(_vault(store))
    checks.append(_clock(store, kind))
    checks.append(_nonce(kind, instances))
    return checks
