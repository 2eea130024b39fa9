"""The verified cache's per-key index: one fingerprint stored bare, several as a set."""

from __future__ import annotations

from scout_auth import OrgContext
from scout_auth._core.cache import VerifiedCache
from scout_auth._core.records import CredentialKind

NOW = 1_000.0


def _context(key_id: str) -> OrgContext:
    return OrgContext(
        org_id="org_1",
        key_id=key_id,
        key_name="k",
        scopes=frozenset({"a"}),
        kind=CredentialKind.ORG_CREDENTIAL,
    )


def _put(cache: VerifiedCache, fp: bytes, key_id: str) -> None:
    cache.put(fp, _context(key_id), NOW + 100, NOW, cache.epoch)


def test_invalidate_drops_every_credential_of_a_key() -> None:
    cache = VerifiedCache(ttl=60, max_entries=10)
    _put(cache, b"f1", "kid_a")
    _put(cache, b"f1", "kid_a")  # the same credential again stays one entry
    _put(cache, b"f2", "kid_a")
    _put(cache, b"f3", "kid_b")
    cache.invalidate("kid_a")
    assert cache.get(b"f1", NOW) is None
    assert cache.get(b"f2", NOW) is None
    assert cache.get(b"f3", NOW) is not None
    cache.invalidate("kid_b")
    assert len(cache) == 0


def test_eviction_and_expiry_keep_the_index_exact() -> None:
    cache = VerifiedCache(ttl=60, max_entries=2)
    _put(cache, b"f1", "kid_a")
    _put(cache, b"f2", "kid_a")
    _put(cache, b"f3", "kid_a")  # evicts f1
    assert cache.get(b"f1", NOW) is None
    assert cache.get(b"f2", NOW + 61) is None  # expired: dropped and unindexed
    cache.invalidate("kid_a")
    assert cache.get(b"f3", NOW) is None
    assert cache._by_key == {}
    _put(cache, b"f4", "kid_c")
    assert cache._by_key == {"kid_c": b"f4"}
    assert cache.get(b"f4", NOW + 61) is None
    assert cache._by_key == {}
