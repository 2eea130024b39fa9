"""The hand-written Structured Fields subset agrees with http_sf, the reference."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from typing import Any
from unittest import mock

import http_sf
import pytest
from http_sf.innerlist import ser_innerlist
from hypothesis import event, given, settings
from hypothesis import strategies as st

from scout_auth._signing import signature as _httpsig
from scout_auth._signing.components import ComponentId, HttpRequest, serialize_signature_params
from scout_auth._signing.sf import (
    match_byte_sequence_member,
    match_signature_input,
    ser_inner_list,
    ser_integer,
    ser_key,
    ser_params,
    ser_string,
)
from scout_auth._signing.signature import RequestSignature, SignaturePolicy, parse_request_signature
from scout_auth.exceptions import AuthError

# Mostly printable ASCII, with the characters that need escaping or are refused.
_CHARS = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.sampled_from('"\\\t\n\r\x00\x7f\x80é€'),
)
_STRINGS = st.text(_CHARS, max_size=40)
_KEYS = st.one_of(
    st.from_regex(r"[a-z*][a-z0-9_\-.*]{0,10}", fullmatch=True),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=6),
)
_INTEGERS = st.one_of(
    st.integers(-(10**15) - 5, 10**15 + 5),
    st.sampled_from([0, -1, 999_999_999_999_999, -999_999_999_999_999]),
)


def _reference(serialize, value):
    try:
        return serialize(value)
    except ValueError:
        return ValueError


@given(_STRINGS)
def test_strings_match_http_sf(value):
    assert _reference(ser_string, value) == _reference(http_sf.ser, value)


@given(_INTEGERS)
def test_integers_match_http_sf(value):
    assert _reference(ser_integer, value) == _reference(http_sf.ser, value)


@given(_KEYS)
def test_keys_match_http_sf(key):
    assert _reference(ser_key, key) == _reference(lambda k: http_sf.ser({k: True}), key)


@given(
    st.lists(st.tuples(_STRINGS, st.none() | _STRINGS), max_size=6),
    st.dictionaries(_KEYS, st.one_of(_INTEGERS, _STRINGS), max_size=6),
)
def test_inner_lists_match_http_sf(components, params):
    def ours(_):
        ids = [ComponentId(name, param) for name, param in components]
        return ser_inner_list([c.serialize() for c in ids], params)

    def reference(_):
        items: list[Any] = [(n, {} if p is None else {"name": p}) for n, p in components]
        return ser_innerlist((items, dict(params)))

    assert _reference(ours, None) == _reference(reference, None)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(True, id="boolean-is-not-an-integer"),
        pytest.param(1.5, id="decimal"),
        pytest.param(b"x", id="bytes"),
    ],
)
def test_params_refuse_other_types(value):
    with pytest.raises(ValueError, match="cannot serialize"):
        ser_params({"created": value})


def test_component_serialization_is_cached_and_invisible():
    component = ComponentId("@query-param", 'a"b')
    assert component.serialize() == '"@query-param";name="a\\"b"'
    assert component.serialize() is component.serialize()
    assert component == ComponentId("@query-param", 'a"b')
    assert hash(component) == hash(ComponentId("@query-param", 'a"b'))
    assert repr(component) == "ComponentId(name='@query-param', param_name='a\"b')"


# --- The strict fast path reads exactly what http_sf reads ----------------------

# A request that has every field the generated identifiers may name.
_REQUEST = HttpRequest(
    "POST",
    "https",
    "api.example.com",
    "/v1/items",
    "a=1&Pet=dog&q%22=x",
    [
        ("Host", "api.example.com"),
        ("Content-Type", "application/json"),
        ("Content-Length", "2"),
        ("Content-Digest", "sha-256=:RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=:"),
        ("X-Org", "org_1"),
    ],
)
_NOW = 1_700_000_000
# Checks syntax and freshness only, so that most generated inputs parse.
_LENIENT = SignaturePolicy(
    required_components=(), body_components=(), require_nonce=False, max_age=1e10
)
_PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
_VALID_COMPONENTS = [
    ("@method", None),
    ("@authority", None),
    ("@target-uri", None),
    ("@path", None),
    ("@query", None),
    ("@scheme", None),
    ("@request-target", None),
    ("@query-param", "a"),
    ("@query-param", "Pet"),
    ("@query-param", "q%22"),
    ("content-type", None),
    ("content-digest", None),
    ("content-length", None),
    ("x-org", None),
    ("host", None),
]
# Mostly identifiers the request can answer; some it cannot or that are invalid.
_COMPONENT = st.one_of(
    st.sampled_from(_VALID_COMPONENTS),
    st.sampled_from(
        [
            ("@status", None),
            ("x-missing", None),
            ("Content-Type", None),
            ("@method", "x"),
            ("@query-param", None),
            ("@query-param", "nope"),
            ("@query-param", 'q"'),
        ]
    ),
    st.tuples(_PRINTABLE, st.none() | _PRINTABLE),
)
_LABELS = st.sampled_from(["sig1", "sig-b26", "*a", "x_1.2"])
_ODD_PARAMS = st.tuples(
    st.sampled_from(["created", "expires", "keyid", "nonce", "alg", "tag", "foo", "*x.y"]),
    st.one_of(st.integers(-(10**15) + 1, 10**15 - 1), _PRINTABLE, st.booleans()),
)


@st.composite
def _headers(draw: st.DrawFn) -> tuple[str, list[tuple[str, str | None]], list[Any], str]:
    """A label, components, parameters (a list: keys may repeat) and a Signature value."""
    label = draw(_LABELS)
    components = draw(st.lists(st.sampled_from(_VALID_COMPONENTS), max_size=6, unique=True))
    if draw(st.integers(0, 3)) == 0:
        odd = draw(st.lists(_COMPONENT, min_size=1, max_size=2))
        at = draw(st.integers(0, len(components)))
        components[at:at] = odd
    params: list[Any] = [
        ("created", draw(st.sampled_from([_NOW, _NOW - 10]) | st.integers(0, 2 * _NOW))),
        ("keyid", draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1))),
    ]
    for name, value in [
        ("nonce", _PRINTABLE),
        ("alg", st.sampled_from(["ed25519", "rsa-pss-sha512"])),
        ("tag", _PRINTABLE),
        ("expires", st.integers(_NOW - 5, _NOW + 10**6)),
    ]:
        if draw(st.booleans()):
            params.append((name, draw(value)))
    params = draw(st.permutations(params))
    if draw(st.integers(0, 3)) == 0:
        params.extend(draw(st.lists(_ODD_PARAMS, min_size=1, max_size=2)))
    sig_label = draw(st.sampled_from([label] * 5 + ["sig1", "other"]))
    raw = draw(st.binary(min_size=64, max_size=64) if draw(st.integers(0, 5)) else st.binary())
    return label, components, params, f"{sig_label}={http_sf.ser((raw, {}))}"


def _signature_input(label: str, components: list[Any], params: list[Any]) -> str:
    items: list[Any] = [(n, {} if p is None else {"name": p}) for n, p in components]
    # http_sf is the independent reference serializer. A dict keeps one value
    # per key, so repeated parameters are appended as text.
    text = http_sf.ser({label: (items, dict(params))})
    for i, (key, value) in enumerate(params):
        if key in dict(params[:i]):
            text += f";{key}" if value is True else f";{key}={http_sf.ser(value)}"
    return text


def _outcome(request: HttpRequest, *, fast: bool) -> object:
    with contextlib.ExitStack() as stack:
        if not fast:
            for name in ("match_signature_input", "match_byte_sequence_member"):
                stack.enter_context(mock.patch.object(_httpsig, name, return_value=None))
        try:
            return parse_request_signature(request, _LENIENT, now=_NOW)
        except AuthError as exc:
            return (type(exc), exc.detail)


def _signed(signature_input: str, signature: str) -> HttpRequest:
    return dataclasses.replace(
        _REQUEST,
        headers=[*_REQUEST.headers, ("Signature-Input", signature_input), ("Signature", signature)],
    )


def _assert_paths_agree(signature_input: str, signature: str) -> object:
    """Both paths give the same result; and what the fast path reads is http_sf's reading."""
    request = _signed(signature_input, signature)
    fast, slow = _outcome(request, fast=True), _outcome(request, fast=False)
    assert fast == slow
    matched = match_signature_input(signature_input)
    if matched is not None:
        label, items, params, member = matched
        parsed: Any = http_sf.parse(signature_input.encode(), tltype="dictionary")
        assert list(parsed) == [label]
        inner, sf_params = parsed[label]
        assert [(n, p.get("name")) for n, p in inner] == items
        assert all(set(p) <= {"name"} for _, p in inner)
        assert sf_params == params
        assert [type(v) for v in sf_params.values()] == [type(v) for v in params.values()]
        # The member text is its own canonical serialization.
        assert ser_innerlist((inner, sf_params)) == member
    matched_sig = match_byte_sequence_member(signature)
    if matched_sig is not None:
        assert http_sf.parse(signature.encode(), tltype="dictionary") == {
            matched_sig[0]: (matched_sig[1], {})
        }
    return fast


@settings(max_examples=400)
@given(_headers())
def test_fast_path_agrees_with_http_sf_on_valid_headers(headers):
    label, components, params, signature = headers
    text = _signature_input(label, components, params)
    keys = [key for key, _ in params]
    canonical = len(set(keys)) == len(keys) and not any(type(v) is bool for _, v in params)
    # Canonical input always takes the fast path.
    assert (match_signature_input(text) is not None) == canonical
    outcome = _assert_paths_agree(text, signature)
    event("parsed" if isinstance(outcome, RequestSignature) else f"rejected: {outcome}")


_PERTURBATIONS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "replace", "delete", "swapcase", "repeat", "number", "escape"]),
        st.booleans(),  # True: at a delimiter, where the grammar is most delicate
        st.integers(min_value=0, max_value=400),
        st.sampled_from([" ", "  ", "\t", ",", ", ", ";", "=", '"', "\\", "(", ")", ":", "?1"])
        | st.sampled_from(["0", "-", "A", "*", "é", "\x00", ";x", ';name="a"', ", sig2=()"]),
    ),
    min_size=1,
    max_size=3,
)
_DELIMITERS = set('=;( )":,')


def _perturb(text: str, edits: list[tuple[str, bool, int, str]]) -> str:
    for op, at_delimiter, position, chunk in edits:
        marks = [i + 1 for i, c in enumerate(text) if c in _DELIMITERS]
        i = marks[position % len(marks)] if at_delimiter and marks else position % (len(text) + 1)
        if op == "insert":
            text = text[:i] + chunk + text[i:]
        elif op == "replace":
            text = text[:i] + chunk + text[i + 1 :]
        elif op == "delete":
            text = text[:i] + text[i + 1 :]
        elif op == "swapcase":
            text = text[:i] + text[i : i + 1].swapcase() + text[i + 1 :]
        elif op == "number":  # respell an Integer: 0-padded, signed, decimal, too long
            numbers = list(re.finditer(r"(?<==)-?[0-9]+", text))
            if numbers:
                n = numbers[position % len(numbers)]
                spelling = ["0{}", "-{}", "+{}", "{}.0", "{}999999999999999", "-0"][position % 6]
                text = text[: n.start()] + spelling.format(n[0]) + text[n.end() :]
        elif op == "escape":  # a backslash after a quote: needless, or escaping the close
            quote = text.find('"', i)
            if quote != -1 and quote + 1 < len(text):
                text = text[: quote + 1] + "\\" + text[quote + 1 :]
        else:  # repeat a parameter, an item or a member: from a ";" (or i) to the next
            start = text.rfind(";", 0, i) if ";" in text[:i] else max(i - 1, 0)
            stop = text.find(";", start + 1)
            stop = len(text) if stop == -1 else stop
            text = text[:stop] + text[start:stop] + text[stop:]
    return text


@settings(max_examples=600)
@given(_headers(), _PERTURBATIONS, st.booleans())
def test_fast_path_agrees_with_http_sf_on_near_misses(headers, edits, perturb_signature):
    label, components, params, signature = headers
    text = _signature_input(label, components, params)
    if perturb_signature:
        signature = _perturb(signature, edits)
    else:
        text = _perturb(text, edits)
    outcome = _assert_paths_agree(text, signature)
    fast = match_signature_input(text) is not None
    event(f"fast={fast} " + ("parsed" if isinstance(outcome, RequestSignature) else "rejected"))


@pytest.mark.parametrize(
    "signature_input",
    [
        pytest.param('sig1=("@method");created=1;keyid="k";created=2', id="duplicate-param"),
        pytest.param('sig1=("@method");created=1;keyid="k", sig1=("@path")', id="duplicate-label"),
        pytest.param('sig1=("@method" "x";name="a";name="b");keyid="k"', id="duplicate-item-param"),
        pytest.param('sig1=("@method"  "@path");keyid="k"', id="double-space"),
        pytest.param('sig1=( "@method");keyid="k"', id="space-after-paren"),
        pytest.param('sig1=("@method");created=01;keyid="k"', id="leading-zero"),
        pytest.param('sig1=("@method");created=-0;keyid="k"', id="minus-zero"),
        pytest.param('sig1=("@method");created=1.0;keyid="k"', id="decimal"),
        pytest.param('sig1=("@method");created=1234567890123456;keyid="k"', id="16-digits"),
        pytest.param('sig1=("@method");keyid=k', id="token"),
        pytest.param('sig1=("@method");keyid="k";x', id="boolean-param"),
        pytest.param('sig1=("@method";sf);keyid="k"', id="boolean-item-param"),
        pytest.param('sig1=("\\@method");keyid="k"', id="needless-escape"),
        pytest.param('Sig1=("@method");keyid="k"', id="uppercase-label"),
        pytest.param(' sig1=("@method");keyid="k"', id="leading-space"),
        pytest.param('sig1=("@method");keyid="k" ', id="trailing-space"),
        pytest.param('sig1=("@method");keyid="k",', id="trailing-comma"),
        pytest.param('sig1=("@method");keyid="ké"', id="non-ascii"),
    ],
)
def test_non_canonical_input_takes_the_slow_path(signature_input):
    assert match_signature_input(signature_input) is None
    _assert_paths_agree(signature_input, "sig1=:" + "A" * 86 + "==:")


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("sig1=:" + "A" * 86 + ":", id="unpadded"),
        pytest.param("sig1=:" + "A" * 86 + "=:", id="short-padding"),
        pytest.param("sig1=:" + "A" * 86 + "==:;x", id="parameter"),
        pytest.param("sig1=:" + "A" * 86 + "==:, sig2=:AA==:", id="two-members"),
        pytest.param("sig1=:" + "A" * 85 + "-==:", id="url-alphabet"),
    ],
)
def test_non_canonical_signature_takes_the_slow_path(signature):
    assert match_byte_sequence_member(signature) is None
    _assert_paths_agree('sig1=("@method");created=1700000000;keyid="k"', signature)


def test_canonical_member_is_the_signature_params_line():
    text = 'sig1=("@method" "@query-param";name="a\\"b");created=1;keyid="k\\\\"'
    matched = match_signature_input(text)
    assert matched is not None
    label, items, params, member = matched
    assert (label, items, params) == (
        "sig1",
        [("@method", None), ("@query-param", 'a"b')],
        {
            "created": 1,
            "keyid": "k\\",
        },
    )
    ids = [ComponentId(n, p) for n, p in items]
    assert member == serialize_signature_params(ids, params)


@settings(max_examples=400)
@given(_headers(), _PERTURBATIONS)
def test_known_inner_list_shortcut_agrees_with_http_sf_on_near_misses(headers, edits):
    # match_signature_input skips the inner list it has read before and reads
    # only the parameters: prime it with the exact header, then send near misses.
    label, components, params, signature = headers
    text = _signature_input(label, components, params)
    match_signature_input(text)
    if canonical := match_signature_input(text):
        assert _sf_reading(text) == canonical
    outcome = _assert_paths_agree(_perturb(text, edits), signature)
    event("parsed" if isinstance(outcome, RequestSignature) else "rejected")


def _sf_reading(text: str) -> tuple[Any, ...]:
    parsed: Any = http_sf.parse(text.encode(), tltype="dictionary")
    ((label, (inner, params)),) = parsed.items()
    items = [(n, p.get("name")) for n, p in inner]
    return label, items, params, ser_innerlist((inner, params))


@pytest.mark.parametrize(
    ("suffix", "canonical"),
    [
        pytest.param(';created=1;keyid="k"', True, id="usual"),
        pytest.param(';keyid="k";created=1', True, id="other-order"),
        pytest.param(';created=1;keyid="k";created=2', False, id="duplicate"),
        pytest.param(';created=01;keyid="k"', False, id="leading-zero"),
        pytest.param(';created=1;keyid="k\\\\";nonce="a\\"b"', True, id="escapes"),
        pytest.param(';created=1;keyid="k";x', False, id="boolean"),
        pytest.param(';created=1;keyid="k" ', False, id="trailing-space"),
        pytest.param(';created=1;expires=2;keyid="k";nonce="n";alg="a";tag="t"', True, id="all"),
    ],
)
@pytest.mark.parametrize(
    "inner",
    [
        pytest.param('"@method" "@path"', id="plain"),
        pytest.param('"@query-param";name="a)b" "@method"', id="paren-in-string"),
    ],
)
def test_known_inner_list_shortcut(inner, suffix, canonical):
    text = f"sig1=({inner}){suffix}"
    # Prime with the inner list, and with the text before its first ")".
    match_signature_input(f'sig1=({inner});created=5;keyid="prime"')
    match_signature_input(f'sig1=({inner.partition(")")[0]}");created=5;keyid="prime"')
    assert match_signature_input(text) == (_sf_reading(text) if canonical else None)
    _assert_paths_agree(text, "sig1=:" + "A" * 86 + "==:")
