"""SingleFlight (threads): one run per key for callers that overlap; its outcome shared."""

from __future__ import annotations

import threading

import anyio
import pytest

from scout_auth._drivers.singleflight import AsyncSingleFlight, SingleFlight

N = 8

pytestmark = pytest.mark.anyio


def test_one_run_shares_its_result_and_leaves_no_call_behind():
    flight: SingleFlight[object] = SingleFlight()
    started = threading.Event()
    release = threading.Event()
    runs: list[int] = []
    result = object()

    def fn() -> object:
        runs.append(1)
        started.set()
        assert release.wait(timeout=30)
        return result

    leader = threading.Thread(target=lambda: flight.run(b"k", fn))
    leader.start()
    assert started.wait(timeout=30)
    # The leader is inside fn: every other caller joins its flight.
    followers: list[object] = []
    threads = [
        threading.Thread(target=lambda: followers.append(flight.run(b"k", fn))) for _ in range(N)
    ]
    for t in threads:
        t.start()
    release.set()
    for t in [leader, *threads]:
        t.join(timeout=30)
    assert runs == [1]
    assert followers == [result] * N
    assert flight._calls == {}


def test_the_leaders_exception_reaches_every_follower():
    flight: SingleFlight[object] = SingleFlight()
    started = threading.Event()
    release = threading.Event()
    error = RuntimeError("store down")

    def fn() -> object:
        started.set()
        assert release.wait(timeout=30)
        raise error

    seen: list[BaseException] = []

    def call() -> None:
        try:
            flight.run(b"k", fn)
        except RuntimeError as exc:
            seen.append(exc)

    leader = threading.Thread(target=call)
    leader.start()
    assert started.wait(timeout=30)
    threads = [threading.Thread(target=call) for _ in range(N)]
    for t in threads:
        t.start()
    release.set()
    for t in [leader, *threads]:
        t.join(timeout=30)
    assert seen == [error] * (N + 1)
    assert flight._calls == {}


def test_a_run_after_a_finished_one_runs_again():
    flight: SingleFlight[int] = SingleFlight()
    assert flight.run(b"k", lambda: 1) == 1
    assert flight.run(b"k", lambda: 2) == 2
    with pytest.raises(ValueError, match="invalid literal"):
        flight.run(b"k", lambda: int("x"))
    assert flight.run(b"k", lambda: 3) == 3
    assert flight._calls == {}


# -- AsyncSingleFlight (tasks) ---------------------------------------------------


async def _flights(flight: AsyncSingleFlight[object], fn, followers: int) -> list[object]:
    """A leader task held inside ``fn`` and ``followers`` tasks that arrive meanwhile."""
    outcomes: list[object] = []

    async def call() -> None:
        try:
            outcomes.append(await flight.run(b"k", fn))
        except Exception as exc:
            outcomes.append(exc)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(followers + 1):
                tg.start_soon(call)
    return outcomes


async def test_async_one_run_shares_its_result():
    flight: AsyncSingleFlight[object] = AsyncSingleFlight()
    runs: list[int] = []
    result = object()

    async def fn() -> object:
        runs.append(1)
        await anyio.sleep(0.01)  # the other tasks arrive while this one waits
        return result

    assert await _flights(flight, fn, N) == [result] * (N + 1)
    assert runs == [1]
    assert flight._calls == {}


async def test_async_the_leaders_exception_reaches_every_follower():
    flight: AsyncSingleFlight[object] = AsyncSingleFlight()
    error = RuntimeError("store down")

    async def fn() -> object:
        await anyio.sleep(0.01)
        raise error

    assert await _flights(flight, fn, N) == [error] * (N + 1)
    assert flight._calls == {}


async def test_async_a_run_without_followers_makes_no_event():
    flight: AsyncSingleFlight[int] = AsyncSingleFlight()
    seen: list[object] = []

    async def fn() -> int:
        seen.append(flight._calls[b"k"].done)
        return 1

    assert await flight.run(b"k", fn) == 1
    assert seen == [None]
    assert flight._calls == {}


async def test_async_a_cancelled_leader_hands_the_flight_to_a_follower():
    flight: AsyncSingleFlight[object] = AsyncSingleFlight()
    entered = anyio.Event()
    runs: list[str] = []

    async def slow() -> object:
        runs.append("leader")
        entered.set()
        await anyio.sleep(30)
        return "never"

    async def quick() -> object:
        runs.append("follower")
        return "follower's"

    outcome: list[object] = []
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            leader = anyio.CancelScope()

            async def lead() -> None:
                with leader:
                    await flight.run(b"k", slow)

            async def follow() -> None:
                outcome.append(await flight.run(b"k", quick))

            tg.start_soon(lead)
            await entered.wait()
            tg.start_soon(follow)
            await anyio.sleep(0.01)  # the follower waits on the leader's call
            leader.cancel()
    assert outcome == ["follower's"]
    assert runs == ["leader", "follower"]
    assert flight._calls == {}
