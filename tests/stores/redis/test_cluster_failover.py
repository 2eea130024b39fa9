"""Redis Cluster failover under a running service (issue 11).

Each test starts a private cluster of three primaries and three replicas
(``tests/stores/redis_cluster.py``) and kills one of *its* primaries; it
never touches the session's shared cluster (``$SCOUT_TEST_REDIS_CLUSTER_URL``,
which other tests use) nor the Redis on 6379. The primary killed is the one
serving both the change feed's channel and the key's org, so the requests
and the feed both lose their node. ``cluster-node-timeout`` is one second:
the replica takes over within a few.

What a service on ``redis+cluster://`` must show: 503 with ``Retry-After``
while no primary serves the slot (never 500, never 200 for a key it could
not read), then 200 again without a restart; the feed subscribes again on
the promoted replica (even when every request runs on the asyncio client,
which is not the client the feed uses) and revocations arrive through it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from redis.crc import key_slot
from starlette.testclient import TestClient

from examples.starlette_app import create_app
from scout_auth import KeyManager, Verifier
from scout_auth.exceptions import StoreUnavailable
from scout_auth.stores.redis import RedisKeyStore
from scout_auth.testing._propagation import wait_until
from scout_auth.testing._store import org
from tests.stores.redis_cluster import PrivateCluster, private_cluster

pytestmark = pytest.mark.redis

#: How long the test waits for service to come back (the replica usually takes 2-3 s).
RECOVERY = 30.0


@pytest.fixture
def own_cluster() -> Iterator[PrivateCluster]:
    """A cluster of this test alone: it is about to lose a primary."""
    with private_cluster(primaries=3, replicas=1, node_timeout_ms=1000) as cluster:
        yield cluster


def _stores(cluster: PrivateCluster) -> tuple[RedisKeyStore, RedisKeyStore]:
    prefix = f"scout_failover_{uuid.uuid4().hex[:8]}"
    reader = RedisKeyStore.from_url(cluster.url, prefix=prefix)  # the service's
    writer = RedisKeyStore.from_url(cluster.url, prefix=prefix, listen=False)  # an admin's
    assert reader.wait_listening(5)
    return reader, writer


def _org_on(cluster: PrivateCluster, store: RedisKeyStore, port: int) -> str:
    while True:
        o = org()
        if cluster.port_of_slot(key_slot(store.layout.index(o).encode())) == port:
            return o


def test_a_killed_primary_is_503_for_seconds_then_service_and_the_feed_resume(own_cluster):
    reader, writer = _stores(own_cluster)
    victim = own_cluster.port_of_slot(key_slot(reader.layout.channel.encode()))
    manager = KeyManager(writer)
    new = manager.create_key(_org_on(own_cluster, writer, victim), "billing sync")
    headers = {"authorization": f"Bearer {new.token}"}
    assert reader._listener is not None
    subscriptions = reader._listener.subscriptions
    # cache_ttl=0: every request reads the cluster, on the asyncio cluster client.
    with TestClient(create_app(reader, cache_ttl=0)) as http:
        assert http.get("/files", headers=headers).status_code == 200
        own_cluster.wait_replicated(victim)  # else the promoted replica may lack the key
        own_cluster.kill(victim)
        killed = time.monotonic()
        answers: list[tuple[float, int, str | None]] = []
        while time.monotonic() - killed < RECOVERY:
            answer = http.get("/files", headers=headers)
            answers.append(
                (time.monotonic() - killed, answer.status_code, answer.headers.get("retry-after"))
            )
            if answer.status_code == 200 and any(code == 503 for _, code, _ in answers):
                break
            time.sleep(0.05)
    codes = [code for _, code, _ in answers]
    assert set(codes) <= {200, 503}, answers  # never 500, never 401 for a key it could not read
    assert 503 in codes, "the kill did not reach the requests"
    assert codes[-1] == 200, f"no service {RECOVERY} s after the kill: {answers[-3:]}"
    assert all(after for _, code, after in answers if code == 503)  # Retry-After on every 503
    outage = max(t for t, code, _ in answers if code == 503)
    assert outage < RECOVERY
    # The feed's node died too: it subscribes again, on the promoted replica.
    assert reader.wait_listening(15), "the change feed did not come back after the failover"
    assert reader._listener.subscriptions > subscriptions
    # ...and carries revocations: a long-cached key is refused within moments.
    verifier = Verifier(reader, cache_ttl=3600)
    verifier.verify_token(new.token)
    manager.disable_key(new.key.key_id)
    assert wait_until(lambda: _refused(verifier, new.token), timeout=10)
    reader.close()
    writer.close()


def test_sync_calls_fail_as_unavailable_during_the_failover_and_recover(own_cluster):
    reader, writer = _stores(own_cluster)
    victim = own_cluster.primary_ports()[0]
    o = _org_on(own_cluster, writer, victim)
    new = KeyManager(writer).create_key(o, "ci deploys")
    own_cluster.wait_replicated(victim)
    own_cluster.kill(victim)
    seen: set[str] = set()
    deadline = time.monotonic() + RECOVERY
    while time.monotonic() < deadline:
        try:
            got = reader.get_key(new.key.key_id)
        except StoreUnavailable:
            seen.add("503")
            time.sleep(0.05)
            continue
        assert got is not None  # the promoted replica had it
        assert got.key_id == new.key.key_id
        if "503" in seen:
            break
    else:
        pytest.fail(f"the sync client did not recover within {RECOVERY} s")
    assert [k.key_id for k in reader.list_keys(o)] == [new.key.key_id]
    reader.close()
    writer.close()


def _refused(verifier: Verifier, token: str) -> bool:
    from scout_auth.exceptions import KeyDisabled

    try:
        verifier.verify_token(token)
    except KeyDisabled:
        return True
    return False
