"""The replay cache: first sighting wins, expiry, bounds, threads, the async twin."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scout_auth._httpsig import parse_request_signature
from scout_auth._nonce import (
    InMemoryNonceCache,
    NonceCache,
    acheck_nonce,
    check_nonce,
    nonce_key,
)
from scout_auth.exceptions import ReplayDetected, StoreUnavailable

from .test_httpsig import NOW, signed


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_in_memory_cache_is_a_nonce_cache():
    assert isinstance(InMemoryNonceCache(), NonceCache)


def test_first_sighting_then_replay():
    cache = InMemoryNonceCache(clock=FakeClock())
    assert cache.remember("k", 10) is True
    assert cache.remember("k", 10) is False
    assert cache.remember("other", 10) is True


def test_entries_expire_after_ttl():
    clock = FakeClock()
    cache = InMemoryNonceCache(clock=clock)
    cache.remember("k", 10)
    clock.now += 9.99
    assert cache.remember("k", 10) is False
    clock.now += 0.01
    assert cache.remember("k", 10) is True
    assert len(cache) == 1


def test_full_cache_fails_closed_and_never_evicts_live_entries():
    clock = FakeClock()
    cache = InMemoryNonceCache(max_entries=2, clock=clock)
    assert cache.remember("a", 10)
    assert cache.remember("b", 20)
    with pytest.raises(StoreUnavailable) as info:
        cache.remember("c", 10)
    assert info.value.status == 503
    # The live entries are still there: replays are still caught.
    assert cache.remember("a", 10) is False
    assert cache.remember("b", 10) is False
    clock.now += 10  # "a" expires, making room
    assert cache.remember("c", 10) is True
    with pytest.raises(StoreUnavailable):
        cache.remember("d", 10)


@pytest.mark.parametrize(
    ("kwargs", "ttl"),
    [
        pytest.param({"max_entries": 0}, 1.0, id="no-room"),
        pytest.param({}, 0.0, id="zero-ttl"),
        pytest.param({}, -1.0, id="negative-ttl"),
        pytest.param({}, float("nan"), id="nan-ttl"),
    ],
)
def test_bad_arguments(kwargs, ttl):
    with pytest.raises(ValueError, match="must be"):
        InMemoryNonceCache(**kwargs).remember("k", ttl)


def test_concurrent_callers_see_exactly_one_first_sighting():
    cache = InMemoryNonceCache()
    barrier = threading.Barrier(16)
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        first = cache.remember("same", 60)
        with lock:
            results.append(first)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 15 + [True]


def test_async_twin_shares_state():
    cache = InMemoryNonceCache()

    async def run() -> tuple[bool, bool]:
        return await cache.aremember("k", 5), await cache.aremember("k", 5)

    assert asyncio.run(run()) == (True, False)
    assert cache.remember("k", 5) is False


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(("key1", "n"), ("key2", "n"), id="same-nonce-other-key"),
        pytest.param(("a:b", "c"), ("a", "b:c"), id="separator-in-keyid"),
        pytest.param(("ab", "c"), ("a", "bc"), id="boundary-shift"),
    ],
)
def test_nonce_keys_are_scoped_and_unambiguous(a, b):
    assert nonce_key(*a) != nonce_key(*b)


def test_nonce_key_does_not_echo_input():
    key = nonce_key("aaaaaaaaaaaaaaaaaaaa", "secret-looking-nonce")
    assert "secret-looking-nonce" not in key
    assert "aaaaaaaaaaaaaaaaaaaa" not in key
    assert key == nonce_key("aaaaaaaaaaaaaaaaaaaa", "secret-looking-nonce")


def test_replayed_signed_request_is_detected():
    cache = InMemoryNonceCache()
    request = signed()
    first = parse_request_signature(request, now=NOW)
    assert first.nonce is not None
    check_nonce(cache, first.key_id, first.nonce, first.replay_ttl(NOW))
    again = parse_request_signature(request, now=NOW + 1)
    assert again.nonce is not None
    with pytest.raises(ReplayDetected) as info:
        check_nonce(cache, again.key_id, again.nonce, again.replay_ttl(NOW + 1))
    assert info.value.code == "replay_detected"
    assert again.nonce not in str(info.value)


def test_async_check_nonce():
    cache = InMemoryNonceCache()
    asyncio.run(acheck_nonce(cache, "k", "n", 5))
    with pytest.raises(ReplayDetected):
        asyncio.run(acheck_nonce(cache, "k", "n", 5))


@given(
    ops=st.lists(
        st.tuples(st.sampled_from("abcd"), st.integers(1, 20), st.integers(0, 15)), max_size=40
    )
)
def test_behaves_like_a_simple_model(ops):
    # Model: a key is live while now < stored expiry; nothing else matters.
    clock = FakeClock(0.0)
    cache = InMemoryNonceCache(clock=clock)
    model: dict[str, float] = {}
    for key, ttl, advance in ops:
        expected = not (key in model and clock.now < model[key])
        assert cache.remember(key, ttl) is expected
        if expected:
            model[key] = clock.now + ttl
        clock.now += advance
    assert len(cache) == sum(1 for when in model.values() if clock.now < when)
