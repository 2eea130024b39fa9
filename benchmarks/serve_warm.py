"""Serve N warm requests of one variant of :mod:`benchmarks.warm_bearer`, untimed.

For instruction counts, which do not move with the machine's load::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m benchmarks.serve_warm starlette scout 1200

Run it with 200 and with 1200 requests: the difference of the two
"Collected" counts divided by 1000 is the instructions per request.
"""

from __future__ import annotations

import argparse
import asyncio

from scout_auth import InMemoryKeyStore, KeyManager

from . import warm_bearer as wb


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="serve N warm requests of one variant")
    parser.add_argument("framework", choices=["starlette", "flask"])
    parser.add_argument("variant", choices=["bare", "hand", "scout"])
    parser.add_argument("requests", type=int)
    parser.add_argument(
        "--rule-scopes", type=int, default=0, help="scopes a route rule requires (see warm_bearer)"
    )
    args = parser.parse_args(argv)
    required = wb.SCOPES[: args.rule_scopes]

    store = InMemoryKeyStore()
    token = KeyManager(store).create_key(wb.ORG, "bench", scopes=list(wb.SCOPES)).token
    if args.framework == "flask":
        apps = wb.flask_apps(token, store, required)
        timer = wb.wsgi_timer(apps[args.variant], wb.wsgi_environ(token))
    else:
        loop = asyncio.new_event_loop()
        app = wb.starlette_apps(token, store, required)[args.variant]
        timer = wb.asgi_timer(loop, app, wb.asgi_scope(token))
    timer(50)  # fills the cache, builds lazily made objects
    timer(args.requests)


if __name__ == "__main__":
    main()
