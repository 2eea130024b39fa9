"""A flood of wrong legacy secrets: bounded argon2, a negative cache, 503 beyond the queue.

Each wrong legacy secret costs an argon2id run (a worker thread, 64 MiB by
default). These tests hold the bounds: at most ``legacy_concurrency`` runs
at once, at most ``legacy_queue`` waiting, the rest refused at once with 503
``legacy_busy``; a repeated wrong secret answered without argon2, never a
correct one refused, and a change of the org's record taking effect at once.
No test depends on wall-clock time: slow hashers block on events, and every
wait has a deadlock guard only.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest
from starlette.testclient import TestClient
from werkzeug.test import Client

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth._core.legacy_guard import LegacyGuard
from scout_auth._core.problem import problem_for
from scout_auth._drivers.verifier import VerifierOptions
from scout_auth.exceptions import InvalidToken, LegacyBusy
from tests._support import AsAsync, Clock, SpyHasher, SpyStore, cheap_hasher
from tests._support import basic_authorization as basic
from tests.apps import flask_app, starlette_app, wsgi_app

SECRET = "old-system-secret-Zq8#"
GUARD = 30.0  # seconds: a deadlock guard, never a measurement


class HeldHasher(SpyHasher):
    """Counts argon2 checks running at once; each waits for ``release``."""

    def __init__(self) -> None:
        super().__init__(gate=self._hold)
        self.release = threading.Event()
        self.running = 0
        self.peak = 0
        self._count = threading.Lock()

    def _hold(self) -> None:
        with self._count:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            assert self.release.wait(GUARD), "the test never released the hasher"
        finally:
            with self._count:
                self.running -= 1


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.005)


async def await_until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(GUARD):
        while not condition():
            await anyio.sleep(0.005)


@pytest.fixture
def store() -> SpyStore:
    return SpyStore()


@pytest.fixture
def manager(store) -> KeyManager:
    manager = KeyManager(store, password_hasher=cheap_hasher())
    manager.import_legacy_key("org_legacy", SECRET)
    return manager


def _guard(verifier: Any) -> LegacyGuard:
    guard: LegacyGuard = (verifier.inner if isinstance(verifier, AsAsync) else verifier).legacy
    return guard


# -- configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({"legacy_concurrency": 0}, ValueError, id="no-concurrency"),
        pytest.param({"legacy_concurrency": 1.5}, TypeError, id="fractional-concurrency"),
        pytest.param({"legacy_concurrency": True}, TypeError, id="bool-concurrency"),
        pytest.param({"legacy_queue": -1}, ValueError, id="negative-queue"),
        pytest.param({"legacy_negative_ttl": -1}, ValueError, id="negative-ttl"),
        pytest.param({"legacy_negative_ttl": float("nan")}, ValueError, id="nan-ttl"),
        pytest.param({"legacy_negative_size": -1}, ValueError, id="negative-size"),
    ],
)
@pytest.mark.parametrize("cls", [Verifier, AsyncVerifier])
def test_bad_legacy_options_are_refused_in_the_constructor(cls, options, error):
    with pytest.raises(error):
        cls(InMemoryKeyStore(), **options)


def test_defaults_bound_argon2_to_two_running_and_sixteen_waiting():
    guard = Verifier(InMemoryKeyStore()).legacy
    assert (guard.concurrency, guard.queue, guard.ttl, guard.max_entries) == (2, 16, 60.0, 10_000)


# -- at most legacy_concurrency argon2 runs at once ----------------------------------


def test_threads_never_run_more_argon2_checks_than_the_limit(store, manager):
    hasher = HeldHasher()
    verifier = Verifier(store, password_hasher=hasher, legacy_concurrency=2, legacy_queue=20)
    results: list[object] = []

    def request(i: int) -> None:
        try:
            results.append(verifier.verify_legacy("org_legacy", f"wrong-{i}"))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    wait_until(lambda: verifier.legacy.admitted_count == 10 and hasher.running == 2)
    hasher.release.set()
    for t in threads:
        t.join(GUARD)
    assert hasher.peak == 2
    assert len(results) == 10
    assert all(isinstance(r, InvalidToken) for r in results)
    assert verifier.legacy.admitted_count == 0


@pytest.mark.anyio
async def test_tasks_never_run_more_argon2_checks_than_the_limit(store, manager):
    hasher = HeldHasher()
    verifier = AsyncVerifier(store, password_hasher=hasher, legacy_concurrency=2, legacy_queue=20)
    results: list[object] = []

    async def request(i: int) -> None:
        try:
            results.append(await verifier.verify_legacy("org_legacy", f"wrong-{i}"))
        except Exception as exc:
            results.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(request, i)
        await await_until(lambda: verifier.legacy.admitted_count == 10 and hasher.running == 2)
        hasher.release.set()
    assert hasher.peak == 2
    assert len(results) == 10
    assert all(isinstance(r, InvalidToken) for r in results)
    assert verifier.legacy.admitted_count == 0


@pytest.mark.anyio
async def test_argon2_does_not_need_anyios_default_thread_limiter(store, manager):
    # Starlette runs sync views in the default limiter's threads: a flood of
    # legacy checks must not compete for those tokens, nor wait for them.
    default = anyio.to_thread.current_default_thread_limiter()
    verifier = AsyncVerifier(store, password_hasher=cheap_hasher())
    borrowers = [object() for _ in range(int(default.total_tokens))]
    for borrower in borrowers:
        default.acquire_on_behalf_of_nowait(borrower)
    try:
        assert default.available_tokens == 0
        with anyio.fail_after(GUARD):
            ctx = await verifier.verify_legacy("org_legacy", SECRET)
        assert ctx.org_id == "org_legacy"
    finally:
        for borrower in borrowers:
            default.release_on_behalf_of(borrower)


# -- beyond concurrency + queue: 503 legacy_busy at once -------------------------------


def test_threads_beyond_the_queue_are_refused_at_once(store, manager):
    hasher = HeldHasher()
    verifier = Verifier(store, password_hasher=hasher, legacy_concurrency=1, legacy_queue=2)
    results: list[object] = []

    def request(i: int) -> None:
        try:
            results.append(verifier.verify_legacy("org_legacy", f"wrong-{i}"))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    wait_until(lambda: verifier.legacy.admitted_count == 3 and hasher.running == 1)
    with pytest.raises(LegacyBusy) as busy:  # answered while the others still wait
        verifier.verify_legacy("org_legacy", "one-too-many")
    hasher.release.set()
    for t in threads:
        t.join(GUARD)
    assert (busy.value.status, busy.value.code, busy.value.retry_after) == (503, "legacy_busy", 1)
    assert all(isinstance(r, InvalidToken) for r in results)
    assert len(hasher.verify_threads) == 3  # the refused one never ran argon2


@pytest.mark.anyio
async def test_tasks_beyond_the_queue_are_refused_at_once(store, manager):
    hasher = HeldHasher()
    verifier = AsyncVerifier(store, password_hasher=hasher, legacy_concurrency=1, legacy_queue=2)
    results: list[object] = []

    async def request(i: int) -> None:
        try:
            results.append(await verifier.verify_legacy("org_legacy", f"wrong-{i}"))
        except Exception as exc:
            results.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(request, i)
        await await_until(lambda: verifier.legacy.admitted_count == 3 and hasher.running == 1)
        with pytest.raises(LegacyBusy):
            await verifier.verify_legacy("org_legacy", "one-too-many")
        hasher.release.set()
    assert all(isinstance(r, InvalidToken) for r in results)
    assert len(hasher.verify_threads) == 3


@pytest.mark.anyio
async def test_a_full_queue_leaves_bearer_tokens_and_cached_secrets_alone(make, store, manager):
    token = manager.create_key("org_a", "billing-sync prod").token
    verifier = make(store, legacy_concurrency=1, legacy_queue=0)
    await verifier.verify_legacy("org_legacy", SECRET)  # cached from now on
    guard = _guard(verifier)
    with guard.admitted():  # every slot taken
        with pytest.raises(LegacyBusy):
            await verifier.verify_legacy("org_legacy", "wrong")
        assert (await verifier.verify_token(token)).org_id == "org_a"
        assert (await verifier.verify_legacy("org_legacy", SECRET)).org_id == "org_legacy"
    assert guard.admitted_count == 0
    with pytest.raises(InvalidToken):  # a slot free again: checked, and wrong
        await verifier.verify_legacy("org_legacy", "wrong")


def test_legacy_busy_is_a_503_with_retry_after_and_no_challenge():
    status, headers, body = problem_for(LegacyBusy())
    assert status == 503
    assert ("retry-after", "1") in headers
    assert not any(name == "www-authenticate" for name, _ in headers)
    assert json.loads(body)["code"] == "legacy_busy"


Answer = tuple[int, dict[str, str | None], bytes]


def _answers(store: InMemoryKeyStore, authorization: str) -> dict[str, Answer]:
    """Each adapter's answer while its verifier's every argon2 slot is taken."""
    options: VerifierOptions = {
        "legacy_concurrency": 1,
        "legacy_queue": 1,
        "password_hasher": cheap_hasher(),
    }
    results = {}
    headers = {"authorization": authorization}
    kept = ("content-type", "retry-after", "www-authenticate", "cache-control")
    async_verifier = AsyncVerifier(store, **options)
    with contextlib.ExitStack() as full:
        for _ in range(2):
            full.enter_context(async_verifier.legacy.admitted())
        with TestClient(starlette_app(async_verifier)) as tc:
            r = tc.get("/whoami", headers=headers)
        results["starlette"] = (r.status_code, {h: r.headers.get(h) for h in kept}, r.content)
    for name in ("flask", "wsgi"):
        verifier = Verifier(store, **options)
        client: Any = (
            flask_app(verifier).test_client() if name == "flask" else Client(wsgi_app(verifier))
        )
        with contextlib.ExitStack() as full:
            for _ in range(2):
                full.enter_context(verifier.legacy.admitted())
            r = client.get("/whoami", headers=headers)
        results[name] = (r.status_code, {h: r.headers.get(h) for h in kept}, r.data)
    return results


def test_every_adapter_answers_a_full_queue_with_503_legacy_busy():
    store = InMemoryKeyStore()
    KeyManager(store, password_hasher=cheap_hasher()).import_legacy_key("org_legacy", SECRET)
    results = _answers(store, basic("org_legacy", "wrong"))
    assert results["starlette"] == results["flask"] == results["wsgi"], results
    status, headers, body = results["starlette"]
    assert status == 503
    assert headers["retry-after"] == "1"
    assert headers["www-authenticate"] is None
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] == "legacy_busy"
    assert "wrong" not in body.decode()


# -- the negative cache: a repeated wrong secret costs no argon2 ----------------------


@pytest.mark.anyio
async def test_a_repeated_wrong_secret_is_answered_without_argon2(make, store, manager):
    hasher = SpyHasher()
    verifier = make(store, password_hasher=hasher)
    with pytest.raises(InvalidToken) as fresh:
        await verifier.verify_authorization(basic("org_legacy", "wrong"))
    for _ in range(5):
        with pytest.raises(InvalidToken) as repeated:
            await verifier.verify_authorization(basic("org_legacy", "wrong"))
        assert repeated.value.detail == fresh.value.detail
        assert repeated.value.subject is None
    assert len(hasher.verify_threads) == 1
    assert _guard(verifier).admitted_count == 0


@pytest.mark.anyio
async def test_a_wrong_secret_is_checked_again_after_the_ttl(make, store, manager):
    hasher = SpyHasher()
    clock = Clock()
    verifier = make(store, password_hasher=hasher, legacy_negative_ttl=60, clock=clock)
    for _ in range(2):
        with pytest.raises(InvalidToken):
            await verifier.verify_legacy("org_legacy", "wrong")
    clock.advance(59.9)
    with pytest.raises(InvalidToken):
        await verifier.verify_legacy("org_legacy", "wrong")
    assert len(hasher.verify_threads) == 1
    clock.advance(0.1)
    with pytest.raises(InvalidToken):
        await verifier.verify_legacy("org_legacy", "wrong")
    assert len(hasher.verify_threads) == 2


@pytest.mark.anyio
async def test_the_negative_cache_can_be_turned_off(make, store, manager):
    hasher = SpyHasher()
    verifier = make(store, password_hasher=hasher, legacy_negative_ttl=0)
    for _ in range(3):
        with pytest.raises(InvalidToken):
            await verifier.verify_legacy("org_legacy", "wrong")
    assert len(hasher.verify_threads) == 3
    assert len(_guard(verifier)) == 0


@pytest.mark.anyio
async def test_wrong_secrets_never_make_the_correct_one_fail(make, store, manager):
    hasher = SpyHasher()
    verifier = make(store, password_hasher=hasher, cache_ttl=0)
    near_misses = ["wrong", SECRET + " ", SECRET[:-1], SECRET.upper(), ""]
    for secret in near_misses * 2:
        with pytest.raises(InvalidToken):
            await verifier.verify_legacy("org_legacy", secret)
    assert len(hasher.verify_threads) == len(near_misses)
    for _ in range(3):  # no verified-credential cache: argon2 every time, and it matches
        assert (await verifier.verify_legacy("org_legacy", SECRET)).org_id == "org_legacy"
    assert len(hasher.verify_threads) == len(near_misses) + 3


@pytest.mark.anyio
async def test_the_right_secret_of_one_org_is_not_the_wrong_one_of_another(make, store, manager):
    manager.import_legacy_key("org_other", "another-secret")
    verifier = make(store)
    with pytest.raises(InvalidToken):
        await verifier.verify_legacy("org_other", SECRET)
    assert (await verifier.verify_legacy("org_legacy", SECRET)).org_id == "org_legacy"


CHANGES = [
    pytest.param(lambda m, s: m.import_legacy_key("org_legacy", s), id="import-it-as-new-secret"),
    pytest.param(
        lambda m, s: (m.delete_legacy_key("org_legacy"), m.import_legacy_key("org_legacy", s)),
        id="delete-then-import",
    ),
]


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.anyio
async def test_a_secret_cached_as_wrong_is_accepted_once_imported(make, store, manager, change):
    verifier = make(store, cache_ttl=3600)
    with pytest.raises(InvalidToken):
        await verifier.verify_legacy("org_legacy", "the-new-secret")
    assert len(_guard(verifier)) == 1
    change(manager, "the-new-secret")
    assert len(_guard(verifier)) == 0  # the event dropped the org's entries
    assert (await verifier.verify_legacy("org_legacy", "the-new-secret")).org_id == "org_legacy"
    with pytest.raises(InvalidToken):
        await verifier.verify_legacy("org_legacy", SECRET)


@pytest.mark.anyio
async def test_a_new_record_is_honoured_even_before_its_event_arrives(make, store, manager):
    # Another process imported the secret and this one missed the event: the
    # entry named the old stored hash, so it no longer matches anything.
    verifier = make(store, cache_ttl=0)
    with pytest.raises(InvalidToken):
        await verifier.verify_legacy("org_legacy", "the-new-secret")
    inner = verifier.inner if isinstance(verifier, AsAsync) else verifier
    inner._unsubscribe()
    manager.import_legacy_key("org_legacy", "the-new-secret")
    assert len(_guard(verifier)) == 1  # not told
    assert (await verifier.verify_legacy("org_legacy", "the-new-secret")).org_id == "org_legacy"


@pytest.mark.parametrize(
    "toggle",
    [
        pytest.param(lambda m: m.disable_legacy("org_legacy"), id="disable"),
        pytest.param(lambda m: m.enable_legacy("org_legacy"), id="enable"),
    ],
)
@pytest.mark.anyio
async def test_legacy_events_drop_only_that_orgs_entries(make, store, manager, toggle):
    manager.import_legacy_key("org_other", "another-secret")
    verifier = make(store)
    for org in ("org_legacy", "org_other"):
        with pytest.raises(InvalidToken):
            await verifier.verify_legacy(org, "wrong")
    assert len(_guard(verifier)) == 2
    toggle(manager)
    assert len(_guard(verifier)) == 1


@pytest.mark.anyio
async def test_a_flush_event_empties_the_negative_cache(make, store, manager):
    from scout_auth import KeyEvent

    verifier = make(store)
    with pytest.raises(InvalidToken):
        await verifier.verify_legacy("org_legacy", "wrong")
    inner = verifier.inner if isinstance(verifier, AsAsync) else verifier
    inner._on_event(KeyEvent("flush", "*"))
    assert len(_guard(verifier)) == 0


@pytest.mark.anyio
async def test_the_negative_cache_is_bounded_oldest_evicted_first(make, store, manager):
    hasher = SpyHasher()
    verifier = make(store, password_hasher=hasher, legacy_negative_size=3)
    for i in range(5):
        with pytest.raises(InvalidToken):
            await verifier.verify_legacy("org_legacy", f"wrong-{i}")
    assert len(_guard(verifier)) == 3
    assert len(hasher.verify_threads) == 5
    for i in (2, 3, 4):  # still remembered
        with pytest.raises(InvalidToken):
            await verifier.verify_legacy("org_legacy", f"wrong-{i}")
    assert len(hasher.verify_threads) == 5
    with pytest.raises(InvalidToken):  # evicted: checked again
        await verifier.verify_legacy("org_legacy", "wrong-0")
    assert len(hasher.verify_threads) == 6
    assert len(_guard(verifier)) == 3


def test_the_guard_holds_no_secret():
    store = InMemoryKeyStore()
    KeyManager(store, password_hasher=cheap_hasher()).import_legacy_key("org_legacy", SECRET)
    verifier = Verifier(store, password_hasher=cheap_hasher())
    wrong = "a-wrong-but-secret-guess-Xy7"
    with pytest.raises(InvalidToken):
        verifier.verify_legacy("org_legacy", wrong)
    guard = verifier.legacy
    held = repr(guard) + repr(vars(guard)) + repr(list(guard._wrong.items()))
    assert wrong not in held
    assert wrong.encode() not in b"".join(guard._wrong)
