"""The receiver on both mountings, in memory and on Redis, with real ECDSA keys (issue 17)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from scout_auth import KeyManager, Verifier
from scout_auth.exceptions import AuthError, KeyDisabled, KeyNotFound
from scout_auth.leaks import InMemoryReplayGuard

from .scanner import Calls, Receiver, Scanner, hmac_headers, labels, report


@pytest.fixture(params=["starlette", "flask"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def admin(store: Any) -> KeyManager:
    return KeyManager(store, audit=store.audit_sink())


def refused(store: Any, token: str) -> AuthError | None:
    try:
        Verifier(store, cache_ttl=0, legacy_bearer=False).verify_token(token)
    except AuthError as exc:
        return exc
    return None


def test_a_real_key_is_disabled_and_labelled(
    kind: str, store: Any, scanner: Scanner, admin: KeyManager
) -> None:
    sink = store.audit_sink()
    calls = Calls()
    receiver = Receiver(kind, store, scanner, audit=sink, on_leak=calls)
    new = admin.create_key("org_leak", "billing-sync prod")
    other = admin.create_key("org_leak", "reports prod")
    body = report(
        new.token, source="commit", url="https://github.com/a/b/commit/1?token=" + new.token
    )
    answer = receiver.post(body, scanner.sign(body))
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == [
        {"token_raw": new.token, "token_type": "scout_api_key", "label": "true_positive"}
    ]
    assert isinstance(refused(store, new.token), KeyDisabled)
    assert refused(store, other.token) is None
    events = sink.query("org_leak").events
    # One op, one timestamp: the two events are ordered by their random ids.
    assert sorted(e.action for e in events[:2]) == ["disabled", "leaked"]
    leaked = next(e for e in events if e.action == "leaked")
    assert leaked.key_id == new.key.key_id
    assert leaked.actor == "secret-scanner:commit"
    assert leaked.path == "https://github.com/a/b/commit/1"  # query (and the token) gone
    assert new.token not in repr(events)
    assert calls.event.wait(5)
    key, leak, thread = calls.calls[0]
    assert key.key_id == new.key.key_id
    assert not key.enabled
    assert (leak.source, leak.scanner, leak.action) == ("commit", "github", "disable")
    assert thread.startswith("scout-auth-on-leak")
    assert new.token not in repr(leak)


def test_delete_policy(kind: str, store: Any, scanner: Scanner, admin: KeyManager) -> None:
    sink = store.audit_sink()
    receiver = Receiver(kind, store, scanner, audit=sink, on_report="delete")
    new = admin.create_key("org_del", "billing-sync prod")
    body = report(new.token)
    assert labels(receiver.post(body, scanner.sign(body))) == ["true_positive"]
    with pytest.raises(KeyNotFound):
        admin.get_key(new.key.key_id)
    assert sorted(e.action for e in sink.query("org_del").events[:2]) == ["deleted", "leaked"]


def test_mixed_true_and_false_positives(
    kind: str, store: Any, scanner: Scanner, admin: KeyManager
) -> None:
    receiver = Receiver(kind, store, scanner)
    real = admin.create_key("org_mix", "billing-sync prod")
    unknown = admin.create_key("org_mix", "deleted soon")
    admin.delete_key(unknown.key.key_id)
    other_seed = admin.create_key("org_mix", "someone else")
    key_id = real.key.key_id
    # A real key id with another key's seed (and a valid checksum): a forgery.
    from scout_auth._core.tokens import format_token, parse_token

    forged_seed = parse_token(other_seed.token)
    assert forged_seed is not None
    forged = format_token(key_id, forged_seed.seed)
    typo = real.token[:-1] + ("A" if real.token[-1] != "A" else "B")
    tokens = [forged, unknown.token, typo, "not a token", real.token, real.token]
    body = report(*tokens)
    answer = receiver.post(body, scanner.sign(body))
    assert answer.status == 200
    assert [i["token_raw"] for i in answer.json()] == tokens
    assert labels(answer) == ["false_positive"] * 4 + ["true_positive"] * 2
    assert not admin.get_key(key_id).enabled
    assert admin.get_key(other_seed.key.key_id).enabled


def test_an_already_disabled_key_is_a_true_positive_and_not_rewritten(
    kind: str, store: Any, scanner: Scanner, admin: KeyManager
) -> None:
    sink = store.audit_sink()
    receiver = Receiver(kind, store, scanner, audit=sink)
    new = admin.create_key("org_again", "billing-sync prod")
    admin.disable_key(new.key.key_id)
    body = report(new.token)
    assert labels(receiver.post(body, scanner.sign(body))) == ["true_positive"]
    assert [e.action for e in sink.query("org_again").events] == ["leaked", "disabled", "created"]


REFUSALS = [
    ("unsigned", lambda s, b: {}, 401, "unsigned"),
    (
        "no key id",
        lambda s, b: {"Github-Public-Key-Signature": s.sign(b)["Github-Public-Key-Signature"]},
        401,
        "unsigned",
    ),
    ("tampered", lambda s, b: s.sign(b.replace(b"content", b"contenT")), 401, "bad_signature"),
    ("wrong key", lambda s, b: s.sign(b, with_key=list(s.keys)[1]), 401, "bad_signature"),
    (
        "unknown key id",
        lambda s, b: {**s.sign(b), "Github-Public-Key-Identifier": "f" * 64},
        401,
        "unknown_key",
    ),
    (
        "junk signature",
        lambda s, b: {**s.sign(b), "Github-Public-Key-Signature": "!!notbase64"},
        401,
        "bad_signature",
    ),
    (
        "bad hmac",
        lambda s, b: {"X-Scanner-Signature-256": "sha256=" + "0" * 64},
        401,
        "bad_signature",
    ),
]


@pytest.mark.parametrize(
    ("case", "headers", "status", "code"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_refused_reports_change_nothing(
    kind: str,
    store: Any,
    scanner: Scanner,
    admin: KeyManager,
    case: str,
    headers: Any,
    status: int,
    code: str,
) -> None:
    sink = store.audit_sink()
    calls = Calls()
    receiver = Receiver(kind, store, scanner, audit=sink, on_leak=calls)
    new = admin.create_key("org_ref", "billing-sync prod")
    body = report(new.token)
    answer = receiver.post(body, headers(scanner, body))
    assert answer.status == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code
    assert new.token.encode() not in answer.body
    assert admin.get_key(new.key.key_id).enabled
    assert [e.action for e in sink.query("org_ref").events] == ["created"]
    assert not calls.calls


def test_a_replay_is_refused_and_a_new_report_is_not(
    kind: str, store: Any, scanner: Scanner, admin: KeyManager
) -> None:
    receiver = Receiver(kind, store, scanner)
    a = admin.create_key("org_rep", "billing-sync prod")
    body = report(a.token)
    assert receiver.post(body, scanner.sign(body)).status == 200
    admin.enable_key(a.key.key_id)
    again = receiver.post(body, scanner.sign(body))  # a fresh signature, the same body
    assert (again.status, again.json()["code"]) == (409, "replayed")
    assert admin.get_key(a.key.key_id).enabled
    other = report(a.token, source="issue")
    assert receiver.post(other, scanner.sign(other)).status == 200


def test_oversized_reports_are_refused_unread(
    kind: str, store: Any, scanner: Scanner, admin: KeyManager
) -> None:
    receiver = Receiver(kind, store, scanner, max_body=2000)
    new = admin.create_key("org_big", "billing-sync prod")
    body = report(new.token, url="https://example.com/" + "x" * 2000)
    answer = receiver.post(body, scanner.sign(body))
    assert (answer.status, answer.json()["code"]) == (413, "body_too_large")
    assert admin.get_key(new.key.key_id).enabled


def test_default_limit_is_one_mebibyte(kind: str, store: Any, scanner: Scanner) -> None:
    receiver = Receiver(kind, store, scanner)
    body = b"[" + b" " * (1024 * 1024) + b"]"
    assert receiver.post(body, scanner.sign(body)).status == 413
    small = b"[" + b" " * (1024 * 1024 - 2) + b"]"
    assert receiver.post(small, scanner.sign(small)).status == 200


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b"not json",
        b'[{"type": "x"}]',
        b'[{"token": 5}]',
        b'["scout_sk_x"]',
        b'[{"token": "t", "url": 3}]',
    ],
)
def test_malformed_signed_reports_are_400_and_not_remembered(
    kind: str, store: Any, scanner: Scanner, body: bytes
) -> None:
    guard = InMemoryReplayGuard()
    receiver = Receiver(kind, store, scanner, replay_guard=guard)
    answer = receiver.post(body, scanner.sign(body))
    assert (answer.status, answer.json()["code"]) == (400, "invalid_report")
    assert not guard._seen


def test_the_hmac_variant_takes_the_same_path(
    kind: str, store: Any, scanner: Scanner, admin: KeyManager
) -> None:
    calls = Calls()
    receiver = Receiver(kind, store, scanner, on_leak=calls)
    new = admin.create_key("org_hmac", "billing-sync prod")
    body = report(new.token, source="pastebin scraper")
    answer = receiver.post(body, hmac_headers(body))
    assert labels(answer) == ["true_positive"]
    assert not admin.get_key(new.key.key_id).enabled
    assert calls.event.wait(5)
    assert calls.calls[0][1].scanner == "hmac"
    assert calls.calls[0][0].key_id == new.key.key_id


def test_hmac_only_receiver_ignores_github_headers(kind: str, store: Any, scanner: Scanner) -> None:
    receiver = Receiver(kind, store, scanner, scanner_keys=None)
    body = report("x")
    assert receiver.post(body, scanner.sign(body)).json()["code"] == "unsigned"
    assert receiver.post(body, hmac_headers(body)).status == 200


def test_method_and_path(kind: str, store: Any, scanner: Scanner) -> None:
    receiver = Receiver(kind, store, scanner)
    assert receiver.post(b"", {}, method="GET").status == 405
    body = report("x")
    assert receiver.post(body, scanner.sign(body), path="/other").status == 404


def test_a_failing_callback_is_logged_not_raised(
    kind: str, store: Any, scanner: Scanner, admin: KeyManager, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Calls(fail=True)
    receiver = Receiver(kind, store, scanner, on_leak=calls)
    new = admin.create_key("org_cb", "billing-sync prod")
    body = report(new.token)
    with caplog.at_level(logging.ERROR, "scout_auth.leaks"):
        assert receiver.post(body, scanner.sign(body)).status == 200
        assert calls.event.wait(5)
        for _ in range(200):
            if "on_leak failed" in caplog.text:
                break
            import time

            time.sleep(0.01)
    assert "on_leak failed" in caplog.text
    assert new.token not in caplog.text


def test_both_mountings_answer_the_same_bytes(scanner: Scanner) -> None:
    from scout_auth import InMemoryKeyStore

    answers = []
    for kind in ("starlette", "flask"):
        store = InMemoryKeyStore()
        receiver = Receiver(kind, store, scanner)
        body = report("scout_sk_" + "a" * 70, "nope")
        ok = receiver.post(body, scanner.sign(body))
        bad = receiver.post(body, {})
        answers.append((ok.status, ok.body, bad.status, bad.body, json.loads(bad.body)["code"]))
    assert answers[0] == answers[1]
