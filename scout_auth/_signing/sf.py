"""The Structured Fields subset on the signature hot path: serialize, and strictly parse.

Theory of operation
-------------------
``http_sf`` is this package's Structured Fields library (RFC 9651) and stays
the reference: every value it is handed is parsed and serialized by it unless
this module can prove, cheaply, that a shortcut gives the same answer.

*Serializing* (the signature base, ``Signature-Input``): only Strings,
Integers, Keys, the component identifiers' one ``name`` parameter and an
Inner List of them ever occur, so :func:`ser_string`, :func:`ser_integer`,
:func:`ser_params` and :func:`ser_inner_list` implement exactly those rules
of RFC 9651 §4.1 and raise :class:`ValueError` where ``http_sf.ser`` does.

*Parsing* is a strict fast path, never a second parser: a regular expression
that matches **only** the canonical serialization of a one-member Dictionary
(single spaces, canonical Strings and Integers, no Booleans or Tokens, no
other parameters). Canonical text has exactly one reading, the one
``http_sf`` would produce, and it is its own re-serialization. Anything else
(several members, optional whitespace, other types, a duplicate parameter)
returns ``None`` and the caller falls back to ``http_sf``, whose stricter
error reporting and duplicate handling then apply unchanged.

Why hand-written: http-sf is the preferred library (project rule: prefer a
well-kept library unless a benchmark shows it cannot meet the target), but
``benchmarks/signing.py`` showed it cannot meet this one, full verification
<= 1.5x a raw Ed25519 verify. Measured on the shared 2-core box, Python
3.11.7, medians of 20 interleaved rounds:

- all http-sf, before any tuning (wall clock): raw 135.0 us, full 385.6 us,
  2.86x; ``signature_base`` alone 82.7 us, mostly ``ser_string``'s
  per-character generator;
- every other hot spot fixed, http-sf parsing and serializing (cpu clock):
  raw 133.0 us, full 356.6 us, 2.68x;
- the same, this module's parser, http-sf serializing: 127.7 / 289.8 us, 2.27x;
- this module for both: 130.7 / 229.8 us, 1.76x (same session).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Mapping

__all__ = [
    "CanonicalSignatureInput",
    "match_byte_sequence_member",
    "match_signature_input",
    "ser_inner_list",
    "ser_integer",
    "ser_key",
    "ser_params",
    "ser_string",
]

# RFC 9651 §3.3.3 Integer: at most 15 digits.
_MAX_INTEGER = 999_999_999_999_999
_KEY_RE = re.compile(r"[a-z*][a-z0-9_\-.*]*")


# Hand-written instead of http_sf.ser: see "Why hand-written" above.
def ser_string(value: str) -> str:
    """Serialize a String (RFC 9651 §4.1.6).

    Raises:
        ValueError: On a character outside %x20-7E.
    """
    # For ASCII text, isprintable() is exactly %x20-7E.
    if not (value.isascii() and value.isprintable()):
        raise ValueError("String contains disallowed characters")
    if "\\" in value or '"' in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"'


def ser_integer(value: int) -> str:
    """Serialize an Integer (RFC 9651 §4.1.4).

    Raises:
        ValueError: Outside +/- 999,999,999,999,999.
    """
    if not -_MAX_INTEGER <= value <= _MAX_INTEGER:
        raise ValueError("Input is out of Integer range.")
    return str(value)


def ser_key(key: str) -> str:
    """Serialize a Key (RFC 9651 §4.1.1.3).

    Raises:
        ValueError: If ``key`` is not ``lcalpha / "*"`` then ``lcalpha / DIGIT / "_-.*"``.
    """
    if not _KEY_RE.fullmatch(key):
        raise ValueError("Key contains disallowed characters")
    return key


def _ser_bare(value: int | str) -> str:
    # type(), not isinstance(): a bool is an int and a Token is a str to
    # Python, but neither is an Integer or a String here.
    if type(value) is str:
        return ser_string(value)
    if type(value) is int:
        return ser_integer(value)
    raise ValueError(f"cannot serialize a {type(value).__name__} parameter")


def ser_params(params: Mapping[str, int | str]) -> str:
    """Serialize Parameters whose values are Integers or Strings (RFC 9651 §4.1.1.2)."""
    return "".join([f";{ser_key(key)}={_ser_bare(value)}" for key, value in params.items()])


def ser_inner_list(items: Iterable[str], params: Mapping[str, int | str]) -> str:
    """Serialize an Inner List of already serialized Items (RFC 9651 §4.1.1.1)."""
    return f"({' '.join(items)}){ser_params(params)}"


# --- The strict fast path ------------------------------------------------------
# Before http_sf.parse, not instead of it: see "Why hand-written" above.

_KEY = r"[a-z*][a-z0-9_\-.*]*"
# Canonical String: printable ASCII, with only `"` and `\` escaped (and escaped
# so). Written as runs of plain characters between escapes ("unrolled"): no
# alternation per character, and no two ways to match, so matching is linear.
_PLAIN = r"[\x20\x21\x23-\x5b\x5d-\x7e]*"
_STRING = rf'"{_PLAIN}(?:\\[\\"]{_PLAIN})*"'
# Canonical Integer: no leading zero, no "-0", at most 15 digits.
_INTEGER = r"(?:0|-?[1-9][0-9]{0,14})"
_ITEM = rf"{_STRING}(?:;name={_STRING})?"
_PARAM = rf";({_KEY})=({_INTEGER}|{_STRING})"
_SIGNATURE_INPUT_RE = re.compile(
    rf"({_KEY})=(\(((?:{_ITEM}(?: {_ITEM})*)?)\)((?:;{_KEY}=(?:{_INTEGER}|{_STRING}))*))"
)
_ITEM_RE = re.compile(rf"({_STRING})(?:;name=({_STRING}))?")
_PARAM_RE = re.compile(_PARAM)
_UNESCAPE_RE = re.compile(r"\\(.)")
# Canonical base64 (RFC 4648 §4 with padding), as http_sf serializes it:
# alphabet characters, then at most two "=", the whole a multiple of 4 long
# (checked apart: one run of a character class is far cheaper for the regex
# engine than a repeated group of four). Possessive quantifiers: nothing
# after a run can start with a character of the run, so giving back never helps.
_BYTE_SEQUENCE_MEMBER_RE = re.compile(r"([a-z*][a-z0-9_\-.*]*+)=:([A-Za-z0-9+/]*+={0,2}+):")


def _string(token: str) -> str:
    inner = token[1:-1]
    return _UNESCAPE_RE.sub(r"\1", inner) if "\\" in inner else inner


CanonicalSignatureInput = tuple[str, list[tuple[str, str | None]], dict[str, int | str], str]


# What the full pattern has read up to the end of the inner list
# ('label=("@method" ...'), by that exact text: a client uses the same label
# and covers the same components in every request, so only the parameters
# need reading. The text is attacker-chosen, hence the bound (full: start
# again, so a flood cannot lock real clients out).
_known_heads: dict[str, tuple[str, tuple[tuple[str, str | None], ...]]] = {}
_MAX_KNOWN_HEADS = 256
# The parameters in the order sign_request writes them, one group each: one
# pass of a pattern made mostly of literals. Any other order, or anything
# else, takes the general pattern.
_CAPTURED_STRING = r'"([\x20\x21\x23-\x5b\x5d-\x7e]*+(?:\\[\\"][\x20\x21\x23-\x5b\x5d-\x7e]*+)*+)"'
_CAPTURED_INTEGER = r"(0|-?[1-9][0-9]{0,14})"
_USUAL_PARAMS_RE = re.compile(
    rf";created={_CAPTURED_INTEGER}(?:;expires={_CAPTURED_INTEGER})?+"
    rf";keyid={_CAPTURED_STRING}(?:;nonce={_CAPTURED_STRING})?+"
    rf"(?:;alg={_CAPTURED_STRING})?+(?:;tag={_CAPTURED_STRING})?+"
)


def _usual_params(value: str, start: int) -> dict[str, int | str] | None:
    match = _USUAL_PARAMS_RE.fullmatch(value, start)
    if match is None:
        return None
    created, expires, keyid, nonce, alg, tag = match.groups()
    params: dict[str, int | str] = {"created": int(created)}
    if expires is not None:
        params["expires"] = int(expires)
    params["keyid"] = _UNESCAPE_RE.sub(r"\1", keyid) if "\\" in keyid else keyid
    if nonce is not None:
        params["nonce"] = _UNESCAPE_RE.sub(r"\1", nonce) if "\\" in nonce else nonce
    if alg is not None:
        params["alg"] = _UNESCAPE_RE.sub(r"\1", alg) if "\\" in alg else alg
    if tag is not None:
        params["tag"] = _UNESCAPE_RE.sub(r"\1", tag) if "\\" in tag else tag
    return params


def match_signature_input(value: str) -> CanonicalSignatureInput | None:
    """Read a one-member ``Signature-Input`` in canonical form, or return ``None``.

    Returns:
        ``(label, [(component name, name parameter or None)...], params,
        member)``, where ``member`` is the text after ``label=``: the
        canonical ``@signature-params`` serialization (RFC 9421 §2.3). ``None``
        when ``value`` is anything else, duplicate parameters included; then
        parse it with ``http_sf``.
    """
    # The shortcut: a head read before, ")", the usual parameters. The text
    # before the first ")" can only be a known head if that ")" closes its
    # inner list: a known head has every String closed.
    end = value.find(")")
    known = _known_heads.get(value[:end]) if end > 0 else None
    if known is not None:
        usual = _usual_params(value, end + 1)
        if usual is not None:
            known_label, known_items = known
            return known_label, list(known_items), usual, value[len(known_label) + 1 :]

    match = _SIGNATURE_INPUT_RE.fullmatch(value)
    if match is None:
        return None
    label, member, inner, raw_params = match.groups()
    if inner and "\\" not in inner and ";" not in inner:
        # No escapes and no parameters: every '"' delimits, so splitting is exact.
        items: list[tuple[str, str | None]] = [(name, None) for name in inner[1:-1].split('" "')]
    else:
        items = [
            (_string(item[1]), None if item[2] is None else _string(item[2]))
            for item in _ITEM_RE.finditer(inner)
        ]
    params: dict[str, int | str] = {}
    for key, raw in _PARAM_RE.findall(raw_params):
        if key in params:
            return None  # http_sf's duplicate handling decides.
        if raw[0] != '"':
            params[key] = int(raw)
        else:
            params[key] = _string(raw) if "\\" in raw else raw[1:-1]
    if len(_known_heads) >= _MAX_KNOWN_HEADS:
        _known_heads.clear()
    _known_heads[f"{label}=({inner}"] = (label, tuple(items))
    return label, items, params, member


def match_byte_sequence_member(value: str) -> tuple[str, bytes] | None:
    """Read a one-member Dictionary ``key=:base64:`` in canonical form, or return ``None``."""
    match = _BYTE_SEQUENCE_MEMBER_RE.fullmatch(value)
    if match is None or len(match[2]) % 4:
        return None
    try:
        return match[1], binascii.a2b_base64(match[2], strict_mode=True)
    except binascii.Error:  # pragma: no cover - the pattern admits only valid base64
        return None
