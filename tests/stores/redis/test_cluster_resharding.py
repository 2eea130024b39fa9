"""Key look-ups while the org's hash slot migrates to another node (resharding).

Each test starts a private cluster (``tests/stores/redis_cluster.py``) and
moves one slot by hand, as ``redis-cli --cluster reshard`` does: the target
``IMPORTING``, the source ``MIGRATING``, then ``MIGRATE`` key by key. In
between, some of the org's keys are on one node and some on the other, in
either order; a key id minted into its org's slot has its directory entry
and its record in that slot. Whatever has moved, a look-up must read the
key as it is: a valid key is never "no such key" (401), a revoked one never
enabled.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from scout_auth import KeyUpdate
from scout_auth.stores.redis import RedisKeyStore
from scout_auth.testing._store import org, record
from tests.stores.redis_cluster import PrivateCluster, _cli, private_cluster

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[PrivateCluster]:
    """A cluster of this module alone: its slots are moved by hand."""
    with private_cluster(primaries=3) as cluster:
        yield cluster


def _node_id(cluster: PrivateCluster, port: int) -> str:
    return _cli(cluster.cli, port, "cluster", "myid").strip()


@pytest.mark.parametrize(
    ("moved_first", "revoked"),
    [
        pytest.param("directory", False, id="directory-moved-record-not-yet"),
        pytest.param("record", False, id="record-moved-directory-not-yet"),
        pytest.param("directory", True, id="revoked-directory-moved-record-not-yet"),
        pytest.param("record", True, id="revoked-record-moved-directory-not-yet"),
    ],
)
@pytest.mark.anyio
async def test_a_minted_key_reads_as_it_is_while_its_slot_migrates(
    own_cluster: PrivateCluster, moved_first: str, revoked: bool
) -> None:
    prefix = f"scout_reshard_{uuid.uuid4().hex[:8]}"
    store = RedisKeyStore.from_url(own_cluster.url, prefix=prefix, listen=False)
    org_id = org()
    made = record(org_id, key_id=store.new_key_id(org_id))
    store.add_key(made)
    if revoked:
        store.update_key(made.key_id, KeyUpdate(enabled=False))
    expected = store.get_key(made.key_id)
    assert expected is not None
    assert expected.enabled is not revoked
    layout = store.layout
    names = {
        "directory": layout.directory(made.key_id),
        "record": layout.key(org_id, made.key_id),
    }
    slot = key_slot(names["record"].encode())
    assert key_slot(names["directory"].encode()) == slot
    source = own_cluster.port_of_slot(slot)
    target = next(p for p in own_cluster.primary_ports() if p != source)
    source_id, target_id = _node_id(own_cluster, source), _node_id(own_cluster, target)
    cli = own_cluster.cli
    setslot = ("cluster", "setslot", str(slot))
    assert _cli(cli, target, *setslot, "importing", source_id).strip() == "OK"
    assert _cli(cli, source, *setslot, "migrating", target_id).strip() == "OK"
    try:
        moved = _cli(
            cli, source, "migrate", "127.0.0.1", str(target), "", "0", "5000",
            "keys", names[moved_first],
        )  # fmt: skip
        assert moved.strip() == "OK"
        assert store.get_key(made.key_id) == expected
        assert await store.aget_key(made.key_id) == expected
    finally:
        rest = _cli(cli, source, "cluster", "getkeysinslot", str(slot), "1000").split()
        if rest:
            _cli(cli, source, "migrate", "127.0.0.1", str(target), "", "0", "5000", "keys", *rest)
        for port in (target, source):
            _cli(cli, port, *setslot, "node", target_id)
        own_cluster.wait_ok()
        store.close()
    # Once the slot has moved, the key reads from its new node.
    after = RedisKeyStore.from_url(own_cluster.url, prefix=prefix, listen=False)
    assert after.get_key(made.key_id) == expected
    after.delete_key(made.key_id)
    assert after.get_key(made.key_id) is None
    after.close()
