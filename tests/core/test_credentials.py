"""Parsing the Authorization header (``scout_auth/_core/credentials.py``)."""

from __future__ import annotations

import base64

import pytest

from scout_auth._core.credentials import (
    BearerCredential,
    LegacyCredential,
    parse_authorization,
    parse_bearer,
)
from scout_auth._core.tokens import format_token, parse_token
from scout_auth.exceptions import InvalidRequest, InvalidToken, MissingCredentials

TOKEN = format_token("k" * 20, bytes(range(32)))


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


# -- accepted ---------------------------------------------------------------

BEARER_OK = [
    pytest.param(f"Bearer {TOKEN}", id="canonical"),
    pytest.param(f"bearer {TOKEN}", id="lower-case-scheme"),
    pytest.param(f"BEARER {TOKEN}", id="upper-case-scheme"),
    pytest.param(f"Bearer    {TOKEN}", id="several-spaces"),
    pytest.param(f"  Bearer {TOKEN}  ", id="surrounding-whitespace"),
]


@pytest.mark.parametrize("value", BEARER_OK)
def test_bearer_headers_parse(value):
    cred = parse_authorization(value)
    assert isinstance(cred, BearerCredential)
    assert cred.token == TOKEN
    assert cred.parsed == parse_token(TOKEN)


BASIC_OK = [
    pytest.param(f"Basic {b64('org_1:s3cret')}", "org_1", "s3cret", id="canonical"),
    pytest.param(f"basic {b64('org_1:s3cret')}", "org_1", "s3cret", id="lower-case-scheme"),
    pytest.param(f"BASIC {b64('org_1:s3cret')}", "org_1", "s3cret", id="upper-case-scheme"),
    pytest.param(f"Basic {b64('org_1:a:b:c')}", "org_1", "a:b:c", id="colons-in-secret"),
    pytest.param(f"Basic {b64('org_1:pässwört ✓')}", "org_1", "pässwört ✓", id="utf8-secret"),
    pytest.param(f"Basic {b64('org_1: spaced ')}", "org_1", " spaced ", id="secret-kept-verbatim"),
]


@pytest.mark.parametrize(("value", "org_id", "secret"), BASIC_OK)
def test_basic_headers_parse_as_legacy(value, org_id, secret):
    cred = parse_authorization(value)
    assert cred == LegacyCredential(org_id=org_id, secret=secret)


# -- rejected -----------------------------------------------------------------

REJECTED = [
    # No credentials at all, or a scheme scout_auth does not handle (RFC 6750 §3.1).
    pytest.param(None, MissingCredentials, id="no-header"),
    pytest.param("", MissingCredentials, id="empty-header"),
    pytest.param("   ", MissingCredentials, id="blank-header"),
    pytest.param(f"Digest {TOKEN}", MissingCredentials, id="digest-scheme"),
    pytest.param(f"Token {TOKEN}", MissingCredentials, id="token-scheme"),
    pytest.param(f"Bearer-{TOKEN}", MissingCredentials, id="scheme-without-space"),
    pytest.param(f"Bearer\t{TOKEN}", MissingCredentials, id="tab-separator"),
    pytest.param(TOKEN, MissingCredentials, id="bare-token-no-scheme"),
    pytest.param("Negotiate YII=", MissingCredentials, id="negotiate"),
    pytest.param(f"Beare {TOKEN}", MissingCredentials, id="misspelt-scheme"),
    # Several credentials, or a header too long to be one.
    pytest.param(f"Bearer {TOKEN}, Bearer {TOKEN}", InvalidRequest, id="two-bearers"),
    pytest.param(f"Bearer {TOKEN}, Basic {b64('o:s')}", InvalidRequest, id="bearer-and-basic"),
    pytest.param(f"Basic {b64('o:s')},", InvalidRequest, id="trailing-comma"),
    pytest.param(f"Digest a, Bearer {TOKEN}", InvalidRequest, id="comma-before-any-scheme"),
    pytest.param("Bearer " + "a" * 4090, InvalidRequest, id="over-4096-chars"),
    pytest.param("x" * 100_000, InvalidRequest, id="huge-garbage"),
    # Bearer with something that is not a token.
    pytest.param("Bearer", InvalidToken, id="bearer-no-token"),
    pytest.param("Bearer ", InvalidToken, id="bearer-blank-token"),
    pytest.param("Bearer not-a-token", InvalidToken, id="bearer-garbage"),
    pytest.param(f"Bearer {TOKEN[:-1]}X", InvalidToken, id="bearer-bad-checksum"),
    pytest.param(f"Bearer {TOKEN} extra", InvalidToken, id="bearer-trailing-junk"),
    pytest.param(f"Bearer {TOKEN} {TOKEN}", InvalidToken, id="bearer-two-tokens-space"),
    pytest.param(f"Bearer {b64(TOKEN)}", InvalidToken, id="bearer-base64-of-token"),
    # Basic that does not decode to org_id:secret.
    pytest.param("Basic", InvalidToken, id="basic-no-value"),
    pytest.param("Basic !!notbase64", InvalidToken, id="basic-bad-alphabet"),
    pytest.param("Basic b3JnOnNlY3JldA", InvalidToken, id="basic-missing-padding"),
    pytest.param(f"Basic {b64('org_1:s3cret')[:-2]} ==", InvalidToken, id="basic-inner-space"),
    pytest.param(f"Basic {b64('org_1-no-colon')}", InvalidToken, id="basic-missing-colon"),
    pytest.param(f"Basic {b64(':s3cret')}", InvalidToken, id="basic-empty-org"),
    pytest.param(f"Basic {b64('org_1:')}", InvalidToken, id="basic-empty-secret"),
    pytest.param(f"Basic {b64(':')}", InvalidToken, id="basic-colon-only"),
    pytest.param("Basic " + b64(b"org_1:\xff\xfe"), InvalidToken, id="basic-not-utf8"),
    pytest.param(f"Basic {b64('')}", InvalidToken, id="basic-empty-payload"),
    pytest.param(f"Basic {TOKEN}", InvalidToken, id="basic-with-a-token"),
]


@pytest.mark.parametrize(("value", "error"), REJECTED)
def test_rejected_headers(value, error):
    with pytest.raises(error) as info:
        parse_authorization(value)
    assert type(info.value) is error


def test_header_length_limit_is_inclusive_at_4096():
    at_limit = "Digest " + "a" * (4096 - len("Digest "))
    assert len(at_limit) == 4096
    with pytest.raises(MissingCredentials):  # judged on its scheme, not its size
        parse_authorization(at_limit)
    with pytest.raises(InvalidRequest, match="too long"):
        parse_authorization(at_limit + "a")


def test_invalid_request_names_the_reason():
    with pytest.raises(InvalidRequest, match="More than one credential"):
        parse_authorization(f"Bearer {TOKEN}, Bearer {TOKEN}")


def test_parse_bearer_takes_a_bare_token():
    assert parse_bearer(TOKEN).parsed.key_id == "k" * 20
    with pytest.raises(InvalidToken):
        parse_bearer(f"Bearer {TOKEN}")
