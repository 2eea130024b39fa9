"""The example Starlette API as one instance of a fleet sharing a Redis key store.

:mod:`examples.service` with a Redis URL by default (kept for existing
scripts; ``--prefix`` is the key prefix)::

    python -m examples.redis_service --url redis://127.0.0.1:6379/0 --port 8001
    python -m examples.redis_service --url redis://127.0.0.1:6379/0 --port 8002
"""

from __future__ import annotations

import sys

from examples.service import main

if __name__ == "__main__":
    sys.exit(main(default_url="redis://127.0.0.1:6379/0"))
