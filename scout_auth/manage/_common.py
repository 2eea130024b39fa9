"""What both mountings share: settings, the audit sink, templates and assets."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

from .._adapters.answers import BodyLimit
from .._audit.events import AuditSink
from .._audit.sinks import LoggingAuditSink
from .._core.drive import NOT_LOCAL
from .._drivers.audit_buffer import AuditBuffer
from .._extras import require
from .._manage.context import Settings
from .._manage.limits import CreateLimiter
from .._manage.needs import Asset, ManageNeed, Render
from .._manage.parse import invalid
from .._manage.routes import MAX_BODY

__all__ = [
    "BODY_LIMIT",
    "answer_locally",
    "audit_error",
    "joined",
    "query_sink",
    "settings",
]

#: The largest request body read, and the sentence of its 413.
BODY_LIMIT = BodyLimit(MAX_BODY, "The request body is too large.")

_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def query_sink(audit: AuditSink | None, manager_audit: object) -> AuditSink | None:
    """The sink audit pages read: ``audit``, else the manager's (through its buffer)."""
    found: object = audit
    if found is None:
        found = manager_audit.sink if isinstance(manager_audit, AuditBuffer) else manager_audit
    if isinstance(found, LoggingAuditSink) or not isinstance(found, AuditSink):
        return None  # nothing to read back (or no sink): the pages say so
    return found


def settings(
    *,
    has_audit: bool,
    has_vault: bool,
    login_url: str | None,
    title: str,
    create_per_minute: float,
) -> Settings:
    """The app's :class:`Settings` (refuses a bad limit at startup)."""
    burst = max(1, int(create_per_minute))
    return Settings(
        limiter=CreateLimiter(create_per_minute, burst),
        has_audit=has_audit,
        has_vault=has_vault,
        login_url=login_url,
        title=title,
    )


def joined(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case header names to values, repeated fields joined with ``", "``."""
    out: dict[str, str] = {}
    for name, value in headers:
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def answer_locally(need: ManageNeed) -> object:
    """The needs both mountings answer alike, without I/O: pages and assets.

    ``drive``'s ``local``: :data:`NOT_LOCAL` for the others.
    """
    if isinstance(need, Render):
        return render(need.template, need.context)
    if isinstance(need, Asset):
        return asset(need.name)
    return NOT_LOCAL


def audit_error(exc: ValueError) -> Exception:
    """A sink's ``ValueError`` (a bad cursor or filter) as the 422 it is."""
    return invalid("query", str(exc)[:200])


@functools.cache
def _environment() -> Any:
    require("jinja2")
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("scout_auth.manage", "templates"),
        autoescape=True,  # every value is escaped: names and descriptions come from users
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, context: Mapping[str, Any]) -> bytes:
    """A page template rendered to UTF-8."""
    page: str = _environment().get_template(template).render(**context)
    return page.encode("utf-8")


@functools.cache
def _assets() -> Mapping[str, tuple[bytes, str]]:
    # Read once, by a fixed listing: a request can name only these files.
    folder = resources.files("scout_auth.manage") / "static"
    found: dict[str, tuple[bytes, str]] = {}
    entries: Iterable[Any] = folder.iterdir()
    for entry in entries:
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _MEDIA_TYPES:
            found[entry.name] = (entry.read_bytes(), _MEDIA_TYPES[suffix])
    return found


def asset(name: str) -> tuple[bytes, str] | None:
    """A static file's bytes and media type, or ``None``."""
    return _assets().get(name)
