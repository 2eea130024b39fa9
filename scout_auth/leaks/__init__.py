"""A secret-scanning receiver: a leaked key is stopped within seconds, with nobody awake.

* :class:`LeakReceiverApp` — an ASGI app (Starlette ``Mount``, FastAPI
  ``app.mount``) over an :class:`~scout_auth.AsyncKeyManager`;
* :func:`leak_receiver_blueprint` — the same as a Flask blueprint over a
  :class:`~scout_auth.KeyManager` (``pip install 'scout-auth[flask]'``).

Both accept GitHub's secret-scanning partner reports (ECDSA P-256 signed,
keys from :class:`ScannerKeys`) and a generic shared-secret HMAC variant;
the handler is written once (``scout_auth/_leaks``). A real reported key is
disabled (or deleted) through
:meth:`KeyManager.report_leak <scout_auth.KeyManager.report_leak>`; see
docs/leaked-keys.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._core.leaked import LEAK_POLICIES, LeakPolicy
from .._leaks.flow import (
    DEFAULT_HMAC_HEADER,
    DEFAULT_MAX_BODY,
    GITHUB_KEY_ID_HEADER,
    GITHUB_SIGNATURE_HEADER,
    LeakReport,
)
from .._leaks.replay import DEFAULT_REPLAY_WINDOW, InMemoryReplayGuard, ReplayGuard
from .._leaks.signature import KeyDocumentError, hmac_signature, parse_key_document
from ._asgi import LeakReceiverApp
from ._common import OnLeak
from ._keys import KeySource, ScannerKeys
from ._redis import RedisReplayGuard

if TYPE_CHECKING:
    from ._flask import leak_receiver_blueprint

__all__ = [
    "DEFAULT_HMAC_HEADER",
    "DEFAULT_MAX_BODY",
    "DEFAULT_REPLAY_WINDOW",
    "GITHUB_KEY_ID_HEADER",
    "GITHUB_SIGNATURE_HEADER",
    "LEAK_POLICIES",
    "InMemoryReplayGuard",
    "KeyDocumentError",
    "KeySource",
    "LeakPolicy",
    "LeakReceiverApp",
    "LeakReport",
    "OnLeak",
    "RedisReplayGuard",
    "ReplayGuard",
    "ScannerKeys",
    "hmac_signature",
    "leak_receiver_blueprint",
    "parse_key_document",
]


def __getattr__(name: str) -> Any:
    # Flask is an extra: importing this package must not need it.
    if name == "leak_receiver_blueprint":
        from .._extras import require

        require("flask")
        from ._flask import leak_receiver_blueprint

        return leak_receiver_blueprint
    raise AttributeError(name)
