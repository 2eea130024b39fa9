"""The example Starlette API as one instance of a fleet sharing a key store.

Start as many as you like on one Redis or one PostgreSQL database; a key
disabled or deleted anywhere (any instance, the CLI, a script with a
``KeyManager``) stops working on all of them within milliseconds, through
the store's change feed (Redis pub/sub, PostgreSQL ``LISTEN``/``NOTIFY``)::

    python -m examples.service --url redis://127.0.0.1:6379/0 --port 8001
    python -m examples.service --url redis+cluster://10.0.0.1:6379,10.0.0.2:6379/ --port 8002
    python -m examples.service --url postgresql+psycopg://app@db/app --port 8003

It prints ``serving http://HOST:PORT`` once it accepts requests (``--port 0``
picks a free port). ``--namespace`` is the Redis key prefix or the
PostgreSQL notification channel. ``--no-listen`` runs without the change
feed: changes made elsewhere then reach this instance after ``--cache-ttl``
seconds (always so on SQLite and MariaDB, which have no feed).
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import TYPE_CHECKING

import uvicorn

from examples.starlette_app import create_app

if TYPE_CHECKING:
    from scout_auth.stores.redis import RedisKeyStore
    from scout_auth.stores.sql import SQLKeyStore

# One Redis server, or a Redis Cluster (startup nodes, comma-separated).
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")


def has_feed(url: str) -> bool:
    """Whether a store on ``url`` can have a change feed (Redis, PostgreSQL)."""
    return url.startswith((*_REDIS_SCHEMES, "postgresql"))


def open_store(
    url: str, *, namespace: str | None = None, listen: bool = True
) -> RedisKeyStore | SQLKeyStore:
    """A :class:`~scout_auth.stores.redis.RedisKeyStore` or a ``SQLKeyStore`` for ``url``."""
    if url.lower().startswith(_REDIS_SCHEMES):
        from scout_auth.stores.redis import RedisKeyStore

        return RedisKeyStore.from_url(url, prefix=namespace or "scout", listen=listen)
    from scout_auth.stores.sql import DEFAULT_CHANNEL, SQLKeyStore

    return SQLKeyStore(url, channel=namespace or DEFAULT_CHANNEL, listen=listen)


def main(argv: list[str] | None = None, *, default_url: str | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=default_url, required=default_url is None)
    parser.add_argument("--namespace", "--prefix", default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cache-ttl", type=float, default=60.0)
    parser.add_argument("--no-listen", dest="listen", action="store_false")
    args = parser.parse_args(argv)

    store = open_store(args.url, namespace=args.namespace, listen=args.listen)
    if args.listen and has_feed(args.url) and not store.wait_listening(10):
        print("the change feed did not connect", file=sys.stderr)
        return 1
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only then (else Nagle adds 40 ms per request).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)  # connections queue from now on, before uvicorn takes over
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        create_app(store, cache_ttl=args.cache_ttl), log_level="warning", access_log=False
    )
    print(f"serving http://{host}:{port}", flush=True)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
