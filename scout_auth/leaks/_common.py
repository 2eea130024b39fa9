"""What both mountings share: settings, the guard, and running ``on_leak`` off the request path."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._core.leaked import LeakPolicy
from .._core.records import KeyRecord
from .._leaks.flow import DEFAULT_HMAC_HEADER, LeakReport, ReceiverSettings
from .._leaks.replay import InMemoryReplayGuard, ReplayGuard
from ._keys import ScannerKeys

__all__ = ["Notifier", "OnLeak", "receiver_settings"]

logger = logging.getLogger("scout_auth.leaks")

#: ``on_leak(key, report)``: the host's callback (email the owner, open a ticket).
OnLeak = Callable[[KeyRecord, LeakReport], Any]


def receiver_settings(
    *,
    scanner_keys: ScannerKeys | None,
    hmac_secret: str | bytes | None,
    hmac_header: str,
    on_report: LeakPolicy,
    max_body: int,
    replay_guard: ReplayGuard | None,
    on_leak: OnLeak | None,
) -> tuple[ReceiverSettings, ReplayGuard]:
    """The validated settings and replay guard of a receiver (bad ones raise at startup)."""
    if scanner_keys is not None and not isinstance(scanner_keys, ScannerKeys):
        raise TypeError("scanner_keys must be ScannerKeys or None")
    if replay_guard is not None and not isinstance(replay_guard, ReplayGuard):
        raise TypeError(
            "replay_guard must be a ReplayGuard (InMemoryReplayGuard, RedisReplayGuard)"
        )
    if on_leak is not None and not callable(on_leak):
        raise TypeError("on_leak must be a callable: on_leak(key, report)")
    secret = hmac_secret.encode("utf-8") if isinstance(hmac_secret, str) else hmac_secret
    settings = ReceiverSettings(
        on_report=on_report,
        has_scanner_keys=scanner_keys is not None,
        hmac_secret=secret,
        hmac_header=(hmac_header or DEFAULT_HMAC_HEADER).lower(),
        max_body=max_body,
    )
    return settings, replay_guard if replay_guard is not None else InMemoryReplayGuard()


class Notifier:
    """Runs ``on_leak`` off the request path; an exception is logged, never raised.

    A sync callback runs in one worker thread (reports queue up in order);
    an async one (ASGI only) as a task on the running loop, held until done.
    """

    def __init__(self, on_leak: OnLeak | None) -> None:
        self.on_leak = on_leak
        self._pool: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = threading.Lock()

    def _call(self, key: KeyRecord, report: LeakReport) -> None:
        assert self.on_leak is not None
        try:
            self.on_leak(key, report)
        except Exception:
            logger.exception("on_leak failed for key %s", key.key_id)

    def notify(self, key: KeyRecord, report: LeakReport) -> None:
        """Schedule ``on_leak(key, report)`` in the worker thread."""
        if self.on_leak is None:
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="scout-auth-on-leak")
        self._pool.submit(self._call, key, report)

    def anotify(self, key: KeyRecord, report: LeakReport) -> None:
        """Schedule it from a coroutine: a coroutine function as a task, else in the thread."""
        if self.on_leak is None or not inspect.iscoroutinefunction(self.on_leak):
            self.notify(key, report)
            return

        async def run() -> None:
            assert self.on_leak is not None
            try:
                await self.on_leak(key, report)
            except Exception:
                logger.exception("on_leak failed for key %s", key.key_id)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self, wait: bool = True) -> None:
        """Stop the worker thread after the queued callbacks (``wait``) have run."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait)
