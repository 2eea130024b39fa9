"""SQL store fixtures: one URL per back end, each with a freshly migrated schema.

SQLite needs nothing; PostgreSQL and MariaDB call ``require_server`` first
(skip on a laptop, fail with ``CI=true``). The server schemas are dropped and
rebuilt with the shipped Alembic migrations once per session, so every run
tests the current migrations; tests then share the tables and stay apart by
using unique org and key ids.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.conftest import MARIADB_URL, POSTGRES_URL, require_server

#: Each anyio test runs its own event loop, and pooled asyncio connections must
#: not outlive the loop that opened them: stores shared across such tests use
#: an unpooled async engine (the sync engine keeps its pool).
PER_TEST_LOOP = {"poolclass": NullPool}

SERVERS = {
    "postgres": ("PostgreSQL", POSTGRES_URL),
    "mariadb": ("MariaDB", MARIADB_URL),
}


def reset_schema(url: str) -> None:
    """Drop scout_auth's tables and migrate an empty database to head."""
    from scout_auth.stores._sql_schema import METADATA, VERSION_TABLE
    from scout_auth.stores.sql import upgrade

    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            METADATA.drop_all(conn)
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
        upgrade(engine)
    finally:
        engine.dispose()


def server_url(name: str) -> str:
    """The URL of server ``name``, after ``require_server`` (skip or CI failure)."""
    label, url = SERVERS[name]
    parsed = make_url(url)
    require_server(label, parsed.host or "127.0.0.1", parsed.port or 0)
    return url


@pytest.fixture(scope="session")
def _migrated() -> dict[str, str]:
    return {}


@pytest.fixture
def postgres_url(_migrated: dict[str, str]) -> str:
    url = server_url("postgres")
    if "postgres" not in _migrated:
        reset_schema(url)
        _migrated["postgres"] = url
    return url


@pytest.fixture
def mariadb_url(_migrated: dict[str, str]) -> str:
    url = server_url("mariadb")
    if "mariadb" not in _migrated:
        reset_schema(url)
        _migrated["mariadb"] = url
    return url


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
