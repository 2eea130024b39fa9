"""The legacy pepper of a file-backed SQLite store, kept in a file beside the database.

An embedded database has no configuration of its own to hold a pepper, and
the pepper must never be in the database (a copy of the file would then test
guesses at HMAC speed). So it lives in ``<database>.legacy-pepper``: 32
random bytes, mode 0600, made by the first store that needs it.

Creation is atomic: the bytes are written to a fresh temporary file
(``O_CREAT | O_EXCL``, mode 0600), flushed to disk, then published under the
final name with ``link()``, which fails if the name exists. Processes
starting together (the workers of one server) therefore all read the one
pepper that won, and nobody ever reads a half-written file. A file system
without hard links gets the plain ``O_CREAT | O_EXCL`` write instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy.engine import URL

from ..._core.pepper import MIN_PEPPER_LENGTH
from ...exceptions import ConfigurationError

__all__ = ["PEPPER_SUFFIX", "load_or_create", "pepper_file"]

#: Appended to the database path to name its pepper file.
PEPPER_SUFFIX = ".legacy-pepper"

_SIZE = 32
_MAX_READ = 4096  # a pepper file is tiny; never read a huge one whole


def pepper_file(url: URL) -> Path | None:
    """Where the pepper of the SQLite database at ``url`` lives; ``None`` if in memory."""
    database = url.database or ""
    if str(url.query.get("uri", "")).lower() in ("true", "1") and database.startswith("file:"):
        # An SQLite URI filename, file:path?mode=memory: SQLAlchemy moves the
        # URL's query (mode=, cache=) out of the database part.
        parts = urlsplit(database)
        modes = [url.query.get("mode"), *parse_qs(parts.query).get("mode", [])]
        if "memory" in modes:
            return None
        database = unquote(parts.path)
    if database in ("", ":memory:"):
        return None
    return Path(database + PEPPER_SUFFIX)


def load_or_create(path: Path) -> bytes:
    """The pepper in ``path``, created (32 random bytes, mode 0600) if the file is missing.

    Raises:
        ConfigurationError: The file holds fewer than 32 bytes.
    """
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    pepper = secrets.token_bytes(_SIZE)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    _write_new(temporary, pepper)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return _read(path)  # another process made it first: use theirs
    except OSError:  # no hard links here: create the final name directly
        try:
            _write_new(path, pepper)
        except FileExistsError:
            return _read(path)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_directory(path.parent)
    return pepper


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: Path) -> bytes:
    with path.open("rb") as file:
        data = file.read(_MAX_READ)
    if len(data) < MIN_PEPPER_LENGTH:
        raise ConfigurationError(
            f"the legacy pepper file {path} holds {len(data)} bytes, fewer than "
            f"{MIN_PEPPER_LENGTH}: restore it from a backup, or remove it to make a new "
            "pepper (stored look-up digests then stop matching until each org's secret "
            "is used again)"
        )
    return data


def _sync_directory(directory: Path) -> None:
    # The new name survives a crash only once its directory entry is on disk.
    with contextlib.suppress(OSError):  # not every platform opens directories
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
