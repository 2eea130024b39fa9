"""What every method of the SQL key store runs on: a database and the store's events.

:class:`StoreBase` holds the store's :class:`~.database.Database` and adds
what is the store's own around each operation the database runs: on
PostgreSQL the ``NOTIFY`` of a write's events as its transaction's last
statement (:func:`~.ops.announcing`), their delivery to this process's
subscribers once it committed, and, when a write's outcome is unknown (it
failed at its ``COMMIT``), their delivery anyway. The key store's methods
(:mod:`.store`, :mod:`.legacy`) are one line each on top of it.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from ..._core.store import StoreEventsMixin
from . import ops as ops
from .database import Database
from .ops import MakeOp, Outcome

__all__ = ["StoreBase"]

T = TypeVar("T")


class StoreBase(StoreEventsMixin):
    """A database, this store's origin id and its subscribers (see the module docstring).

    Args:
        database: Where the store's tables are.
        channel: The PostgreSQL notification channel its writes announce
            themselves on (``ValueError`` unless a lower-case identifier).
    """

    def __init__(self, database: Database, channel: str) -> None:
        super().__init__()
        #: Where the store's tables are (shared with its audit sink).
        self.database = database
        #: This store's id in the notifications it sends (its own are skipped).
        self.origin = uuid.uuid4().hex
        self._announce = ops.Announce(channel, self.origin)

    def _read(self, make: MakeOp[T]) -> T:
        return self.database.run(make, write=False).value

    def _write(self, make: MakeOp[T], *, rerun_on_conflict: bool = False) -> T:
        made = ops.announcing(make, self._announce)
        outcome = self.database.run(
            made, write=True, rerun_on_conflict=rerun_on_conflict, unsure=self._unsure
        )
        return self._committed(outcome)

    async def _aread(self, make: MakeOp[T]) -> T:
        return (await self.database.arun(make, write=False)).value

    async def _awrite(self, make: MakeOp[T], *, rerun_on_conflict: bool = False) -> T:
        made = ops.announcing(make, self._announce)
        outcome = await self.database.arun(
            made, write=True, rerun_on_conflict=rerun_on_conflict, unsure=self._unsure
        )
        return self._committed(outcome)

    def _committed(self, outcome: Outcome[T]) -> T:
        for event in outcome.events:  # never for a rolled-back write
            self._publish(event)
        return outcome.value

    def _unsure(self, outcome: Outcome[Any]) -> None:
        """Tell local subscribers of a write that failed once it reached its COMMIT.

        Its outcome is unknown: the COMMIT may have been carried out and only
        its reply lost. Other instances hear of it through the change feed if
        it committed, but this store skips its own echo there; so its
        subscribers get the write's events now. Invalidating a key that did
        not change costs one look-up; keeping a key that was disabled would
        accept it for the cache TTL. (A failure before the last statement was
        answered rolls the transaction back: nothing to tell.)
        """
        for event in outcome.events:
            # As from the feed: a subscriber that raises is logged, and
            # does not hide the write's own error from the caller.
            self._deliver_remote(event)
