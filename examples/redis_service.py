"""The example Starlette API as one instance of a fleet sharing a Redis key store.

Start as many as you like; a key disabled or deleted anywhere (any
instance, the CLI, a script with a ``KeyManager``) stops working on all of
them within milliseconds, through the store's change feed::

    python -m examples.redis_service --url redis://127.0.0.1:6379/0 --port 8001
    python -m examples.redis_service --url redis://127.0.0.1:6379/0 --port 8002

It prints ``serving http://HOST:PORT`` once it accepts requests (``--port 0``
picks a free port). ``--no-listen`` runs without the change feed: changes
made elsewhere then reach this instance after ``--cache-ttl`` seconds.
"""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn

from examples.starlette_app import create_app
from scout_auth.stores.redis import RedisKeyStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="scout")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cache-ttl", type=float, default=60.0)
    parser.add_argument("--no-listen", dest="listen", action="store_false")
    args = parser.parse_args(argv)

    store = RedisKeyStore.from_url(args.url, prefix=args.prefix, listen=args.listen)
    if args.listen and not store.wait_listening(10):
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
