"""The receiver's parts: signatures, key documents, replay guards, report_leak, outages."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from scout_auth import AsyncKeyManager, InMemoryKeyStore, KeyManager
from scout_auth._leaks.flow import ReceiverSettings
from scout_auth._leaks.signature import verify_hmac
from scout_auth.exceptions import InvalidKeyOperation, StoreError, StoreUnavailable
from scout_auth.leaks import (
    InMemoryReplayGuard,
    KeyDocumentError,
    LeakReceiverApp,
    RedisReplayGuard,
    ScannerKeys,
    hmac_signature,
    parse_key_document,
)

from .conftest import cluster_client
from .scanner import HMAC_SECRET, MOUNT, Receiver, Scanner, labels, report


def test_key_documents_are_checked(scanner: Scanner) -> None:
    keys = parse_key_document(json.dumps(scanner.document()))
    assert set(keys) == set(scanner.keys)
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    ed_pem = ed.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    p384_pem = p384.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bad: Any
    for bad in (
        "not json",
        "[]",
        {"public_keys": []},
        {"public_keys": [{"key_identifier": "a", "key": "nope"}]},
        {"public_keys": [{"key_identifier": "a b", "key": ed_pem.decode()}]},
        {"public_keys": [{"key_identifier": "a", "key": ed_pem.decode()}]},
        {"public_keys": [{"key_identifier": "a", "key": p384_pem.decode()}]},
    ):
        with pytest.raises(KeyDocumentError):
            parse_key_document(bad)


def test_scanner_keys_reload_for_an_unknown_id_at_most_so_often(scanner: Scanner) -> None:
    now = [0.0]
    loads: list[int] = []
    documents = [Scanner(1).document(), scanner.document()]

    def loader() -> dict[str, Any]:
        loads.append(1)
        return documents[min(len(loads), 2) - 1]

    keys = ScannerKeys(loader, ttl=3600, refresh_after=60, clock=lambda: now[0])
    rotated_in = list(scanner.keys)[1]
    assert keys.get(rotated_in) is None  # the first document does not list it
    assert keys.get(rotated_in) is None
    assert len(loads) == 1  # not reloaded yet
    now[0] = 61
    assert keys.get(rotated_in) is not None
    assert len(loads) == 2


def test_scanner_keys_keep_the_last_good_document(tmp_path: Any, scanner: Scanner) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(scanner.document()))
    now = [0.0]
    keys = ScannerKeys(str(path), ttl=10, clock=lambda: now[0])
    assert keys.get(scanner.current) is not None
    path.write_text("broken")
    now[0] = 11
    assert keys.get(scanner.current) is not None  # logged, the old keys stay
    missing = ScannerKeys(str(tmp_path / "none.json"))
    with pytest.raises(StoreError):
        missing.get(scanner.current)


def test_no_key_document_is_a_503(scanner: Scanner) -> None:
    receiver = Receiver(
        "flask", InMemoryKeyStore(), scanner, scanner_keys=ScannerKeys("/nonexistent")
    )
    body = report("x")
    answer = receiver.post(body, scanner.sign(body))
    assert (answer.status, answer.json()["code"]) == (503, "store_unavailable")


def test_hmac_signature_forms() -> None:
    body = b"[]"
    header = hmac_signature(HMAC_SECRET, body)
    assert verify_hmac(HMAC_SECRET, header, body)
    assert verify_hmac(HMAC_SECRET, header[7:].upper(), body)
    assert not verify_hmac(HMAC_SECRET, header, body + b" ")
    assert not verify_hmac(HMAC_SECRET, "sha256=é", body)


def test_settings_are_checked_at_startup() -> None:
    with pytest.raises(ValueError, match="needs scanner_keys"):
        ReceiverSettings()
    with pytest.raises(ValueError, match="32 bytes"):
        ReceiverSettings(hmac_secret=b"short")
    with pytest.raises(InvalidKeyOperation):
        ReceiverSettings(has_scanner_keys=True, on_report="revoke")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        LeakReceiverApp(KeyManager(InMemoryKeyStore()), hmac_secret=HMAC_SECRET)  # type: ignore[arg-type]
    from scout_auth.leaks import leak_receiver_blueprint

    async def async_callback(key: Any, report: Any) -> None:
        pass

    with pytest.raises(TypeError):
        leak_receiver_blueprint(
            KeyManager(InMemoryKeyStore()), hmac_secret=HMAC_SECRET, on_leak=async_callback
        )


def test_memory_guard_window_and_bound() -> None:
    now = [0.0]
    guard = InMemoryReplayGuard(window=10, max_entries=2, clock=lambda: now[0])
    assert guard.claim(b"a")
    assert not guard.claim(b"a")
    guard.release(b"a")
    assert guard.claim(b"a")
    now[0] = 11
    assert guard.claim(b"a")  # the window passed
    assert guard.claim(b"b")
    assert guard.claim(b"c")
    assert len(guard._seen) == 2


@pytest.mark.redis
def test_redis_guard_is_shared(redis_url: str, redis_prefix: str) -> None:
    import redis
    import redis.asyncio

    one = RedisReplayGuard(redis.Redis.from_url(redis_url), prefix=redis_prefix, window=60)
    two = RedisReplayGuard(redis.Redis.from_url(redis_url), prefix=redis_prefix, window=60)
    assert one.claim(b"d1")
    assert not two.claim(b"d1")
    two.release(b"d1")
    assert one.claim(b"d1")

    async def run() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        guard = RedisReplayGuard(client, prefix=redis_prefix, window=60)
        assert not await guard.aclaim(b"d1")
        assert await guard.aclaim(b"d2")
        await guard.arelease(b"d2")
        assert await guard.aclaim(b"d2")
        await client.aclose()

    asyncio.run(run())
    broken = RedisReplayGuard(redis.Redis.from_url("redis://127.0.0.1:1/0"), prefix=redis_prefix)
    with pytest.raises(StoreError):
        broken.claim(b"d3")


@pytest.mark.redis
def test_redis_guard_is_shared_on_a_cluster(redis_cluster: Any, cluster_prefix: str) -> None:
    # Each digest is one key (in its own slot): a cluster client, sync or async, shares it.
    one = RedisReplayGuard(cluster_client(redis_cluster), prefix=cluster_prefix, window=60)
    two = RedisReplayGuard(cluster_client(redis_cluster), prefix=cluster_prefix, window=60)
    digests = [bytes([i]) * 32 for i in range(8)]  # spread over several slots
    for digest in digests:
        assert one.claim(digest)
        assert not two.claim(digest)
    two.release(digests[0])
    assert one.claim(digests[0])

    async def run() -> None:
        client = cluster_client(redis_cluster, asyncio=True)
        guard = RedisReplayGuard(client, prefix=cluster_prefix, window=60)
        assert not await guard.aclaim(digests[1])
        assert await guard.aclaim(b"fresh")
        await guard.arelease(b"fresh")
        assert await guard.aclaim(b"fresh")
        await client.aclose()

    asyncio.run(run())
    one.client.close()
    two.client.close()


def test_report_leak_on_the_manager() -> None:
    manager = KeyManager(InMemoryKeyStore())
    new = manager.create_key("org_1", "billing-sync prod")
    assert manager.report_leak("junk") is None
    assert manager.report_leak(new.token, actor="secret-scanner:x", on_report="disable") is not None
    with pytest.raises(InvalidKeyOperation):
        manager.report_leak(new.token, on_report="keep")  # type: ignore[arg-type]
    assert manager.report_leak(new.token, on_report="delete") is not None
    assert manager.report_leak(new.token) is None  # gone


class FlakyStore(InMemoryKeyStore):
    down = False

    def update_key(self, *args: Any) -> Any:
        if self.down:
            raise StoreUnavailable(retry_after=2)
        return super().update_key(*args)

    async def aupdate_key(self, *args: Any) -> Any:
        return self.update_key(*args)


@pytest.mark.parametrize("kind", ["starlette", "flask"])
def test_an_outage_is_503_and_the_retry_is_accepted(kind: str, scanner: Scanner) -> None:
    store = FlakyStore()
    admin = KeyManager(store)
    new = admin.create_key("org_1", "billing-sync prod")
    receiver = Receiver(kind, store, scanner)
    body = report(new.token)
    store.down = True
    answer = receiver.post(body, scanner.sign(body))
    assert (answer.status, answer.json()["code"]) == (503, "store_unavailable")
    assert answer.headers["retry-after"] == "2"
    store.down = False
    assert labels(receiver.post(body, scanner.sign(body))) == ["true_positive"]


def test_an_async_callback_runs_as_a_task(scanner: Scanner) -> None:
    store = InMemoryKeyStore()
    new = KeyManager(store).create_key("org_1", "billing-sync prod")
    done = threading.Event()
    seen: list[str] = []

    async def on_leak(key: Any, report: Any) -> None:
        await asyncio.sleep(0)
        seen.append(key.key_id)
        done.set()

    app = LeakReceiverApp(
        AsyncKeyManager(store),
        scanner_keys=ScannerKeys.from_document(scanner.document()),
        on_leak=on_leak,
    )
    with TestClient(Starlette(routes=[Mount(MOUNT, app=app)])) as client:
        body = report(new.token)
        assert client.post(MOUNT, content=body, headers=scanner.sign(body)).status_code == 200
        deadline = time.monotonic() + 5
        while not done.is_set() and time.monotonic() < deadline:
            client.get("/nothing")  # let the portal's loop run
            time.sleep(0.01)
    assert seen == [new.key.key_id]
