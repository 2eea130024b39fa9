"""Key stores: the protocol and its adapters.

``scout_auth.stores.memory`` is always available; ``scout_auth.stores.sql``
and ``scout_auth.stores.redis`` need the ``sql`` / ``redis`` extras. A store
of your own implements :class:`KeyStore` (:class:`StoreEventsMixin` keeps its
subscribers) and runs :mod:`scout_auth.testing`; see docs/writing-a-store.md.
"""

from __future__ import annotations

from .._core.store import KEEP, KeyEvent, KeyStore, KeyUpdate, Listener, StoreEventsMixin
from .memory import InMemoryKeyStore

__all__ = [
    "KEEP",
    "InMemoryKeyStore",
    "KeyEvent",
    "KeyStore",
    "KeyUpdate",
    "Listener",
    "StoreEventsMixin",
]
