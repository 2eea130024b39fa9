"""Single-flight: N concurrent callers for one key share one computation.

Used so that N concurrent first requests with the same credential cause one
store look-up and at most one argon2 run. A caller that arrives after the
leader finished finds the result in the verifier's cache instead.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

__all__ = ["AsyncSingleFlight", "SingleFlight"]

T = TypeVar("T")


class _Call(Generic[T]):
    # A flight in progress. ``done`` is held by the leader from the start and
    # released when the outcome is set: a follower waits by acquiring it.
    # (A concurrent.futures.Future did the same with a Condition and an
    # RLock: about 10 µs of Python per cold verification, for no waiter
    # in the usual case.)
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.result: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    """Thread-based single-flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[bytes, _Call[T]] = {}

    def run(self, key: bytes, fn: Callable[[], T]) -> T:
        """Run ``fn`` unless another thread already runs it for ``key``; share its outcome."""
        with self._lock:
            call = self._calls.get(key)
            if call is None:
                call = self._calls[key] = _Call()
                leader = True
            else:
                leader = False
        if not leader:
            with call.done:  # released by the leader once the outcome is set
                pass
            if call.error is not None:
                raise call.error
            return call.result  # type: ignore[return-value]
        try:
            call.result = fn()
            return call.result
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.release()


class _AsyncCall(Generic[T]):
    # ``done`` is made by the first follower (an anyio.Event costs a backend
    # look-up to make, and most flights have no follower). Between a
    # follower's check and its wait, and between the leader's ``del`` and
    # ``set``, nothing awaits: on one event loop no step can slip between.
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done: anyio.Event | None = None
        self.result: T | None = None
        self.error: BaseException | None = None


class AsyncSingleFlight(Generic[T]):
    """Task-based single-flight (asyncio or trio, through anyio)."""

    def __init__(self) -> None:
        self._calls: dict[bytes, _AsyncCall[T]] = {}

    async def run(self, key: bytes, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn`` unless another task already does for ``key``; share its outcome."""
        while True:
            call = self._calls.get(key)
            if call is None:
                break
            if call.done is None:
                call.done = anyio.Event()
            await call.done.wait()
            if isinstance(call.error, Exception):
                raise call.error
            if call.error is None:
                return call.result  # type: ignore[return-value]
            # The leader was cancelled: try again, maybe as the new leader.
        call = self._calls[key] = _AsyncCall()
        try:
            call.result = await fn()
            return call.result
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            del self._calls[key]
            if call.done is not None:
                call.done.set()
