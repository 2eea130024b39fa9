"""Store-suite fixtures.

SQL: one URL per back end, each with a freshly migrated schema. SQLite needs
nothing; PostgreSQL and MariaDB call ``require_server`` first (skip on a
laptop, fail with ``CI=true``). Each test session gets its own PostgreSQL
schema and MariaDB database, migrated with the shipped Alembic scripts and
dropped at the end, and a PostgreSQL notification channel of its own;
concurrent runs on one server never meet. Tests in a session share the
tables and stay apart by using unique org and key ids.

Redis: a reachable server and a unique key prefix per run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from scout_auth.stores.sql import upgrade
from tests.conftest import MARIADB_URL, POSTGRES_URL, REDIS_URL, require_server

#: Each anyio test runs its own event loop, and pooled asyncio connections must
#: not outlive the loop that opened them: stores shared across such tests use
#: an unpooled async engine (the sync engine keeps its pool).
PER_TEST_LOOP = {"poolclass": NullPool}

SERVERS = {
    "postgres": ("PostgreSQL", POSTGRES_URL),
    "mariadb": ("MariaDB", MARIADB_URL),
}
_SESSION = f"scout_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def server_url(name: str) -> str:
    """The URL of server ``name``, after ``require_server`` (skip or CI failure)."""
    label, url = SERVERS[name]
    parsed = make_url(url)
    require_server(label, parsed.host or "127.0.0.1", parsed.port or 0)
    return url


def _namespace_sql(name: str) -> tuple[str, str]:
    if name == "postgres":
        return f"CREATE SCHEMA {_SESSION}", f"DROP SCHEMA IF EXISTS {_SESSION} CASCADE"
    return f"CREATE DATABASE {_SESSION}", f"DROP DATABASE IF EXISTS {_SESSION}"


def _in_namespace(name: str, url: str) -> str:
    parsed = make_url(url)
    if name == "postgres":
        parsed = parsed.update_query_dict({"options": f"-csearch_path={_SESSION}"})
    else:
        parsed = parsed.set(database=_SESSION)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _namespaces() -> Iterator[dict[str, str]]:
    created: dict[str, str] = {}
    yield created
    for name in created:
        admin = sa.create_engine(SERVERS[name][1], poolclass=NullPool)
        with admin.begin() as conn:
            conn.exec_driver_sql(_namespace_sql(name)[1])
        admin.dispose()


def _server_fixture_url(name: str, namespaces: dict[str, str]) -> str:
    url = server_url(name)
    if name not in namespaces:
        admin = sa.create_engine(url, poolclass=NullPool)
        with admin.begin() as conn:
            conn.exec_driver_sql(_namespace_sql(name)[1])
            conn.exec_driver_sql(_namespace_sql(name)[0])
        admin.dispose()
        namespaces[name] = _in_namespace(name, url)
        upgrade(namespaces[name])
    return namespaces[name]


@pytest.fixture
def postgres_url(_namespaces: dict[str, str]) -> str:
    """PostgreSQL, in this session's migrated schema."""
    return _server_fixture_url("postgres", _namespaces)


@pytest.fixture(scope="session")
def postgres_channel() -> str:
    """This session's notification channel: concurrent runs share the database, not events."""
    return f"{_SESSION}_events"


@pytest.fixture
def mariadb_url(_namespaces: dict[str, str]) -> str:
    """MariaDB, in this session's migrated database."""
    return _server_fixture_url("mariadb", _namespaces)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from scout_auth.stores.sql import create_all

    url = f"sqlite:///{tmp_path_factory.mktemp('sql') / 'keys.db'}"
    create_all(url)
    return url


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def sql_url(request: pytest.FixtureRequest) -> str:
    """Each back end in turn."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test run only; its keys are deleted afterwards (no FLUSHDB)."""
    prefix = f"scout_test_{uuid.uuid4().hex[:10]}"
    yield prefix
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
        with client:
            batch = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(batch), 1000):
                client.delete(*batch[start : start + 1000])
    except redis.RedisError:
        pass


@pytest.fixture(scope="session")
def cluster(redis_cluster: Any, redis_prefix: str) -> Iterator[tuple[Any, Any]]:
    """The session's Redis Cluster (its address) and a client of it; this run's keys
    (under ``redis_prefix``) are deleted at the end."""
    import redis

    host, port = redis_cluster.nodes[0]
    client = redis.RedisCluster(host=host, port=port, socket_timeout=5)
    yield redis_cluster, client
    for name in client.scan_iter(match=f"{redis_prefix}:*", count=1000):  # every primary
        client.delete(name)  # one by one: the names are in many slots
    client.close()


@pytest.fixture
def cluster_client(cluster: tuple[Any, Any]) -> Any:
    """A ``redis.RedisCluster`` client of the session's cluster."""
    return cluster[1]
