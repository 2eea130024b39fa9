"""No secret ever shows up in a repr, a message or a log line.

The secrets: the bearer token, its Ed25519 seed (raw, hex, or as the base62
text inside the token), a legacy secret and the Basic header carrying it.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient
from werkzeug.test import Client

from scout_auth import (
    AsyncKeyManager,
    AsyncVerifier,
    InMemoryKeyStore,
    KeyManager,
    NewKey,
    Verifier,
)
from scout_auth._core.credentials import parse_authorization
from scout_auth._core.flow import CheckLegacySecret
from scout_auth._core.lifecycle import HashSecret
from scout_auth._core.tokens import format_token, parse_token
from scout_auth.exceptions import AuthError, KeyNotFound
from tests._support import T0, Clock, cheap_hasher
from tests.apps import starlette_app, wsgi_app

LEGACY_SECRET = "legacy-Secret-9f2c!"


@dataclass
class Secrets:
    new: NewKey
    token: str
    seed: bytes

    def forms(self) -> list[str]:
        basic = base64.b64encode(f"org_legacy:{LEGACY_SECRET}".encode()).decode()
        return [
            self.token,
            self.token[-49:],  # seed text + checksum
            self.token[-49:-6],  # seed text
            self.seed.hex(),
            repr(self.seed),
            str(list(self.seed)),
            base64.b64encode(self.seed).decode(),
            LEGACY_SECRET,
            basic,
        ]

    def assert_absent(self, text: str, where: str = "") -> None:
        for form in self.forms():
            assert form not in text, f"secret form {form[:12]}… leaked in {where or text!r}"


def make_secrets(store: InMemoryKeyStore, clock: Clock | None = None) -> Secrets:
    manager = KeyManager(store, password_hasher=cheap_hasher(), clock=clock or Clock())
    new = manager.create_key("org_1", "billing-sync prod", scopes=["drive:read"])
    manager.import_legacy_key("org_legacy", LEGACY_SECRET)
    parsed = parse_token(new.token)
    assert parsed is not None
    return Secrets(new=new, token=new.token, seed=parsed.seed)


def shown(obj: object) -> str:
    return f"{obj!r}\n{obj!s}"


def test_records_credentials_and_contexts_hide_the_secret():
    store = InMemoryKeyStore()
    s = make_secrets(store)
    legacy = store.get_legacy("org_legacy")
    assert legacy is not None
    parsed = parse_token(s.token)
    basic = base64.b64encode(f"org_legacy:{LEGACY_SECRET}".encode()).decode()
    verifier = Verifier(store, password_hasher=cheap_hasher())
    objects: dict[str, object] = {
        "NewKey": s.new,
        "KeyRecord": s.new.key,
        "LegacyRecord": legacy,
        "ParsedToken": parsed,
        "BearerCredential": parse_authorization(f"Bearer {s.token}"),
        "LegacyCredential": parse_authorization(f"Basic {basic}"),
        "OrgContext": verifier.verify_token(s.token),
        "legacy OrgContext": verifier.verify_legacy("org_legacy", LEGACY_SECRET),
        "CheckLegacySecret": CheckLegacySecret(legacy, LEGACY_SECRET),
        "HashSecret": HashSecret(LEGACY_SECRET),
        "store": store,
        "Verifier": verifier,
        "AsyncVerifier": AsyncVerifier(store),
        "KeyManager": KeyManager(store),
        "AsyncKeyManager": AsyncKeyManager(store),
    }
    for where, obj in objects.items():
        s.assert_absent(shown(obj), where)
    # The hash is not the secret, but it is an offline-attack target: not in reprs either.
    assert legacy.secret_hash not in shown(legacy) + shown(store)
    # NewKey still says which key it is.
    assert s.new.key.key_id in repr(s.new)


class FailingStore(InMemoryKeyStore):
    failing = False

    def get_key(self, key_id):
        if self.failing:
            raise ConnectionError(f"cannot fetch {key_id}")
        return super().get_key(key_id)

    def get_legacy(self, org_id):
        if self.failing:
            raise ConnectionError("cannot fetch")
        return super().get_legacy(org_id)


def _errors_while_verifying(store: FailingStore, s: Secrets, clock: Clock) -> list[AuthError]:
    verifier = Verifier(store, password_hasher=cheap_hasher(), clock=clock, cache_ttl=0)
    manager = KeyManager(store, clock=clock)
    parsed = parse_token(s.token)
    assert parsed is not None
    disabled = manager.create_key("org_1", "paused partner")
    manager.disable_key(disabled.key.key_id)
    expiring = manager.create_key("org_1", "old import", expires_at=T0 + timedelta(seconds=1))
    attempts: list[tuple[str, Any]] = [
        ("wrong secret", lambda: verifier.verify_token(format_token(parsed.key_id, bytes(32)))),
        ("unknown key", lambda: verifier.verify_token(format_token("z" * 20, parsed.seed))),
        ("typo", lambda: verifier.verify_token(s.token[:-1] + "!")),
        ("truncated", lambda: verifier.verify_token(s.token[:-1])),
        ("scope", lambda: verifier.verify_token(s.token, required_scopes=["admin"])),
        ("two tokens", lambda: verifier.verify_authorization(f"Bearer {s.token}, {s.token}")),
        ("huge", lambda: verifier.verify_authorization(f"Bearer {s.token}" * 100)),
        ("scheme", lambda: verifier.verify_authorization(f"Token {s.token}")),
        ("disabled", lambda: verifier.verify_token(disabled.token)),
        ("legacy wrong", lambda: verifier.verify_legacy("org_legacy", LEGACY_SECRET + "x")),
        ("legacy org", lambda: verifier.verify_legacy("nobody", LEGACY_SECRET)),
    ]
    errors = []
    for _, attempt in attempts:
        with pytest.raises(AuthError) as info:
            attempt()
        errors.append(info.value)
    clock.advance(2)
    with pytest.raises(AuthError) as expired:
        verifier.verify_token(expiring.token)
    errors.append(expired.value)
    store.failing = True
    for attempt in (
        lambda: verifier.verify_token(s.token),
        lambda: verifier.verify_legacy("org_legacy", LEGACY_SECRET),
    ):
        with pytest.raises(AuthError) as down:
            attempt()
        errors.append(down.value)
    return errors


def test_no_error_raised_while_verifying_carries_the_secret():
    store = FailingStore()
    clock = Clock()
    s = make_secrets(store, clock)
    errors = _errors_while_verifying(store, s, clock)
    codes = {e.code for e in errors}
    assert codes == {
        "invalid_token",
        "invalid_request",
        "missing_credentials",
        "insufficient_scope",
        "key_disabled",
        "key_expired",
        "store_unavailable",
    }
    for exc in errors:
        chain: BaseException | None = exc
        while chain is not None:  # the error and whatever it was raised from
            s.assert_absent(shown(chain) + repr(chain.args) + repr(vars(chain)), repr(exc))
            chain = chain.__cause__ or chain.__context__


def test_key_not_found_does_not_echo_a_token_pasted_as_a_key_id():
    store = InMemoryKeyStore()
    s = make_secrets(store)
    manager = KeyManager(store)
    for operation in (manager.get_key, manager.disable_key, manager.delete_key):
        with pytest.raises(KeyNotFound) as info:
            operation(s.token)
        s.assert_absent(shown(info.value), operation.__name__)


def test_log_output_across_a_full_cycle_through_both_middlewares(caplog):
    caplog.set_level(logging.DEBUG)
    store = FailingStore()
    clock = Clock()
    s = make_secrets(store, clock)
    manager = KeyManager(store, password_hasher=cheap_hasher(), clock=clock)
    rotated = manager.rotate_key(s.new.key.key_id, grace=timedelta(hours=1))
    parsed = parse_token(s.token)
    assert parsed is not None
    basic_ok = base64.b64encode(f"org_legacy:{LEGACY_SECRET}".encode()).decode()
    basic_bad = base64.b64encode(f"org_legacy:{LEGACY_SECRET}x".encode()).decode()
    requests = [
        {"authorization": f"Bearer {s.token}"},
        {"authorization": f"Bearer {rotated.token}"},
        {"authorization": f"Bearer {format_token(parsed.key_id, bytes(32))}"},
        {"authorization": f"Bearer {s.token[:-1]}!"},
        {"authorization": f"Bearer {s.token}, Bearer {s.token}"},
        {"authorization": f"Basic {basic_ok}"},
        {"authorization": f"Basic {basic_bad}"},
        {"authorization": f"Digest {s.token}"},
    ]
    paths = ["/whoami", "/read", "/write"]

    def cycle() -> None:
        with TestClient(starlette_app(AsyncVerifier(store, password_hasher=cheap_hasher()))) as tc:
            for headers in requests:
                for path in paths:
                    tc.get(path, headers=headers)
        client = Client(wsgi_app(Verifier(store, password_hasher=cheap_hasher())))
        for headers in requests:
            for path in paths:
                client.get(path, headers=headers)

    cycle()
    manager.disable_key(rotated.key.key_id)
    manager.delete_legacy_key("org_legacy")
    cycle()
    store.failing = True
    cycle()
    manager.delete_key(s.new.key.key_id)

    messages = [r.getMessage() for r in caplog.records]
    assert any("denied" in m for m in messages), "the cycle should have logged denials"
    assert any("key store error" in m for m in messages)
    for record in caplog.records:
        s.assert_absent(record.getMessage(), f"log record {record.name}")
        s.assert_absent(repr(record.args), f"log args {record.name}")
    s.assert_absent(caplog.text, "caplog.text")
    for form in (rotated.token, rotated.token[-49:-6]):
        assert form not in caplog.text


# -- the vault: recoverable keys ----------------------------------------------
VAULT_KEK = bytes(range(7, 39))


def _vault_forms(s: Secrets, sealed: Any) -> list[str]:
    raw = [VAULT_KEK, sealed.ciphertext, sealed.wrapped_key]
    return [
        *s.forms(),
        *(b.hex() for b in raw),
        *(base64.b64encode(b).decode() for b in raw),
        *(repr(b)[2:30] for b in raw),
    ]


def test_the_vault_and_sealed_seeds_never_show_key_material(caplog):
    from scout_auth import KeyVault
    from scout_auth._core.lifecycle import VaultCall
    from scout_auth.exceptions import KeyNotRecoverable, VaultError

    store = InMemoryKeyStore()
    vault = KeyVault({"kek-1": VAULT_KEK})
    manager = KeyManager(store, vault=vault, password_hasher=cheap_hasher(), clock=Clock())
    new = manager.create_key("org_1", "billing-sync prod", recoverable=True)
    parsed = parse_token(new.token)
    assert parsed is not None
    s = Secrets(new=new, token=new.token, seed=parsed.seed)
    sealed = new.key.sealed_seed
    assert sealed is not None
    forms = _vault_forms(s, sealed)
    plain = manager.create_key("org_1", "billing-sync staging")
    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        assert manager.reveal_key(new.key.key_id, actor="ada") == new.token
        for wrong in (KeyVault({"kek-1": bytes(32)}), KeyVault({"kek-2": VAULT_KEK})):
            try:
                KeyManager(store, vault=wrong).reveal_key(new.key.key_id)
            except VaultError as exc:
                errors.append(exc)
        try:
            manager.reveal_key(plain.key.key_id)
        except KeyNotRecoverable as exc:
            errors.append(exc)
        try:
            KeyManager(store).create_key("org_1", "billing-sync x", recoverable=True)
        except Exception as exc:  # ConfigurationError
            errors.append(exc)
        KeyManager(store, vault=KeyVault({"kek-3": bytes(32)})).rewrap_vault()  # logs a failure
    assert len(errors) == 4
    objects: dict[str, object] = {
        "vault": vault,
        "SealedSeed": sealed,
        "KeyRecord": new.key,
        "stored KeyRecord": store.get_key(new.key.key_id),
        "NewKey": new,
        "KeyManager": manager,
        "VaultCall seal": VaultCall("seal", "k", "o", seed=s.seed),
        "VaultCall unseal": VaultCall("unseal", "k", "o", sealed=sealed),
        "store": store,
        **{f"error {i}": e for i, e in enumerate(errors)},
        "log": caplog.text,
    }
    for where, obj in objects.items():
        text = obj if isinstance(obj, str) else shown(obj)
        for form in forms:
            assert form not in text, f"key material {form[:12]}… leaked in {where}"
