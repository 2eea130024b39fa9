"""The legacy look-up digest, part of the store contract (issue 10).

A legacy secret sent as ``Bearer`` finds its org through an HMAC of the
secret under a server-side pepper, kept beside the argon2id hash. Every
store indexes it (no scan), keeps it with the record, drops it with the
record, and never lets two orgs hold one digest.

A store's test module provides ``legacy_dump``: a function of an org id that
returns every value the store keeps for that org's legacy record, as raw as
the back end holds it (column values, hash fields). The dump test checks that
none of them is the secret or an unkeyed digest of it.

The digests the contract writes are of :attr:`LegacyDigestContract.legacy_pepper`
(by default the ``$SCOUT_AUTH_LEGACY_PEPPER`` the suite's verifiers run with,
else :data:`CONTRACT_LEGACY_PEPPER`), besides records of made-up pepper ids.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .. import LegacyPepper, LegacyRecord
from ._support import cheap_hasher

__all__ = [
    "CONTRACT_LEGACY_PEPPER",
    "LegacyDigestContract",
    "assert_no_unkeyed_digest",
    "unkeyed_digests",
]

#: The pepper the contract's digests are made with when the class names none
#: and ``$SCOUT_AUTH_LEGACY_PEPPER`` is unset. A test value, public on purpose:
#: never configure it anywhere.
CONTRACT_LEGACY_PEPPER = "scout-auth-store-contract-pepper-not-for-production-use"

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def _org() -> str:
    return f"org_{uuid.uuid4().hex[:12]}"


def _digest() -> bytes:
    return secrets.token_bytes(32)


def _legacy(org_id: str, digest: bytes | None, pepper_id: str, **over: object) -> LegacyRecord:
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
    """What every store does with legacy look-up digests.

    Subclasses provide ``store`` and ``legacy_dump`` (see the module docstring).
    """

    #: The pepper of the digests every test writes first. Shared servers are
    #: why: a verifier started on one checks that some digest there is of its
    #: own pepper, so a suite that shares a server with verifiers must write
    #: digests of *their* pepper before any record of another pepper id
    #: ("p2", random tags). ``None``: the pepper in ``$SCOUT_AUTH_LEGACY_PEPPER``
    #: (the one those verifiers read), else :data:`CONTRACT_LEGACY_PEPPER`.
    legacy_pepper: LegacyPepper | None = None

    def _suite_pepper(self) -> LegacyPepper:
        if self.legacy_pepper is not None:
            return self.legacy_pepper
        return LegacyPepper.from_env() or LegacyPepper(CONTRACT_LEGACY_PEPPER)

    @property
    def _pepper_id(self) -> str:
        # The suite pepper's id: stored with every digest made with it.
        return self._suite_pepper().current_id

    def _legacy_record(
        self, org_id: str, digest: bytes | None, pepper_id: str | None = None, **over: object
    ) -> LegacyRecord:
        # A legacy record with this digest, of the suite's pepper unless named.
        return _legacy(org_id, digest, pepper_id or self._pepper_id, **over)

    def test_digest_round_trips_and_is_found(self, store: Any) -> None:
        o, d = _org(), _digest()
        rec = self._legacy_record(o, d)
        store.put_legacy(rec)
        assert store.get_legacy(o) == rec
        assert store.get_legacy(o).lookup_digest == d
        assert store.get_legacy(o).pepper_id == self._pepper_id
        assert store.find_legacy(d) == rec
        assert store.find_legacy(_digest()) is None

    def test_a_record_without_a_digest_is_not_found_by_any(self, store: Any) -> None:
        o = _org()
        store.put_legacy(self._legacy_record(o, None))
        assert store.get_legacy(o).lookup_digest is None
        assert store.get_legacy(o).pepper_id is None
        assert store.find_legacy(bytes(32)) is None

    def test_replacing_the_record_replaces_the_digest(self, store: Any) -> None:
        o, first, second = _org(), _digest(), _digest()
        store.put_legacy(self._legacy_record(o, first))
        store.put_legacy(self._legacy_record(o, second, secret_hash=HASH + "x"))
        assert store.find_legacy(first) is None
        assert store.find_legacy(second).org_id == o
        store.put_legacy(self._legacy_record(o, None, secret_hash=HASH + "y"))
        assert store.find_legacy(second) is None
        assert store.get_legacy(o).secret_hash == HASH + "y"

    def test_delete_drops_the_digest(self, store: Any) -> None:
        o, d = _org(), _digest()
        store.put_legacy(self._legacy_record(o, d))
        assert store.delete_legacy(o) is True
        assert store.find_legacy(d) is None
        # The digest is free again: another org may take it.
        other = _org()
        store.put_legacy(self._legacy_record(other, d))
        assert store.find_legacy(d).org_id == other

    def test_the_switch_keeps_the_digest(self, store: Any) -> None:
        o, d = _org(), _digest()
        store.put_legacy(self._legacy_record(o, d))
        off = store.set_legacy_enabled(o, False)
        assert off.lookup_digest == d
        assert off.enabled is False
        assert store.find_legacy(d).enabled is False
        store.put_legacy(self._legacy_record(o, d, secret_hash=HASH + "z"))
        assert store.get_legacy(o).enabled is False  # the switch survives, as before

    def test_two_orgs_never_share_a_digest(self, store: Any) -> None:
        a, b, d = _org(), _org(), _digest()
        store.put_legacy(self._legacy_record(a, d))
        store.put_legacy(self._legacy_record(b, d))
        assert store.find_legacy(d).org_id == a
        got = store.get_legacy(b)
        assert got is not None
        assert got.secret_hash == HASH
        assert got.lookup_digest is None
        assert got.pepper_id is None
        assert store.set_legacy_digest(b, HASH, d, self._pepper_id) is False
        assert store.find_legacy(d).org_id == a

    def test_set_digest_only_over_the_hash_it_verified(self, store: Any) -> None:
        o, d, later = _org(), _digest(), _digest()
        assert store.set_legacy_digest(o, HASH, d, self._pepper_id) is False  # no record
        assert store.get_legacy(o) is None
        store.put_legacy(self._legacy_record(o, None))
        assert store.set_legacy_digest(o, HASH + "other", d, self._pepper_id) is False
        assert store.find_legacy(d) is None
        assert store.set_legacy_digest(o, HASH, d, self._pepper_id) is True
        got = store.find_legacy(d)
        assert got.org_id == o
        assert got.pepper_id == self._pepper_id
        assert got.enabled is True
        # A newer pepper's digest replaces the old one.
        assert store.set_legacy_digest(o, HASH, later, "p2") is True
        assert store.find_legacy(d) is None
        assert store.find_legacy(later).pepper_id == "p2"
        # Setting the digest it already holds is a success, not a conflict.
        assert store.set_legacy_digest(o, HASH, later, "p2") is True

    def test_set_digest_publishes_no_event(self, store: Any) -> None:
        o = _org()
        store.put_legacy(self._legacy_record(o, None))
        events: list[object] = []
        unsubscribe = store.subscribe(events.append)
        try:
            assert store.set_legacy_digest(o, HASH, _digest(), self._pepper_id) is True
        finally:
            unsubscribe()
        assert [e for e in events if getattr(e, "org_id", None) == o] == []

    def test_digest_counts_per_pepper(self, store: Any) -> None:
        # The store may be shared: compare before and after.
        before = store.legacy_digest_counts()
        tag = f"p{uuid.uuid4().hex[:8]}"
        store.put_legacy(self._legacy_record(_org(), _digest()))
        store.put_legacy(self._legacy_record(_org(), _digest(), tag))
        store.put_legacy(self._legacy_record(_org(), _digest(), tag))
        store.put_legacy(self._legacy_record(_org(), None))
        after = store.legacy_digest_counts()
        assert after.get(tag) == 2
        assert tag not in before
        assert after.get(None, 0) == before.get(None, 0) + 1
        assert after.get(self._pepper_id, 0) >= before.get(self._pepper_id, 0) + 1
        assert all(isinstance(n, int) and n > 0 for n in after.values())

    def test_pepper_ids_cover_every_digest_held(self, store: Any) -> None:
        tag = f"p{uuid.uuid4().hex[:8]}"
        store.put_legacy(self._legacy_record(_org(), _digest()))
        o = _org()
        store.put_legacy(self._legacy_record(o, None))
        assert tag not in store.legacy_pepper_ids()
        assert store.set_legacy_digest(o, HASH, _digest(), tag) is True
        ids = store.legacy_pepper_ids()
        assert {self._pepper_id, tag} <= ids
        assert None not in ids
        held = {pid for pid in store.legacy_digest_counts() if pid is not None}
        assert held <= ids

    @pytest.mark.anyio
    async def test_async_twins(self, store: Any) -> None:
        o, d, later = _org(), _digest(), _digest()
        await store.aput_legacy(self._legacy_record(o, d))
        assert (await store.afind_legacy(d)).org_id == o
        assert await store.aset_legacy_digest(o, HASH, later, "p2") is True
        assert await store.afind_legacy(d) is None
        assert (await store.afind_legacy(later)).pepper_id == "p2"
        counts = await store.alegacy_digest_counts()
        assert counts.get("p2", 0) >= 1
        assert "p2" in await store.alegacy_pepper_ids()
        assert store.find_legacy(later).org_id == o  # what async wrote, sync reads

    def test_dump_holds_no_unkeyed_digest(
        self, store: Any, legacy_dump: Callable[[str], list[object]]
    ) -> None:
        secret = "legacy-" + secrets.token_urlsafe(24)
        hasher = cheap_hasher()
        pepper = self._suite_pepper()
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
