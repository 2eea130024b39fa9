"""Performing what the Redis operations need, sync or async: retries, ``WAIT``, failures.

Theory of operation
-------------------
The operations of :mod:`.ops` and :mod:`.legacy` are
generators that yield needs; :class:`RedisDriver` sends each to Redis and
the answer back, with a plain call or an ``await``. Three rules sit here,
once for both:

* **Retry what is safe to repeat.** A need that fails with a connection
  error or a timeout is sent again at once, up to ``retries`` times, when
  repeating it cannot change the outcome: every ``Call``, ``Batch`` and
  ``Scan`` (reads and idempotent writes) and a ``Lua`` marked
  ``repeatable`` — an idempotent script, or a lifecycle write, whose
  request id makes a second run return the first run's answer (see
  "Exactly once" in :mod:`._redis_needs`). Usage counters are never retried.
  The clients the store builds itself have redis-py's own ``Retry`` off
  (redis-py 6+ retries timeouts too, which re-ran writes); a client the
  application passes in keeps its own, which the request id makes harmless
  for lifecycle writes.
* **A failed lifecycle write still tells this process.** Whatever ends a
  ``Lua`` need that publishes events (an error, a timeout, a cancelled
  task), the events are delivered to this process's subscribers before the
  error propagates: the write may have committed, the change feed skips
  this process's own messages, and dropping a cache entry is harmless if
  nothing changed.
* **Waiting for replicas.** With ``wait_replicas``, a write marked
  ``replicate`` is sent with ``WAIT`` in one pipeline: ``WAIT`` counts the
  writes of its own connection, so it must follow the script on the same
  one. Fewer acknowledgements than asked within the timeout are logged,
  not raised: the write stands on the primary, and an error would tell the
  caller it failed (and lose a rotated key's new token).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
import redis
import redis.asyncio
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from ..._core.store import KeyEvent
from ...exceptions import ConfigurationError, StoreUnavailable
from .cluster import misrouted
from .connection import AsyncClient, RedisClients, SyncClient
from .needs import Batch, Call, Lua, Need, Notify, Op, Scan

__all__ = ["RedisDriver", "WaitReplicas", "unavailable"]

logger = logging.getLogger("scout_auth")

T = TypeVar("T")

#: Failures after which the command may or may not have run: retried when safe.
_TRANSIENT = (redis.ConnectionError, redis.TimeoutError, OSError)


def unavailable(exc: BaseException) -> StoreUnavailable | ConfigurationError:
    """The 503 a Redis failure becomes (its type is logged, never its text).

    A ``MOVED`` / ``ASK`` reply to a client not in cluster mode is a
    :class:`~scout_auth.exceptions.ConfigurationError` instead, logged once:
    no retry can fix it (verifiers still answer 503).
    """
    misconfigured = misrouted(exc, "key store")
    if misconfigured is not None:
        return misconfigured
    logger.warning("redis key store error: %s", type(exc).__name__)
    return StoreUnavailable("Key store unreachable")


@dataclass(frozen=True, slots=True)
class WaitReplicas:
    """``WAIT replicas timeout_ms`` after each write that can take access away."""

    replicas: int
    timeout_ms: int

    def args(self) -> tuple[str, str, str]:
        """The ``WAIT`` command."""
        return ("WAIT", str(self.replicas), str(self.timeout_ms))

    def check(self, need: Lua, acknowledged: object) -> None:
        """Log a write that fewer replicas than asked acknowledged in time."""
        count = acknowledged if isinstance(acknowledged, int) else 0
        if count < self.replicas:
            logger.warning(
                "redis key store: %s acknowledged by %d of %d replicas within %d ms",
                need.script.name,
                count,
                self.replicas,
                self.timeout_ms,
            )


def _repeatable(need: Need) -> bool:
    return not isinstance(need, Lua) or need.repeatable


def _best_effort(need: Need) -> bool:
    return isinstance(need, Call | Lua) and need.best_effort


class RedisDriver:
    """Runs operations on a store's clients (see the module docstring).

    Args:
        clients: The sync client and the async one (or how to make it).
        retries: Immediate retries of a need that is safe to repeat.
        wait: ``WAIT`` after writes marked ``replicate``; ``None``: never.
        publish: Delivers a successful write's events to this process.
        tell: Delivers a failed write's events to this process (must not raise).
    """

    def __init__(
        self,
        clients: RedisClients,
        *,
        retries: int,
        wait: WaitReplicas | None,
        publish: Callable[[KeyEvent], None],
        tell: Callable[[KeyEvent], None],
    ) -> None:
        self.clients = clients
        self.retries = retries
        self.wait = wait
        self._publish = publish
        self._tell = tell

    def _attempts(self, need: Need) -> int:
        return 1 + (self.retries if _repeatable(need) else 0)

    def _failed_write(self, need: Need) -> None:
        if isinstance(need, Lua):
            for event in need.events:
                self._tell(event)

    # -- sync ---------------------------------------------------------------
    def run(self, op: Op[T]) -> T:
        """Drive ``op`` with the sync client."""
        client = self.clients.sync
        try:
            need = next(op)
            while True:
                need = op.send(self._perform(client, need))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            op.close()

    def _perform(self, client: SyncClient, need: Need) -> Any:
        if isinstance(need, Notify):
            for event in need.events:
                self._publish(event)
            return None
        try:
            attempts = self._attempts(need)
            for attempt in range(attempts):
                try:
                    return self._send(client, need)
                except _TRANSIENT as exc:
                    if attempt + 1 < attempts:
                        continue
                    if _best_effort(need):
                        return None
                    raise unavailable(exc) from exc
                except (RedisError, RedisClusterException) as exc:
                    if _best_effort(need):
                        return None
                    raise unavailable(exc) from exc
        except BaseException:
            self._failed_write(need)
            raise

    def _send(self, client: SyncClient, need: Need) -> Any:
        if isinstance(need, Call):
            return client.execute_command(*need.args)  # type: ignore[no-untyped-call]
        if isinstance(need, Lua):
            return self._eval(client, need)
        if isinstance(need, Scan):
            # On a RedisCluster client scan_iter visits every primary.
            return list(client.scan_iter(match=need.match, count=need.count))
        assert isinstance(need, Batch)
        pipe = client.pipeline(transaction=False)
        for args in need.calls:
            pipe.execute_command(*args)
        return pipe.execute()

    def _eval(self, client: SyncClient, need: Lua) -> Any:
        keys_and_args = (*need.keys, *need.args)
        if need.replicate and self.wait is not None:
            # EVAL, not EVALSHA: a NOSCRIPT inside the pipeline would cost a WAIT.
            pipe = client.pipeline(transaction=False)
            pipe.execute_command("EVAL", need.script.source, len(need.keys), *keys_and_args)
            pipe.execute_command(*self.wait.args())
            reply, acknowledged = pipe.execute()
            self.wait.check(need, acknowledged)
            return reply
        try:
            return client.evalsha(need.script.sha, len(need.keys), *keys_and_args)
        except NoScriptError:
            return client.eval(need.script.source, len(need.keys), *keys_and_args)

    # -- async --------------------------------------------------------------
    async def arun(self, op: Op[T]) -> T:
        """Drive ``op`` with the async client (the sync one in a worker thread if none)."""
        if not self.clients.has_async:
            return await anyio.to_thread.run_sync(self.run, op)
        client = self.clients.async_client()
        try:
            need = next(op)
            while True:
                need = op.send(await self._aperform(client, need))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            op.close()

    async def _aperform(self, client: AsyncClient, need: Need) -> Any:
        if isinstance(need, Notify):
            for event in need.events:
                self._publish(event)
            return None
        try:
            attempts = self._attempts(need)
            for attempt in range(attempts):
                try:
                    return await self._asend(client, need)
                except _TRANSIENT as exc:
                    if attempt + 1 < attempts:
                        continue
                    if _best_effort(need):
                        return None
                    raise unavailable(exc) from exc
                except (RedisError, RedisClusterException) as exc:
                    if _best_effort(need):
                        return None
                    raise unavailable(exc) from exc
        except BaseException:  # a cancelled task included: the write may have run
            self._failed_write(need)
            raise

    async def _asend(self, client: AsyncClient, need: Need) -> Any:
        if isinstance(need, Call):
            return await client.execute_command(*need.args)
        if isinstance(need, Lua):
            return await self._aeval(client, need)
        if isinstance(need, Scan):
            return [n async for n in client.scan_iter(match=need.match, count=need.count)]
        assert isinstance(need, Batch)
        pipe = client.pipeline(transaction=False)
        for args in need.calls:
            pipe.execute_command(*args)
        return await pipe.execute()

    async def _aeval(self, client: AsyncClient, need: Lua) -> Any:
        keys_and_args = (*need.keys, *need.args)
        if need.replicate and self.wait is not None:
            pipe = client.pipeline(transaction=False)
            pipe.execute_command("EVAL", need.script.source, len(need.keys), *keys_and_args)
            pipe.execute_command(*self.wait.args())
            reply, acknowledged = await pipe.execute()
            self.wait.check(need, acknowledged)
            return reply
        try:
            return await client.evalsha(need.script.sha, len(need.keys), *keys_and_args)
        except NoScriptError:
            return await client.eval(need.script.source, len(need.keys), *keys_and_args)
