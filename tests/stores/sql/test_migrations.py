"""The shipped Alembic migrations build exactly the schema ``create_all`` builds.

Each back end gets two empty namespaces (SQLite files, PostgreSQL schemas,
MariaDB databases): one is migrated with ``upgrade(head)``, the other built
with ``create_all``; their reflected schemas must be the same, and Alembic's
autogenerate must find nothing left to migrate.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

import scout_auth
from scout_auth import KeyUpdate, LegacyRecord, RoleRecord, ScopeInfo, SealedSeed
from scout_auth.audit import AuditEvent
from scout_auth.stores._sql.migrate import MIGRATIONS_DIR, current_revision
from scout_auth.stores._sql.ops import key_values
from scout_auth.stores._sql.schema import KEYS, LEGACY, METADATA, VERSION_TABLE
from scout_auth.stores.sql import SQLKeyStore, alembic_config, create_all, upgrade
from scout_auth.testing._store import T0, org, record
from tests.stores.conftest import server_url

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def _sqlite(tmp_path: Path, name: str) -> Iterator[Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / name}.db", poolclass=NullPool)
    yield engine
    engine.dispose()


def _postgres(tmp_path: Path, name: str) -> Iterator[Engine]:
    url = server_url("postgres")
    schema = f"scout_mig_{name}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = sa.create_engine(
        url, poolclass=NullPool, connect_args={"options": f"-csearch_path={schema}"}
    )
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def _mariadb(tmp_path: Path, name: str) -> Iterator[Engine]:
    url = server_url("mariadb")
    database = f"scout_mig_{name}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {database}")
    engine = sa.create_engine(make_url(url).set(database=database), poolclass=NullPool)
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {database}")
    admin.dispose()


@pytest.fixture(params=[_sqlite, _postgres, _mariadb], ids=["sqlite", "postgres", "mariadb"])
def empty_databases(request, tmp_path) -> Iterator[tuple[Engine, Engine]]:
    first, second = request.param(tmp_path, "a"), request.param(tmp_path, "b")
    yield next(first), next(second)
    for gen in (first, second):
        next(gen, None)


def _snapshot(engine: Engine) -> dict[str, Any]:
    inspector = sa.inspect(engine)
    tables: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        options = inspector.get_table_options(name)
        tables[name] = {
            "columns": [
                (c["name"], repr(c["type"]), c["nullable"]) for c in inspector.get_columns(name)
            ],
            "primary_key": inspector.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(name)
            ),
            "options": {k: v for k, v in options.items() if "collate" in k or "charset" in k},
        }
    return tables


def test_upgrade_head_builds_the_same_schema_as_create_all(empty_databases):
    migrated, created = empty_databases
    upgrade(migrated)
    create_all(created)
    assert _snapshot(migrated) == _snapshot(created)
    assert set(_snapshot(migrated)) == {t.name for t in METADATA.sorted_tables} | {VERSION_TABLE}
    with migrated.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "version_table": VERSION_TABLE,
                "include_name": lambda name, type_, _: (
                    type_ != "table" or (name or "").startswith("scout_auth_")
                ),
            },
        )
        assert compare_metadata(context, METADATA) == []
        assert current_revision(conn) == HEAD
    with created.connect() as conn:
        assert current_revision(conn) == HEAD  # create_all stamps: later upgrades apply


def test_upgrade_is_idempotent_and_downgrade_removes_everything(empty_databases):
    engine, _ = empty_databases
    upgrade(engine)
    store = SQLKeyStore(engine=engine)
    r = record(org())
    store.add_key(r)
    upgrade(engine)  # every deploy may run it: nothing changes
    assert store.get_key(r.key_id) == r
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert sa.inspect(engine).get_table_names() == [VERSION_TABLE]


def test_migrations_ship_inside_the_package():
    root = Path(scout_auth.__file__).parent
    assert MIGRATIONS_DIR.is_relative_to(root)  # hatch packages the whole directory
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert HEAD is not None


def test_offline_mode_renders_the_ddl_for_a_dba(capsys):
    command.upgrade(alembic_config("postgresql+psycopg://dba@db/prod"), "head", sql=True)
    ddl = capsys.readouterr().out
    assert "CREATE TABLE scout_auth_keys" in ddl
    assert "CREATE TABLE scout_auth_audit_events" in ddl
    assert "TIMESTAMP WITH TIME ZONE" in ddl
    assert "CREATE UNIQUE INDEX ix_scout_auth_legacy_keys_lookup_digest" in ddl
    assert f"INSERT INTO {VERSION_TABLE}" in ddl


def test_upgrade_leaves_the_services_own_tables_alone(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}", poolclass=NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('the_apps_own')")
        conn.exec_driver_sql("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    upgrade(str(engine.url))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT * FROM alembic_version").all() == [("the_apps_own",)]
    assert {"orders", "scout_auth_keys", VERSION_TABLE} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()


# The columns of scout_auth_keys at revision 0001/0002 (the store of today
# writes the newer ones too, so an old database is filled by hand).
_KEYS_0001 = (
    "key_id", "org_id", "name", "public_key", "enabled", "scopes",
    "created_at", "expires_at", "replaced_by",
)  # fmt: skip


def _add_old_key(engine: Engine, r) -> None:
    values = {k: v for k, v in key_values(r).items() if k in _KEYS_0001}
    with engine.begin() as conn:
        conn.execute(sa.insert(KEYS).values(values))


def _old_key_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [row[0] for row in conn.exec_driver_sql("SELECT key_id FROM scout_auth_keys")]


def _old_key_usage(engine: Engine) -> list[tuple[str, str | None, str | None, int]]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT key_id, roles, allowed_ips, use_count FROM scout_auth_keys ORDER BY key_id"
        )
        return [(k, roles, ips, int(n)) for k, roles, ips, n in rows]


def _old_legacy_rows(engine: Engine) -> list[tuple[str, str, bool]]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT org_id, secret_hash, enabled FROM scout_auth_legacy_keys ORDER BY org_id"
        )
        return [(o, h, bool(e)) for o, h, e in rows]


def test_0001_to_0002_adds_the_audit_table_and_keeps_the_keys(empty_databases):
    engine, _ = empty_databases
    upgrade(engine, "0001")
    assert "scout_auth_audit_events" not in sa.inspect(engine).get_table_names()
    store = SQLKeyStore(engine=engine)
    r = record(org())
    _add_old_key(engine, r)  # a 0001 database in use
    upgrade(engine, "0002")
    with engine.connect() as conn:
        assert current_revision(conn) == "0002"
    assert _old_key_ids(engine) == [r.key_id]
    sink = store.audit_sink()
    event = AuditEvent("created", r.org_id, key_id=r.key_id, key_name=r.name, actor="migrator")
    sink.write([event])
    assert sink.query(key_id=r.key_id).events == (event,)
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("scout_auth_audit_events")}
    assert indexes == {"ix_scout_auth_audit_events_org_id", "ix_scout_auth_audit_events_key_id"}
    with engine.begin() as conn:  # and back: 0002's downgrade drops only its table
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    assert "scout_auth_audit_events" not in sa.inspect(engine).get_table_names()
    assert _old_key_ids(engine) == [r.key_id]


def test_0002_to_0003_adds_roles_usage_and_the_legacy_switch(empty_databases):
    engine, _ = empty_databases
    upgrade(engine, "0002")
    r = record(org(), scopes=frozenset({"drive:read"}))
    _add_old_key(engine, r)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(LEGACY).values(org_id=r.org_id, secret_hash="$argon2id$h", created_at=T0)
        )
    upgrade(engine, "0003")
    with engine.connect() as conn:
        assert current_revision(conn) == "0003"
    store = SQLKeyStore(engine=engine)
    # (The store of today reads 0004's and 0005's columns too: read 0003's by hand.)
    assert _old_key_usage(engine) == [(r.key_id, None, None, 0)]  # no roles, anywhere, unused
    assert _old_legacy_rows(engine) == [(r.org_id, "$argon2id$h", True)]
    with engine.begin() as conn:  # (today's usage write also sets 0007's address: by hand)
        conn.execute(
            sa.update(KEYS).where(KEYS.c.key_id == r.key_id).values(use_count=KEYS.c.use_count + 2)
        )
    store.put_role(RoleRecord(r.org_id, "reader", frozenset({"drive:read"})))
    assert _old_key_usage(engine) == [(r.key_id, None, None, 2)]
    with engine.begin() as conn:  # and back: 0003's downgrade keeps keys and legacy rows
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    tables = set(sa.inspect(engine).get_table_names())
    assert not {"scout_auth_roles", "scout_auth_legacy_usage"} & tables
    assert _old_key_ids(engine) == [r.key_id]


def test_0003_to_0004_adds_lookup_digests_and_keeps_the_legacy_rows(empty_databases):
    engine, _ = empty_databases
    upgrade(engine, "0003")
    on, off = sorted([org(), org()])
    with engine.begin() as conn:  # a 0003 database in use: two orgs, one switched off
        for org_id, enabled in ((on, True), (off, False)):
            hashed = f"$argon2id${org_id}"
            # Only 0003's columns: an INSERT names just the values it is given.
            values = {"org_id": org_id, "secret_hash": hashed, "created_at": T0, "enabled": enabled}
            conn.execute(sa.insert(LEGACY).values(values))
    upgrade(engine, "0004")
    with engine.connect() as conn:
        assert current_revision(conn) == "0004"
    store = SQLKeyStore(engine=engine)
    assert store.get_legacy(on) == LegacyRecord(on, f"$argon2id${on}", T0, enabled=True)
    assert store.get_legacy(off) == LegacyRecord(off, f"$argon2id${off}", T0, enabled=False)
    assert store.legacy_digest_counts() == {None: 2}  # no digest until first use
    digest = bytes(range(32))
    assert store.set_legacy_digest(on, f"$argon2id${on}", digest, "p1") is True
    assert store.find_legacy(digest) == store.get_legacy(on)
    assert store.set_legacy_digest(off, f"$argon2id${off}", digest, "p1") is False
    assert store.legacy_digest_counts() == {"p1": 1, None: 1}
    indexes = {
        i["name"]: (i["column_names"], bool(i["unique"]))
        for i in sa.inspect(engine).get_indexes("scout_auth_legacy_keys")
    }
    assert indexes["ix_scout_auth_legacy_keys_lookup_digest"] == (["lookup_digest"], True)
    with engine.begin() as conn:  # and back: 0004's downgrade keeps the rows and switches
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    columns = {c["name"] for c in sa.inspect(engine).get_columns("scout_auth_legacy_keys")}
    assert columns == {"org_id", "secret_hash", "created_at", "enabled"}
    assert _old_legacy_rows(engine) == [
        (on, f"$argon2id${on}", True),
        (off, f"$argon2id${off}", False),
    ]


def test_0004_to_0005_adds_descriptions_creators_and_the_scope_catalogue(empty_databases):
    engine, _ = empty_databases
    upgrade(engine, "0004")
    r = record(org(), scopes=frozenset({"drive:read"}), allowed_ips=("10.0.0.0/8",))
    values = {
        k: v
        for k, v in key_values(r).items()
        if k not in ("description", "created_by", "last_used_address")
        and not k.startswith("sealed_")
    }
    with engine.begin() as conn:  # a 0004 database in use
        conn.execute(sa.insert(KEYS).values(values))
    upgrade(engine)  # (to the head: today's store reads the later columns too)
    with engine.connect() as conn:
        assert current_revision(conn) == HEAD
    store = SQLKeyStore(engine=engine)
    old = store.get_key(r.key_id)
    assert old == r
    assert old is not None
    assert (old.description, old.created_by) == ("", None)  # old rows: none, not known
    updated = store.update_key(r.key_id, KeyUpdate(description="what it is for"))
    assert updated == r.evolve(description="what it is for")
    store.put_scope_info(ScopeInfo(r.org_id, "drive:read", "Read files"))
    assert store.list_scope_infos(r.org_id) == [ScopeInfo(r.org_id, "drive:read", "Read files")]
    with engine.begin() as conn:  # and back: 0005's downgrade keeps the keys
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    assert "scout_auth_scope_catalogue" not in sa.inspect(engine).get_table_names()
    columns = {c["name"] for c in sa.inspect(engine).get_columns("scout_auth_keys")}
    assert not {"description", "created_by"} & columns
    assert _old_key_ids(engine) == [r.key_id]


def test_0005_to_0006_adds_sealed_seeds_and_old_keys_are_not_recoverable(empty_databases):
    engine, _ = empty_databases
    upgrade(engine, "0005")
    r = record(org(), description="old key", created_by="ada")
    values = {
        k: v
        for k, v in key_values(r).items()
        if not k.startswith("sealed_") and k != "last_used_address"
    }
    with engine.begin() as conn:  # a 0005 database in use
        conn.execute(sa.insert(KEYS).values(values))
    upgrade(engine, "0006")
    with engine.connect() as conn:
        assert current_revision(conn) == "0006"
    upgrade(engine)  # (to the head: today's store reads the later columns too)
    store = SQLKeyStore(engine=engine)
    old = store.get_key(r.key_id)
    assert old == r
    assert old is not None
    assert old.sealed_seed is None
    assert not old.recoverable  # shown once, and it stays that way
    sealed = SealedSeed(b"c" * 48, b"n" * 12, b"w" * 60, "kek-1")
    assert store.update_key(r.key_id, KeyUpdate(sealed_seed=sealed)) == r.evolve(sealed_seed=sealed)
    assert [p for p in store.list_sealed_seeds() if p[0] == r.key_id] == [(r.key_id, "kek-1")]
    with engine.begin() as conn:  # and back: 0006's downgrade keeps the keys
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
    columns = {c["name"] for c in sa.inspect(engine).get_columns("scout_auth_keys")}
    assert not {c for c in columns if c.startswith("sealed_")}
    assert _old_key_ids(engine) == [r.key_id]


def test_0006_to_0007_adds_the_last_used_address_and_old_keys_know_none(empty_databases):
    engine, _ = empty_databases
    upgrade(engine, "0006")
    r = record(org(), last_used_at=T0, use_count=3)
    values = {k: v for k, v in key_values(r).items() if k != "last_used_address"}
    with engine.begin() as conn:  # a 0006 database in use
        conn.execute(sa.insert(KEYS).values(values))
    upgrade(engine)
    with engine.connect() as conn:
        assert current_revision(conn) == "0007" == HEAD
    store = SQLKeyStore(engine=engine)
    old = store.get_key(r.key_id)
    assert old == r
    assert old is not None
    assert old.last_used_address is None  # not known until the next use
    store.record_usage(r.key_id, 1, T0 + timedelta(minutes=1), "192.0.2.7")
    got = store.get_key(r.key_id)
    assert got is not None
    assert (got.use_count, got.last_used_address) == (4, "192.0.2.7")
    with engine.begin() as conn:  # and back: 0007's downgrade keeps the keys and counts
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    columns = {c["name"] for c in sa.inspect(engine).get_columns("scout_auth_keys")}
    assert "last_used_address" not in columns
    assert [(k, n) for k, _, _, n in _old_key_usage(engine)] == [(r.key_id, 4)]
