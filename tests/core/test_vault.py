"""KeyVault: sealing, opening, tampering, AAD binding, KEK sources and rotation."""

from __future__ import annotations

import base64
import dataclasses
import secrets
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scout_auth import KeyVault, SealedSeed
from scout_auth.exceptions import ConfigurationError, VaultError

KEK = bytes(range(32))
OTHER_KEK = bytes(range(1, 33))
SEED = bytes(range(100, 132))


def vault(**keks: bytes) -> KeyVault:
    return KeyVault(keks or {"k1": KEK})


def seal(v: KeyVault, seed: bytes = SEED, key_id: str = "key_a", org_id: str = "org_1"):
    return v.seal(seed, key_id=key_id, org_id=org_id)


def test_a_seed_round_trips_and_the_store_holds_only_the_sealed_parts():
    v = vault()
    sealed = seal(v)
    assert v.unseal(sealed, key_id="key_a", org_id="org_1") == SEED
    assert sealed.kek_id == "k1"
    assert (len(sealed.ciphertext), len(sealed.nonce), len(sealed.wrapped_key)) == (48, 12, 60)
    assert SEED not in sealed.ciphertext + sealed.wrapped_key + sealed.nonce
    assert KEK not in sealed.ciphertext + sealed.wrapped_key + sealed.nonce


def test_every_seal_is_fresh():
    v = vault()
    a, b = seal(v), seal(v)
    assert a.ciphertext != b.ciphertext  # a fresh data key and nonce each time
    assert a.nonce != b.nonce
    assert a.wrapped_key != b.wrapped_key


@settings(max_examples=50, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    key_id=st.text(min_size=1, max_size=40),
    org_id=st.text(min_size=1, max_size=40),
)
def test_any_seed_and_ids_round_trip(seed, key_id, org_id):
    v = vault()
    assert v.unseal(seal(v, seed, key_id, org_id), key_id=key_id, org_id=org_id) == seed


def _flip(value: bytes, index: int) -> bytes:
    return value[:index] + bytes([value[index] ^ 0x01]) + value[index + 1 :]


@pytest.mark.parametrize("part", ["ciphertext", "nonce", "wrapped_key"])
def test_changing_any_byte_is_refused(part):
    v = vault()
    sealed = seal(v)
    for index in range(len(getattr(sealed, part))):
        changed = dataclasses.replace(sealed, **{part: _flip(getattr(sealed, part), index)})
        with pytest.raises(VaultError) as caught:
            v.unseal(changed, key_id="key_a", org_id="org_1")
        assert "changed" in str(caught.value) or "another" in str(caught.value)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"ciphertext": b""}, id="ciphertext-emptied"),
        pytest.param({"ciphertext": bytes(49)}, id="ciphertext-longer"),
        pytest.param({"nonce": bytes(11)}, id="nonce-shorter"),
        pytest.param({"wrapped_key": bytes(59)}, id="wrapped-key-shorter"),
        pytest.param({"wrapped_key": b""}, id="wrapped-key-emptied"),
        pytest.param({"kek_id": "k2"}, id="kek-id-of-another-configured-kek"),
        pytest.param({"kek_id": "k9"}, id="kek-id-unknown"),
        pytest.param({"kek_id": "k1\n"}, id="kek-id-with-a-newline"),
    ],
)
def test_malformed_or_relabelled_sealed_seeds_are_refused(changes):
    v = KeyVault({"k1": KEK, "k2": OTHER_KEK})
    sealed = dataclasses.replace(seal(v), **changes)
    with pytest.raises(VaultError):
        v.unseal(sealed, key_id="key_a", org_id="org_1")


@pytest.mark.parametrize(
    ("key_id", "org_id"),
    [
        pytest.param("key_b", "org_1", id="another-key-of-the-org"),
        pytest.param("key_a", "org_2", id="same-key-id-in-another-org"),
        pytest.param("key_ao", "rg_1", id="ids-shifted-across-the-boundary"),
    ],
)
def test_a_sealed_seed_moved_to_another_key_is_refused(key_id, org_id):
    v = vault()
    with pytest.raises(VaultError, match="copied from another key"):
        v.unseal(seal(v), key_id=key_id, org_id=org_id)


def test_a_wrong_kek_under_the_right_id_opens_nothing():
    sealed = seal(vault())
    with pytest.raises(VaultError, match="another one"):
        KeyVault({"k1": OTHER_KEK}).unseal(sealed, key_id="key_a", org_id="org_1")


def test_an_unknown_kek_id_says_which():
    sealed = seal(vault())
    with pytest.raises(VaultError, match="'k1' is not configured"):
        KeyVault({"k2": KEK}).unseal(sealed, key_id="key_a", org_id="org_1")


def test_kek_rotation_rewrap_then_the_old_kek_removed():
    old = KeyVault({"k1": KEK})
    sealed = seal(old)
    both = KeyVault({"k2": OTHER_KEK, "k1": KEK})
    assert both.current_kek_id == "k2"
    assert both.unseal(sealed, key_id="key_a", org_id="org_1") == SEED  # the old id still opens
    moved = both.rewrap(sealed)
    assert (moved.ciphertext, moved.nonce, moved.kek_id) == (sealed.ciphertext, sealed.nonce, "k2")
    assert KeyVault({"k2": OTHER_KEK}).unseal(moved, key_id="key_a", org_id="org_1") == SEED
    with pytest.raises(VaultError):
        old.unseal(moved, key_id="key_a", org_id="org_1")


def test_current_can_be_named():
    v = KeyVault({"k1": KEK, "k2": OTHER_KEK}, current="k2")
    assert seal(v).kek_id == "k2"
    assert v.kek_ids == ("k2", "k1")


# -- configuration ------------------------------------------------------------
B64 = base64.b64encode(KEK).decode()


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param("", id="empty"),
        pytest.param("  ,, ", id="separators-only"),
        pytest.param(B64, id="no-id"),
        pytest.param(f"k1:{B64[:-4]}", id="short-key"),
        pytest.param(f"k1:{base64.b64encode(KEK + b'x').decode()}", id="long-key"),
        pytest.param("k1:not*base64", id="not-base64"),
        pytest.param(f":{B64}", id="empty-id"),
        pytest.param(f"k1:{B64},k1:{B64}", id="duplicate-id"),
        pytest.param(f"k\x001:{B64}", id="control-character-in-id"),
    ],
)
def test_a_malformed_kek_list_is_refused_without_quoting_it(spec):
    with pytest.raises(ConfigurationError) as caught:
        KeyVault.from_string(spec)
    assert B64 not in str(caught.value)
    assert B64[:16] not in str(caught.value)


@pytest.mark.parametrize(
    ("keks", "current"),
    [
        pytest.param({}, None, id="none"),
        pytest.param({"k1": KEK[:16]}, None, id="aes-128-size"),
        pytest.param({"k1": "x" * 32}, None, id="text-not-bytes"),
        pytest.param({"has space": KEK}, None, id="id-with-space"),
        pytest.param({"a,b": KEK}, None, id="id-with-comma"),
        pytest.param({"x" * 201: KEK}, None, id="id-too-long"),
        pytest.param({"k1": KEK}, "k2", id="unknown-current"),
    ],
)
def test_bad_keks_are_configuration_errors(keks, current):
    with pytest.raises(ConfigurationError) as caught:
        KeyVault(keks, current=current)
    assert repr(KEK) not in str(caught.value)


def test_from_string_env_and_file(tmp_path):
    entry = KeyVault.new_kek("kek-new")
    spec = f"{entry}, k1:{B64}"
    v = KeyVault.from_string(spec)
    assert v.kek_ids == ("kek-new", "k1")
    from_env = KeyVault.from_env({"SCOUT_AUTH_VAULT_KEKS": spec})
    assert from_env is not None
    assert from_env.kek_ids == ("kek-new", "k1")
    assert KeyVault.from_env({}) is None  # off unless configured
    assert KeyVault.from_env({"SCOUT_AUTH_VAULT_KEKS": "  "}) is None
    path = tmp_path / "keks"
    path.write_text(f"{entry}\nk1:{B64}\n")
    assert KeyVault.from_file(path).kek_ids == ("kek-new", "k1")
    with pytest.raises(ConfigurationError, match="cannot read"):
        KeyVault.from_file(tmp_path / "missing")
    arn = KeyVault.from_string(f"arn:aws:kms:eu:1:key/k:{B64}")
    assert arn.current_kek_id == "arn:aws:kms:eu:1:key/k"  # the id is before the last ':'


def test_new_kek_is_random_and_loadable():
    a, b = KeyVault.new_kek(), KeyVault.new_kek()
    assert a != b
    assert a.startswith("kek-")
    kek_id, _, encoded = a.rpartition(":")
    assert len(base64.b64decode(encoded)) == 32
    assert KeyVault.from_string(a).current_kek_id == kek_id
    with pytest.raises(ConfigurationError):
        KeyVault.new_kek("bad id")


def test_repr_shows_ids_only():
    v = KeyVault({"k1": KEK, "k2": OTHER_KEK})
    sealed = seal(v)
    assert repr(v) == "KeyVault(current='k1', kek_ids=('k1', 'k2'))"
    assert repr(sealed) == "SealedSeed(kek_id='k1')"
    for text in (repr(v), str(v), repr(sealed), str(sealed)):
        for secret in (KEK, OTHER_KEK, sealed.ciphertext, sealed.wrapped_key, sealed.nonce):
            assert secret.hex() not in text
            assert repr(secret)[2:-1][:20] not in text
    assert not hasattr(v, "__dict__")  # slots: no stray attribute holds a key


# -- a KMS behind callbacks ---------------------------------------------------
class FakeKms:
    """Wraps with a local KEK per id, counting calls and the thread they ran on."""

    def __init__(self) -> None:
        self.keks = {"kms/1": KeyVault({"kms-1": KEK}), "kms/2": KeyVault({"kms-2": OTHER_KEK})}
        self.current = "kms/1"
        self.threads: list[int] = []

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        self.threads.append(threading.get_ident())
        inner = self.keks[self.current]._wrapper  # the local wrap, as a KMS would do it
        return self.current, inner.wrap(data_key)[1]

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        self.threads.append(threading.get_ident())
        inner = self.keks[kek_id]._wrapper
        return inner.unwrap(inner.current, wrapped)


def kms_vault(kms: FakeKms) -> KeyVault:
    return KeyVault.from_callbacks(kms.wrap, kms.unwrap, current_kek_id=kms.current)


def test_kms_callbacks_seal_open_and_rewrap():
    kms = FakeKms()
    v = kms_vault(kms)
    assert v.blocking
    assert v.kek_ids is None
    assert repr(v) == "KeyVault(kms, current='kms/1')"
    sealed = seal(v)
    assert sealed.kek_id == "kms/1"
    assert v.unseal(sealed, key_id="key_a", org_id="org_1") == SEED
    kms.current = "kms/2"
    moved = kms_vault(kms).rewrap(sealed)
    assert moved.kek_id == "kms/2"
    assert kms_vault(kms).unseal(moved, key_id="key_a", org_id="org_1") == SEED


def test_kms_failures_are_vault_errors_with_the_cause_kept():
    def broken_unwrap(kek_id: str, wrapped: bytes) -> bytes:
        raise RuntimeError("AccessDenied")

    kms = FakeKms()
    sealed = seal(kms_vault(kms))
    v = KeyVault.from_callbacks(kms.wrap, broken_unwrap, current_kek_id="kms/1")
    with pytest.raises(VaultError, match="could not unwrap") as caught:
        v.unseal(sealed, key_id="key_a", org_id="org_1")
    assert isinstance(caught.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda dk: ("kms/other", b"x"), id="names-another-kek"),
        pytest.param(lambda dk: ("kms/1", b""), id="empty-blob"),
        pytest.param(lambda dk: ("kms/1", "text"), id="text-blob"),
        pytest.param(lambda dk: 1 / 0, id="raises"),
    ],
)
def test_a_misbehaving_wrap_callback_is_refused(wrap):
    v = KeyVault.from_callbacks(wrap, lambda k, w: b"", current_kek_id="kms/1")
    with pytest.raises(VaultError):
        seal(v)


def test_an_unwrap_callback_must_return_a_data_key():
    kms = FakeKms()
    sealed = seal(kms_vault(kms))
    v = KeyVault.from_callbacks(kms.wrap, lambda k, w: b"short", current_kek_id="kms/1")
    with pytest.raises(VaultError, match="32-byte"):
        v.unseal(sealed, key_id="key_a", org_id="org_1")


def test_from_callbacks_checks_its_arguments():
    with pytest.raises(ConfigurationError):
        KeyVault.from_callbacks(None, None, current_kek_id="k")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        KeyVault.from_callbacks(lambda d: ("k", d), lambda k, w: w, current_kek_id="")


def test_seal_takes_a_32_byte_seed_only():
    with pytest.raises(ValueError, match="32 bytes"):
        vault().seal(secrets.token_bytes(31), key_id="k", org_id="o")


def test_sealed_seed_is_frozen():
    sealed = seal(vault())
    with pytest.raises(dataclasses.FrozenInstanceError):
        sealed.kek_id = "k2"
    assert isinstance(sealed, SealedSeed)
