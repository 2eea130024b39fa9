"""The replay cache: first sighting wins, expiry, bounds, threads, the async twin.

The per-key bounds (issue 9: one key must not be able to fill the cache for
every org) run the shared table of ``tests/nonce_contract.py``, plus what
only the in-memory cache has: a global bound at which the heaviest key
gives way.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scout_auth._signing.nonce import (
    InMemoryNonceCache,
    NonceCache,
    acheck_nonce,
    check_nonce,
    nonce_key,
)
from scout_auth._signing.signature import parse_request_signature
from scout_auth.exceptions import NonceQuotaExceeded, ReplayDetected, StoreUnavailable
from tests.nonce_contract import NonceQuotaContract
from tests.signing.signatures import NOW, signed


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
        pytest.param({"max_per_key": 0}, 1.0, id="no-room-per-key"),
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


# -- per-key bounds (issue 9, defect 7) ---------------------------------------


class TestInMemoryQuota(NonceQuotaContract):
    @pytest.fixture
    def make_cache(self):
        return lambda max_per_key: InMemoryNonceCache(max_per_key=max_per_key, clock=FakeClock())


def flood(cache: InMemoryNonceCache, owner: str, limit: int = 10_000) -> int:
    """Remember fresh nonces for ``owner`` until refused; how many were taken."""
    for i in range(limit):
        try:
            assert cache.remember(f"{owner}:{i}", 60, owner=owner)
        except NonceQuotaExceeded:
            return i
    raise AssertionError("never refused")


def fill(cache: InMemoryNonceCache, owner: str, count: int) -> None:
    for i in range(count):
        assert cache.remember(f"{owner}:{i}", 60, owner=owner)


# Each case: (max_entries, max_per_key, how many nonces each flooding key
# takes in turn, which keys still verify afterwards).
FULL_CACHE_THREATS = [
    pytest.param(10, 3, ["a"], ["z"], id="one-key-stops-at-its-quota"),
    pytest.param(10, 10, ["a"], ["z"], id="one-key-alone-fills-the-cache-then-gives-way"),
    pytest.param(
        10, 4, ["a", "b", "c"], ["y", "z"], id="several-keys-fill-it-the-heaviest-gives-way"
    ),
    pytest.param(100, 10, [f"k{i}" for i in range(30)], ["y", "z"], id="many-keys-flood-in-turn"),
]


@pytest.mark.parametrize(("size", "per_key", "flooders", "others"), FULL_CACHE_THREATS)
def test_a_flooding_key_is_refused_alone_and_another_key_still_verifies(
    size, per_key, flooders, others
):
    clock = FakeClock()
    cache = InMemoryNonceCache(max_entries=size, max_per_key=per_key, clock=clock)
    for owner in flooders:
        flood(cache, owner)
    assert len(cache) <= size
    for owner in others:
        assert cache.remember(f"{owner}:light", 60, owner=owner) is True
        assert cache.remember(f"{owner}:light", 60, owner=owner) is False  # replay still caught
    # and the flooders are all still refused: their room went to the others
    for owner in flooders:
        with pytest.raises(NonceQuotaExceeded):
            cache.remember(f"{owner}:more", 60, owner=owner)


def test_the_heaviest_key_gives_way_and_stays_refused_until_its_nonces_would_expire():
    clock = FakeClock()
    cache = InMemoryNonceCache(max_entries=4, max_per_key=4, clock=clock)
    fill(cache, "heavy", 3)  # expiring at 60 s
    clock.now += 30
    assert cache.remember("light:0", 60, owner="light") is True  # full now
    assert cache.remember("light:1", 60, owner="light") is True  # "heavy" gave way
    assert cache.held("heavy") == 0
    assert cache.held("light") == 2
    # Its dropped nonces are not forgotten: every request of "heavy" is refused
    # until the last of them would have expired (a replay among them included).
    for key in ("heavy:0", "heavy:new"):
        with pytest.raises(NonceQuotaExceeded) as info:
            cache.remember(key, 60, owner="heavy")
        assert info.value.retry_after == 30
    clock.now += 30
    assert cache.remember("heavy:new", 60, owner="heavy") is True


def test_a_key_is_refused_when_it_holds_the_most_of_a_full_cache():
    clock = FakeClock()
    cache = InMemoryNonceCache(max_entries=4, max_per_key=4, clock=clock)
    fill(cache, "a", 2)
    fill(cache, "b", 2)
    with pytest.raises(NonceQuotaExceeded) as info:  # a tie: nobody holds more than "a"
        cache.remember("a:9", 60, owner="a")
    assert info.value.retry_after == 60
    assert (cache.held("a"), cache.held("b")) == (2, 2)  # nobody displaced
    assert cache.remember("c:0", 60, owner="c") is True  # a lighter key displaces one
    assert cache.held("a") + cache.held("b") == 2


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(None, None, id="unattributed-on-unattributed"),
        pytest.param(None, "a", id="a-key-on-a-cache-full-of-unattributed"),
        pytest.param("a", None, id="unattributed-never-displaces-a-key"),
    ],
)
def test_a_full_cache_that_nobody_can_give_way_for_fails_closed(first, second):
    cache = InMemoryNonceCache(max_entries=2, max_per_key=2, clock=FakeClock())
    cache.remember("x", 60, owner=first)
    cache.remember("y", 60, owner=first)
    with pytest.raises(StoreUnavailable):
        cache.remember("z", 60, owner=second)
    assert len(cache) == 2


def test_the_quota_frees_as_nonces_expire():
    clock = FakeClock()
    cache = InMemoryNonceCache(max_per_key=2, clock=clock)
    assert cache.remember("a:0", 10, owner="a")
    clock.now += 5
    assert cache.remember("a:1", 10, owner="a")
    with pytest.raises(NonceQuotaExceeded) as info:
        cache.remember("a:2", 10, owner="a")
    assert info.value.retry_after == 5  # when "a:0" expires
    clock.now += 5
    assert cache.remember("a:2", 10, owner="a") is True
    assert cache.held("a") == 2


def test_memory_stays_bounded_under_a_flood_of_keys():
    # Dropped entries must not linger in the expiry heap.
    clock = FakeClock()
    cache = InMemoryNonceCache(max_entries=50, max_per_key=50, clock=clock)
    for n in range(400):
        flood(cache, f"k{n}")
    assert len(cache) <= 50
    assert len(cache._heap) <= 2 * 50 + 50
    assert sum(len(v) for v in cache._held.values()) == len(cache._entries)


@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from([None, "a", "b", "c"]),
            st.integers(0, 30),
            st.integers(1, 20),
            st.integers(0, 3),
        ),
        max_size=80,
    )
)
def test_bounds_and_bookkeeping_hold_under_any_sequence(ops):
    # Invariants: never more than the bounds; no accepted nonce is ever
    # accepted again while it would still be fresh (dropped or not); the
    # per-owner counts match the entries.
    clock = FakeClock(0.0)
    cache = InMemoryNonceCache(max_entries=6, max_per_key=4, clock=clock)
    accepted: dict[str, float] = {}
    for owner, nonce, ttl, advance in ops:
        key = f"{owner}:{nonce}"
        try:
            fresh = cache.remember(key, ttl, owner=owner)
        except (NonceQuotaExceeded, StoreUnavailable):
            fresh = None
        if key in accepted and clock.now < accepted[key]:
            assert fresh is not True, "a live nonce was accepted twice"
        if fresh:
            accepted[key] = clock.now + ttl
        assert len(cache._entries) <= 6
        assert all(len(v) <= 4 for v in cache._held.values())
        counts = {o: len(v) for o, v in cache._held.items()}
        owned = [o for _, o in cache._entries.values() if o is not None]
        assert counts == {o: owned.count(o) for o in set(owned)}
        assert cache._top == max(counts.values(), default=0)
        clock.now += advance
