"""Raw drivers, fuzz apps and oracles for the adapter fuzz properties.

No test client in between: :func:`call` builds the ASGI scope or the PEP
3333 environ from a :class:`~tests.behaviour.strategies.RawRequest` itself,
the way a server would (ASGI: ``path`` is the percent-decoded target with
the mount point in front, ``raw_path`` the bytes as sent; WSGI: ``PATH_INFO``
is the decoded target as latin-1 text, header values latin-1 text, repeated
fields joined with ``", "``). A *500* is a 5xx status, an exception escaping
the app, or an ASGI app that does not finish (``fail_after``: a hang, not a
timing threshold).

The oracles decide from what the *framework* routes on, computed here
independently of scout_auth: Starlette routes on ``path`` minus
``root_path``; werkzeug on ``PATH_INFO`` decoded as UTF-8, with the method
upper-cased and leading slashes merged; every framework answers ``HEAD``
with the ``GET`` handler.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import assume
from hypothesis import strategies as st

from scout_auth.client import SigningAuth
from tests.behaviour.fuzz_apps import ASGI_ADAPTERS, HOST, TARGETS, world
from tests.behaviour.strategies import (
    Mutation,
    RawRequest,
    garbage_authorization,
    mutate,
    mutations,
    raw_requests,
    rule_methods,
    rule_paths,
)

__all__ = [
    "PROPERTIES",
    "TARGETS",
    "Outcome",
    "call",
    "check_scoped",
    "check_signed_garbage",
    "check_unauthenticated",
    "exempt_route",
    "portal",
    "protected",
    "routed",
    "signed_request",
    "world",
]

_INVALID = st.one_of(st.none(), st.sampled_from(world.invalid))
_EMPTY = st.sampled_from([world.empty, world.empty, world.empty_ip_bound])
_AIM = st.integers(0, 3).map(bool)


# -- drivers -----------------------------------------------------------------


@dataclass
class Outcome:
    """What the app answered: status (``None`` if it never started), body, error."""

    status: int | None
    body: bytes = b""
    error: BaseException | None = None

    def describe(self) -> str:
        err = f", raised {type(self.error).__name__}: {self.error}" if self.error else ""
        return f"status {self.status}{err}, body {self.body[:200]!r}"


_portal: BlockingPortal | None = None


@contextmanager
def portal() -> Iterator[BlockingPortal]:
    """One event loop (in a thread) for every ASGI call of a run."""
    global _portal
    with start_blocking_portal("asyncio") as p:
        _portal = p
        try:
            yield p
        finally:
            _portal = None


def _chunks(req: RawRequest) -> list[bytes]:
    out, rest = [], req.body
    for size in req.chunks:
        out.append(rest[:size])
        rest = rest[size:]
    out.append(rest)
    return out


def asgi_path(req: RawRequest) -> str:
    """``scope["path"]``: the decoded target with the mount point in front (ASGI 3)."""
    return req.root_path + unquote(req.raw_path.decode("latin-1"), errors="replace")


def _scope(req: RawRequest) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": req.method,
        "scheme": "http",
        "path": asgi_path(req),
        "raw_path": req.root_path.encode("latin-1") + req.raw_path,
        "root_path": req.root_path,
        "query_string": req.query,
        "headers": [(b"host", req.host), *req.headers],
        "client": list(req.client) if req.client else None,
        "server": (HOST, 80),
        "extensions": {},
        "state": {},
    }


async def _asgi(app: Any, req: RawRequest) -> Outcome:
    chunks = _chunks(req)
    responded = anyio.Event()
    started: list[int] = []
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        await responded.wait()  # like a server: the client goes once answered
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.append(message["status"])
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                responded.set()

    error: BaseException | None = None
    try:
        with anyio.fail_after(30):  # generous: only a hang trips it
            await app(_scope(req), receive, send)
    except Exception as exc:
        error = exc
    return Outcome(started[0] if started else None, b"".join(body), error)


def wsgi_environ(req: RawRequest) -> dict[str, Any]:
    """The PEP 3333 environ a server would build for ``req``."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req.method,
        "SCRIPT_NAME": req.root_path,
        "PATH_INFO": unquote_to_bytes(req.raw_path).decode("latin-1"),
        "QUERY_STRING": req.query.decode("latin-1"),
        "REQUEST_URI": (req.root_path.encode("latin-1") + req.raw_path).decode("latin-1")
        + ("?" + req.query.decode("latin-1") if req.query else ""),
        "SERVER_NAME": HOST,
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": req.host.decode("latin-1"),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(req.body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if req.client:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = req.client[0], str(req.client[1])
    seen: set[str] = set()
    for name, value in req.headers:
        key = name.decode("latin-1").upper().replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key
        text = value.decode("latin-1")
        # Repeated fields join with ", " (RFC 9110 §5.3), as servers do.
        environ[key] = f"{environ[key]}, {text}" if key in seen and key in environ else text
        seen.add(key)
        if key == "HTTP_TRANSFER_ENCODING":
            environ["wsgi.input_terminated"] = True
    if "CONTENT_LENGTH" not in environ and req.body:
        environ["CONTENT_LENGTH"] = str(len(req.body))
    return environ


def _wsgi(app: Any, req: RawRequest) -> Outcome:
    status: list[int] = []

    def start_response(s: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        status.append(int(s.split(" ", 1)[0]))
        return lambda data: None

    try:
        iterable = app(wsgi_environ(req), start_response)
        try:
            body = b"".join(iterable)
        finally:
            getattr(iterable, "close", lambda: None)()
    except Exception as exc:
        return Outcome(status[-1] if status else None, b"", exc)
    return Outcome(status[-1] if status else None, body)


def call(adapter: str, kind: str, req: RawRequest) -> Outcome:
    """Send ``req`` to the fuzz app ``(adapter, kind)`` through a raw driver."""
    app = world.app(adapter, kind)
    if adapter in ASGI_ADAPTERS:
        assert _portal is not None, "ASGI calls run inside harness.portal()"
        outcome: Outcome = _portal.call(_asgi, app, req)
        return outcome
    return _wsgi(app, req)


# -- oracles -----------------------------------------------------------------


def routed(adapter: str, req: RawRequest) -> tuple[str, str]:
    """``(method, path)`` as the framework dispatches ``req`` (not as scout_auth sees it)."""
    if adapter in ASGI_ADAPTERS:
        # Starlette's get_route_path: the path below the mount point.
        path, root = asgi_path(req), req.root_path
        if root and path.startswith(root):
            if path == root:
                path = ""
            elif path[len(root)] == "/":
                path = path[len(root) :]
        return req.method, path
    # werkzeug: PATH_INFO's bytes as UTF-8, leading slashes merged into one
    # (MapAdapter.match, Request.path); the method upper-cased.
    info = unquote_to_bytes(req.raw_path).decode("utf-8", "replace")
    return req.method.upper(), "/" + info.lstrip("/") if info else info


def exempt_route(path: str) -> bool:
    """Whether the app-relative ``path`` is one of tests/apps.py's exempt paths."""
    return path == "/health" or path.startswith("/public/")


def protected(method: str, path: str) -> bool:
    """Whether :data:`RULES` ask a scope for ``(method, path)`` as the framework routes it."""
    if method == "HEAD":  # every framework serves HEAD with the GET handler
        method = "GET"
    return path.startswith("/write") or (path == "/read" and method == "GET")


def _no_500(outcome: Outcome) -> None:
    assert outcome.error is None, f"exception escaped the app: {outcome.describe()}"
    assert outcome.status is not None, f"no response: {outcome.describe()}"
    assert outcome.status < 500, f"server error: {outcome.describe()}"


def check_unauthenticated(adapter: str, kind: str, req: RawRequest) -> Outcome:
    """No valid credential: never a 5xx, never a 2xx/3xx off an exempt route."""
    outcome = call(adapter, kind, req)
    _no_500(outcome)
    method, path = routed(adapter, req)
    if outcome.status is not None and outcome.status < 400:
        assert exempt_route(path), (
            f"{outcome.status} without a credential for {method} {path!r} "
            f"(routed; scout_auth saw {asgi_path(req)!r}): {outcome.describe()}"
        )
    return outcome


def check_scoped(adapter: str, kind: str, req: RawRequest) -> Outcome:
    """A valid key with no scopes: never a 5xx, never a 2xx where a rule asks a scope."""
    outcome = call(adapter, kind, req)
    _no_500(outcome)
    method, path = routed(adapter, req)
    if outcome.status is not None and 200 <= outcome.status < 300:
        assert not protected(method, path), (
            f"{outcome.status} for a key without scopes on rule-protected {method} {path!r}: "
            f"{outcome.describe()}"
        )
    return outcome


def check_signed_garbage(adapter: str, kind: str, req: RawRequest) -> Outcome:
    """A signed request with one thing changed: refused (400/401/403/413), never 2xx or 5xx."""
    outcome = call(adapter, kind, req)
    _no_500(outcome)
    assert outcome.status in (400, 401, 403, 413), f"mutated signed request: {outcome.describe()}"
    return outcome


def signed_request(token: str, body: bytes, query: bytes = b"x=1") -> RawRequest:
    """A request to POST /echo genuinely signed by :class:`scout_auth.client.SigningAuth`."""
    auth = SigningAuth(token, components=["content-type"])
    url = f"http://{HOST}/echo" + (f"?{query.decode()}" if query else "")
    added = auth.signature_headers(
        "POST", url, [("host", HOST), ("content-type", "application/json")], body
    )
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in added.items()]
    headers.append((b"content-length", str(len(body)).encode()))
    return RawRequest(
        method="POST", raw_path=b"/echo", query=query, headers=tuple(headers), body=body
    )


# -- the properties, as (strategy, runner) pairs ----------------------------


_PLAIN_ROUTES = st.sampled_from([b"/whoami", b"/read", b"/write", b"/echo"])


@st.composite
def unauthenticated_requests(draw: st.DrawFn) -> RawRequest:
    """:func:`raw_requests`, some with a token that must not authenticate."""
    req = draw(raw_requests())
    if draw(st.booleans()):  # half of the time: garbage credentials to a plain route
        auth = (b"authorization", draw(garbage_authorization))
        path = draw(_PLAIN_ROUTES)
        return replace(req, raw_path=path, root_path="", headers=(auth, *req.headers[:2]))
    token = draw(_INVALID)
    if token is None:
        return req
    return req.with_headers((b"authorization", b"Bearer " + token.encode()))


@st.composite
def scoped_requests(draw: st.DrawFn) -> RawRequest:
    """:func:`raw_requests` carrying a valid bearer token of a key with ``scopes=[]``."""
    req = draw(raw_requests())
    if draw(_AIM):  # aim at the rule-protected routes three times out of four
        method, path = draw(rule_methods), draw(rule_paths)
        req = replace(req, method=method, raw_path=path, headers=req.headers[:2])
    token = draw(_EMPTY)
    return req.with_headers((b"authorization", b"Bearer " + token.encode()))


#: A signed request's body and the one change made to it.
signed_plans = st.tuples(st.binary(min_size=1, max_size=96), mutations)


def run_signed_plan(adapter: str, kind: str, plan: tuple[bytes, Mutation]) -> Outcome:
    """Sign a fresh request (new nonce), change one thing, check it is refused."""
    body, mutation = plan
    mutated = mutate(signed_request(world.signer, body), mutation)
    assume(mutated is not None)
    assert mutated is not None
    return check_signed_garbage(adapter, kind, mutated)


#: name -> (strategy, runner(adapter, kind, drawn value)); shared with fuzz_long.
PROPERTIES: dict[str, tuple[st.SearchStrategy[Any], Callable[[str, str, Any], Outcome]]] = {
    "unauthenticated": (unauthenticated_requests(), check_unauthenticated),
    "scoped": (scoped_requests(), check_scoped),
    "signed_garbage": (signed_plans, run_signed_plan),
}
