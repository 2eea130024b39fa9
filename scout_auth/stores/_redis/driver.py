"""Performing what the Redis operations need, sync or async: retries, ``WAIT``, failures.

Theory of operation
-------------------
The operations of :mod:`.ops` and :mod:`.legacy` are
generators that yield needs; :class:`RedisDriver` sends each to Redis and
the answer back, with a plain call or an ``await`` (the one drive loop,
:func:`~scout_auth._core.drive.drive`), for whoever runs operations on a
:class:`~.connection.RedisConnection`: the key store, its audit sink, the
nonce cache. Three rules sit here, once for both:

* **Retry what is safe to repeat.** A need that fails with a connection
  error or a timeout is sent again at once, up to ``retries`` times, when
  repeating it cannot change the outcome nor its answer: every ``Batch``
  and ``Scan``, every ``Call`` not marked ``repeatable=False`` (reads and
  idempotent writes), and a ``Lua`` marked ``repeatable`` — an
  idempotent script, or a lifecycle write, whose
  request id makes a second run return the first run's answer (see
  "Exactly once" in :mod:`.needs`). Usage counters and nonce writes are
  never retried: a usage flush sent twice would count twice, a nonce
  write sent twice would find the nonce it stored itself and call it a
  replay; their failure is a 503 instead.
  The clients a ``RedisConnection`` builds from a URL have redis-py's own
  ``Retry`` off (redis-py 6+ retries timeouts too, which re-ran writes); a
  client the application passes in keeps its own, which the request id
  makes harmless for lifecycle writes (not for those never retried: give
  such a client ``retry=Retry(NoBackoff(), 0)``).
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
from functools import partial
from typing import Any, TypeAlias, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from ..._core.drive import adrive, drive
from ..._core.store import KeyEvent
from ...exceptions import ConfigurationError, StoreUnavailable
from .cluster import misrouted
from .needs import Batch, Call, Lua, Need, Notify, Op, Scan

__all__ = [
    "KEY_STORE",
    "NONCE_CACHE",
    "AsyncClient",
    "Events",
    "Failure",
    "RedisDriver",
    "SyncClient",
    "WaitReplicas",
    "unavailable",
]

logger = logging.getLogger("scout_auth")

T = TypeVar("T")

#: A sync client the Redis store and nonce cache take: one server or a cluster.
SyncClient: TypeAlias = redis.Redis | redis.cluster.RedisCluster
#: An async client they take: one server or a cluster.
AsyncClient: TypeAlias = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

#: Failures after which the command may or may not have run: retried when safe.
_TRANSIENT = (redis.ConnectionError, redis.TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class Failure:
    """Who failed, in the log and in the 503: ``component`` ("key store") and ``detail``."""

    component: str
    detail: str

    def unavailable(self, exc: BaseException) -> StoreUnavailable | ConfigurationError:
        """The 503 a Redis failure becomes (its type is logged, never its text).

        A ``MOVED`` / ``ASK`` reply to a client not in cluster mode is a
        :class:`~scout_auth.exceptions.ConfigurationError` instead, logged
        once per component: no retry can fix it (verifiers still answer 503).
        """
        misconfigured = misrouted(exc, self.component)
        if misconfigured is not None:
            return misconfigured
        logger.warning("redis %s error: %s", self.component, type(exc).__name__)
        return StoreUnavailable(self.detail)


#: The key store's failures (its audit sink's too).
KEY_STORE = Failure("key store", "Key store unreachable")
#: The nonce cache's failures.
NONCE_CACHE = Failure("nonce cache", "Replay cache unreachable")


def unavailable(exc: BaseException) -> StoreUnavailable | ConfigurationError:
    """:meth:`Failure.unavailable` of the key store."""
    return KEY_STORE.unavailable(exc)


@dataclass(frozen=True, slots=True)
class Events:
    """Where a store's events go: ``publish`` after a write, ``tell`` after a failed one.

    ``tell`` must not raise (a failed write's error is what the caller gets).
    """

    publish: Callable[[KeyEvent], None]
    tell: Callable[[KeyEvent], None]


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
    return not isinstance(need, Call | Lua) or need.repeatable


def _best_effort(need: Need) -> bool:
    return isinstance(need, Call | Lua) and need.best_effort


class RedisDriver:
    """Runs operations on a client (see the module docstring).

    Args:
        retries: Immediate retries of a need that is safe to repeat.
        wait: ``WAIT`` after writes marked ``replicate``; ``None``: never.

    Each run names where its events go (``None``: an operation that has
    none) and how its failures are reported (:data:`KEY_STORE`,
    :data:`NONCE_CACHE`).
    """

    def __init__(self, *, retries: int, wait: WaitReplicas | None) -> None:
        self.retries = retries
        self.wait = wait

    def _attempts(self, need: Need) -> int:
        return 1 + (self.retries if _repeatable(need) else 0)

    @staticmethod
    def _failed_write(need: Need, events: Events | None) -> None:
        if isinstance(need, Lua) and events is not None:
            for event in need.events:
                events.tell(event)

    @staticmethod
    def _notify(need: Notify, events: Events | None) -> None:
        if events is not None:
            for event in need.events:
                events.publish(event)

    # -- sync ---------------------------------------------------------------
    def run(
        self,
        client: SyncClient,
        op: Op[T],
        events: Events | None = None,
        failure: Failure = KEY_STORE,
    ) -> T:
        """Drive ``op`` with the sync ``client``."""
        return drive(op, partial(self.perform, client, events=events, failure=failure))

    def perform(
        self,
        client: SyncClient,
        need: Need,
        events: Events | None = None,
        failure: Failure = KEY_STORE,
    ) -> Any:
        """Perform one need: its answer, or ``StoreUnavailable`` (retried first if safe)."""
        if isinstance(need, Notify):
            self._notify(need, events)
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
                    raise failure.unavailable(exc) from exc
                except (RedisError, RedisClusterException) as exc:
                    if _best_effort(need):
                        return None
                    raise failure.unavailable(exc) from exc
        except BaseException:
            self._failed_write(need, events)
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
    async def arun(
        self,
        client: AsyncClient,
        op: Op[T],
        events: Events | None = None,
        failure: Failure = KEY_STORE,
    ) -> T:
        """Drive ``op`` with the async ``client``."""
        return await adrive(op, partial(self.aperform, client, events=events, failure=failure))

    async def aperform(
        self,
        client: AsyncClient,
        need: Need,
        events: Events | None = None,
        failure: Failure = KEY_STORE,
    ) -> Any:
        """Async :meth:`perform`."""
        if isinstance(need, Notify):
            self._notify(need, events)
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
                    raise failure.unavailable(exc) from exc
                except (RedisError, RedisClusterException) as exc:
                    if _best_effort(need):
                        return None
                    raise failure.unavailable(exc) from exc
        except BaseException:  # a cancelled task included: the write may have run
            self._failed_write(need, events)
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
