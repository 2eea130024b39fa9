"""Verify N signed requests of one variant of :mod:`benchmarks.signing`, untimed.

For instruction counts, which do not move with the machine's load::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m benchmarks.serve_signed api 100

Run it with 100 and with 300 requests: the difference of the two
"Collected" counts divided by 200 is the instructions per request. The
requests are always signed up front in the same number (``--signed``), so
signing cancels out of the difference.
"""

from __future__ import annotations

import argparse

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import signing


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="verify N signed requests of one variant")
    parser.add_argument("variant", choices=["raw", *signing.VARIANTS])
    parser.add_argument("requests", type=int)
    parser.add_argument("--signed", type=int, default=1300, help="requests signed up front")
    args = parser.parse_args(argv)
    if not 0 <= args.requests <= args.signed:
        parser.error("requests must be between 0 and --signed")

    server = signing.make_server()
    requests = signing.sign_many(args.signed, 0)
    api, async_api = signing._api_batches(server.store)
    warm = signing.sign_many(3, -3)  # fills the key caches, builds lazily made objects
    server.verify(warm[0], signing.BODY)
    api([warm[1]])()
    async_api([warm[2]])()
    private = Ed25519PrivateKey.from_private_bytes(signing.SEED)
    public, message = private.public_key(), bytes(range(200))
    raw_signature = private.sign(message)

    chunk = requests[: args.requests]
    if args.variant == "raw":
        for _ in chunk:
            public.verify(raw_signature, message)
    elif args.variant == "full":
        for request in chunk:
            server.verify(request, signing.BODY)
    else:
        (api if args.variant == "api" else async_api)(chunk)()


if __name__ == "__main__":
    main()
