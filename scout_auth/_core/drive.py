"""The one drive loop behind every generator protocol. Pure control flow.

Verification flows, lifecycle ops, SQL ops and Redis ops are generators
that *yield* what they need and receive the answer through ``send`` (the
httpx ``auth_flow`` pattern). :func:`drive` runs one with plain calls,
:func:`adrive` with ``await``; both close the generator whatever happens,
so its ``finally`` blocks run (httpx's ``_send_handling_auth``).

``local`` answers the needs that need no I/O (a cache hit) before
``perform`` is asked; it returns :data:`NOT_LOCAL` for the others. The
types carry the flow's result through: ``drive(op, perform)`` of an
``Generator[N, Any, R]`` is an ``R``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, TypeVar

__all__ = ["NOT_LOCAL", "adrive", "drive"]

N = TypeVar("N")
R = TypeVar("R")


class _NotLocal:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_LOCAL"


#: What ``local`` returns for a need it cannot answer without I/O.
NOT_LOCAL: Final = _NotLocal()


def drive(
    flow: Generator[N, Any, R],
    perform: Callable[[N], object],
    local: Callable[[N], object] | None = None,
) -> R:
    """Run ``flow`` to its result, answering each need with ``local`` or else ``perform``."""
    try:
        need = next(flow)
        while True:
            if local is not None:
                answer = local(need)
                if answer is NOT_LOCAL:
                    answer = perform(need)
            else:
                answer = perform(need)
            need = flow.send(answer)
    except StopIteration as stop:
        result: R = stop.value
        return result
    finally:
        flow.close()


async def adrive(
    flow: Generator[N, Any, R],
    perform: Callable[[N], Awaitable[object]],
    local: Callable[[N], object] | None = None,
) -> R:
    """:func:`drive` with an awaited ``perform`` (``local`` stays a plain call)."""
    try:
        need = next(flow)
        while True:
            if local is not None:
                answer = local(need)
                if answer is NOT_LOCAL:
                    answer = await perform(need)
            else:
                answer = await perform(need)
            need = flow.send(answer)
    except StopIteration as stop:
        result: R = stop.value
        return result
    finally:
        flow.close()
