"""What a flood of wrong legacy secrets does to everybody else's requests.

Run::

    python -m benchmarks.legacy_flood                      # this checkout's scout_auth
    python -m benchmarks.legacy_flood --library /tmp/old9  # another checkout's, same script

Starts one real server on 127.0.0.1 in a child process: uvicorn serving a
Starlette app behind ``ScoutAuthMiddleware`` (``AsyncVerifier``,
``InMemoryKeyStore``, argon2-cffi's default hasher: 64 MiB, t=3, p=4) with a
sync view (``def``: Starlette runs it in anyio's default thread pool) and an
async view. One org has a bearer key, another a legacy secret.

An *innocent* client sends authenticated requests (a valid bearer token,
warm cache) to each view, one at a time per view, in four phases:

a. ``quiet``: nothing else happens (the floor);
b. ``cheap flood``: ``--flood`` connections send requests without
   credentials as fast as they are answered (401 ``missing_credentials``,
   no argon2): what a request flood of that shape costs by itself;
c. ``legacy flood``: the same connections send ``Basic`` credentials for the
   legacy org, each with a secret never sent before (401 or, past the
   verifier's queue, 503 ``legacy_busy``);
d. ``bearer flood``: the same connections send ``Bearer`` tokens that are
   not Org Credentials, each never sent before: maybe legacy secrets, so
   each costs a look-up digest and an indexed read, but no record holds it
   (401, and no argon2 run: issue 10).

It prints p50/p99 of the innocent requests per view and phase, the ratios
to the quiet phase, the flood's answers by status, and the server's peak
RSS growth during each flood (``VmRSS`` sampled every 10 ms, over its value
just before the flood). Loopback only; each flood phase measures for
``--seconds`` (10) and then waits for the requests in flight; the whole run
takes about a minute (old code: longer, each innocent sync request may take
tens of seconds). The script reports; it always exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._stats import percentile

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 180.0  # seconds: a guard against a hung server, far above any result
#: Flood phase -> what each flood request carries.
FLOODS = {"cheap flood": "none", "legacy flood": "basic", "bearer flood": "bearer"}


# -- the server (child process) ------------------------------------------------------


def serve(port: int, library: str | None) -> None:
    if library:
        sys.path.insert(0, library)
    import uvicorn
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    import scout_auth
    from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager
    from scout_auth.starlette import ScoutAuthMiddleware

    store = InMemoryKeyStore()
    manager = KeyManager(store)
    token = manager.create_key("org_bench", "innocent client").token
    manager.import_legacy_key("org_legacy", "the-one-right-legacy-secret")

    def sync_view(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def async_view(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            Route("/sync", sync_view),
            Route("/async", async_view),
            Route("/health", async_view),
        ],
        middleware=[
            Middleware(
                ScoutAuthMiddleware,
                verifier=AsyncVerifier(store, cache_ttl=3600),
                exempt_paths=["/health"],
            )
        ],
    )
    print(f"token {token} {scout_auth.__file__}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- a small HTTP/1.1 client (cheap, so the flood's own CPU stays low) --------------------


class Connection:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, authorization: str | None) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        auth = f"authorization: {authorization}\r\n" if authorization else ""
        self.writer.write(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{auth}\r\n".encode())
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return int(head[9:12])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _basic(org: str, secret: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{org}:{secret}".encode()).decode()


@dataclass
class Phase:
    name: str
    samples: dict[str, list[float]] = field(default_factory=lambda: {"sync": [], "async": []})
    answers: dict[int, int] = field(default_factory=dict)  # the flood's, by status
    rss_before: int = 0
    rss_peak: int = 0


def _rss(pid: int) -> int:
    """The child's resident set in bytes (Linux ``/proc``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def _innocent(port: int, token: str, phase: Phase, *, seconds: float, count: int) -> None:
    """Both views at once, each one request at a time: ``count`` each, or for ``seconds``."""
    deadline = time.perf_counter() + seconds
    auth = f"Bearer {token}"

    async def client(view: str) -> None:
        conn = Connection(port)
        samples = phase.samples[view]
        # At least one sample, however long it takes (the old code: tens of seconds).
        while not samples or (len(samples) < count if count else time.perf_counter() < deadline):
            start = time.perf_counter()
            status = await asyncio.wait_for(conn.get(f"/{view}", auth), TIMEOUT)
            samples.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"innocent request answered {status}")
        conn.close()

    await asyncio.gather(client("sync"), client("async"))


def _credential(kind: str, n: int) -> str | None:
    if kind == "basic":
        return _basic("org_legacy", f"wrong-{n}")
    if kind == "bearer":
        return f"Bearer not-a-legacy-secret-{n}"
    return None


async def _flood(port: int, n: int, kind: str, seconds: float) -> dict[int, int]:
    """``n`` connections sending as fast as they are answered for ``seconds``."""
    secrets = itertools.count()
    answers: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        conn = Connection(port)
        while time.perf_counter() < deadline:
            auth = _credential(kind, next(secrets))
            try:
                status = await asyncio.wait_for(conn.get("/async", auth), TIMEOUT)
            except (OSError, asyncio.IncompleteReadError):
                conn.close()
                status = 0
            answers[status] = answers.get(status, 0) + 1
        conn.close()

    await asyncio.gather(*(worker() for _ in range(n)))
    return answers


def flood(port: int, n: int, kind: str, seconds: float) -> None:
    """The flood (child process): its own interpreter, so it never delays the innocent client."""
    answers = asyncio.run(_flood(port, n, kind, seconds))
    print(json.dumps({str(k): v for k, v in answers.items()}), flush=True)


def _run_phase(port: int, pid: int, token: str, phase: Phase, args: argparse.Namespace) -> None:
    phase.rss_before = phase.rss_peak = _rss(pid)
    sampling = True

    def sample() -> None:
        while sampling:
            phase.rss_peak = max(phase.rss_peak, _rss(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        if phase.name == "quiet":
            asyncio.run(_innocent(port, token, phase, seconds=0, count=args.quiet_requests))
            return
        command = [sys.executable, "-m", "benchmarks.legacy_flood", "flood", "--port", str(port)]
        command += ["--flood", str(args.flood), "--seconds", str(args.seconds + 1.0)]
        command += ["--kind", FLOODS[phase.name]]
        flooder = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # noqa: S603
        try:
            time.sleep(1.0)  # let the flood build up
            asyncio.run(_innocent(port, token, phase, seconds=args.seconds, count=0))
            out, _ = flooder.communicate(timeout=TIMEOUT)
            phase.answers = {int(k): v for k, v in json.loads(out).items()}
        finally:
            if flooder.poll() is None:
                flooder.kill()
                flooder.wait()
    finally:
        sampling = False
        sampler.join()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1) as s,
        ):
            s.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            if s.recv(12).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def _report(phases: list[Phase], library: str) -> None:
    quiet = phases[0]
    print(f"scout_auth from {library}")
    print(f"{'':<14} {'view':<6} {'n':>5} {'p50 ms':>10} {'p99 ms':>10} {'p50 x':>8} {'p99 x':>8}")
    for phase in phases:
        for view, samples in phase.samples.items():
            p50, p99 = percentile(samples, 50), percentile(samples, 99)
            q50, q99 = percentile(quiet.samples[view], 50), percentile(quiet.samples[view], 99)
            print(
                f"{phase.name:<14} {view:<6} {len(samples):>5} {p50 * 1e3:>10.2f} "
                f"{p99 * 1e3:>10.2f} {p50 / q50:>8.1f} {p99 / q99:>8.1f}"
            )
    cheap = phases[1]
    for flooded in phases[2:]:
        for view in ("sync", "async"):
            ratio = percentile(flooded.samples[view], 50) / percentile(cheap.samples[view], 50)
            print(f"{flooded.name} / cheap flood, {view} p50: {ratio:.2f}x")
    for phase in phases[1:]:
        answers = ", ".join(f"{k or 'error'}: {v}" for k, v in sorted(phase.answers.items()))
        growth = (phase.rss_peak - phase.rss_before) / 2**20
        print(
            f"{phase.name}: answers {answers}; server RSS {phase.rss_before / 2**20:.0f} MiB "
            f"before, peak growth {growth:.0f} MiB"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description="innocent latency during a legacy-secret flood")
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "serve", "flood"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--library", help="a checkout whose scout_auth the server imports")
    parser.add_argument("--flood", type=int, default=150, help="concurrent flood connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="per flood phase")
    parser.add_argument("--quiet-requests", type=int, default=300, help="per view")
    parser.add_argument(
        "--kind", default="none", choices=sorted(set(FLOODS.values())), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.port, args.library)
        return 0
    if args.mode == "flood":
        flood(args.port, args.flood, args.kind, args.seconds)
        return 0
    port = _free_port()
    command = [sys.executable, "-m", "benchmarks.legacy_flood", "serve", "--port", str(port)]
    if args.library:
        command += ["--library", os.path.abspath(args.library)]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert server.stdout is not None
        _, token, library = server.stdout.readline().split()
        _wait_ready(port)
        phases = [Phase(name) for name in ("quiet", *FLOODS)]
        started = time.monotonic()
        for phase in phases:
            _run_phase(port, server.pid, token, phase, args)
        _report(phases, library)
        print(f"runtime {time.monotonic() - started:.0f} s")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
