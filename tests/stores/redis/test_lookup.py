"""A key look-up's round trips on one server and on a cluster (issue 15)."""

from __future__ import annotations

import uuid

import pytest
import redis

from scout_auth import generate_key_id
from scout_auth.exceptions import ConfigurationError, StoreUnavailable
from scout_auth.stores._redis.driver import RedisDriver
from scout_auth.stores._redis.needs import Batch, Call, Lua
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


@pytest.mark.parametrize("org_id", ["org_plain", AWKWARD_ORG])
def test_on_a_cluster_a_look_up_reads_the_directory_then_the_record(on_cluster, sent, org_id):
    # Directory and record are in two slots: no script may read both there.
    rec = record(org_id)
    on_cluster.add_key(rec)
    sent.clear()
    assert on_cluster.get_key(rec.key_id) == rec
    assert _round_trips(sent) == 2
    sent.clear()
    assert on_cluster.get_key(generate_key_id()) is None
    assert _round_trips(sent) == 1


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
