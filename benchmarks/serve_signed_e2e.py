"""Serve N signed requests through one variant of :mod:`benchmarks.signed_e2e`, untimed.

For instruction counts, which do not move with the machine's load::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m benchmarks.serve_signed_e2e asgi_scout 100

Run it with 100 and with 300 requests: the difference of the two
"Collected" counts divided by 200 is the instructions per request. The
requests (scopes, environs) are built up front in the same number
(``--signed``), so signing cancels out of the difference. ``raw`` runs that
many raw Ed25519 verifies instead; ``hms`` the ``http-message-signatures``
verification of each request.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import signed_e2e, signing

VARIANTS = ("raw", "hms", *(f"{a}_{k}" for a in signed_e2e.ADAPTERS for k in ("bare", "scout")))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="serve N signed requests of one variant")
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("requests", type=int)
    parser.add_argument("--signed", type=int, default=1300, help="requests signed up front")
    args = parser.parse_args(argv)
    if not 0 <= args.requests <= args.signed:
        parser.error("requests must be between 0 and --signed")

    store = signed_e2e._store()
    adapter, _, kind = args.variant.partition("_")
    if args.variant == "hms":
        signing.NOW = time.time()  # the library checks ``created`` against the real clock
    requests = signing.sign_many(args.signed + 1, 0)
    if args.variant == "raw":
        private = Ed25519PrivateKey.from_private_bytes(signing.SEED)
        public, message = private.public_key(), bytes(range(200))
        signature = private.sign(message)
        for _ in range(args.requests):
            public.verify(signature, message)
    elif args.variant == "hms":
        library = signed_e2e.hms_verifier()
        hms_requests = [signed_e2e.hms_request(r) for r in requests]
        for hms_request in hms_requests[: args.requests + 1]:
            library.verify(hms_request, body=signing.BODY)
    elif adapter == "asgi":
        app = signed_e2e.asgi_apps(store)[kind]
        scopes = [signed_e2e.asgi_scope(r) for r in requests]
        loop = asyncio.new_event_loop()

        async def serve() -> None:
            for scope in scopes[: args.requests + 1]:  # the first fills the caches
                assert await signed_e2e._asgi_one(app, scope) == 200

        loop.run_until_complete(serve())
    else:
        apps = signed_e2e.wsgi_apps(store) if adapter == "wsgi" else signed_e2e.flask_apps(store)
        wsgi_app = apps[kind]
        environs = [signed_e2e.wsgi_environ(r) for r in requests]
        for environ in environs[: args.requests + 1]:
            assert signed_e2e._wsgi_one(wsgi_app, environ) == 200


if __name__ == "__main__":
    main()
