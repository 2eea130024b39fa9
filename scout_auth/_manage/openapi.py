"""The OpenAPI 3.1 document of the management API, built from the route table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .routes import Route

__all__ = ["document"]


def document(mount: str, routes: Sequence[Route]) -> dict[str, Any]:
    """The OpenAPI document, its server URL the mount prefix."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.kind != "api":
            continue
        paths.setdefault(route.path, {})[route.method.lower()] = {"operationId": route.name}
    return {
        "openapi": "3.1.0",
        "info": {"title": "scout_auth key management", "version": "1"},
        "servers": [{"url": mount.rstrip("/") or "/"}],
        "paths": paths,
    }
