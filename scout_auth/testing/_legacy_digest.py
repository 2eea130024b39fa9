"""The legacy look-up digest, part of the store contract (issue 10).

A legacy secret sent as ``Bearer`` finds its org through an HMAC of the
secret under a server-side pepper, kept beside the argon2id hash. Every
store indexes it (no scan), keeps it with the record, drops it with the
record, and never lets two orgs hold one digest.

A store's test module provides ``legacy_dump``: a function of an org id that
returns every value the store keeps for that org's legacy record, as raw as
the back end holds it (column values, hash fields). The dump test checks that
none of them is the secret or an unkeyed digest of it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import pytest

from scout_auth import LegacyPepper, LegacyRecord
from tests._support import TEST_LEGACY_PEPPER, TEST_PEPPER_ID

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def _org() -> str:
    return f"org_{uuid.uuid4().hex[:12]}"


def _digest() -> bytes:
    return secrets.token_bytes(32)


# Shared servers: a verifier started on them checks that some digest there
# is of its pepper (the suite's). So every test writes one of those first,
# before any record of another pepper id ("p2", random tags).
P1 = TEST_PEPPER_ID


def _legacy(org_id: str, digest: bytes | None, pepper_id: str | None = P1, **over: object):
    fields: dict[str, object] = {
        "org_id": org_id,
        "secret_hash": HASH,
        "created_at": T0,
        "lookup_digest": digest,
        "pepper_id": None if digest is None else pepper_id,
    }
    fields.update(over)
    return LegacyRecord(**fields)  # type: ignore[arg-type]


def unkeyed_digests(secret: str) -> set[bytes]:
    """The secret and every fast unkeyed digest of it, raw and as text."""
    raw = secret.encode()
    found = {raw}
    for name in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "blake2b", "blake2s"):
        found.add(hashlib.new(name, raw).digest())
    for name in ("sha3_256", "sha3_512"):
        found.add(hashlib.new(name, raw).digest())
    text = set()
    for digest in found:
        text |= {
            digest.hex().encode(),
            digest.hex().upper().encode(),
            base64.b64encode(digest),
            base64.urlsafe_b64encode(digest),
            base64.urlsafe_b64encode(digest).rstrip(b"="),
        }
    return found | text


def assert_no_unkeyed_digest(values: Iterable[object], secret: str) -> None:
    """No stored value is, or contains, the secret or an unkeyed digest of it."""
    forbidden = unkeyed_digests(secret)
    for value in values:
        data = value if isinstance(value, bytes) else str(value).encode()
        for bad in forbidden:
            assert bad not in data, "the store keeps the secret or an unkeyed digest of it"


class LegacyDigestContract:
    """What every store does with legacy look-up digests."""

    def test_digest_round_trips_and_is_found(self, store):
        o, d = _org(), _digest()
        rec = _legacy(o, d)
        store.put_legacy(rec)
        assert store.get_legacy(o) == rec
        assert store.get_legacy(o).lookup_digest == d
        assert store.get_legacy(o).pepper_id == P1
        assert store.find_legacy(d) == rec
        assert store.find_legacy(_digest()) is None

    def test_a_record_without_a_digest_is_not_found_by_any(self, store):
        o = _org()
        store.put_legacy(_legacy(o, None))
        assert store.get_legacy(o).lookup_digest is None
        assert store.get_legacy(o).pepper_id is None
        assert store.find_legacy(bytes(32)) is None

    def test_replacing_the_record_replaces_the_digest(self, store):
        o, first, second = _org(), _digest(), _digest()
        store.put_legacy(_legacy(o, first))
        store.put_legacy(_legacy(o, second, secret_hash=HASH + "x"))
        assert store.find_legacy(first) is None
        assert store.find_legacy(second).org_id == o
        store.put_legacy(_legacy(o, None, secret_hash=HASH + "y"))
        assert store.find_legacy(second) is None
        assert store.get_legacy(o).secret_hash == HASH + "y"

    def test_delete_drops_the_digest(self, store):
        o, d = _org(), _digest()
        store.put_legacy(_legacy(o, d))
        assert store.delete_legacy(o) is True
        assert store.find_legacy(d) is None
        # The digest is free again: another org may take it.
        other = _org()
        store.put_legacy(_legacy(other, d))
        assert store.find_legacy(d).org_id == other

    def test_the_switch_keeps_the_digest(self, store):
        o, d = _org(), _digest()
        store.put_legacy(_legacy(o, d))
        off = store.set_legacy_enabled(o, False)
        assert off.lookup_digest == d
        assert off.enabled is False
        assert store.find_legacy(d).enabled is False
        store.put_legacy(_legacy(o, d, secret_hash=HASH + "z"))
        assert store.get_legacy(o).enabled is False  # the switch survives, as before

    def test_two_orgs_never_share_a_digest(self, store):
        a, b, d = _org(), _org(), _digest()
        store.put_legacy(_legacy(a, d))
        store.put_legacy(_legacy(b, d))
        assert store.find_legacy(d).org_id == a
        got = store.get_legacy(b)
        assert got is not None
        assert got.secret_hash == HASH
        assert got.lookup_digest is None
        assert got.pepper_id is None
        assert store.set_legacy_digest(b, HASH, d, P1) is False
        assert store.find_legacy(d).org_id == a

    def test_set_digest_only_over_the_hash_it_verified(self, store):
        o, d, later = _org(), _digest(), _digest()
        assert store.set_legacy_digest(o, HASH, d, P1) is False  # no record
        assert store.get_legacy(o) is None
        store.put_legacy(_legacy(o, None))
        assert store.set_legacy_digest(o, HASH + "other", d, P1) is False
        assert store.find_legacy(d) is None
        assert store.set_legacy_digest(o, HASH, d, P1) is True
        got = store.find_legacy(d)
        assert got.org_id == o
        assert got.pepper_id == P1
        assert got.enabled is True
        # A newer pepper's digest replaces the old one.
        assert store.set_legacy_digest(o, HASH, later, "p2") is True
        assert store.find_legacy(d) is None
        assert store.find_legacy(later).pepper_id == "p2"
        # Setting the digest it already holds is a success, not a conflict.
        assert store.set_legacy_digest(o, HASH, later, "p2") is True

    def test_set_digest_publishes_no_event(self, store):
        o = _org()
        store.put_legacy(_legacy(o, None))
        events: list[object] = []
        unsubscribe = store.subscribe(events.append)
        try:
            assert store.set_legacy_digest(o, HASH, _digest(), P1) is True
        finally:
            unsubscribe()
        assert [e for e in events if getattr(e, "org_id", None) == o] == []

    def test_digest_counts_per_pepper(self, store):
        # The store may be shared: compare before and after.
        before = store.legacy_digest_counts()
        tag = f"p{uuid.uuid4().hex[:8]}"
        store.put_legacy(_legacy(_org(), _digest()))
        store.put_legacy(_legacy(_org(), _digest(), tag))
        store.put_legacy(_legacy(_org(), _digest(), tag))
        store.put_legacy(_legacy(_org(), None))
        after = store.legacy_digest_counts()
        assert after.get(tag) == 2
        assert tag not in before
        assert after.get(None, 0) == before.get(None, 0) + 1
        assert after.get(P1, 0) >= before.get(P1, 0) + 1
        assert all(isinstance(n, int) and n > 0 for n in after.values())

    def test_pepper_ids_cover_every_digest_held(self, store):
        tag = f"p{uuid.uuid4().hex[:8]}"
        store.put_legacy(_legacy(_org(), _digest()))
        o = _org()
        store.put_legacy(_legacy(o, None))
        assert tag not in store.legacy_pepper_ids()
        assert store.set_legacy_digest(o, HASH, _digest(), tag) is True
        ids = store.legacy_pepper_ids()
        assert {P1, tag} <= ids
        assert None not in ids
        held = {pid for pid in store.legacy_digest_counts() if pid is not None}
        assert held <= ids

    @pytest.mark.anyio
    async def test_async_twins(self, store):
        o, d, later = _org(), _digest(), _digest()
        await store.aput_legacy(_legacy(o, d))
        assert (await store.afind_legacy(d)).org_id == o
        assert await store.aset_legacy_digest(o, HASH, later, "p2") is True
        assert await store.afind_legacy(d) is None
        assert (await store.afind_legacy(later)).pepper_id == "p2"
        counts = await store.alegacy_digest_counts()
        assert counts.get("p2", 0) >= 1
        assert "p2" in await store.alegacy_pepper_ids()
        assert store.find_legacy(later).org_id == o  # what async wrote, sync reads

    def test_dump_holds_no_unkeyed_digest(self, store, legacy_dump: Callable[[str], list[object]]):
        from argon2 import PasswordHasher

        secret = "legacy-" + secrets.token_urlsafe(24)
        hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        pepper = LegacyPepper(TEST_LEGACY_PEPPER)
        o = _org()
        store.put_legacy(
            LegacyRecord(
                o,
                hasher.hash(secret),
                T0 - timedelta(days=1),
                lookup_digest=pepper.digest(secret),
                pepper_id=pepper.current_id,
            )
        )
        values = legacy_dump(o)
        assert values, "legacy_dump found nothing for the org"
        assert_no_unkeyed_digest(values, secret)
