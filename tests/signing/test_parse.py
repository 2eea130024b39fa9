"""RFC 9421 ``Signature-Input`` / ``Signature`` parsing and the signature policy:
labels, parameters, freshness, required components, the body rule."""

from __future__ import annotations

import pytest

from scout_auth._signing.signature import (
    SignaturePolicy,
    parse_request_signature,
    sign_request,
    verify_ed25519,
)
from scout_auth.exceptions import MissingCredentials, SignatureInvalid, SignatureMissingComponent
from tests.signing.signatures import (
    COMPONENTS,
    KEY_ID,
    KEY_SEED,
    NOW,
    OTHER_ID,
    OTHER_SEED,
    PUBLIC_KEYS,
    UNSIGNED,
    replace_header,
    signed,
    verify,
    with_headers,
)


def test_named_label_ignores_other_signatures():
    ours = sign_request(
        UNSIGNED, key_id=KEY_ID, private_seed=KEY_SEED, now=NOW, components=COMPONENTS
    )
    proxy = sign_request(
        UNSIGNED, key_id=OTHER_ID, private_seed=OTHER_SEED, now=NOW, label="proxy", alg="x"
    )
    request = with_headers(
        UNSIGNED,
        ("Signature-Input", ours["Signature-Input"]),
        ("Signature-Input", proxy["Signature-Input"]),
        ("Signature", proxy["Signature"]),
        ("Signature", ours["Signature"]),
    )
    assert verify(request, label="sig1").key_id == KEY_ID
    with pytest.raises(SignatureInvalid, match="several signatures"):
        verify(request)


def test_expires_and_tag_are_reported():
    parsed = verify(signed(expires=NOW + 60, tag="scout"))
    assert (parsed.expires, parsed.tag, parsed.fresh_until) == (NOW + 60, "scout", NOW + 60)


def test_missing_signature_headers_means_missing_credentials():
    with pytest.raises(MissingCredentials):
        verify(UNSIGNED)


def test_explicit_header_values_override_request_headers():
    request = signed()
    values = {n: v for n, v in request.headers if n.startswith("Signature")}
    parsed = parse_request_signature(
        UNSIGNED,
        now=NOW,
        signature_input=values["Signature-Input"],
        signature=values["Signature"],
    )
    verify_ed25519(PUBLIC_KEYS[KEY_ID], parsed.signature, parsed.base)


@pytest.mark.parametrize(
    ("components", "missing"),
    [
        pytest.param(["@authority", "@target-uri", "content-digest"], "@method", id="method"),
        pytest.param(["@method", "@authority", "content-digest"], "@target-uri", id="target"),
        pytest.param(["@method", "@authority", "@target-uri"], "content-digest", id="digest"),
    ],
)
def test_missing_component_detail_names_it(components, missing):
    with pytest.raises(SignatureMissingComponent) as info:
        verify(signed(components=components))
    assert info.value.component == missing
    assert missing in info.value.detail


def test_body_rule_follows_has_body():
    request = signed(
        replace_header(replace_header(UNSIGNED, "content-length", None), "content-digest", None),
        components=["@method", "@authority", "@target-uri"],
    )
    verify(request, body=b"")  # no body announced: digest not required
    with pytest.raises(SignatureMissingComponent):
        parse_request_signature(request, now=NOW, has_body=True)
    chunked = with_headers(request, ("Transfer-Encoding", "chunked"))
    with pytest.raises(SignatureMissingComponent):
        parse_request_signature(chunked, now=NOW)


def test_clock_edges_are_inclusive():
    verify(signed(), now=NOW + 300)
    verify(signed(now=NOW + 5))
    verify(signed(expires=NOW + 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"max_age": 0}, id="zero-window"),
        pytest.param({"max_skew": -1}, id="negative-skew"),
        pytest.param({"algorithms": frozenset({"rsa-pss-sha512"})}, id="unknown-alg"),
        pytest.param({"algorithms": frozenset()}, id="no-alg"),
        pytest.param({"required_components": ("Content-Type",)}, id="uppercase-component"),
    ],
)
def test_policy_validates_at_construction(kwargs):
    with pytest.raises(ValueError, match=r"max_age|algorithm|component"):
        SignaturePolicy(**kwargs)
