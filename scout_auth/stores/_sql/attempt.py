"""One run of an operation on a connection, and what its failures mean.

An :class:`Attempt` drives one operation of :mod:`.ops` (the one drive
loop, :func:`~scout_auth._core.drive.drive`) and counts the answers, so it
can say whether a failure may be retried: a pooled connection found dead
before any answer, or a deadlock victim; never a timeout, which would
double the time a caller waits. Once the operation returned, only its
``COMMIT`` remains: a failure from then on leaves a write's outcome
unknown. Driver errors that mean "the database cannot answer now" become
:class:`~scout_auth.exceptions.StoreUnavailable` (:func:`translate`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import CursorResult
from sqlalchemy.sql import Executable

from ..._core.drive import adrive, drive
from ...exceptions import StoreUnavailable
from .ops import Op, Outcome
from .watchdog import NO_WATCH, Watch

__all__ = ["ATTEMPTS", "Attempt", "is_retryable", "timed_out", "translate", "unavailable"]

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed transaction may simply be run again (deadlock victim)."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in ("40001", "40P01"):  # PostgreSQL
        return True
    args: tuple[object, ...] = getattr(orig, "args", ())
    return len(args) > 0 and args[0] in (1213, 1020)  # MySQL/MariaDB deadlock, changed row


def unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The :class:`StoreUnavailable` for a "cannot answer now" error, else ``None``.

    Connection failures, timeouts, lock waits and dropped connections qualify;
    programming errors (a missing table, bad SQL) do not: they should be loud.
    """
    if isinstance(exc, sa_exc.DBAPIError):
        if not (
            exc.connection_invalidated
            or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
        ):
            return None
    elif not isinstance(exc, sa_exc.TimeoutError | TimeoutError | ConnectionError):
        return None
    # The default detail only: clients see it, and the driver's message may
    # name hosts, users or the statement. The cause stays on ``__cause__``.
    return StoreUnavailable()


#: How many times an operation runs at most (see :meth:`Attempt.may_retry`).
ATTEMPTS = 3


class Attempt(Generic[T]):
    """One run of an operation: how far it got, and the deadline it runs under.

    ``answered`` counts the statements the database answered; ``outcome`` is
    set once the operation returned, i.e. every statement was answered and
    only the ``COMMIT`` remains (a failure from then on leaves the write's
    outcome unknown); ``watch`` is the read deadline of the connection
    (:mod:`.watchdog`), re-armed after each answer.
    """

    __slots__ = ("answered", "outcome", "watch")

    def __init__(self) -> None:
        self.answered = 0
        self.outcome: Outcome[T] | None = None
        self.watch: Watch = NO_WATCH

    def watched(self, watch: Watch) -> Watch:
        """Run under ``watch`` (returned, to be used as a context manager)."""
        self.watch = watch
        return watch

    def may_retry(self, exc: Exception, *, write: bool) -> bool:
        """Whether the operation may run again after ``exc``."""
        # An answer that never came: the operation used up its time, and a
        # second run would double the bound a caller waits (the pool is
        # flushed: the next call gets a fresh connection).
        if self.watch.fired or timed_out(exc):
            return False
        # A pooled connection found dead before any statement was answered:
        # nothing can have been committed, so run again on a fresh connection
        # (what pool_pre_ping does, without a ping round trip on every call).
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return self.answered == 0
        # A deadlock victim was rolled back whole: running it again is safe.
        return write and is_retryable(exc)

    def _answered(self) -> None:
        self.answered += 1
        self.watch.arm()  # the next round trip (a statement, the COMMIT) gets a full timeout

    def drive(self, op: Op[T], execute: Callable[[Executable], CursorResult[Any]]) -> Outcome[T]:
        """Run ``op`` to its outcome, each statement with ``execute``."""

        def perform(statement: Executable) -> CursorResult[Any]:
            result = execute(statement)
            self._answered()
            return result

        self.outcome = drive(op, perform)
        return self.outcome

    async def adrive(
        self, op: Op[T], execute: Callable[[Executable], Awaitable[CursorResult[Any]]]
    ) -> Outcome[T]:
        """:meth:`drive` with an awaited ``execute``."""

        async def perform(statement: Executable) -> CursorResult[Any]:
            result = await execute(statement)
            self._answered()
            return result

        self.outcome = await adrive(op, perform)
        return self.outcome


def timed_out(exc: BaseException) -> bool:
    """Whether a driver's socket timeout lies behind ``exc`` (PyMySQL, asyncmy)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, TimeoutError):  # socket.timeout, asyncio.TimeoutError
            return True
        orig = getattr(current, "orig", None)
        stack += [current.__cause__, current.__context__]
        if isinstance(orig, BaseException):
            stack.append(orig)
    return False


def translate(exc: Exception) -> Exception | None:
    """What a store call raises instead of ``exc`` (``None``: ``exc`` itself)."""
    if isinstance(exc, sa_exc.IntegrityError):
        return ValueError("duplicate key id")
    if type(exc) is sa_exc.StatementError and isinstance(exc.orig, ValueError):
        return exc.orig  # a value our column types refused (a naive datetime)
    return unavailable(exc)
