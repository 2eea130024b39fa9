"""Key ids minted into their org's Redis Cluster hash slot.

Theory of operation
-------------------
A look-up reads the directory entry ``{k:<key id>}`` and then the record in
the org's slot ``{o:<org>}`` (see :mod:`.layout`). If both hash to the same
slot, one script on one node reads them together, on a cluster as on one
server. So the store mints each new key id such that
``CRC16("k:<key id>") mod 16384 == CRC16("o:<escaped org id>") mod 16384``
(the hash tags' contents, as Redis Cluster hashes them):

* the first 16 characters are random (80 bits from :mod:`secrets`, base32),
* the last 4 are *chosen*: CRC16 (XMODEM, ``binascii.crc_hqx`` from 0) is
  linear, ``crc(s, suffix) = crc(s, 0000) ^ crc(0, suffix)``, and the
  suffix's contribution splits into its first two and its last two
  characters, so two tables of 1024 entries find a suffix in a few dozen
  look-ups (every one of the 16384 slots is reachable: a test checks).

The id still matches ``[a-z2-7]{20}`` and the token format and checksum are
unchanged. It reveals the org's slot (14 bits of a public function of the
org id), nothing secret. Ids minted before (random, in some other slot) keep
working: a look-up meets their record in another slot and takes a second
round trip (:meth:`.ops.Ops.get_key`); no data needs migrating.
"""

from __future__ import annotations

import base64
import secrets
from binascii import crc_hqx

__all__ = ["SLOTS", "aligned_key_id", "slot_of"]

#: Hash slots of a Redis Cluster.
SLOTS = 16384
_MASK = SLOTS - 1
_BASE32 = b"abcdefghijklmnopqrstuvwxyz234567"
_ZEROS = b"\0\0\0\0"


def _pairs(position: int) -> dict[bytes, int]:
    # CRC16 contribution (low 14 bits) of two characters at ``position`` of a
    # 4-byte suffix whose other bytes are zero.
    table: dict[bytes, int] = {}
    for a in _BASE32:
        for b in _BASE32:
            data = bytearray(_ZEROS)
            data[position], data[position + 1] = a, b
            table[bytes([a, b])] = crc_hqx(bytes(data), 0) & _MASK
    return table


_HEADS = list(_pairs(0).items())
_TAILS = {crc: pair for pair, crc in _pairs(2).items()}


def slot_of(name: str) -> int:
    """The hash slot of a key name (its hash tag's, if it has one), as Redis Cluster
    computes it on the UTF-8 bytes redis-py sends."""
    data = name.encode("utf-8", "surrogatepass")
    start = data.find(b"{")
    if start > -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return crc_hqx(data, 0) & _MASK


def aligned_key_id(slot: int) -> str:
    """A fresh key id whose directory entry ``{k:<id>}`` hashes to ``slot``.

    80 random bits, then a 4-character suffix found for the slot (see the
    module docstring).
    """
    head = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()
    state = crc_hqx(b"k:" + head.encode("ascii"), 0)
    want = (slot & _MASK) ^ (crc_hqx(_ZEROS, state) & _MASK)
    start = secrets.randbelow(len(_HEADS))  # no visible pattern in the suffixes
    for i in range(len(_HEADS)):
        pair, crc = _HEADS[(start + i) % len(_HEADS)]
        tail = _TAILS.get(want ^ crc)
        if tail is not None:
            return head + (pair + tail).decode("ascii")
    raise AssertionError("unreachable: every slot has a suffix")  # pragma: no cover
