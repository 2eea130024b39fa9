"""Legacy secrets as Bearer and Basic on every store, both drivers (issue 10).

The unit suites prove the flow on the in-memory store; this runs the same
story through the real back ends: the digest is written at import, found by
an indexed read, gained at the first Basic use by a record that had none,
and a flood of unknown tokens never reaches argon2.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from scout_auth import InMemoryKeyStore, KeyManager, LegacyPepper
from scout_auth.exceptions import InvalidToken, LegacyDisabled
from tests._support import TEST_LEGACY_PEPPER, SpyHasher, cheap_hasher
from tests._support import basic_authorization as basic
from tests.conftest import require_server

STORES = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    kind = request.param
    if kind == "memory":
        yield InMemoryKeyStore()
        return
    if kind == "redis":
        from scout_auth.stores.redis import RedisKeyStore

        require_server("Redis", "127.0.0.1", 6379)
        url = request.getfixturevalue("redis_url")
        built: Any = RedisKeyStore.from_url(url, prefix=request.getfixturevalue("redis_prefix"))
    else:
        from scout_auth.stores.sql import SQLKeyStore
        from tests.stores.conftest import PER_TEST_LOOP

        url = request.getfixturevalue(f"{kind}_url")
        built = SQLKeyStore(url, async_engine_options=PER_TEST_LOOP)
    yield built
    built.close()


@pytest.fixture
def cold(make):
    """``make`` with no cache: every call reaches the store."""
    return lambda store, **options: make(store, cache_ttl=0, **options)


def _org() -> str:
    return f"org_{uuid.uuid4().hex[:12]}"


@pytest.mark.anyio
async def test_bearer_and_basic_on_every_store(store, cold):
    org, secret = _org(), "legacy-" + secrets.token_urlsafe(18)
    manager = KeyManager(store, password_hasher=cheap_hasher())
    record = manager.import_legacy_key(org, secret)
    assert record.lookup_digest == LegacyPepper(TEST_LEGACY_PEPPER).digest(secret)
    verifier = cold(store)
    for value in (f"Bearer {secret}", basic(org, secret)):
        context = await verifier.verify_authorization(value)
        assert context.org_id == org
        assert context.kind == "legacy"
    manager.disable_legacy(org)
    with pytest.raises(LegacyDisabled):
        await verifier.verify_token(secret)
    manager.enable_legacy(org)
    manager.delete_legacy_key(org)
    with pytest.raises(InvalidToken):
        await verifier.verify_token(secret)


@pytest.mark.anyio
async def test_unknown_bearer_tokens_cost_no_argon2_on_every_store(store, cold):
    org, secret = _org(), "legacy-" + secrets.token_urlsafe(18)
    KeyManager(store, password_hasher=cheap_hasher()).import_legacy_key(org, secret)
    hasher = SpyHasher()
    verifier = cold(store, password_hasher=hasher)
    for _ in range(100):
        with pytest.raises(InvalidToken):
            await verifier.verify_token(secrets.token_urlsafe(24))
    assert hasher.verify_threads == []
    assert (await verifier.verify_token(secret)).org_id == org
    assert len(hasher.verify_threads) == 1


@pytest.mark.anyio
async def test_a_record_without_a_digest_gains_one_at_first_basic_use(store, cold):
    org, secret = _org(), "legacy-" + secrets.token_urlsafe(18)
    KeyManager(store, password_hasher=cheap_hasher(), legacy_bearer=False).import_legacy_key(
        org, secret
    )
    assert store.get_legacy(org).lookup_digest is None
    verifier = cold(store)
    with pytest.raises(InvalidToken):
        await verifier.verify_token(secret)
    assert (await verifier.verify_authorization(basic(org, secret))).org_id == org
    assert store.get_legacy(org).pepper_id == LegacyPepper(TEST_LEGACY_PEPPER).current_id
    assert (await verifier.verify_token(secret)).org_id == org
