"""Key ids minted into their org's hash slot (no Redis needed)."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from scout_auth import InMemoryKeyStore, KeyManager
from scout_auth._core.store import new_key_id
from scout_auth._core.tokens import KEY_ID_RE
from scout_auth.stores._redis.layout import Layout
from scout_auth.stores._redis.slots import SLOTS, aligned_key_id, slot_of
from scout_auth.stores.redis import RedisKeyStore

AWKWARD = [
    "org_plain",
    "org%7B{x}:y%",
    "{",
    "}",
    "{}",
    ":",
    "%",
    "é東京🙂",
    "o" * 200,
    "{o:x}" * 40,
]


def test_every_slot_has_an_id():
    for slot in range(SLOTS):
        key_id = aligned_key_id(slot)
        assert KEY_ID_RE.fullmatch(key_id)
        assert slot_of(f"p:{{k:{key_id}}}") == slot


def test_a_store_mints_ids_in_the_slot_redis_gives_the_org_names():
    store = RedisKeyStore.__new__(RedisKeyStore)  # no client: minting is pure
    for prefix in ("scout", "a:b", "x*?[]"):
        store.layout = Layout(prefix)
        for org_id in AWKWARD:
            key_id = store.new_key_id(org_id)
            assert KEY_ID_RE.fullmatch(key_id)
            record_slot = key_slot(store.layout.key(org_id, key_id).encode())
            assert key_slot(store.layout.directory(key_id).encode()) == record_slot
            assert key_slot(store.layout.index(org_id).encode()) == record_slot


def test_minted_ids_keep_80_random_bits():
    ids = {aligned_key_id(1234) for _ in range(2000)}
    assert len(ids) == 2000
    heads = {key_id[:16] for key_id in ids}
    assert len(heads) == 2000
    # Every base32 character appears at every random position.
    for position in range(16):
        assert len({key_id[position] for key_id in ids}) == 32


def test_a_store_without_the_capability_gets_random_ids():
    store = InMemoryKeyStore()
    assert not hasattr(store, "new_key_id")
    assert KEY_ID_RE.fullmatch(new_key_id(store, "org_1"))
    assert KeyManager(store).create_key("org_1", "billing-sync prod").key.key_id


def test_a_malformed_minted_id_is_refused():
    class Bad(InMemoryKeyStore):
        def new_key_id(self, org_id: str) -> str:
            return "NOT-AN-ID"

    with pytest.raises(TypeError, match="malformed key id"):
        KeyManager(Bad()).create_key("org_1", "billing-sync prod")


def test_one_orgs_minted_keys_share_one_nonce_slot_and_orgs_spread():
    # What layout.py says of {n:<key id>}: CRC16 is linear, so a minted id's
    # nonce slot follows its org's (documented, not a hole: nonces are per key).
    store = RedisKeyStore.__new__(RedisKeyStore)
    store.layout = Layout("scout")
    for org_id in AWKWARD:
        ids = [store.new_key_id(org_id) for _ in range(20)]
        assert len({slot_of(store.layout.nonces(k)) for k in ids}) == 1
    slots = {slot_of(store.layout.nonces(store.new_key_id(f"org_{n}"))) for n in range(200)}
    assert len(slots) > 150
