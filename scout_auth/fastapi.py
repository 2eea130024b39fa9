"""FastAPI dependencies over :mod:`scout_auth.starlette`.

FastAPI is Starlette: protect the app with
:class:`~scout_auth.starlette.ScoutAuthMiddleware`, then ask for the org (or
for scopes) in a route's parameters::

    from typing import Annotated
    from fastapi import Depends, FastAPI
    from scout_auth import AsyncVerifier, OrgContext
    from scout_auth.fastapi import current_org, require_scopes
    from scout_auth.starlette import ScoutAuthMiddleware

    app = FastAPI()
    app.add_middleware(ScoutAuthMiddleware, verifier=AsyncVerifier(store))

    @app.post("/files")
    def upload(org: Annotated[OrgContext, Depends(require_scopes("files:write"))]):
        return {"org": org.org_id}

A missing scope raises :class:`~scout_auth.exceptions.InsufficientScope`,
which the middleware answers with 403 problem+json and
``WWW-Authenticate: Bearer error="insufficient_scope", scope="…"``.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

from ._core.records import OrgContext
from .starlette import org_context
from .starlette import require_scopes as _require_scopes

__all__ = ["current_org", "require_scopes"]


def current_org(request: Request) -> OrgContext:
    """Dependency: the verified org of the request."""
    return org_context(request)


def require_scopes(*scopes: str) -> Callable[[Request], OrgContext]:
    """Dependency factory: the verified org, provided it grants every scope in ``scopes``."""

    def dependency(request: Request) -> OrgContext:
        return _require_scopes(request, *scopes)

    dependency.__name__ = "require_scopes_" + "_".join(scopes).replace(":", "_")
    return dependency
