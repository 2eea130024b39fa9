"""The Settings → API Keys page and the management API under it, ready to mount.

* :class:`ManagementApp` — an ASGI app (Starlette ``Mount``, FastAPI
  ``app.mount``) over an :class:`~scout_auth.AsyncKeyManager`;
* :func:`management_blueprint` — the same, as a Flask blueprint over a
  :class:`~scout_auth.KeyManager` (``pip install 'scout-auth[flask]'``).

Both answer the same requests with the same bytes: the handlers are
written once (``scout_auth/_manage``). Who may do what comes from your
``authorize(request) -> Principal | None`` hook, or from an Org Credential
holding the :data:`MANAGE_SCOPE` scope. Pages need ``jinja2``
(``pip install 'scout-auth[manage]'``). See docs/keys-page.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._manage.access import CSRF_HEADER, MANAGE_SCOPE, Principal
from .._manage.routes import ROUTES
from ._asgi import ManagementApp

if TYPE_CHECKING:
    from ._flask import management_blueprint

__all__ = [
    "CSRF_HEADER",
    "MANAGE_SCOPE",
    "ROUTES",
    "ManagementApp",
    "Principal",
    "management_blueprint",
]


def __getattr__(name: str) -> Any:
    # Flask is an extra: importing this package must not need it.
    if name == "management_blueprint":
        from .._extras import require

        require("flask")
        from ._flask import management_blueprint

        return management_blueprint
    raise AttributeError(name)
