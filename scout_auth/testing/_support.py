"""Small helpers the contract suites share."""

from __future__ import annotations

from argon2 import PasswordHasher

__all__ = ["cheap_hasher"]


def cheap_hasher() -> PasswordHasher:
    """An argon2id hasher at its cheapest: the contracts test the store, not the hash.

    Never for production: these parameters make a guess nearly free.
    """
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
