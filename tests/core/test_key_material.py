"""Key material as a public API: OrgCredential, OrgPublicKey, their PEM and JWK, the CLI.

The JWK checks follow RFC 8037 §2 (OKP keys) and RFC 7517 §4.5 (``kid``);
the PEM checks load the exports back with pyca/cryptography and sign/verify
across them. Node.js loads the same exports in tests/signing/test_node_signing.py.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import pickle
import re

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from scout_auth import InMemoryKeyStore, KeyManager, OrgCredential, OrgPublicKey
from scout_auth._core.tokens import format_token, generate_key_id, parse_token
from scout_auth.cli import main

DATA = b"the signature base of some request"


@pytest.fixture
def new_key():
    return KeyManager(InMemoryKeyStore()).create_key("org_keys", "exports")


@pytest.fixture
def credential(new_key):
    return OrgCredential.from_token(new_key.token)


def b64url_decode(text: str) -> bytes:
    # RFC 7515 §2: base64url without padding; a "=" in a JWK is an error.
    assert re.fullmatch(r"[A-Za-z0-9_-]*", text), text
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secret_forms(token: str) -> list[str]:
    seed = parse_token(token).seed  # type: ignore[union-attr]
    return [
        token,
        token[-49:-6],  # the seed as base62
        seed.hex(),
        repr(seed),
        base64.b64encode(seed).decode(),
        base64.urlsafe_b64encode(seed).decode().rstrip("="),  # the JWK "d"
    ]


def assert_no_secret(token: str, text: str) -> None:
    for form in secret_forms(token):
        assert form not in text, f"secret form {form[:8]}… leaked"


# -- the loader --------------------------------------------------------------


def test_from_token_gives_pyca_keys_of_the_stored_public_key(new_key, credential):
    assert credential.key_id == new_key.key.key_id
    assert isinstance(credential.private_key, Ed25519PrivateKey)
    assert isinstance(credential.public_key, Ed25519PublicKey)
    assert credential.public_key.public_bytes_raw() == new_key.key.public_key
    assert credential.private_key.private_bytes_raw() == parse_token(new_key.token).seed  # type: ignore[union-attr]
    signature = credential.private_key.sign(DATA)
    OrgPublicKey.from_record(new_key.key).verify(signature, DATA)


def test_from_token_ignores_surrounding_whitespace(new_key):
    assert OrgCredential.from_token(f"  {new_key.token}\n") == OrgCredential.from_token(
        new_key.token
    )


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("", id="empty"),
        pytest.param("scout_sk_", id="prefix-only"),
        pytest.param("not a token", id="garbage"),
        pytest.param("typo", id="checksum"),  # replaced below by a one-character typo
    ],
)
def test_a_malformed_token_is_a_value_error_that_never_quotes_it(new_key, bad):
    if bad == "typo":
        i = 40
        bad = new_key.token[:i] + ("a" if new_key.token[i] != "a" else "b") + new_key.token[i + 1 :]
    with pytest.raises(ValueError, match="not a well-formed scout_sk_ token") as caught:
        OrgCredential.from_token(bad)
    if len(bad) > len("scout_sk_"):
        assert bad not in str(caught.value) + repr(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_a_token_that_is_not_a_str_is_a_type_error_that_never_quotes_it(new_key):
    with pytest.raises(TypeError) as caught:
        OrgCredential.from_token(new_key.token.encode())
    assert new_key.token not in str(caught.value)


@given(st.binary(min_size=32, max_size=32))
def test_any_seed_round_trips_through_token_pem_and_jwk(seed):
    key_id = generate_key_id()
    credential = OrgCredential.from_token(format_token(key_id, seed))
    assert credential.private_key.private_bytes_raw() == seed
    from_pem = serialization.load_pem_private_key(credential.private_pem().encode(), None)
    assert isinstance(from_pem, Ed25519PrivateKey)
    assert from_pem.private_bytes_raw() == seed
    assert b64url_decode(credential.private_jwk()["d"]) == seed


# -- no secret in repr, str, errors, pickles, logs ---------------------------


def test_repr_and_str_show_the_key_id_only(new_key, credential):
    for text in (repr(credential), str(credential), repr(credential.public), f"{credential!r}"):
        assert new_key.key.key_id in text
        assert_no_secret(new_key.token, text)
    assert repr(credential) == f"OrgCredential(key_id={new_key.key.key_id!r})"


def test_a_credential_refuses_to_be_pickled(new_key, credential):
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="not picklable") as caught:
            pickle.dumps(credential, protocol=protocol)
        assert_no_secret(new_key.token, str(caught.value))


def test_copies_are_the_same_immutable_object(credential):
    assert copy.copy(credential) is credential
    assert copy.deepcopy(credential) is credential
    with pytest.raises(AttributeError):
        credential.key_id = "aaaaaaaaaaaaaaaaaaaa"
    with pytest.raises(AttributeError):
        del credential.private_key
    with pytest.raises(AttributeError):
        credential.public.key_id = "aaaaaaaaaaaaaaaaaaaa"


def test_logging_a_credential_logs_no_secret(new_key, credential, caplog):
    caplog.set_level(logging.DEBUG)
    logger = logging.getLogger("test.key_material")
    logger.info("loaded %s / %r", credential, credential)
    logger.info("public %s", credential.public)
    logger.info("as dict %s", {"cred": credential, "public": credential.public})
    assert new_key.key.key_id in caplog.text
    assert_no_secret(new_key.token, caplog.text)


def test_equality_follows_the_public_half(new_key, credential):
    other = KeyManager(InMemoryKeyStore()).create_key("org_keys", "other")
    assert credential == OrgCredential.from_token(new_key.token)
    assert credential != OrgCredential.from_token(other.token)
    assert len({credential, OrgCredential.from_token(new_key.token)}) == 1
    assert credential.public == OrgPublicKey.from_record(new_key.key)
    assert credential != credential.public


# -- PEM ---------------------------------------------------------------------


def test_private_pem_is_pkcs8_and_loads_back(credential):
    pem = credential.private_pem()
    # RFC 5958 / RFC 8410 §7: the PKCS#8 "PRIVATE KEY" label, not OpenSSH or raw.
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert pem.endswith("-----END PRIVATE KEY-----\n")
    loaded = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    credential.public_key.verify(loaded.sign(DATA), DATA)


def test_an_encrypted_private_pem_needs_its_password(credential):
    pem = credential.private_pem(password=b"correct horse")
    assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pem.encode(), password=None)
    with pytest.raises(ValueError, match=r"(?i)incorrect password|bad decrypt"):
        serialization.load_pem_private_key(pem.encode(), password=b"wrong")
    loaded = serialization.load_pem_private_key(pem.encode(), password=b"correct horse")
    assert isinstance(loaded, Ed25519PrivateKey)
    assert loaded.private_bytes_raw() == credential.private_key.private_bytes_raw()


def test_public_pem_is_spki_and_verifies(new_key, credential):
    pem = credential.public_pem()
    assert pem == OrgPublicKey.from_record(new_key.key).to_pem()
    # RFC 8410 §4: SubjectPublicKeyInfo, the "PUBLIC KEY" label.
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert "PRIVATE" not in pem
    loaded = serialization.load_pem_public_key(pem.encode())
    assert isinstance(loaded, Ed25519PublicKey)
    loaded.verify(credential.private_key.sign(DATA), DATA)
    with pytest.raises(InvalidSignature):
        loaded.verify(credential.private_key.sign(DATA), DATA + b"!")


# -- JWK (RFC 8037) ----------------------------------------------------------


def test_private_jwk_follows_rfc_8037(new_key, credential):
    jwk = credential.private_jwk()
    # RFC 8037 §2: "kty" OKP, "crv" Ed25519, "x" the public key, "d" the
    # private key, both base64url; RFC 7517 §4.5: "kid" = our key id.
    assert set(jwk) == {"kty", "crv", "x", "d", "kid"}
    assert (jwk["kty"], jwk["crv"], jwk["kid"]) == ("OKP", "Ed25519", new_key.key.key_id)
    assert b64url_decode(jwk["x"]) == new_key.key.public_key
    d = b64url_decode(jwk["d"])
    assert len(d) == 32  # RFC 8037 §2: the raw private key (RFC 8032 §5.1.5), not PKCS#8
    assert Ed25519PrivateKey.from_private_bytes(d).public_key().public_bytes_raw() == b64url_decode(
        jwk["x"]
    )
    assert all(isinstance(v, str) for v in jwk.values())
    json.dumps(jwk)  # JSON as it is


def test_public_jwk_follows_rfc_8037_and_has_no_d(new_key, credential):
    jwk = credential.public_jwk()
    # RFC 8037 §2: "d" MUST NOT be present for public keys.
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": credential.private_jwk()["x"],
        "kid": new_key.key.key_id,
    }
    assert jwk == OrgPublicKey.from_record(new_key.key).to_jwk()
    key = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    key.verify(credential.private_key.sign(DATA), DATA)


def test_rfc_8037_appendix_a_key_gives_its_jwk():
    # RFC 8037 Appendix A.1/A.2: the example Ed25519 key and its "x".
    d = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
    seed = b64url_decode(d)
    credential = OrgCredential(generate_key_id(), Ed25519PrivateKey.from_private_bytes(seed))
    jwk = credential.private_jwk()
    assert jwk["d"] == d
    assert jwk["x"] == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"


# -- the stored public key ---------------------------------------------------


def test_from_raw_and_from_record(new_key):
    public = OrgPublicKey.from_raw(new_key.key.key_id, new_key.key.public_key)
    assert public == OrgPublicKey.from_record(new_key.key)
    assert public.raw == new_key.key.public_key
    assert public.key_id == new_key.key.key_id
    assert repr(public) == f"OrgPublicKey(key_id={new_key.key.key_id!r})"


@pytest.mark.parametrize(
    ("key_id", "raw", "error"),
    [
        pytest.param("aaaaaaaaaaaaaaaaaaaa", b"\x00" * 31, ValueError, id="short"),
        pytest.param("aaaaaaaaaaaaaaaaaaaa", b"\x00" * 33, ValueError, id="long"),
        pytest.param("aaaaaaaaaaaaaaaaaaaa", "00" * 32, TypeError, id="hex-text"),
        pytest.param("AAAAAAAAAAAAAAAAAAAA", b"\x00" * 32, ValueError, id="upper-key-id"),
        pytest.param("short", b"\x00" * 32, ValueError, id="short-key-id"),
        pytest.param(None, b"\x00" * 32, ValueError, id="no-key-id"),
    ],
)
def test_from_raw_refuses_what_is_no_stored_key(key_id, raw, error):
    with pytest.raises(error):
        OrgPublicKey.from_raw(key_id, raw)


def test_constructors_check_their_types(credential):
    with pytest.raises(TypeError):
        OrgCredential(credential.key_id, credential.public_key)
    with pytest.raises(TypeError):
        OrgPublicKey(credential.key_id, credential.private_key)


# -- the CLI -----------------------------------------------------------------


def export(capsys, monkeypatch, token: str, *flags: str) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
    code = main(["export-key", *flags])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_export_key_prints_the_private_pem_by_default(new_key, credential, capsys, monkeypatch):
    code, out, err = export(capsys, monkeypatch, new_key.token)
    assert code == 0
    assert not err
    assert out == credential.private_pem()
    assert new_key.token not in out


def test_export_key_jwk_is_one_json_line(new_key, credential, capsys, monkeypatch):
    code, out, _ = export(capsys, monkeypatch, new_key.token, "--format", "jwk")
    assert code == 0
    assert out.count("\n") == 1
    assert json.loads(out) == credential.private_jwk()


@pytest.mark.parametrize("fmt", ["pem", "jwk"])
def test_export_key_public_prints_no_secret(new_key, credential, capsys, monkeypatch, fmt):
    code, out, _ = export(capsys, monkeypatch, new_key.token, "--public", "--format", fmt)
    assert code == 0
    expected = credential.public_pem() if fmt == "pem" else json.dumps(credential.public_jwk())
    assert out.rstrip("\n") == expected.rstrip("\n")
    assert_no_secret(new_key.token, out)
    assert "PRIVATE" not in out
    assert '"d"' not in out


def test_export_key_takes_no_token_on_the_command_line(new_key, capsys):
    assert main(["export-key", "--format", "jwk", new_key.token]) == 2
    out = capsys.readouterr()
    assert not out.out
    assert "stdin" in out.err
    assert_no_secret(new_key.token, out.err)


def test_export_key_refuses_a_malformed_token_without_echoing_it(new_key, capsys, monkeypatch):
    typo = new_key.token[:-1] + ("a" if new_key.token[-1] != "a" else "b")
    code, out, err = export(capsys, monkeypatch, typo)
    assert code == 1
    assert not out
    assert "not a well-formed scout_sk_ token" in err
    assert "stdin" in err
    assert typo not in err
    assert typo[-49:-6] not in err


def test_export_key_prompts_without_echo_on_a_terminal(new_key, credential, capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    prompted = []

    def getpass(prompt: str) -> str:
        prompted.append(prompt)
        return str(new_key.token)

    monkeypatch.setattr("sys.stdin", Terminal(""))
    monkeypatch.setattr("getpass.getpass", getpass)
    assert main(["export-key", "--format", "jwk"]) == 0
    assert prompted == ["token: "]
    assert json.loads(capsys.readouterr().out) == credential.private_jwk()


@pytest.fixture
def sqlite_url(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    assert main(["--store", url, "migrate"]) == 0
    capsys.readouterr()
    return url


def test_public_key_prints_the_stored_key(sqlite_url, capsys):
    assert main(["--store", sqlite_url, "create", "org_keys", "exported"]) == 0
    created = json.loads(capsys.readouterr().out)
    credential = OrgCredential.from_token(created["token"])

    assert main(["--store", sqlite_url, "public-key", created["key_id"]]) == 0
    pem = capsys.readouterr().out
    assert pem == credential.public_pem()
    loaded = serialization.load_pem_public_key(pem.encode())
    assert isinstance(loaded, Ed25519PublicKey)
    loaded.verify(credential.private_key.sign(DATA), DATA)

    assert main(["--store", sqlite_url, "public-key", created["key_id"], "--format", "jwk"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == credential.public_jwk()
    assert_no_secret(created["token"], pem + out)


def test_public_key_of_an_unknown_key_is_one_line_exit_1(sqlite_url, capsys):
    assert main(["--store", sqlite_url, "public-key", "aaaaaaaaaaaaaaaaaaaa"]) == 1
    out = capsys.readouterr()
    assert not out.out
    assert out.err.startswith("scout-auth: ")
    assert out.err.count("\n") == 1


def test_public_key_needs_a_store(capsys, monkeypatch):
    monkeypatch.delenv("SCOUT_AUTH_STORE", raising=False)
    assert main(["public-key", "aaaaaaaaaaaaaaaaaaaa"]) == 2
