"""Scope matching.

Rules: scopes are case-sensitive strings such as ``drive:read``. A key's
granted scope ``drive:*`` grants every scope starting with ``drive:``; ``*``
grants everything. A key with ``scopes=None`` is unrestricted.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["missing_scopes", "scope_granted"]


def scope_granted(granted: frozenset[str] | None, scope: str) -> bool:
    """Whether ``granted`` covers ``scope``."""
    if granted is None or scope in granted or "*" in granted:
        return True
    prefix, sep, _ = scope.rpartition(":")
    while sep:
        if f"{prefix}:*" in granted:
            return True
        prefix, sep, _ = prefix.rpartition(":")
    return False


def missing_scopes(granted: frozenset[str] | None, required: Iterable[str]) -> list[str]:
    """The scopes in ``required`` that ``granted`` does not cover, in order."""
    return [s for s in required if not scope_granted(granted, s)]
