"""Single-flight: N concurrent callers for one key share one computation.

Used so that N concurrent first requests with the same credential cause one
store look-up and at most one argon2 run. A caller that arrives after the
leader finished finds the result in the verifier's cache instead.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

import anyio

__all__ = ["AsyncSingleFlight", "SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Thread-based single-flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[bytes, Future[T]] = {}

    def run(self, key: bytes, fn: Callable[[], T]) -> T:
        """Run ``fn`` unless another thread already runs it for ``key``; share its outcome."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = Future()
        if not leader:
            return call.result()
        try:
            result = fn()
        except BaseException as exc:
            call.set_exception(exc)
            raise
        else:
            call.set_result(result)
            return result
        finally:
            with self._lock:
                del self._calls[key]


class _AsyncCall(Generic[T]):
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
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
            call.done.set()
