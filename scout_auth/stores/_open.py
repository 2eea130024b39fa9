"""A key store for a URL: the one place that picks a back end by scheme.

Used by the CLI and by adapters configured with a URL (Flask's
``SCOUT_AUTH_STORE``); everything else takes a store object.
"""

from __future__ import annotations

from .._core.store import KeyStore
from .._extras import missing_extra

__all__ = ["REDIS_SCHEMES", "open_store"]

#: URL schemes of the Redis store (plain, TLS, socket, Redis Cluster).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")


def open_store(url: str, *, listen: bool = True) -> KeyStore:
    """A :class:`~scout_auth.stores.KeyStore` for ``url``: Redis by scheme, else SQL.

    ``listen``: start the store's change feed (a service does; a one-shot
    command need not). The back end is imported only when asked for, so an
    app needs only the extra of the store it uses.

    Raises:
        ImportError: That extra (or the URL's driver) is not installed; the
            message names what to ``pip install``.
    """
    try:
        if url.lower().startswith(REDIS_SCHEMES):
            from .redis import RedisKeyStore

            return RedisKeyStore.from_url(url, listen=listen)
        from .sql import SQLKeyStore

        return SQLKeyStore(url, listen=listen)
    except ModuleNotFoundError as exc:  # the back end's extra (or its driver's) is missing
        named = missing_extra(exc)
        if named is None:
            raise
        raise named from None
