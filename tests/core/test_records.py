"""Plain records (``scout_auth/_core/records.py``): what ``KeyList`` adds to a list."""

from __future__ import annotations

import copy
import pickle

import pytest

from scout_auth import KeyList, KeyRecord, LegacyStatus
from tests._support import T0

KEYS = [KeyRecord(f"key{i}", "org_1", f"integration {i}", b"\x01" * 32, True, T0) for i in range(2)]
LEGACY = LegacyStatus("org_1", True, False, T0, 3, 30)


def test_a_key_list_is_a_list_of_its_keys():
    listed = KeyList(KEYS, legacy=LEGACY)
    assert isinstance(listed, list)
    assert listed == KEYS
    assert KEYS == listed  # noqa: SIM300 - list.__eq__ on the left, on purpose
    assert (len(listed), listed[0], list(listed), listed[-1:]) == (2, KEYS[0], KEYS, KEYS[-1:])
    assert KeyList([], legacy=LEGACY) == []
    assert listed.legacy is LEGACY


def test_legacy_is_read_only():
    listed = KeyList(KEYS, legacy=LEGACY)
    with pytest.raises(AttributeError):
        listed.legacy = LEGACY  # type: ignore[misc]
    with pytest.raises(AttributeError):
        listed.other = 1  # type: ignore[attr-defined]


def test_repr_shows_the_keys_and_the_legacy_status():
    text = repr(KeyList(KEYS[:1], legacy=LEGACY))
    assert text == f"KeyList([{KEYS[0]!r}], legacy={LEGACY!r})"
    assert "public_key" not in text


@pytest.mark.parametrize(
    "clone",
    [
        pytest.param(copy.copy, id="copy"),
        pytest.param(copy.deepcopy, id="deepcopy"),
        pytest.param(lambda x: pickle.loads(pickle.dumps(x)), id="pickle"),  # noqa: S301
    ],
)
def test_copies_keep_the_legacy_status(clone):
    got = clone(KeyList(KEYS, legacy=LEGACY))
    assert type(got) is KeyList
    assert (got, got.legacy) == (KEYS, LEGACY)
