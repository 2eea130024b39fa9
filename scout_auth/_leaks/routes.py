"""The receiver's two answers: its OpenAPI document, and every other request to the report flow."""

from __future__ import annotations

from dataclasses import replace

from .._adapters import answers
from .flow import BASE_HEADERS, Flow, LeakRequest, ReceiverSettings, receive
from .openapi import document

__all__ = ["OPENAPI_PATH", "handle"]

#: Where, below the mount point, the OpenAPI document is served (GET or HEAD, unsigned).
OPENAPI_PATH = "/openapi.json"


def handle(request: LeakRequest, settings: ReceiverSettings) -> Flow:
    """``GET {mount}/openapi.json``: the document; anything else: :func:`~.flow.receive`.

    Raises what :func:`~.flow.receive` raises.
    """
    if request.path == OPENAPI_PATH and request.method in ("GET", "HEAD"):
        answer = answers.json_response(document(request.mount, settings), base=BASE_HEADERS)
        # HEAD: the GET answer's status and headers, no body (RFC 9110 §9.3.2).
        return replace(answer, body=b"") if request.method == "HEAD" else answer
    return (yield from receive(request, settings))
