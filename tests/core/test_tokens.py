"""The token format (``scout_auth/_core/tokens.py``): round trip, typo detection, rejection."""

from __future__ import annotations

import re
import zlib
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

import scout_auth
from scout_auth import InMemoryKeyStore, KeyManager, Verifier
from scout_auth._core.tokens import (
    _BASE32,
    _BASE62,
    KEY_ID_RE,
    TOKEN_LENGTH,
    ParsedToken,
    _b62encode,
    format_token,
    generate_key_id,
    parse_token,
    public_key_from_seed,
)
from scout_auth.exceptions import InvalidToken
from tests._support import SpyStore

key_ids = st.text(alphabet=_BASE32, min_size=20, max_size=20)
seeds = st.binary(min_size=32, max_size=32)
# Substitutes: the token's own alphabets (the hard cases: the regex still
# matches, only the checksum can tell) plus anything else.
substitutes = st.one_of(st.sampled_from(_BASE62 + "_"), st.characters())


def _body(key_id: str, seed_text: str) -> str:
    return f"scout_sk_{key_id}_{seed_text}"


def _with_checksum(body: str) -> str:
    """Append a *valid* checksum, so only the property under test is wrong."""
    return body + _b62encode(zlib.crc32(body.encode("utf-8")), 6)


VALID = format_token("a" * 20, bytes(range(32)))


# -- round trip ---------------------------------------------------------------


@given(key_id=key_ids, seed=seeds)
def test_format_then_parse_round_trips(key_id, seed):
    token = format_token(key_id, seed)
    assert parse_token(token) == ParsedToken(key_id=key_id, seed=seed)
    assert len(token) == TOKEN_LENGTH == 79
    assert token.startswith(scout_auth.TOKEN_PREFIX)
    assert re.fullmatch(scout_auth.TOKEN_REGEX, token)


@given(key_id=key_ids, seed=seeds)
def test_secret_scanners_find_the_token_in_surrounding_text(key_id, seed):
    token = format_token(key_id, seed)
    found = re.findall(scout_auth.TOKEN_REGEX, f"export API_KEY='{token}'\n# {token}.")
    assert found == [token, token]


def test_generated_key_ids_are_well_formed_and_distinct():
    ids = {generate_key_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(KEY_ID_RE.fullmatch(i) for i in ids)


def test_extreme_seeds_round_trip():
    for seed in (bytes(32), b"\xff" * 32, b"\x00" * 31 + b"\x01"):
        token = format_token("b" * 20, seed)
        parsed = parse_token(token)
        assert parsed is not None
        assert parsed.seed == seed


@pytest.mark.parametrize(
    ("key_id", "seed"),
    [
        pytest.param("A" * 20, bytes(32), id="upper-case-key-id"),
        pytest.param("a" * 19, bytes(32), id="short-key-id"),
        pytest.param("a" * 21, bytes(32), id="long-key-id"),
        pytest.param("a" * 19 + "1", bytes(32), id="key-id-outside-base32"),
        pytest.param("a" * 20, bytes(31), id="short-seed"),
        pytest.param("a" * 20, bytes(33), id="long-seed"),
    ],
)
def test_format_token_refuses_bad_parts(key_id, seed):
    with pytest.raises(ValueError, match=r"key id|seed"):
        format_token(key_id, seed)


# -- any single-character change is rejected ----------------------------------


@st.composite
def single_char_changes(draw, token_strategy):
    """(original, changed): one substitution, deletion or insertion."""
    token = draw(token_strategy)
    kind = draw(st.sampled_from(["substitute", "delete", "insert"]))
    if kind == "insert":
        pos = draw(st.integers(0, len(token)))
        return token, token[:pos] + draw(substitutes) + token[pos:]
    pos = draw(st.integers(0, len(token) - 1))
    if kind == "delete":
        return token, token[:pos] + token[pos + 1 :]
    new = draw(substitutes.filter(lambda c: c != token[pos]))
    return token, token[:pos] + new + token[pos + 1 :]


random_tokens = st.builds(format_token, key_ids, seeds)


@given(single_char_changes(random_tokens))
def test_any_single_character_change_is_rejected_by_parse(change):
    # CRC32 detects every error burst of up to 32 bits, so one changed ASCII
    # character anywhere before the checksum is always caught; a change in
    # the checksum itself, or a changed length, never parses either.
    _, changed = change
    assert parse_token(changed) is None


@cache
def _live_world() -> tuple[Verifier, str]:
    """One real key in a real store, shared by the end-to-end property."""
    store = InMemoryKeyStore()
    token = KeyManager(store).create_key("org_tokens", "typo detection").token
    return Verifier(store, cache_ttl=0), token


@given(data=st.data())
def test_any_single_character_change_is_rejected_end_to_end(data):
    verifier, token = _live_world()
    assert verifier.verify_token(token).org_id == "org_tokens"
    _, changed = data.draw(single_char_changes(st.just(token)))
    with pytest.raises(InvalidToken):
        verifier.verify_token(changed)


def test_every_in_alphabet_substitution_is_rejected():
    """Exhaustive over the hardest case: the regex matches, only the CRC can tell."""
    alphabet = {i: _BASE32 if 9 <= i < 29 else _BASE62 for i in range(TOKEN_LENGTH)}
    tried = 0
    for pos, original in enumerate(VALID):
        if original == "_":
            continue
        for c in alphabet[pos]:
            if c != original:
                changed = VALID[:pos] + c + VALID[pos + 1 :]
                assert parse_token(changed) is None, (pos, c)
                tried += 1
    assert tried > 3000


def test_adjacent_transpositions_are_rejected():
    for pos in range(len(VALID) - 1):
        a, b = VALID[pos], VALID[pos + 1]
        if a != b:
            assert parse_token(VALID[:pos] + b + a + VALID[pos + 2 :]) is None, pos


# -- malformed tokens ---------------------------------------------------------

_SEED_TEXT = VALID[30:73]
MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("scout_sk_", id="prefix-only"),
    pytest.param(VALID[:-1], id="truncated"),
    pytest.param(VALID + "A", id="one-char-too-long"),
    pytest.param(" " + VALID[1:], id="leading-space"),
    pytest.param(VALID[:-1] + "\n", id="trailing-newline"),
    pytest.param(VALID.upper(), id="upper-cased"),
    pytest.param("scout_pk_" + VALID[9:], id="wrong-prefix-pk"),
    pytest.param("Scout_sk_" + VALID[9:], id="prefix-case"),
    pytest.param("ghp_" + "a" * 75, id="other-vendor-token"),
    pytest.param(_with_checksum(_body("a" * 19 + "1", _SEED_TEXT)), id="key-id-digit-1"),
    pytest.param(_with_checksum(_body("a" * 19 + "A", _SEED_TEXT)), id="key-id-upper"),
    pytest.param(
        _with_checksum(f"scout_sk_{'a' * 20}-{_SEED_TEXT}"), id="dash-instead-of-underscore"
    ),
    pytest.param(_with_checksum(_body("a" * 20, _SEED_TEXT[:-1] + "+")), id="seed-plus"),
    pytest.param(_with_checksum(_body("a" * 20, _SEED_TEXT[:-1] + "é")), id="seed-non-ascii"),
    pytest.param(
        _with_checksum(_body("a" * 20, _SEED_TEXT[:-1] + "\u0663")), id="seed-arabic-digit"
    ),
    pytest.param(_with_checksum(_body("a" * 20, "z" * 43)), id="seed-2^256-max"),
    pytest.param(_with_checksum(_body("a" * 20, _b62encode(2**256, 43))), id="seed-exactly-2^256"),
    pytest.param(VALID[:-6] + "000000", id="zero-checksum"),
    pytest.param(VALID[:-6] + "zzzzzz", id="checksum-out-of-crc-range"),
    pytest.param(VALID[:-1] + ("B" if VALID[-1] != "B" else "C"), id="bad-checksum"),
    pytest.param(
        VALID[:-6] + _b62encode(zlib.crc32(VALID[:-6].encode()) ^ 1, 6), id="checksum-off-by-bit"
    ),
    pytest.param(
        _body("a" * 20, _SEED_TEXT) + _b62encode(zlib.crc32(_SEED_TEXT.encode()), 6),
        id="checksum-of-seed-only",
    ),
    pytest.param("x" * 79, id="garbage-right-length"),
    pytest.param(VALID[:40] + "\x00" + VALID[41:], id="nul-byte"),
]


@pytest.mark.parametrize("token", MALFORMED)
def test_malformed_tokens_do_not_parse(token):
    assert parse_token(token) is None


def test_the_malformed_table_is_otherwise_well_formed():
    """The ``seed-*`` rows only break the property they are named for."""
    assert _b62encode(2**256 - 1, 43) < "z" * 43
    assert parse_token(_with_checksum(_body("a" * 20, _b62encode(2**256 - 1, 43)))) is not None
    assert parse_token(_with_checksum(_body("a" * 20, _SEED_TEXT))) is not None


@pytest.mark.parametrize("token", MALFORMED)
def test_malformed_tokens_are_rejected_without_store_access(token, monkeypatch):
    store = SpyStore()
    derived: list[bytes] = []

    def spy_derive(seed: bytes) -> bytes:
        derived.append(seed)
        return public_key_from_seed(seed)

    monkeypatch.setattr("scout_auth._core.flow.public_key_from_seed", spy_derive)
    for verifier in (Verifier(store), Verifier(store, legacy_bearer=False)):
        with pytest.raises(InvalidToken):
            verifier.verify_token(token)
        with pytest.raises(InvalidToken):
            verifier.verify_authorization(f"Bearer {token}")
        if verifier.legacy_pepper is None or token.strip()[:9].lower() == "scout_sk_":
            # An Org Credential attempt, or no legacy Bearer: no store access.
            assert store.calls == []
        else:
            # Anything else may be a legacy secret: at most its digest is
            # looked up (one indexed read), never a key and never argon2.
            assert set(store.calls) <= {"find_legacy"}
        store.calls.clear()
    assert derived == []


def test_a_well_formed_token_does_reach_the_store():
    """The control for the test above: the spy does see a real look-up."""
    store = SpyStore()
    with pytest.raises(InvalidToken):
        Verifier(store).verify_token(VALID)
    assert store.calls == ["get_key"]


def test_public_key_from_seed_is_the_ed25519_public_key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = bytes(range(32))
    private = Ed25519PrivateKey.from_private_bytes(seed)
    assert public_key_from_seed(seed) == private.public_key().public_bytes_raw()
    assert len(public_key_from_seed(seed)) == 32


@given(random_tokens, st.text(alphabet=_BASE62, min_size=6, max_size=6))
def test_a_token_parses_exactly_when_its_checksum_text_is_the_crc_encoded(token, crc):
    # parse_token compares the decoded checksum digits with the CRC instead
    # of encoding the CRC: the same test, since six base62 digits encode each
    # value below 62**6 exactly once. Any six digits but the encoding fail.
    body = token[:-6]
    expected = _b62encode(zlib.crc32(body.encode("ascii")), 6)
    assert (parse_token(body + crc) is not None) == (crc == expected)
    assert parse_token(body + expected) is not None
