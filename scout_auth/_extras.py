"""Which extra installs a missing optional module: one line instead of a traceback."""

from __future__ import annotations

import importlib

__all__ = ["EXTRAS", "missing_extra", "require"]

#: Top-level module -> the ``scout-auth[...]`` extra that installs it.
EXTRAS = {
    "sqlalchemy": "sql",
    "alembic": "sql",
    "aiosqlite": "sql",
    "psycopg": "postgres",
    "psycopg2": "postgres",
    "pymysql": "mariadb",
    "asyncmy": "mariadb",
    "MySQLdb": "mariadb",
    "redis": "redis",
    "flask": "flask",
    "fastapi": "fastapi",
    "httpx": "client",
    "requests": "client",
    "jinja2": "manage",
    "opentelemetry": "otel",
    "prometheus_client": "prometheus",
}


def missing_extra(exc: ModuleNotFoundError) -> ImportError | None:
    """An ``ImportError`` naming the extra for ``exc``'s module, or ``None`` if not ours."""
    name = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(name)
    if extra is None:
        return None
    return ImportError(f"{name} is not installed: pip install 'scout-auth[{extra}]'")


def require(module: str) -> None:
    """Import ``module`` or raise an ``ImportError`` naming the extra that installs it.

    Called first by the faces of optional back ends, so ``import
    scout_auth.stores.sql`` without the extra says what to install instead
    of just ``No module named 'sqlalchemy'``.
    """
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        named = missing_extra(exc)
        raise (named or exc) from None
