"""Reading request bodies and query strings: every bad value is a 4xx naming its field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from .http import ManageProblem, ManageRequest

__all__ = ["Body", "Query", "invalid", "json_body"]

#: Query fields read at most (``parse_qs`` raises past it: a 400, not a hash flood).
MAX_QUERY_FIELDS = 50


def invalid(name: str, message: str) -> ManageProblem:
    """The 422 naming ``name`` (a body or query field)."""
    return ManageProblem(
        422, "invalid_argument", f"{name}: {message}", errors=[{"field": name, "message": message}]
    )


def json_body(request: ManageRequest) -> Body:
    """The request's JSON object body (an empty body reads as ``{}``)."""
    if not request.body.strip():
        return Body({})
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise ManageProblem(415, "unsupported_media_type", "Send the body as application/json.")
    try:
        data = json.loads(request.body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ManageProblem(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ManageProblem(422, "invalid_argument", "The body must be a JSON object.")
    return Body(data)


def _datetime(name: str, value: object) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise invalid(name, "must be an RFC 3339 date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(name, "must be an RFC 3339 date-time string") from None
    if parsed.tzinfo is None:
        raise invalid(name, "must include a time zone offset (Z or +00:00)")
    try:  # 9999-12-31T23:59-12:00 is past the last UTC datetime Python has
        return parsed.astimezone(UTC)
    except OverflowError:
        raise invalid(name, "is out of range") from None


def _strings(name: str, value: object, max_items: int = 100) -> list[str]:
    if not isinstance(value, list) or len(value) > max_items:
        raise invalid(name, f"must be a list of at most {max_items} strings")
    if not all(isinstance(v, str) and len(v) <= 200 for v in value):
        raise invalid(name, "must be a list of strings of at most 200 characters")
    return value


class Body:
    """A JSON object body, read field by field; :meth:`done` refuses unknown fields."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data
        self._read: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self._data

    def _get(self, name: str) -> object:
        self._read.add(name)
        return self._data.get(name)

    def text(self, name: str, *, required: bool = False, max_length: int = 1000) -> str | None:
        """A string field (``None`` when absent and not required)."""
        value = self._get(name)
        if value is None:
            if required:
                raise invalid(name, "is required")
            return None
        if not isinstance(value, str) or len(value) > max_length:
            raise invalid(name, f"must be a string of at most {max_length} characters")
        return value

    def strings(self, name: str, *, nullable: bool = False) -> list[str] | None:
        """A list of strings (``null`` allowed when ``nullable``); ``None`` when absent."""
        value = self._get(name)
        if value is None:
            if name in self._data and not nullable:
                raise invalid(name, "must be a list, not null")
            return None
        return _strings(name, value)

    def integer(self, name: str, low: int, high: int) -> int | None:
        """An integer from ``low`` to ``high``; ``None`` when absent."""
        value = self._get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise invalid(name, f"must be an integer from {low} to {high}")
        return value

    def boolean(self, name: str) -> bool | None:
        """``true`` / ``false``; ``None`` when absent."""
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise invalid(name, "must be true or false")
        return value

    def moment(self, name: str) -> datetime | None:
        """An RFC 3339 date-time; ``None`` when absent or ``null``."""
        value = self._get(name)
        return None if value is None else _datetime(name, value)

    def done(self) -> None:
        """422 for a field no reader asked for (a typo must not pass silently)."""
        unknown = sorted(set(self._data) - self._read)
        if unknown:
            raise invalid(unknown[0][:100], "is not a known field")


class Query:
    """The query string, read parameter by parameter."""

    def __init__(self, query: str) -> None:
        try:
            self._params = parse_qs(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
        except ValueError:
            raise ManageProblem(400, "invalid_query", "Too many query parameters.") from None

    def text(self, name: str, max_length: int = 255) -> str | None:
        """One parameter (the last of repeats), or ``None``."""
        values = self._params.get(name)
        if not values or values[-1] == "":
            return None
        if len(values[-1]) > max_length:
            raise invalid(name, f"must be at most {max_length} characters")
        return values[-1]

    def texts(self, name: str) -> list[str]:
        """Every value of a repeatable parameter (comma-separated values split too)."""
        out: list[str] = []
        for value in self._params.get(name, []):
            out.extend(v for v in value.split(",") if v)
        if len(out) > 20 or any(len(v) > 64 for v in out):
            raise invalid(name, "takes at most 20 values of at most 64 characters")
        return out

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """An integer parameter from ``low`` to ``high``."""
        value = self.text(name, 12)
        if value is None:
            return default
        if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
            raise invalid(name, f"must be an integer from {low} to {high}")
        return int(value)

    def moment(self, name: str) -> datetime | None:
        """An RFC 3339 date-time parameter, or ``None``."""
        value = self.text(name, 40)
        return None if value is None else _datetime(name, value)
