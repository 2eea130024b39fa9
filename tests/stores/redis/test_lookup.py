"""A key look-up's round trips on one server and on a cluster (issue 15): one, on a
cluster too for key ids minted into their org's slot."""

from __future__ import annotations

import uuid

import pytest
import redis

from scout_auth import KeyManager, KeyRecord, KeyUpdate, Verifier, generate_key_id
from scout_auth._core.tokens import parse_token
from scout_auth.exceptions import ConfigurationError, StoreUnavailable
from scout_auth.stores._redis.driver import RedisDriver
from scout_auth.stores._redis.needs import Batch, Call, Lua
from scout_auth.stores._redis.slots import slot_of
from scout_auth.stores.redis import RedisKeyStore
from scout_auth.testing._store import org, record

pytestmark = pytest.mark.redis

# Ids that need every escape of a key name (see Layout): the script must name
# the record exactly as Layout does.
AWKWARD_ORG = "org%7B{x}:y%"


@pytest.fixture
def sent(monkeypatch):
    """The needs the Redis drivers sent (sync and async), in order."""
    needs: list[object] = []
    send, asend = RedisDriver._send, RedisDriver._asend

    def counted(self, client, need):
        needs.append(need)
        return send(self, client, need)

    async def acounted(self, client, need):
        needs.append(need)
        return await asend(self, client, need)

    monkeypatch.setattr(RedisDriver, "_send", counted)
    monkeypatch.setattr(RedisDriver, "_asend", acounted)
    return needs


def _round_trips(needs: list[object]) -> int:
    # A NOSCRIPT fallback is inside one _send; Batch and Lua are one round trip each.
    return sum(isinstance(n, Call | Batch | Lua) for n in needs)


@pytest.fixture
def one_server(redis_url, redis_prefix):
    store = RedisKeyStore.from_url(redis_url, prefix=f"{redis_prefix}:l1", listen=False)
    yield store
    store.close()


@pytest.fixture
def on_cluster(cluster, redis_prefix):
    address, _ = cluster
    store = RedisKeyStore.from_url(address.url, prefix=f"{redis_prefix}:lc", listen=False)
    yield store
    store.close()


@pytest.mark.parametrize("org_id", ["org_plain", AWKWARD_ORG])
def test_on_one_server_a_look_up_is_one_round_trip(one_server, sent, org_id):
    rec = record(org_id)
    one_server.add_key(rec)
    sent.clear()
    assert one_server.get_key(rec.key_id) == rec
    assert _round_trips(sent) == 1
    sent.clear()
    assert one_server.get_key(generate_key_id()) is None
    assert _round_trips(sent) == 1


@pytest.mark.anyio
async def test_on_one_server_an_async_look_up_is_one_round_trip(one_server, sent):
    rec = record(AWKWARD_ORG)
    await one_server.aadd_key(rec)
    sent.clear()
    assert await one_server.aget_key(rec.key_id) == rec
    assert await one_server.aget_key(generate_key_id()) is None
    assert _round_trips(sent) == 2


def test_an_orphan_directory_entry_reads_as_no_key(one_server, sent):
    key_id = generate_key_id()
    one_server.connection.sync.set(one_server.layout.directory(key_id), org())
    assert one_server.get_key(key_id) is None


@pytest.fixture
def to_nodes(monkeypatch):
    """``(node port, command)`` of every command the cluster clients sent (sync and async)."""
    import redis.asyncio.cluster
    import redis.cluster

    commands: list[tuple[int, str]] = []
    send = redis.cluster.RedisCluster._execute_command
    asend = redis.asyncio.cluster.RedisCluster._execute_command

    def counted(self, target_node, *args, **kwargs):
        commands.append((int(target_node.port), str(args[0]).upper()))
        return send(self, target_node, *args, **kwargs)

    async def acounted(self, target_node, *args, **kwargs):
        commands.append((int(target_node.port), str(args[0]).upper()))
        return await asend(self, target_node, *args, **kwargs)

    monkeypatch.setattr(redis.cluster.RedisCluster, "_execute_command", counted)
    monkeypatch.setattr(redis.asyncio.cluster.RedisCluster, "_execute_command", acounted)
    return commands


def _minted(store: RedisKeyStore, org_id: str) -> KeyRecord:
    return record(org_id, key_id=store.new_key_id(org_id))


@pytest.mark.parametrize("org_id", ["org_plain", AWKWARD_ORG, "orgé東京{}:%" * 10])
def test_on_a_cluster_a_minted_key_id_is_one_command_to_one_node(
    on_cluster, sent, to_nodes, org_id
):
    rec = _minted(on_cluster, org_id)
    on_cluster.add_key(rec)
    assert on_cluster.get_key(rec.key_id) == rec  # loads the script on that node
    sent.clear()
    to_nodes.clear()
    assert on_cluster.get_key(rec.key_id) == rec
    assert _round_trips(sent) == 1
    assert len(to_nodes) == 1
    assert to_nodes[0][1] == "EVALSHA"
    # Revocation is seen by the same single read.
    on_cluster.update_key(rec.key_id, KeyUpdate(enabled=False))
    to_nodes.clear()
    got = on_cluster.get_key(rec.key_id)
    assert got is not None
    assert not got.enabled
    assert len(to_nodes) == 1
    on_cluster.delete_key(rec.key_id)
    to_nodes.clear()
    assert on_cluster.get_key(rec.key_id) is None
    assert len(to_nodes) == 1


@pytest.mark.anyio
async def test_on_a_cluster_an_async_look_up_of_a_minted_key_id_is_one_command(
    on_cluster, to_nodes
):
    rec = _minted(on_cluster, AWKWARD_ORG)
    await on_cluster.aadd_key(rec)
    assert await on_cluster.aget_key(rec.key_id) == rec
    to_nodes.clear()
    assert await on_cluster.aget_key(rec.key_id) == rec
    assert [c for _, c in to_nodes] == ["EVALSHA"]
    await on_cluster.adelete_key(rec.key_id)


def test_on_a_cluster_an_old_key_id_on_another_node_takes_two_round_trips(
    on_cluster, cluster, sent, to_nodes
):
    # Key ids minted before (random, not in the org's slot) keep working: the
    # script finds the record is on another node and answers the org.
    _, client = cluster
    layout = on_cluster.layout

    def node(name: str) -> int:
        return int(client.get_node_from_key(name).port)

    while True:
        rec = record(org())
        if node(layout.directory(rec.key_id)) != node(layout.key(rec.org_id, rec.key_id)):
            break
    on_cluster.add_key(rec)
    assert on_cluster.get_key(rec.key_id) == rec
    sent.clear()
    to_nodes.clear()
    assert on_cluster.get_key(rec.key_id) == rec
    assert _round_trips(sent) == 2
    assert [p for p, _ in to_nodes] == [
        node(layout.directory(rec.key_id)),
        node(layout.key(rec.org_id, rec.key_id)),
    ]
    on_cluster.update_key(rec.key_id, KeyUpdate(enabled=False))
    got = on_cluster.get_key(rec.key_id)
    assert got is not None
    assert not got.enabled
    on_cluster.delete_key(rec.key_id)
    assert on_cluster.get_key(rec.key_id) is None


def test_on_a_cluster_an_unknown_id_is_one_round_trip(on_cluster, sent):
    assert on_cluster.get_key(generate_key_id()) is None
    sent.clear()
    assert on_cluster.get_key(generate_key_id()) is None
    assert _round_trips(sent) == 1


def test_the_key_manager_mints_ids_in_the_org_slot_on_create_and_rotate(on_cluster, to_nodes):
    manager = KeyManager(on_cluster)
    new = manager.create_key(AWKWARD_ORG, "billing-sync prod")
    layout = on_cluster.layout
    org_slot = slot_of(layout.key(AWKWARD_ORG, new.key.key_id))
    assert slot_of(layout.directory(new.key.key_id)) == org_slot
    rotated = manager.rotate_key(new.key.key_id)
    assert slot_of(layout.directory(rotated.key.key_id)) == org_slot
    assert parse_token(rotated.token) is not None
    verifier = Verifier(on_cluster, cache_ttl=0, legacy_bearer=False)
    assert verifier.verify_token(rotated.token).key_id == rotated.key.key_id
    to_nodes.clear()
    assert on_cluster.get_key(rotated.key.key_id) is not None
    assert len(to_nodes) == 1


def test_a_plain_client_whose_script_meets_a_record_on_another_node_is_a_configuration_error(
    cluster, redis_prefix, monkeypatch
):
    from scout_auth.stores._redis import cluster as _redis_cluster

    monkeypatch.setattr(_redis_cluster, "_reported", set())
    address, client = cluster
    port = int(address.node_url.rsplit(":", 1)[1].split("/")[0])
    prefix = f"{redis_prefix}:lm{uuid.uuid4().hex[:6]}"
    on_cluster = RedisKeyStore.from_url(address.url, prefix=prefix, listen=False)
    plain = RedisKeyStore.from_url(address.node_url, prefix=prefix, listen=False)
    layout = on_cluster.layout

    def here(name: str) -> bool:
        return bool(client.get_node_from_key(name).port == port)

    while True:  # a key whose directory this node serves and whose record it does not
        rec = record(org())
        if here(layout.directory(rec.key_id)) and not here(layout.key(rec.org_id, rec.key_id)):
            break
    on_cluster.add_key(rec)
    with pytest.raises(ConfigurationError, match=r"redis\+cluster://") as caught:
        plain.get_key(rec.key_id)
    assert not isinstance(caught.value, StoreUnavailable)
    assert isinstance(caught.value.__cause__, redis.exceptions.ResponseError)
    on_cluster.delete_key(rec.key_id)
    on_cluster.close()
    plain.close()
