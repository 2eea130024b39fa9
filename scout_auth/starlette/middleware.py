"""The Starlette middleware: one ASGI class that authenticates every request it protects."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Unpack

from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._adapters.gate import Gate, denial_fields, loggable, route_path
from .._adapters.options import AdapterKwargs, AdapterOptions
from .._adapters.requests import asgi_client_ip, asgi_request
from .._core.problem import problem_for
from .._core.records import CredentialKind
from .._drivers.observe import ACCEPTED, SIGNED_OK, report
from .._drivers.verifier import AsyncVerifier
from .._signing.body import BodyGuard
from ..exceptions import AuthError
from .auth import SCOPE_KEY, OrgCredentials, OrgUser

# Module constants: reading an enum member, or indexing a table with a
# bool (not a specialised subscript), costs more per request than a name.
_LEGACY = CredentialKind.LEGACY
_BEARER_HIT, _LEGACY_HIT = ACCEPTED[True]
_BEARER_OK, _LEGACY_OK = ACCEPTED[False]

__all__ = ["ErrorHandler", "ScoutAuthMiddleware"]

logger = logging.getLogger("scout_auth")

_SIGNATURE_HEADERS = (b"signature-input", b"signature")

ErrorHandler = Callable[[HTTPConnection, AuthError], Response | Awaitable[Response] | None]


async def _dropped() -> None:
    """What a muted app's ``send`` awaits: nothing is sent."""


class ScoutAuthMiddleware:
    """Authenticate every HTTP request and websocket handshake.

    Args:
        app: The ASGI app to protect.
        verifier: An :class:`~scout_auth.AsyncVerifier`.
        exempt_paths: Paths served without credentials (``"/health"``;
            ``"/public/*"`` for a prefix).
        header: Header carrying the credential (default ``authorization``).
        realm: ``WWW-Authenticate`` realm.
        required_scopes: Scopes every non-exempt request needs.
        on_error: ``on_error(conn, exc)`` may return a Response (or an
            awaitable of one) to send instead of the default problem+json
            answer; returning ``None`` keeps the default.
        max_body_size: Largest body of a signed request; 413 above.
        rules: Route rules ``(method, path pattern, scopes)``, e.g.
            ``("POST", "/files/*", ["files:write"])``: a matching request
            needs those scopes too (403 ``insufficient_scope`` otherwise).
        trusted_proxies: Addresses / CIDR ranges of reverse proxies whose
            forwarding headers are believed: for a signature's ``@scheme`` /
            ``@authority`` and for the client address IP allowlists check
            (otherwise ``scope["client"]``).
        proxy_header: The header family those proxies write: ``"x-forwarded"``
            (default: ``X-Forwarded-For`` / ``-Proto`` / ``-Host``) or
            ``"forwarded"`` (RFC 7239 ``Forwarded``); the other is ignored.
        proxy_hops: How many trusted proxies append to that header (default
            1): the value that many places from the right is believed; a
            shorter chain leaves the client address unknown (docs/middleware.md).

        buffer_signed_body: Read a signed body whole (up to
            ``max_body_size``) and check it before the app runs (default
            ``False``: stream it, see below).

    Rules and exemptions match the path the app routes on: ``scope["path"]``
    without ``scope["root_path"]`` (a ``Mount`` or ``uvicorn --root-path``
    prefix), as Starlette's router does; a ``GET`` rule also governs ``HEAD``.

    Signed requests (RFC 9421) are verified from their headers before the
    app runs. Their body is checked against the ``Content-Digest`` the
    signature covers — any body byte is refused when it covers none, framing
    headers or not. By default the body streams to the app through that
    check, and the final chunk is only handed over once it matched. On a
    mismatch the app's next ``receive()`` is ``http.disconnect``, whatever it
    answers is discarded, and the client gets 401 ``digest_mismatch``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: AsyncVerifier,
        on_error: ErrorHandler | None = None,
        **options: Unpack[AdapterKwargs],
    ) -> None:
        if not isinstance(verifier, AsyncVerifier):
            raise TypeError("ScoutAuthMiddleware needs an AsyncVerifier")
        self.app = app
        self.verifier = verifier
        self.options = AdapterOptions.build(**options)
        self.gate = Gate(self.options)
        self._header = self.options.header.encode("latin-1")
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        options = self.options
        method = scope.get("method", "GET")  # websocket handshakes are GETs
        # Rules and exemptions match the path the app routes on: under a
        # Mount or ``--root-path`` that is ``path`` without ``root_path``.
        root_path = scope.get("root_path")
        path = route_path(scope["path"], root_path) if root_path else scope["path"]
        required = self.gate.scopes(method, path)
        if required is None:  # exempt
            scope["auth"], scope["user"] = AuthCredentials(), UnauthenticatedUser()
            scope[SCOPE_KEY] = None
            await self.app(scope, receive, send)
            return
        header = self._header
        value: str | None = None
        signed = False
        for name, raw in scope["headers"]:
            if name == header:
                text = raw.decode("latin-1")
                # Repeated fields join with ", " (RFC 9110 §5.3); the verifier refuses that.
                value = text if value is None else f"{value}, {text}"
            elif name in _SIGNATURE_HEADERS:
                signed = True
        if options.proxies.networks:
            client_ip = asgi_client_ip(scope, options.proxies)
        else:  # the usual case, without a call: the peer address
            client = scope.get("client")
            client_ip = client[0] if client else None
        guard: BodyGuard | None = None
        observer = self.verifier.observer  # observability: None is off
        began = perf_counter() if observer is not None else 0.0
        try:
            if signed:
                request = asgi_request(scope, options.proxies)
                if scope["type"] == "http":
                    # A declared length over the limit is refused before any crypto.
                    self.gate.check_length(request._raw_field("content-length"))
                verified = await self.verifier.verify_signed_request(
                    request,
                    authorization=value,
                    required_scopes=required,
                    client_ip=client_ip,
                    max_body_size=options.max_body_size,
                )
                context = verified.context
                # Every body byte goes through the guard, announced or not: the
                # body of an HTTP/2 request has no Content-Length to go by.
                guard = verified.body if scope["type"] == "http" else None
            else:
                authorization = (
                    value if options.header == "authorization" else (options.authorization(value))
                )
                # A cached credential is answered without awaiting anything.
                cached = self.verifier.cached_authorization(authorization, required, client_ip)
                context = (
                    cached
                    if cached is not None
                    else await self.verifier.verify_authorization(
                        authorization, required_scopes=required, client_ip=client_ip
                    )
                )
        except AuthError as exc:
            if observer is not None:
                report(observer, signed, value, None, exc, began)
            await self._reject(scope, receive, send, exc)
            return
        if observer is not None:  # one call, a precomputed label (observe.py)
            if signed:
                label = SIGNED_OK
            elif cached is not None:  # the warm path
                label = _LEGACY_HIT if context.kind is _LEGACY else _BEARER_HIT
            else:
                label = _LEGACY_OK if context.kind is _LEGACY else _BEARER_OK
            observer.observe(label, perf_counter() - began, context)
        scope["auth"] = OrgCredentials(context.scopes)
        scope["user"] = OrgUser(context)
        scope[SCOPE_KEY] = context
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        if guard is not None:
            if options.buffer_signed_body:
                await self._call_buffered(scope, receive, send, guard)
            else:
                await self._call_guarded(scope, receive, send, guard)
            return
        # _call_app(), inlined: one coroutine frame fewer on every warm request.
        started = False

        def send_wrapper(message: Message) -> Awaitable[None]:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            return send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except AuthError as exc:
            if started:
                raise
            await self._reject(scope, receive, send, exc)

    async def _call_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The app, with an AuthError it raises before its response started
        # (require_scopes) answered like a refusal.
        started = False

        # A plain function handing back send's awaitable: one coroutine frame
        # fewer per message than an ``async def`` wrapper.
        def send_wrapper(message: Message) -> Awaitable[None]:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            return send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except AuthError as exc:
            if started:
                raise
            await self._reject(scope, receive, send, exc)

    async def _call_buffered(
        self, scope: Scope, receive: Receive, send: Send, guard: BodyGuard
    ) -> None:
        # buffer_signed_body=True: the whole body is read (bounded by the
        # guard's max_body_size) and checked before the app runs, so the app
        # sees no byte of a body that fails its digest.
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            if message["type"] != "http.request":
                continue
            chunk = message.get("body", b"")
            more = bool(message.get("more_body", False))
            try:
                guard.feed(chunk, final=not more)
            except AuthError as exc:
                logger.info("signed body refused on %s: %s", loggable(scope["path"]), exc.code)
                await self._reject(scope, receive, send, exc)
                return
            chunks.append(chunk)
            if not more:
                break
        pending: Message | None = {"type": "http.request", "body": b"".join(chunks)}
        chunks.clear()

        async def replay() -> Message:
            nonlocal pending
            if pending is not None:
                message, pending = pending, None
                return message
            return await receive()  # then the real stream: http.disconnect

        await self._call_app(scope, replay, send)

    async def _call_guarded(
        self, scope: Scope, receive: Receive, send: Send, guard: BodyGuard
    ) -> None:
        # The signed body streams through ``guard``: no buffering, and the
        # chunk that completes the body is handed over only after the digest
        # matched (RFC 9530). A failure turns the stream into a disconnect and
        # mutes the app, so it can neither see the whole bad body nor answer.
        failure: AuthError | None = None
        started = False

        async def guarded_receive() -> Message:
            nonlocal failure
            if failure is not None:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                try:
                    guard.feed(message.get("body", b""), final=not message.get("more_body", False))
                except AuthError as exc:
                    failure = exc
                    logger.info("signed body refused on %s: %s", loggable(scope["path"]), exc.code)
                    return {"type": "http.disconnect"}
            return message

        # A plain function handing back send's awaitable (as on the bearer
        # path): one coroutine frame fewer per message.
        def guarded_send(message: Message) -> Awaitable[None]:
            nonlocal started
            if failure is not None and not started:
                return _dropped()  # the app answers a body it was refused: drop it
            if message["type"] == "http.response.start":
                started = True
            return send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception as exc:
            if started:
                raise
            if failure is None:
                if not isinstance(exc, AuthError):
                    raise
                failure = exc
        if failure is not None and not started:
            await self._reject(scope, receive, send, failure)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, exc: AuthError) -> None:
        method = scope.get("method", "WS")
        client_ip = asgi_client_ip(scope, self.options.proxies)
        request_id = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None
        )
        logger.info(
            "denied %s %s: %s",
            loggable(method),
            loggable(scope["path"]),
            exc.code,
            extra=denial_fields(exc, method, scope["path"], client_ip, request_id),
        )
        self.verifier.record_denial(
            exc, method=scope.get("method", "GET"), path=scope["path"], client_ip=client_ip
        )
        scope["auth"], scope["user"] = AuthCredentials(), UnauthenticatedUser()
        scope[SCOPE_KEY] = None
        response: Response | None = None
        if self.on_error is not None:
            result = self.on_error(HTTPConnection(scope, receive), exc)
            response = await result if isinstance(result, Awaitable) else result
        if response is None:
            status, headers, body = problem_for(exc, realm=self.options.realm)
            response = Response(body, status_code=status, headers=dict(headers))
        if scope["type"] == "websocket":
            if "websocket.http.response" in scope.get("extensions", {}):
                # ASGI "Websocket Denial Response" extension: a real 401/403.
                await response(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008, "reason": exc.code})
            return
        await response(scope, receive, send)
