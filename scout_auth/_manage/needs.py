"""What a management handler yields for its adapter to do."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Asset", "Authorize", "Call", "Flow", "ManageNeed", "QueryAudit", "Render", "VerifyKey"]


@dataclass(frozen=True, slots=True)
class Authorize:
    """Need: the host's ``authorize(request)`` answer, a Principal or ``None``."""


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """Need: verify the Org Credential the request carries; answer its OrgContext.

    The adapter verifies the framework request it holds (bearer token or
    RFC 9421 signature, the body against a covered ``Content-Digest``) and
    lets the verifier's :class:`~scout_auth.exceptions.AuthError` propagate.
    """


@dataclass(frozen=True, slots=True)
class Call:
    """Need: ``manager.<method>(*args, **kwargs)`` (awaited by the async adapter)."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueryAudit:
    """Need: ``sink.query(**kwargs)`` of the app's audit sink (``aquery`` when async)."""

    kwargs: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Render:
    """Need: the bytes of page template ``template`` rendered with ``context``."""

    template: str
    context: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Asset:
    """Need: the bytes and media type of static file ``name``, or ``None`` if there is none."""

    name: str


ManageNeed = Authorize | VerifyKey | Call | QueryAudit | Render | Asset

R = TypeVar("R")

#: A handler: yields needs, returns its result.
Flow = Generator[ManageNeed, Any, R]
