"""Legacy secrets sent as ``Bearer`` (issue 10): found by peppered digest, never by scan.

Old clients send the org's legacy secret exactly as they send any API key.
The verifier finds the one record through ``HMAC(pepper, secret)`` and
verifies it with argon2id as for Basic. These tests run on both drivers.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import secrets
import threading
from datetime import UTC, datetime

import anyio
import pytest

from scout_auth import (
    AsyncVerifier,
    CredentialKind,
    InMemoryKeyStore,
    KeyManager,
    LegacyPepper,
    LegacyRecord,
    OrgContext,
    Verifier,
)
from scout_auth._core.pepper import ENV_VAR, resolve_pepper, unknown_peppers
from scout_auth.exceptions import (
    ConfigurationError,
    InvalidKeyOperation,
    InvalidToken,
    LegacyBusy,
    LegacyDisabled,
    StoreUnavailable,
)
from tests._support import TEST_LEGACY_PEPPER, SpyHasher, SpyStore, cheap_hasher
from tests._support import basic_authorization as basic

SECRET = "old-system-secret-Zq8#"
ORG = "org_legacy"
PEPPER_A = "pepper-a-" + "a" * 40
PEPPER_B = "pepper-b-" + "b" * 40

LEGACY_CONTEXT = OrgContext(
    org_id=ORG,
    key_id=f"legacy:{ORG}",
    key_name="legacy",
    scopes=None,
    kind=CredentialKind.LEGACY,
)


@pytest.fixture
def store() -> SpyStore:
    return SpyStore()


@pytest.fixture
def manager(store) -> KeyManager:
    return KeyManager(store, password_hasher=cheap_hasher())


# -- accepted as Bearer, Basic unchanged ----------------------------------------


@pytest.mark.anyio
async def test_a_legacy_secret_is_accepted_as_bearer_and_as_basic(store, manager, make):
    manager.import_legacy_key(ORG, SECRET)
    verifier = make(store)
    assert await verifier.verify_authorization(f"Bearer {SECRET}") == LEGACY_CONTEXT
    assert await verifier.verify_token(SECRET) == LEGACY_CONTEXT
    assert await verifier.verify_authorization(basic(ORG, SECRET)) == LEGACY_CONTEXT
    assert await verifier.verify_legacy(ORG, SECRET) == LEGACY_CONTEXT


@pytest.mark.anyio
async def test_a_wrong_bearer_secret_is_refused_without_argon2(store, manager, make):
    manager.import_legacy_key(ORG, SECRET)
    hasher = SpyHasher()
    verifier = make(store, password_hasher=hasher)
    for wrong in (SECRET + "x", SECRET[:-1], SECRET.upper(), "x", "scout", "-" * 300):
        with pytest.raises(InvalidToken):
            await verifier.verify_authorization(f"Bearer {wrong}")
    assert hasher.verify_threads == []


@pytest.mark.anyio
async def test_a_thousand_random_bearer_tokens_cost_no_argon2_run(store, manager, make):
    """The no-amplification property: unknown tokens are a digest look-up each."""
    manager.import_legacy_key(ORG, SECRET)
    hasher = SpyHasher()
    verifier = make(store, password_hasher=hasher)
    store.calls.clear()
    for _ in range(1000):
        token = secrets.token_urlsafe(secrets.choice([8, 24, 32, 64]))
        with pytest.raises(InvalidToken):
            await verifier.verify_authorization(f"Bearer {token}")
    assert hasher.verify_threads == []  # 0 argon2 runs
    assert set(store.calls) == {"find_legacy"}
    assert len(store.calls) == 1000  # one indexed read each, no scan, no get_legacy


@pytest.mark.anyio
async def test_the_warm_path_serves_a_legacy_bearer_from_the_cache(store, manager, make):
    manager.import_legacy_key(ORG, SECRET)
    hasher = SpyHasher()
    verifier = make(store, password_hasher=hasher)
    await verifier.verify_authorization(f"Bearer {SECRET}")
    store.calls.clear()
    for _ in range(5):
        assert await verifier.verify_authorization(f"Bearer {SECRET}") == LEGACY_CONTEXT
    inner = getattr(verifier, "inner", verifier)
    assert inner.cached_authorization(f"Bearer {SECRET}") == LEGACY_CONTEXT
    assert store.calls == []
    assert len(hasher.verify_threads) == 1


@pytest.mark.anyio
async def test_disable_and_delete_reach_bearer_use_at_once(store, manager, make):
    manager.import_legacy_key(ORG, SECRET)
    verifier = make(store)
    assert await verifier.verify_token(SECRET) == LEGACY_CONTEXT  # now cached
    manager.disable_legacy(ORG)
    with pytest.raises(LegacyDisabled):
        await verifier.verify_token(SECRET)
    manager.enable_legacy(ORG)
    assert await verifier.verify_token(SECRET) == LEGACY_CONTEXT
    manager.delete_legacy_key(ORG)
    with pytest.raises(InvalidToken):
        await verifier.verify_token(SECRET)


@pytest.mark.anyio
async def test_a_reimported_secret_replaces_the_old_one_for_bearer(store, manager, make):
    manager.import_legacy_key(ORG, SECRET)
    verifier = make(store)
    assert await verifier.verify_token(SECRET) == LEGACY_CONTEXT
    manager.import_legacy_key(ORG, "the-new-secret")
    with pytest.raises(InvalidToken):
        await verifier.verify_token(SECRET)
    assert await verifier.verify_token("the-new-secret") == LEGACY_CONTEXT


@pytest.mark.anyio
async def test_usage_and_status_count_bearer_and_basic_alike(store, manager, make):
    manager.import_legacy_key(ORG, SECRET)
    verifier = make(store, usage_interval=3600)
    await verifier.verify_token(SECRET)
    await verifier.verify_authorization(basic(ORG, SECRET))
    inner = getattr(verifier, "inner", verifier)
    if isinstance(inner, AsyncVerifier):
        await inner.aflush_usage()
    else:
        inner.flush_usage()
    status = manager.legacy_status(ORG)
    assert status.requests == 2
    assert status.last_used_at is not None


@pytest.mark.anyio
async def test_concurrent_first_bearer_requests_run_argon2_once_off_the_loop(store, manager):
    manager.import_legacy_key(ORG, SECRET)
    hasher = SpyHasher()
    verifier = AsyncVerifier(store, password_hasher=hasher)
    results: list[object] = []
    loop_thread = threading.get_ident()

    async def request() -> None:
        results.append(await verifier.verify_token(SECRET))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(request)
    assert results == [LEGACY_CONTEXT] * 20
    assert len(hasher.verify_threads) == 1
    assert hasher.verify_threads[0] != loop_thread


def test_bearer_legacy_checks_share_the_bounded_argon2_pool(store, manager):
    """Past ``legacy_queue`` waiting checks, a Bearer legacy request is 503, not parked."""
    for n in range(3):
        manager.import_legacy_key(f"org_{n}", f"{SECRET}-{n}")
    release = threading.Event()

    def hold() -> None:
        release.wait(10)

    hasher = SpyHasher(gate=hold)
    verifier = Verifier(store, password_hasher=hasher, legacy_concurrency=1, legacy_queue=1)
    outcomes: list[object] = []

    def request(n: int) -> None:
        try:
            outcomes.append(verifier.verify_token(f"{SECRET}-{n}"))
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=request, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    while len(hasher.verify_threads) < 1:
        threading.Event().wait(0.01)
    threading.Event().wait(0.05)  # the second is queued
    with pytest.raises(LegacyBusy):
        verifier.verify_token(f"{SECRET}-2")
    release.set()
    for t in threads:
        t.join(10)
    assert [type(o) for o in outcomes] == [OrgContext, OrgContext]


# -- telling Org Credentials and legacy secrets apart --------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "token",
    [
        pytest.param("scout_sk_" + "a" * 70, id="malformed-org-credential"),
        pytest.param("SCOUT_SK_" + "a" * 70, id="upper-cased-prefix"),
        pytest.param("old\x00secret", id="nul"),
        pytest.param("old\tsecret", id="tab"),
        pytest.param("olé-secret", id="non-ascii"),
        pytest.param("old\x7fsecret", id="del"),
    ],
)
async def test_tokens_that_cannot_be_legacy_secrets_are_refused_before_the_store(
    store, manager, make, token
):
    manager.import_legacy_key(ORG, SECRET)
    verifier = make(store)
    store.calls.clear()
    with pytest.raises(InvalidToken):
        await verifier.verify_token(token)
    assert store.calls == []


def test_a_legacy_secret_may_not_look_like_an_org_credential(manager):
    for secret in ("scout_sk_abc", "Scout_SK_abc"):
        with pytest.raises(InvalidKeyOperation):
            manager.import_legacy_key(ORG, secret)


@pytest.mark.anyio
async def test_legacy_bearer_off_accepts_basic_only_and_needs_no_pepper(store, make, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    manager = KeyManager(store, password_hasher=cheap_hasher(), legacy_bearer=False)
    manager.import_legacy_key(ORG, SECRET)
    assert store.inner.get_legacy(ORG).lookup_digest is None
    verifier = make(store, legacy_bearer=False)
    assert await verifier.verify_authorization(basic(ORG, SECRET)) == LEGACY_CONTEXT
    store.calls.clear()
    with pytest.raises(InvalidToken):
        await verifier.verify_token(SECRET)
    assert store.calls == []


# -- digests: gained at first use, re-digested after a pepper rotation ----------


@pytest.mark.anyio
async def test_a_record_without_a_digest_gains_one_at_its_first_basic_use(store, make):
    KeyManager(store, password_hasher=cheap_hasher(), legacy_bearer=False).import_legacy_key(
        ORG, SECRET
    )
    verifier = make(store)
    with pytest.raises(InvalidToken):  # not findable yet: no digest
        await verifier.verify_token(SECRET)
    assert await verifier.verify_authorization(basic(ORG, SECRET)) == LEGACY_CONTEXT
    record = store.inner.get_legacy(ORG)
    assert record.lookup_digest == LegacyPepper(TEST_LEGACY_PEPPER).digest(SECRET)
    assert await make(store).verify_token(SECRET) == LEGACY_CONTEXT  # a fresh cache


@pytest.mark.anyio
async def test_a_wrong_basic_secret_writes_no_digest(store, make):
    KeyManager(store, password_hasher=cheap_hasher(), legacy_bearer=False).import_legacy_key(
        ORG, SECRET
    )
    verifier = make(store)
    with pytest.raises(InvalidToken):
        await verifier.verify_authorization(basic(ORG, SECRET + "x"))
    assert "set_legacy_digest" not in store.calls
    assert store.inner.get_legacy(ORG).lookup_digest is None


@pytest.mark.anyio
async def test_pepper_rotation_finds_old_digests_and_moves_them_to_the_new_one(store, make):
    old = LegacyPepper(PEPPER_A)
    rotated = LegacyPepper(PEPPER_B, PEPPER_A)
    KeyManager(store, password_hasher=cheap_hasher(), legacy_pepper=old).import_legacy_key(
        ORG, SECRET
    )
    assert store.inner.get_legacy(ORG).pepper_id == old.current_id
    assert await make(store, legacy_pepper=rotated).verify_token(SECRET) == LEGACY_CONTEXT
    record = store.inner.get_legacy(ORG)
    assert record.pepper_id == rotated.current_id
    assert record.lookup_digest == rotated.digest(SECRET)
    # The old pepper can go now: the record is found with the new one alone.
    assert await make(store, legacy_pepper=LegacyPepper(PEPPER_B)).verify_token(SECRET) == (
        LEGACY_CONTEXT
    )


@pytest.mark.anyio
async def test_a_failed_digest_write_never_fails_the_request(store, make, caplog):
    KeyManager(store, password_hasher=cheap_hasher(), legacy_bearer=False).import_legacy_key(
        ORG, SECRET
    )

    def broken(*args: object) -> bool:
        raise ConnectionError("store went away")

    async def abroken(*args: object) -> bool:
        raise ConnectionError("store went away")

    store.inner.set_legacy_digest = broken
    store.inner.aset_legacy_digest = abroken
    with caplog.at_level(logging.WARNING, logger="scout_auth"):
        assert await make(store).verify_authorization(basic(ORG, SECRET)) == LEGACY_CONTEXT
    assert "could not store the legacy look-up digest" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.anyio
async def test_a_store_that_answers_another_record_gets_nothing(make):
    """A store (or a race) that returns a record not holding the digest asked for."""

    class LyingStore(InMemoryKeyStore):
        def find_legacy(self, lookup_digest):
            return self.get_legacy("org_victim")

        async def afind_legacy(self, lookup_digest):
            return self.find_legacy(lookup_digest)

    store = LyingStore()
    KeyManager(store, password_hasher=cheap_hasher()).import_legacy_key("org_victim", SECRET)
    with pytest.raises(InvalidToken):
        await make(store).verify_token("a-different-secret")


@pytest.mark.anyio
async def test_find_legacy_failing_is_503_never_200(store, manager, make):
    manager.import_legacy_key(ORG, SECRET)

    def broken(digest: bytes) -> None:
        raise ConnectionError("down")

    async def abroken(digest: bytes) -> None:
        raise ConnectionError("down")

    store.inner.find_legacy = broken
    store.inner.afind_legacy = abroken
    with pytest.raises(StoreUnavailable):
        await make(store).verify_token(SECRET)


def test_two_orgs_with_one_secret_the_second_works_as_basic_only(store, caplog):
    manager = KeyManager(store, password_hasher=cheap_hasher())
    manager.import_legacy_key("org_first", SECRET)
    with caplog.at_level(logging.WARNING, logger="scout_auth"):
        record = manager.import_legacy_key("org_second", SECRET)
    assert record.lookup_digest is None
    assert "works as Basic only" in caplog.text
    verifier = Verifier(store, password_hasher=cheap_hasher())
    assert verifier.verify_token(SECRET).org_id == "org_first"
    assert verifier.verify_authorization(basic("org_second", SECRET)).org_id == "org_second"
    assert store.inner.get_legacy("org_second").lookup_digest is None  # never takes it


# -- configuration: missing, malformed or wrong peppers fail at startup ----------


class SharedStore(InMemoryKeyStore):
    """An in-memory store posing as one shared with other machines (no pepper of its own)."""

    def embedded_legacy_pepper(self) -> None:  # type: ignore[override]
        return None


def test_a_shared_store_without_a_pepper_is_a_startup_error(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    store = SharedStore()
    for build in (Verifier, AsyncVerifier):
        with pytest.raises(ConfigurationError, match=ENV_VAR):
            build(store)
        build(store, legacy_bearer=False)  # Basic only: fine
    manager = KeyManager(store, password_hasher=cheap_hasher())
    manager.create_key("org_a", "no pepper needed")  # everything but a legacy import works
    with pytest.raises(ConfigurationError, match="legacy-pepper new"):
        manager.import_legacy_key(ORG, SECRET)
    assert store.get_legacy(ORG) is None  # nothing half-written


def test_the_pepper_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_VAR, f"{PEPPER_B}, {PEPPER_A}")
    store = SharedStore()
    verifier = Verifier(store)
    assert verifier.legacy_pepper is not None
    assert verifier.legacy_pepper.ids == LegacyPepper(PEPPER_B, PEPPER_A).ids


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param(" , ", id="separators-only"),
        pytest.param("too-short-pepper-31-characters!", id="short"),
        pytest.param(PEPPER_A + ",too-short-pepper-31-characters!", id="one-of-two-short"),
        pytest.param(",".join([PEPPER_A] * 5) + ",too-short", id="five-peppers"),
    ],
)
def test_a_malformed_pepper_is_a_startup_error_that_does_not_echo_it(monkeypatch, value):
    monkeypatch.setenv(ENV_VAR, value)
    for build in (Verifier, KeyManager):
        with pytest.raises(ConfigurationError) as raised:
            build(InMemoryKeyStore())
        assert "too-short" not in str(raised.value)
        assert PEPPER_A not in str(raised.value)


def test_the_embedded_stores_need_no_setup(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    store = InMemoryKeyStore()
    KeyManager(store, password_hasher=cheap_hasher()).import_legacy_key(ORG, SECRET)
    assert Verifier(store, password_hasher=cheap_hasher()).verify_token(SECRET) == LEGACY_CONTEXT
    assert resolve_pepper(store, None, True) is not None


def test_a_store_digested_with_another_pepper_is_a_startup_error(monkeypatch):
    store = SharedStore()
    KeyManager(store, password_hasher=cheap_hasher(), legacy_pepper=PEPPER_A).import_legacy_key(
        ORG, SECRET
    )
    wrong = LegacyPepper(PEPPER_B)
    with pytest.raises(ConfigurationError, match=LegacyPepper(PEPPER_A).current_id) as raised:
        Verifier(store, legacy_pepper=wrong)
    assert PEPPER_A not in str(raised.value)
    assert PEPPER_B not in str(raised.value)
    Verifier(store, legacy_pepper=LegacyPepper(PEPPER_B, PEPPER_A))  # rotation: fine


def test_a_pepper_dropped_too_early_starts_and_the_report_names_it():
    """Some digests of a dropped pepper: the service starts; the status report lists them."""
    store = SharedStore()
    KeyManager(store, password_hasher=cheap_hasher(), legacy_pepper=PEPPER_A).import_legacy_key(
        "org_old", SECRET
    )
    KeyManager(store, password_hasher=cheap_hasher(), legacy_pepper=PEPPER_B).import_legacy_key(
        "org_new", "another-secret"
    )
    verifier = Verifier(store, legacy_pepper=PEPPER_B, password_hasher=cheap_hasher())
    assert unknown_peppers(store.legacy_digest_counts(), LegacyPepper(PEPPER_B)) == {
        LegacyPepper(PEPPER_A).current_id: 1
    }
    with pytest.raises(InvalidToken):  # until a Basic use or a re-import
        verifier.verify_token(SECRET)
    assert verifier.verify_authorization(basic("org_old", SECRET)).org_id == "org_old"
    assert verifier.verify_token(SECRET).org_id == "org_old"


def test_a_store_that_cannot_answer_at_startup_does_not_stop_the_service(caplog):
    class Down(SharedStore):
        def legacy_pepper_ids(self):
            raise ConnectionError("not up yet")

    with caplog.at_level(logging.WARNING, logger="scout_auth"):
        Verifier(Down(), legacy_pepper=PEPPER_A)
    assert "could not check the legacy pepper" in caplog.text


# -- the pepper is a secret --------------------------------------------------------


def test_the_pepper_never_shows_in_repr_pickle_or_errors(store):
    pepper = LegacyPepper(PEPPER_A, PEPPER_B)
    assert PEPPER_A not in repr(pepper)
    assert PEPPER_B not in repr(pepper)
    with pytest.raises(TypeError):
        pickle.dumps(pepper)
    verifier = Verifier(store, legacy_pepper=pepper)
    assert PEPPER_A not in repr(verifier)
    record = LegacyRecord(
        ORG, "$argon2id$x", datetime(2026, 1, 1, tzinfo=UTC), lookup_digest=b"\x01" * 32
    )
    assert "lookup_digest" not in repr(record)


def test_pepper_ids_are_stable_public_and_distinct():
    a, b = LegacyPepper(PEPPER_A), LegacyPepper(PEPPER_B)
    assert a.current_id == LegacyPepper(PEPPER_A).current_id
    assert a.current_id != b.current_id
    assert len(a.current_id) == 12
    assert int(a.current_id, 16) >= 0
    # The digest is keyed: the same secret under two peppers differs, and it
    # is no plain hash of the secret.
    assert a.digest(SECRET) != b.digest(SECRET)
    assert a.digest(SECRET) != hashlib.sha256(SECRET.encode()).digest()
