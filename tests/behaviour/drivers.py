"""Raw drivers: call an ASGI or WSGI app with exactly the bytes a server could hand it.

Test clients normalise what they send (httpx refuses some header bytes,
werkzeug's ``Client`` sets ``Content-Length``); a real server may not. These
build the ASGI scope or WSGI environ by hand, so a threat table can send a
body without framing headers, raw latin-1 header bytes, a ``root_path`` or
``SCRIPT_NAME`` mount prefix, and see what the application itself received.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import anyio

Headers = Sequence[tuple[str, str]]


@dataclass
class Answer:
    """What the client got back."""

    status: int
    headers: dict[str, str]
    body: bytes
    raised: BaseException | None = None

    @property
    def code(self) -> str | None:
        """The problem+json ``code``, if the body is one."""
        try:
            return json.loads(self.body).get("code")  # type: ignore[no-any-return]
        except (ValueError, AttributeError):
            return None


@dataclass
class Seen:
    """What the protected application saw (filled in by the apps of a table)."""

    calls: int = 0
    bodies: list[bytes] = field(default_factory=list)


def asgi(
    app: Callable[..., Any],
    method: str = "GET",
    path: str = "/",
    headers: Headers = (),
    body: bytes | Sequence[bytes] = b"",
    *,
    root_path: str = "",
    query: str = "",
    client: tuple[str, int] | None = ("203.0.113.9", 50000),
    scope_type: str = "http",
) -> Answer:
    """One request through an ASGI app, as uvicorn would build it (``root_path`` + ``path``)."""
    full = root_path + path
    scope: dict[str, Any] = {
        "type": scope_type,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http" if scope_type == "http" else "ws",
        "path": full,
        "raw_path": quote(full, safe="/%").encode("ascii"),
        "root_path": root_path,
        "query_string": query.encode("latin-1"),
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": client,
        "server": ("testserver", 80),
        "extensions": {},
    }
    chunks = [body] if isinstance(body, bytes) else list(body)
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if scope_type == "websocket" and not sent and not messages:
            return {"type": "websocket.connect"}
        if messages:
            return messages.pop(0)
        await anyio.sleep(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        with anyio.fail_after(30):  # a hang is a failure, not a timing claim
            await app(scope, receive, send)

    raised: BaseException | None = None
    try:
        anyio.run(run)
    except Exception as exc:  # an exception escaping the app is a server's 500
        raised = exc
    status, out_headers, out = 500, {}, b""
    for message in sent:
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in message.get("headers", [])
            }
        elif message["type"] == "http.response.body":
            out += message.get("body", b"")
        elif message["type"] == "websocket.accept":
            status = 101
        elif message["type"] == "websocket.close" and status != 101:
            # 1008 (policy violation) is the middleware's refusal of a handshake.
            status = 403 if message.get("code") == 1008 else 500
    return Answer(status, out_headers, out, raised)


def wsgi(
    app: Callable[..., Any],
    method: str = "GET",
    path: str = "/",
    headers: Headers = (),
    body: bytes = b"",
    *,
    script_name: str = "",
    query: str = "",
    content_length: str | None = "auto",
    terminated: bool = False,
    remote_addr: str = "203.0.113.9",
) -> Answer:
    """One request through a WSGI app; ``path`` is the PATH_INFO (as str, latin-1 form)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": remote_addr,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": terminated,
    }
    if content_length == "auto":
        if body:
            environ["CONTENT_LENGTH"] = str(len(body))
    elif content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            key = "HTTP_" + key
            environ[key] = f"{environ[key]}, {value}" if key in environ else value
    started: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info=None):
        started["status"] = int(status.split(" ", 1)[0])
        started["headers"] = {k.lower(): v for k, v in response_headers}
        return lambda data: None

    raised: BaseException | None = None
    out = b""
    try:
        result = app(environ, start_response)
        try:
            out = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except Exception as exc:
        raised = exc
    if raised is not None or "status" not in started:
        return Answer(500, {}, out, raised)
    return Answer(started["status"], started["headers"], out)
