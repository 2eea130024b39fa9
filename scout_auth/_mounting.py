"""The framework glue of the mountable apps (``manage`` and ``leaks``), written once.

Both faces are an ASGI app and a Flask blueprint over a handler that
takes plain values; the shapes they share with their frameworks live here:

* :func:`run_flow` / :func:`arun_flow` — a handler's flow driven to its
  answer, an exception it raised translated by the face (``None``: a bug,
  raised on);
* :func:`serve_asgi` — one HTTP exchange of an ASGI app (a websocket is
  closed with 1008, other scopes ignored), the answer sent with its
  ``Content-Length``;
* :func:`read_asgi_body` / :func:`read_flask_body` — the whole body, or the
  face's 413 (nothing read past the limit, a bad or too large declared
  length refused unread);
* :func:`flask_mount` — the prefix a blueprint is mounted under, as the
  request reached it;
* :func:`flask_response` — an answer as a ``flask.Response``, its headers
  exactly the answer's.

Flask is an extra: it is imported only when a Flask function runs (the
faces' Flask modules import it first anyway).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

from ._adapters.answers import BodyLimit, Response
from ._core.drive import adrive, drive

if TYPE_CHECKING:
    import flask
    from starlette.types import Receive, Scope, Send

__all__ = [
    "arun_flow",
    "flask_mount",
    "flask_response",
    "read_asgi_body",
    "read_flask_body",
    "run_flow",
    "serve_asgi",
]

N = TypeVar("N")

#: A face's translation of an exception into its answer (``None``: not one of its own).
Translate = Callable[[Exception], "Response | None"]


def run_flow(
    flow: Generator[N, Any, Response],
    perform: Callable[[N], object],
    translate: Translate,
    local: Callable[[N], object] | None = None,
) -> Response:
    """``drive(flow, perform, local)``'s answer, or ``translate``'s of what it raised."""
    try:
        return drive(flow, perform, local)
    except Exception as exc:
        answer = translate(exc)
        if answer is None:
            raise
        return answer


async def arun_flow(
    flow: Generator[N, Any, Response],
    perform: Callable[[N], Awaitable[object]],
    translate: Translate,
    local: Callable[[N], object] | None = None,
) -> Response:
    """:func:`run_flow` with an awaited ``perform``."""
    try:
        return await adrive(flow, perform, local)
    except Exception as exc:
        answer = translate(exc)
        if answer is None:
            raise
        return answer


async def serve_asgi(
    scope: Scope,
    receive: Receive,
    send: Send,
    respond: Callable[[Scope, Receive], Awaitable[Response]],
) -> None:
    """Answer one HTTP request with ``respond(scope, receive)``'s answer."""
    if scope["type"] != "http":
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        return
    response = await respond(scope, receive)
    headers = [*response.headers, ("content-length", str(len(response.body)))]
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        }
    )
    await send({"type": "http.response.body", "body": response.body})


async def read_asgi_body(scope: Scope, receive: Receive, limit: BodyLimit) -> bytes:
    """The whole body, or :meth:`BodyLimit.too_large` past ``limit`` (read no further).

    Raises:
        Problem: 400 (a malformed ``Content-Length``) or 413.
    """
    lengths = [v for k, v in scope.get("headers", []) if k == b"content-length"]
    limit.check_declared(b", ".join(lengths).decode("latin-1") if lengths else None)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit.size:
            raise limit.too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def read_flask_body(request: flask.Request, limit: BodyLimit) -> bytes:
    """The whole body of a Flask request, or :meth:`BodyLimit.too_large` past ``limit``.

    Raises:
        Problem: 400 (a malformed ``Content-Length``) or 413.
    """
    limit.check_declared(request.headers.get("content-length"))
    data: bytes = request.stream.read(limit.size + 1)
    if len(data) > limit.size:
        raise limit.too_large()
    return data


def flask_mount(request: flask.Request, path: str) -> str:
    """The mount prefix of a blueprint view that matched ``/<path>`` (the script root included)."""
    sub = "/" + path
    full = request.script_root + request.path
    return full[: len(full) - len(sub)] if full.endswith(sub) else full.rstrip("/")


def flask_response(answer: Response) -> flask.Response:
    """``answer`` as a Flask response: its status, exactly its headers, its body."""
    import flask

    response = flask.Response(answer.body, status=answer.status)
    response.headers.clear()
    for key, value in answer.headers:
        response.headers.add(key, value)
    return response
