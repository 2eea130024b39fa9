"""The replay cache's per-key bound: one table of threats, run against every cache.

A test module subclasses :class:`NonceQuotaContract` and provides a
``make_cache`` fixture: ``make_cache(max_per_key=n)`` returns a fresh cache
(or one on a shared server: every test names its own owners and nonces, so
nothing is shared between tests).

Each case is a list of steps ``(owner, nonce, expected)``: ``True`` a first
sighting, ``False`` a replay, ``QUOTA`` refused with 429 ``nonce_quota_exceeded``.
Owners are single letters made unique per test; ``None`` is unattributed.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from scout_auth.exceptions import NonceQuotaExceeded

QUOTA = "429"
TTL = 60.0

Step = tuple[str | None, str, bool | str]

QUOTA_THREATS = [
    pytest.param(
        2,
        [("A", "1", True), ("A", "2", True), ("A", "3", QUOTA)],
        id="a-key-at-its-quota-is-refused",
    ),
    pytest.param(
        2,
        [("A", "1", True), ("A", "2", True), ("A", "3", QUOTA), ("B", "1", True), ("B", "2", True)],
        id="a-flooding-key-is-refused-alone",
    ),
    pytest.param(
        2,
        [("A", "1", True), ("A", "2", True), ("A", "1", False), ("A", "2", False)],
        id="a-replay-stays-a-replay-at-the-quota",
    ),
    pytest.param(
        2,
        [("A", "1", True), ("A", "2", True), ("A", "3", QUOTA), ("A", "3", QUOTA)],
        id="a-refused-nonce-is-not-remembered",
    ),
    pytest.param(
        2,
        [("A", "1", True), ("A", "2", True), ("A", "1", False), ("B", "1", True), ("B", "2", True)],
        id="replays-spend-nothing",
    ),
    pytest.param(
        1,
        [
            ("A", "1", True),
            ("a", "2", True),
            ("A}", "3", True),
            ("{A", "4", True),
            ("A", "5", QUOTA),
        ],
        id="owners-are-told-apart-exactly",
    ),
    pytest.param(
        1,
        [(None, "1", True), (None, "2", True), (None, "3", True), ("A", "4", True)],
        id="unattributed-entries-count-against-no-key",
    ),
]


class NonceQuotaContract:
    """Per-key bounds every :class:`~scout_auth.NonceCache` must keep."""

    @pytest.mark.parametrize(("max_per_key", "steps"), QUOTA_THREATS)
    def test_quota_threats(self, make_cache: Any, max_per_key: int, steps: list[Step]) -> None:
        cache = make_cache(max_per_key=max_per_key)
        run = uuid.uuid4().hex[:12]
        for i, (owner, nonce, expected) in enumerate(steps):
            key = f"{run}:{owner}:{nonce}"
            who = None if owner is None else f"{run}{owner}"
            if expected == QUOTA:
                with pytest.raises(NonceQuotaExceeded) as info:
                    cache.remember(key, TTL, owner=who)
                assert (info.value.status, info.value.code) == (429, "nonce_quota_exceeded"), i
                assert 1 <= info.value.retry_after <= TTL, i
                assert run not in str(info.value)  # no owner or nonce echoed
            else:
                assert cache.remember(key, TTL, owner=who) is expected, i

    @pytest.mark.anyio
    async def test_the_async_twin_shares_the_quota(self, make_cache: Any) -> None:
        cache = make_cache(max_per_key=2)
        run = uuid.uuid4().hex[:12]
        assert cache.remember(f"{run}:1", TTL, owner=run) is True
        assert await cache.aremember(f"{run}:2", TTL, owner=run) is True
        with pytest.raises(NonceQuotaExceeded):
            await cache.aremember(f"{run}:3", TTL, owner=run)
        with pytest.raises(NonceQuotaExceeded):
            cache.remember(f"{run}:3", TTL, owner=run)
        assert await cache.aremember(f"{run}:b1", TTL, owner=f"{run}b") is True

    def test_the_owner_may_be_passed_positionally(self, make_cache: Any) -> None:
        # The verifier passes (key, ttl, owner); the protocol takes it either way.
        cache = make_cache(max_per_key=1)
        run = uuid.uuid4().hex[:12]
        assert cache.remember(f"{run}:1", TTL, run) is True
        with pytest.raises(NonceQuotaExceeded):
            cache.remember(f"{run}:2", TTL, run)
