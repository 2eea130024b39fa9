"""Key stores: the protocol and its adapters.

``scout_auth.stores.memory`` is always available; ``scout_auth.stores.sql``
and ``scout_auth.stores.redis`` need the ``sql`` / ``redis`` extras.
"""

from __future__ import annotations

from .._core.store import KEEP, KeyEvent, KeyStore, KeyUpdate, Listener
from .memory import InMemoryKeyStore

__all__ = ["KEEP", "InMemoryKeyStore", "KeyEvent", "KeyStore", "KeyUpdate", "Listener"]
