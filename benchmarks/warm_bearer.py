"""Warm-path cost of scout_auth against a hand-written bearer check.

Run::

    python -m benchmarks.warm_bearer            # table + PASS/MISS
    python -m benchmarks.warm_bearer --json     # one JSON document
    python -m benchmarks.warm_bearer --rule-scopes 3   # with a 3-scope rule check

``--rule-scopes N``: the route needs N scopes. scout_auth gets a route rule
``("GET", "/whoami", [N scopes])``; the
hand-written baseline checks the same scopes in its hook (a subset test
against the token's granted set), so both do the same work.

For Starlette and for Flask three apps serve the same JSON route
(``{"org": "<org id>"}``):

a. ``bare``: no authentication at all (shows the framework's own cost);
b. ``hand``: the framework's own hook with a hand-written check that reads
   the header, parses the ``Bearer`` scheme, looks the token up in a dict,
   attaches the org and answers 401 otherwise (Starlette's
   ``AuthenticationMiddleware`` + ``AuthenticationBackend``; a Flask
   ``before_request`` setting ``g.org``);
c. ``scout``: scout_auth's middleware (``ScoutAuthMiddleware`` /
   ``ScoutAuth``) over an ``InMemoryKeyStore``, cache already filled, with
   usage tracking (the default) and auditing on (the store's audit sink
   behind an ``AuditBuffer``: refusals are recorded; an accepted request
   records nothing, so the warm path must not pay for it).

The apps are called in-process (ASGI: a prebuilt scope and no-op
receive/send; WSGI: a prebuilt environ and a no-op ``start_response``), so
no socket noise. The variants run in interleaved rounds (their order
rotating each round); the figure per variant is the median over rounds of
the mean per-request time of that round's batch. The target is
``scout / hand <= 1.10`` per framework. The script reports; it always exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, g, request
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    SimpleUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Scope
from werkzeug.test import EnvironBuilder

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth.flask import ScoutAuth, current_org
from scout_auth.observability import Observer
from scout_auth.starlette import ScoutAuthMiddleware, org_context

TARGET = 1.10
ORG = "org_bench"
# Long enough that every timed request is a cache hit (the warm path).
CACHE_TTL = 3600.0

Timer = Callable[[int], float]


# --------------------------------------------------------------------------
# Starlette
# --------------------------------------------------------------------------


#: The scopes a ``--rule-scopes`` run requires (its first N); the key grants all.
SCOPES = ("drive:read", "mail:read", "calendar:read", "files:write", "users:read")


class DictBackend(AuthenticationBackend):
    """The hand-written baseline: bearer token -> org id from a dict."""

    def __init__(
        self,
        tokens: dict[str, str],
        granted: frozenset[str] = frozenset(),
        required: tuple[str, ...] = (),
    ) -> None:
        self.tokens = tokens
        self.granted = granted
        self.required = required

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser]:
        scheme, _, token = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            raise AuthenticationError("missing credentials")
        org = self.tokens.get(token.strip())
        if org is None:
            raise AuthenticationError("invalid token")
        if self.required and not self.granted.issuperset(self.required):
            raise AuthenticationError("insufficient scope")
        return AuthCredentials(["authenticated"]), SimpleUser(org)


def _unauthorized(conn: HTTPConnection, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"error": str(exc)}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="api"'}
    )


def starlette_apps(
    token: str,
    store: InMemoryKeyStore,
    required: tuple[str, ...] = (),
    observer: Observer | None = None,
) -> dict[str, ASGIApp]:
    async def bare(request: Request) -> JSONResponse:
        return JSONResponse({"org": ORG})

    async def hand(request: Request) -> JSONResponse:
        return JSONResponse({"org": request.user.identity})

    async def scout(request: Request) -> JSONResponse:
        return JSONResponse({"org": org_context(request).org_id})

    verifier = AsyncVerifier(
        store, cache_ttl=CACHE_TTL, audit=store.audit_sink(), observer=observer
    )
    rules = [("GET", "/whoami", list(required))] if required else []
    return {
        "bare": Starlette(routes=[Route("/whoami", bare)]),
        "hand": Starlette(
            routes=[Route("/whoami", hand)],
            middleware=[
                Middleware(
                    AuthenticationMiddleware,
                    backend=DictBackend({token: ORG}, frozenset(SCOPES), required),
                    on_error=_unauthorized,
                )
            ],
        ),
        "scout": Starlette(
            routes=[Route("/whoami", scout)],
            middleware=[Middleware(ScoutAuthMiddleware, verifier=verifier, rules=rules)],
        ),
    }


def asgi_scope(token: str | None) -> dict[str, Any]:
    headers = [(b"host", b"bench"), (b"user-agent", b"bench/1"), (b"accept", b"*/*")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode("latin-1")))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/whoami",
        "raw_path": b"/whoami",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


async def asgi_call(app: ASGIApp, scope: Scope) -> tuple[int, bytes]:
    status, body = 0, b""

    async def send(message: Message) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    await app(dict(scope), _receive, send)
    return status, body


def asgi_timer(loop: asyncio.AbstractEventLoop, app: ASGIApp, scope: dict[str, Any]) -> Timer:
    async def batch(n: int) -> float:
        receive, send = _receive, _send
        start = time.perf_counter()
        for _ in range(n):
            # A fresh scope per request, as a server builds one (apps write to it).
            await app(scope.copy(), receive, send)
        return time.perf_counter() - start

    return lambda n: loop.run_until_complete(batch(n))


# --------------------------------------------------------------------------
# Flask
# --------------------------------------------------------------------------


def flask_apps(
    token: str,
    store: InMemoryKeyStore,
    required: tuple[str, ...] = (),
    observer: Observer | None = None,
) -> dict[str, Flask]:
    bare = Flask("bench_bare")

    @bare.get("/whoami")
    def bare_whoami() -> Any:
        return {"org": ORG}

    hand = Flask("bench_hand")
    tokens = {token: ORG}
    granted = frozenset(SCOPES)

    @hand.before_request
    def authenticate() -> Any:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        org = tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if org is not None and required and not granted.issuperset(required):
            org = None
        if org is None:
            return Response(
                '{"error": "invalid token"}',
                status=401,
                content_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="api"'},
            )
        g.org = org
        return None

    @hand.get("/whoami")
    def hand_whoami() -> Any:
        return {"org": g.org}

    scout = Flask("bench_scout")
    rules = [("GET", "/whoami", list(required))] if required else []
    ScoutAuth(
        scout,
        verifier=Verifier(store, cache_ttl=CACHE_TTL, audit=store.audit_sink(), observer=observer),
        rules=rules,
    )

    @scout.get("/whoami")
    def scout_whoami() -> Any:
        return {"org": current_org.org_id}

    return {"bare": bare, "hand": hand, "scout": scout}


def wsgi_environ(token: str | None) -> dict[str, Any]:
    headers = [("User-Agent", "bench/1"), ("Accept", "*/*")]
    if token is not None:
        headers.append(("Authorization", f"Bearer {token}"))
    return EnvironBuilder(path="/whoami", base_url="http://bench/", headers=headers).get_environ()


def wsgi_call(app: Flask, environ: dict[str, Any]) -> tuple[int, bytes]:
    status: list[str] = []

    def start_response(s: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], object]:
        status.append(s)
        return lambda data: None

    result = app(dict(environ), start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return int(status[0].split()[0]), body


def _start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], object]:
    return _write


def _write(data: bytes) -> None:
    return None


def wsgi_timer(app: Flask, environ: dict[str, Any]) -> Timer:
    def batch(n: int) -> float:
        start_response = _start_response
        start = time.perf_counter()
        for _ in range(n):
            result = app(environ.copy(), start_response)
            for _chunk in result:
                pass
            result.close()  # type: ignore[attr-defined]
        return time.perf_counter() - start

    return batch


# --------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------


def check_same_answers(
    framework: str,
    call: Callable[[str, bool], tuple[int, bytes]],
    names: Iterable[str],
) -> None:
    """Every variant answers the same JSON; the authenticating ones refuse 401."""
    expected = {"org": ORG}
    for name in names:
        status, body = call(name, True)
        if status != 200 or json.loads(body) != expected:
            raise SystemExit(f"{framework}/{name}: unexpected answer {status} {body!r}")
        if name != "bare":
            status, body = call(name, False)
            if status != 401:
                raise SystemExit(f"{framework}/{name}: no token answered {status}, not 401")


def run_rounds(
    timers: dict[str, Timer], *, rounds: int, slices: int, requests: int
) -> dict[str, list[float]]:
    """Per-request seconds of each variant in each round.

    A round runs ``slices`` short batches of ``requests`` per variant,
    alternating the variants (a b c a b c ..., the order rotating), and keeps
    each variant's fastest batch: on a shared machine noise only ever adds
    time, and the alternation means all variants saw the same conditions.
    """
    names = list(timers)
    for name in names:  # warm-up: caches, lazily built objects
        timers[name](requests)
    samples: dict[str, list[float]] = {name: [] for name in names}
    turn = 0
    for _ in range(rounds):
        gc.collect()
        best = dict.fromkeys(names, float("inf"))
        for _ in range(slices):
            turn += 1
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                best[name] = min(best[name], timers[name](requests) / requests)
        for name in names:
            samples[name].append(best[name])
    return samples


def measure(timers: dict[str, Timer], rounds: int, slices: int, requests: int) -> dict[str, Any]:
    """Run the rounds and reduce them to medians, ratios and a verdict."""
    samples = run_rounds(timers, rounds=rounds, slices=slices, requests=requests)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    paired = [s / h for s, h in zip(samples["scout"], samples["hand"], strict=True)]
    ratio = medians["scout"] / medians["hand"]
    return {
        "rounds": rounds,
        "slices": slices,
        "requests_per_batch": requests,
        "median_us": {name: round(m * 1e6, 2) for name, m in medians.items()},
        "min_us": {name: round(min(v) * 1e6, 2) for name, v in samples.items()},
        "ratio_scout_hand": round(ratio, 3),
        "ratio_hand_bare": round(medians["hand"] / medians["bare"], 3),
        "ratio_scout_bare": round(medians["scout"] / medians["bare"], 3),
        "paired_ratio_median": round(statistics.median(paired), 3),
        "target": TARGET,
        "verdict": "PASS" if ratio <= TARGET else "MISS",
    }


def bench_starlette(
    token: str,
    store: InMemoryKeyStore,
    rounds: int,
    slices: int,
    requests: int,
    required: tuple[str, ...] = (),
) -> Any:
    apps = starlette_apps(token, store, required)
    loop = asyncio.new_event_loop()
    try:
        ok, anon = asgi_scope(token), asgi_scope(None)

        def call(name: str, with_token: bool) -> tuple[int, bytes]:
            return loop.run_until_complete(asgi_call(apps[name], ok if with_token else anon))

        check_same_answers("starlette", call, apps)  # also fills scout_auth's cache
        timers = {name: asgi_timer(loop, app, ok) for name, app in apps.items()}
        return measure(timers, rounds, slices, requests)
    finally:
        loop.close()


def bench_flask(
    token: str,
    store: InMemoryKeyStore,
    rounds: int,
    slices: int,
    requests: int,
    required: tuple[str, ...] = (),
) -> Any:
    apps = flask_apps(token, store, required)
    ok, anon = wsgi_environ(token), wsgi_environ(None)

    def call(name: str, with_token: bool) -> tuple[int, bytes]:
        return wsgi_call(apps[name], ok if with_token else anon)

    check_same_answers("flask", call, apps)
    timers = {name: wsgi_timer(app, ok) for name, app in apps.items()}
    return measure(timers, rounds, slices, requests)


def print_report(results: dict[str, Any]) -> None:
    print("warm bearer path: median over rounds of per-request time (min in brackets)")
    for framework, res in results.items():
        print(
            f"\n{framework}: {res['rounds']} rounds x {res['slices']} interleaved batches"
            f" x {res['requests_per_batch']} requests per variant"
        )
        for name, label in (("bare", "a bare"), ("hand", "b hand-written"), ("scout", "c scout")):
            print(f"  {label:<16} {res['median_us'][name]:8.2f} us  [{res['min_us'][name]:.2f}]")
        print(
            f"  ratio c/b {res['ratio_scout_hand']:.3f}"
            f"  (paired per-round median {res['paired_ratio_median']:.3f};"
            f" b/a {res['ratio_hand_bare']:.3f}, c/a {res['ratio_scout_bare']:.3f})"
        )
    print("\nsummary")
    print(f"  {'framework':<10} {'hand us':>9} {'scout us':>9} {'c/b':>7} {'target':>7}  verdict")
    for framework, res in results.items():
        print(
            f"  {framework:<10} {res['median_us']['hand']:9.2f} {res['median_us']['scout']:9.2f}"
            f" {res['ratio_scout_hand']:7.3f} {res['target']:7.2f}  {res['verdict']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=25, help="rounds (25)")
    parser.add_argument("--slices", type=int, default=5, help="batches per variant per round (5)")
    parser.add_argument(
        "--starlette-requests", type=int, default=500, help="requests per Starlette batch (500)"
    )
    parser.add_argument(
        "--flask-requests", type=int, default=150, help="requests per Flask batch (150)"
    )
    parser.add_argument("--only", choices=["starlette", "flask"], help="run one framework")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--rule-scopes",
        type=int,
        default=0,
        choices=range(len(SCOPES) + 1),
        help="scopes a route rule requires (0)",
    )
    args = parser.parse_args(argv)
    required = SCOPES[: args.rule_scopes]

    store = InMemoryKeyStore()
    token = KeyManager(store).create_key(ORG, "bench", scopes=list(SCOPES)).token
    results: dict[str, Any] = {}
    if args.only in (None, "starlette"):
        results["starlette"] = bench_starlette(
            token, store, args.rounds, args.slices, args.starlette_requests, required
        )
    if args.only in (None, "flask"):
        results["flask"] = bench_flask(
            token, store, args.rounds, args.slices, args.flask_requests, required
        )

    if args.json:
        doc = {
            "benchmark": "warm_bearer",
            "python": sys.version.split()[0],
            "rule_scopes": list(required),
            "results": results,
        }
        print(json.dumps(doc, indent=2))
    else:
        print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
