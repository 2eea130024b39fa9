"""RFC 9421 signature bases (§2.5) and component values (§2.1, §2.2): RFC vectors, errors,
and the base's inlined derivations against :func:`component_value`."""

from __future__ import annotations

import base64
import dataclasses
import hmac
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from scout_auth._signing.components import ComponentId, HttpRequest, component_value, signature_base
from scout_auth._signing.signature import parse_request_signature, verify_ed25519
from scout_auth.exceptions import SignatureInvalid
from tests.signing import rfc9421_vectors as rfc
from tests.signing.signatures import LENIENT, RFC_NOW, with_headers


def parse_sf_member(member: str) -> list[ComponentId]:
    inner = member[1 : member.index(")")]
    return [ComponentId.parse(part) for part in _split_inner(inner)]


def _split_inner(inner: str) -> list[str]:
    # Items in the RFC vectors are separated by single spaces outside quotes.
    parts, current, quoted = [], "", False
    for char in inner:
        if char == '"':
            quoted = not quoted
        if char == " " and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p for p in [*parts, current] if p]


# --- RFC 9421 Appendix B vectors ---------------------------------------------


@pytest.mark.parametrize(
    ("section", "member", "expected", "request_", "alg", "signature"),
    [pytest.param(*vector, id=vector[0]) for vector in rfc.BASE_VECTORS],
)
def test_rfc_signature_bases_byte_for_byte(section, member, expected, request_, alg, signature):
    request = with_headers(request_, ("Signature-Input", f"sig={member}"))
    parsed = parse_request_signature(
        request, LENIENT, now=RFC_NOW, signature="sig=:" + "A" * 86 + "==:"
    )
    assert parsed.base == expected.encode("ascii")


def _verify_foreign(alg: str, signature: bytes, base: bytes) -> None:
    """Check the RFC's RSA-PSS / ECDSA signatures, proving our expected bases are the RFC's."""
    if alg == "rsa-pss-sha512":
        key = serialization.load_pem_public_key(rfc.RSA_PSS_PUBLIC_PEM)
        assert isinstance(key, rsa.RSAPublicKey)
        # RFC 9421 §3.3.1: RSASSA-PSS, SHA-512, MGF1 SHA-512, 64-byte salt.
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)
        key.verify(signature, base, pss, hashes.SHA512())
    elif alg == "ecdsa-p256-sha256":
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(rfc.P256_X, "big"), int.from_bytes(rfc.P256_Y, "big"), ec.SECP256R1()
        )
        # RFC 9421 §3.3.4: r || s, 32 bytes each.
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        numbers.public_key().verify(der, base, ec.ECDSA(hashes.SHA256()))
    elif alg == "hmac-sha256":
        # RFC 9421 §3.3.3.
        assert hmac.compare_digest(hmac.new(rfc.SHARED_SECRET, base, "sha256").digest(), signature)
    else:
        verify_ed25519(rfc.ED25519_PUBLIC, signature, base)


@pytest.mark.parametrize(
    ("section", "member", "expected", "request_", "alg", "signature"),
    [pytest.param(*vector, id=vector[0]) for vector in rfc.BASE_VECTORS if vector[4]],
)
def test_rfc_signatures_verify_over_our_bases(section, member, expected, request_, alg, signature):
    base = signature_base(
        request_,
        parse_sf_member(member),
        {k: v for k, v in _params(member).items()},
    )
    _verify_foreign(alg, base64.b64decode(signature), base)


def _params(member: str) -> dict[str, int | str]:
    params: dict[str, int | str] = {}
    for part in member[member.index(")") + 1 :].split(";")[1:]:
        name, _, value = part.partition("=")
        params[name] = value.strip('"') if value.startswith('"') else int(value)
    return params


# --- RFC 9421 §2.1 / §2.2 component values -------------------------------------

S22_REQUEST = HttpRequest("POST", "https", "www.example.com", "/path", "param=value")
S228_REQUEST = HttpRequest(
    "GET", "https", "www.example.com", "/path", "param=value&foo=bar&baz=batman&qux="
)
S228_ENCODED = HttpRequest(
    "GET",
    "https",
    "www.example.com",
    "/parameters",
    "var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace"
    "&fa%C3%A7ade%22%3A%20=something",
)
S21_REQUEST = HttpRequest(
    "GET",
    "https",
    "www.example.org",
    "/",
    headers=[
        ("Host", "www.example.org"),
        ("Date", "Tue, 20 Apr 2021 02:07:56 GMT"),
        ("X-OWS-Header", "   Leading and trailing whitespace.   "),
        ("X-Obs-Fold-Header", "Obsolete\r\n    line folding."),
        ("Cache-Control", "max-age=60"),
        ("Cache-Control", "   must-revalidate"),
        ("Example-Dict", " a=1,    b=2;x=1;y=2,   c=(a   b   c)"),
        ("X-Empty-Header", ""),
    ],
)


@pytest.mark.parametrize(
    ("request_", "component", "expected"),
    [
        pytest.param(S22_REQUEST, "@method", "POST", id="s2.2.1-method"),
        pytest.param(
            S22_REQUEST, "@target-uri", "https://www.example.com/path?param=value", id="s2.2.2"
        ),
        pytest.param(S22_REQUEST, "@authority", "www.example.com", id="s2.2.3-authority"),
        pytest.param(S22_REQUEST, "@scheme", "https", id="s2.2.4-scheme"),
        pytest.param(S22_REQUEST, "@request-target", "/path?param=value", id="s2.2.5"),
        pytest.param(S22_REQUEST, "@path", "/path", id="s2.2.6-path"),
        pytest.param(S22_REQUEST, "@query", "?param=value", id="s2.2.7-query"),
        pytest.param(
            dataclasses.replace(S22_REQUEST, query="param=value&foo=bar&baz=bat%2Dman"),
            "@query",
            "?param=value&foo=bar&baz=bat%2Dman",
            id="s2.2.7-query-kept-encoded",
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, query="queryString"),
            "@query",
            "?queryString",
            id="s2.2.7-query-string",
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, query=""), "@query", "?", id="s2.2.7-empty-query"
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, query=""),
            "@request-target",
            "/path",
            id="request-target-without-query",
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, path=""), "@path", "/", id="s2.2.6-empty-path"
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, method="get"), "@method", "get", id="method-case-kept"
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, authority="WWW.Example.COM:443"),
            "@authority",
            "www.example.com",
            id="authority-lowercased-default-port-dropped",
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, scheme="http", authority="example.com:80"),
            "@authority",
            "example.com",
            id="authority-http-default-port",
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, scheme="http", authority="example.com:443"),
            "@authority",
            "example.com:443",
            id="authority-other-port-kept",
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, authority="[2001:DB8::1]:8443"),
            "@authority",
            "[2001:db8::1]:8443",
            id="authority-ipv6",
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, scheme="HTTPS", authority="Example.com:443"),
            "@target-uri",
            "https://example.com/path?param=value",
            id="target-uri-normalized",
        ),
        pytest.param(S228_REQUEST, '"@query-param";name="baz"', "batman", id="s2.2.8-baz"),
        pytest.param(S228_REQUEST, '"@query-param";name="qux"', "", id="s2.2.8-empty-value"),
        pytest.param(S228_REQUEST, '"@query-param";name="param"', "value", id="s2.2.8-param"),
        pytest.param(
            S228_ENCODED,
            '"@query-param";name="var"',
            "this%20is%20a%20big%0Amultiline%20value",
            id="s2.2.8-var-newline-stays-encoded",
        ),
        pytest.param(
            S228_ENCODED,
            '"@query-param";name="bar"',
            "with%20plus%20whitespace",
            id="s2.2.8-plus-becomes-%20",
        ),
        pytest.param(
            S228_ENCODED,
            '"@query-param";name="fa%C3%A7ade%22%3A%20"',
            "something",
            id="s2.2.8-encoded-name",
        ),
        pytest.param(S21_REQUEST, "host", "www.example.org", id="s2.1-host"),
        pytest.param(S21_REQUEST, "date", "Tue, 20 Apr 2021 02:07:56 GMT", id="s2.1-date"),
        pytest.param(
            S21_REQUEST, "x-ows-header", "Leading and trailing whitespace.", id="s2.1-ows"
        ),
        pytest.param(
            S21_REQUEST, "x-obs-fold-header", "Obsolete line folding.", id="s2.1-obs-fold"
        ),
        pytest.param(
            S21_REQUEST, "cache-control", "max-age=60, must-revalidate", id="s2.1-combined"
        ),
        pytest.param(
            S21_REQUEST,
            "example-dict",
            "a=1,    b=2;x=1;y=2,   c=(a   b   c)",
            id="s2.1-not-reserialized",
        ),
        pytest.param(S21_REQUEST, "x-empty-header", "", id="s2.1-empty"),
    ],
)
def test_component_values(request_, component, expected):
    assert component_value(request_, ComponentId.parse(component)) == expected


@pytest.mark.parametrize(
    ("request_", "component"),
    [
        pytest.param(S21_REQUEST, "x-missing", id="missing-field"),
        pytest.param(S228_REQUEST, '"@query-param";name="nope"', id="missing-query-param"),
        pytest.param(
            dataclasses.replace(S228_REQUEST, query="a=1&a=2"),
            '"@query-param";name="a"',
            id="repeated-query-param",
        ),
        pytest.param(
            with_headers(S21_REQUEST, ("X-Evil", 'a\n"@method": GET')),
            "x-evil",
            id="newline-injection",
        ),
        pytest.param(with_headers(S21_REQUEST, ("X-Nul", "a\x00b")), "x-nul", id="nul-byte"),
        pytest.param(with_headers(S21_REQUEST, ("X-Utf8", "café")), "x-utf8", id="non-ascii"),
        pytest.param(
            dataclasses.replace(S22_REQUEST, authority="a@example.com"),
            "@authority",
            id="userinfo-in-authority",
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, authority="example.com:x"),
            "@authority",
            id="bad-port",
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, path="relative"), "@path", id="relative-path"
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, path="/a?b"), "@path", id="question-mark-in-path"
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, method="GE T"), "@method", id="space-in-method"
        ),
        pytest.param(
            dataclasses.replace(S22_REQUEST, query="a#frag"), "@query", id="fragment-in-query"
        ),
    ],
)
def test_component_errors(request_, component):
    with pytest.raises(SignatureInvalid):
        component_value(request_, ComponentId.parse(component))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("@status", id="response-only-derived"),
        pytest.param("@signature-params", id="signature-params-not-coverable"),
        pytest.param("@unknown", id="unknown-derived"),
        pytest.param("Content-Type", id="uppercase-field"),
        pytest.param('"content-type";sf', id="param-sf"),
        pytest.param('"example-dict";key="a"', id="param-key"),
        pytest.param('"x-header";bs', id="param-bs"),
        pytest.param('"@method";req', id="param-req"),
        pytest.param('"x-header";tr', id="param-tr"),
        pytest.param('"@query-param"', id="query-param-without-name"),
        pytest.param('"@query-param";name=Pet', id="query-param-token-name"),
        pytest.param('"@query-param";name="a";x=1', id="query-param-extra-param"),
        pytest.param("content-type)", id="bad-field-name"),
        pytest.param('"unterminated', id="malformed-sf"),
    ],
)
def test_unsupported_component_identifiers(text):
    with pytest.raises(SignatureInvalid):
        ComponentId.parse(text)


def test_duplicate_component_is_an_error():
    with pytest.raises(SignatureInvalid, match="twice"):
        signature_base(S22_REQUEST, [ComponentId("@method"), ComponentId("@method")], {})


# --- The base's inlined derivations agree with component_value() ---------------

_TRICKY = st.sampled_from(
    ["", " ", "a", "A b", " x ", "\tx", "x\t", "a\r\n b", "a\nb", "é", "\x00", "a,b", "0"]
)


def _outcome_of(compute: Callable[[], object]) -> object:
    try:
        return compute()
    except (SignatureInvalid, ValueError) as exc:
        return (type(exc), str(exc))


_AUTHORITIES = [
    *("example.com", "Example.COM:443", "e.com:80", "e.com:8443", "[::1]:8", "[::1]x", "a@b"),
    *("", "e.com:", "e.com:x", "\u00e9.com", "e\t.com", "e .com:1"),
]
_BASE_COMPONENTS = [
    *("@method", "@authority", "@scheme", "@target-uri", "@request-target", "@path", "@query"),
    *("x-f", "x-absent", '"@query-param";name="a"'),
]


@settings(max_examples=300)
@given(
    method=st.sampled_from(["GET", "post", "GE T", "", "M\u00e9"]),
    scheme=st.sampled_from(["https", "HTTP", "h t", "", "x+y"]),
    authority=st.sampled_from(_AUTHORITIES),
    path=st.sampled_from(["/", "", "/a%2Fb", "a", "/a?b", "/a#b", "/\u00e9", "/a b", "/a\tb"]),
    query=st.sampled_from(["", "a=1", "a=1#x", "a b", "a\tb", "\u00e9", "a=1&a=2"]),
    field_lines=st.lists(_TRICKY, max_size=3),
    component=st.sampled_from(_BASE_COMPONENTS),
)
def test_base_lines_agree_with_component_value(
    method, scheme, authority, path, query, field_lines, component
):
    headers = [("X-F" if i % 2 else "x-f", line) for i, line in enumerate(field_lines)]
    request = HttpRequest(method, scheme, authority, path, query, headers)
    ident = ComponentId.parse(component)
    expected = _outcome_of(lambda: component_value(dataclasses.replace(request), ident))
    got = _outcome_of(lambda: signature_base(dataclasses.replace(request), [ident], {}))
    if isinstance(expected, str):
        line, params = f"{ident.serialize()}: {expected}", f"({ident.serialize()})"
        assert got == f'{line}\n"@signature-params": {params}'.encode()
    else:
        assert got == expected
