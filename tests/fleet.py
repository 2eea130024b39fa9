"""A fleet of real service processes on one store, and a revocation stopwatch.

Used by ``tests/stores/fleet_contract.py``, which ``tests/stores/redis/test_propagation.py``
and ``tests/stores/sql/test_propagation.py`` mix in (a few trials, generous bounds), and
``benchmarks/revocation.py`` (the distribution).

* The store is named by a URL (Redis or PostgreSQL) and a *namespace*: the
  Redis key prefix, or the PostgreSQL notification channel (the schema comes
  with the URL's ``search_path``). See :func:`examples.service.open_store`.
* Each instance is ``python -m examples.service`` (uvicorn + the example
  Starlette app + a ``RedisKeyStore`` or ``SQLKeyStore``) on a free
  loopback port.
* The admin is a third process (``python -m tests.fleet admin``) running a
  ``KeyManager`` on its own store; it reads one command per line on stdin
  and answers one line.
* A trial: create a key, warm every instance's cache with it, start one
  poller per instance, disable or delete the key through the admin, and
  record per instance the time until it first answers 401.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0


def _spawn(args: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and modules
        [sys.executable, "-u", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    """One line of ``proc``'s stdout, or an error if it does not come in time."""
    assert proc.stdout is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not result or not result[0]:
        raise RuntimeError(f"process {proc.args!r} gave no answer (exit code {proc.poll()})")
    return result[0].strip()


class Admin:
    """The key-management process."""

    def __init__(self, url: str, namespace: str) -> None:
        self.proc = _spawn(["-m", "tests.fleet", "admin", "--url", url, "--namespace", namespace])
        if _readline(self.proc, START_TIMEOUT) != "ready":
            raise RuntimeError("admin did not start")

    def ask(self, *words: str) -> list[str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(words) + "\n")
        self.proc.stdin.flush()
        answer = _readline(self.proc, 10).split()
        if not answer or answer[0] != "ok":
            raise RuntimeError(f"admin: {' '.join(answer)}")
        return answer[1:]

    def create(self, org: str) -> tuple[str, str]:
        key_id, token = self.ask("create", org)
        return key_id, token

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Instance:
    """One service process."""

    def __init__(self, url: str, namespace: str, *, cache_ttl: float, listen: bool) -> None:
        args = ["-m", "examples.service", "--url", url, "--namespace", namespace]
        args += ["--cache-ttl", str(cache_ttl)]
        if not listen:
            args.append("--no-listen")
        self.proc = _spawn(args)
        self.base_url = ""

    def wait_started(self) -> None:
        line = _readline(self.proc, START_TIMEOUT)
        if not line.startswith("serving "):
            raise RuntimeError(f"instance did not start: {line!r}")
        self.base_url = line.split()[1]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Fleet:
    """``instances`` service processes and one admin process (a context manager)."""

    def __init__(
        self, url: str, namespace: str, *, instances: int = 2, cache_ttl: float, listen: bool
    ) -> None:
        self.cache_ttl = cache_ttl
        self._stack = ExitStack()
        self.instances: list[Instance] = []
        try:
            for _ in range(instances):  # start them all, then wait: they boot in parallel
                self.instances.append(Instance(url, namespace, cache_ttl=cache_ttl, listen=listen))
                self._stack.callback(self.instances[-1].close)
            self.admin = Admin(url, namespace)
            self._stack.callback(self.admin.close)
            for instance in self.instances:
                instance.wait_started()
        except BaseException:
            self._stack.close()
            raise

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    @property
    def urls(self) -> list[str]:
        return [i.base_url for i in self.instances]


@dataclass
class Trial:
    """Seconds from the change being sent until each instance first answered 401."""

    action: str
    latencies: list[float]


def _status(http: httpx.Client, url: str, token: str) -> int:
    return http.get(f"{url}/files", headers={"authorization": f"Bearer {token}"}).status_code


def _warm(urls: Sequence[str], tokens: Sequence[str]) -> None:
    with httpx.Client(timeout=10) as http:
        for url in urls:
            for token in tokens:
                if _status(http, url, token) != 200:
                    raise RuntimeError(f"{url} did not accept a fresh key")


class _Poller(threading.Thread):
    """Round-robin over ``tokens`` until each answers 401; record when (perf_counter)."""

    def __init__(self, url: str, tokens: Sequence[str], deadline: float, pause: float) -> None:
        super().__init__(daemon=True)
        self.url, self.tokens, self.deadline, self.pause = url, tokens, deadline, pause
        self.seen: dict[str, float] = {}
        self.started = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        pending = list(self.tokens)
        try:
            with httpx.Client(timeout=10) as http:
                while pending and time.perf_counter() < self.deadline:
                    for token in list(pending):
                        status = _status(http, self.url, token)
                        if status == 401:
                            self.seen[token] = time.perf_counter()
                            pending.remove(token)
                        elif status != 200:
                            raise RuntimeError(f"{self.url} answered {status}")
                    self.started.set()
                    time.sleep(self.pause)
        except BaseException as exc:
            self.error = exc
        finally:
            self.started.set()


def revoke_and_time(
    fleet: Fleet,
    action: str,
    *,
    keys: int = 1,
    org: str = "org_fleet",
    timeout: float = 120.0,
    pause: float = 0.001,
) -> list[Trial]:
    """Create ``keys`` keys, warm every instance, apply ``action`` to each, time the 401s.

    Each poller sleeps ``pause`` seconds between rounds: the resolution stays
    about a millisecond, but pollers no longer starve the instances (and
    their feed threads) of CPU on a small machine.

    Returns one :class:`Trial` per key (latency per instance, in seconds;
    ``inf`` if an instance never answered 401 within ``timeout``).
    """
    created = [fleet.admin.create(org) for _ in range(keys)]
    tokens = [token for _, token in created]
    _warm(fleet.urls, tokens)
    deadline = time.perf_counter() + timeout
    pollers = [_Poller(url, tokens, deadline, pause) for url in fleet.urls]
    for poller in pollers:
        poller.start()
        poller.started.wait(10)
    sent: dict[str, float] = {}
    for key_id, token in created:
        sent[token] = time.perf_counter()
        fleet.admin.ask(action, key_id)
    for poller in pollers:
        poller.join()
        if poller.error is not None:
            raise poller.error
    return [
        Trial(action, [p.seen.get(token, float("inf")) - sent[token] for p in pollers])
        for token in tokens
    ]


# -- the admin process --------------------------------------------------------
def _admin(url: str, namespace: str) -> int:
    from examples.service import open_store
    from scout_auth import KeyManager

    store = open_store(url, namespace=namespace, listen=False)
    manager = KeyManager(store)
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        try:
            if command == "create":
                new = manager.create_key(arg, "revocation benchmark")
                print(f"ok {new.key.key_id} {new.token}", flush=True)
            elif command == "disable":
                manager.disable_key(arg)
                print("ok", flush=True)
            elif command == "delete":
                manager.delete_key(arg)
                print("ok", flush=True)
            else:
                print(f"error unknown command {command!r}", flush=True)
        except Exception as exc:
            print(f"error {type(exc).__name__}", flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["admin"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", required=True)
    ns = parser.parse_args()
    sys.exit(_admin(ns.url, ns.namespace))
