"""The hand-written Structured Fields subset agrees with http_sf, the reference."""

from __future__ import annotations

from typing import Any

import http_sf
import pytest
from http_sf.innerlist import ser_innerlist
from hypothesis import given
from hypothesis import strategies as st

from scout_auth._sf import ser_inner_list, ser_integer, ser_key, ser_params, ser_string
from scout_auth._sigbase import ComponentId

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
