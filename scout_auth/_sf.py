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

Why hand-written: http-sf is the preferred library, but the benchmark in
``benchmarks/signing.py`` showed it cannot meet the target (full
verification <= 1.5x a raw Ed25519 verify). Measured on the 2-core CI box
(Python 3.11.7): raw verify 135 us; full verification 386 us (2.86x) with
http-sf parsing and serializing, of which its Dictionary parsing and
serialization were ~200 us (``signature_base`` alone 83 us, mostly
``ser_string``'s per-character generator); with every other hot spot fixed
and http-sf still serializing the base the ratio was still 1.7x.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = [
    "ser_inner_list",
    "ser_integer",
    "ser_key",
    "ser_params",
    "ser_string",
]

# RFC 9651 §3.3.3 Integer: at most 15 digits.
_MAX_INTEGER = 999_999_999_999_999
_KEY_RE = re.compile(r"[a-z*][a-z0-9_\-.*]*")


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
