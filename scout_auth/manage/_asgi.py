"""The management API and page as an ASGI app (Starlette, FastAPI, any ASGI server)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from .._adapters.gate import route_path
from .._adapters.proxies import TrustedProxies
from .._adapters.requests import asgi_client_ip, asgi_request
from .._audit.events import AuditSink
from .._core.records import OrgContext
from .._drivers.manager import AsyncKeyManager
from .._drivers.verifier import AsyncVerifier
from .._manage.access import Principal
from .._manage.http import (
    ManageProblem,
    ManageRequest,
    ManageResponse,
    error_response,
    problem_response,
)
from .._manage.needs import Authorize, Call, ManageNeed, QueryAudit, VerifyKey
from .._manage.routes import handle
from .._mounting import arun_flow, read_asgi_body, serve_asgi
from ._common import BODY_LIMIT, answer_locally, audit_error, joined, query_sink, settings

__all__ = ["AsyncAuthorize", "ManagementApp"]

#: ``authorize(request)``: the host's answer to "who is this?" (sync runs in a thread).
AsyncAuthorize = Callable[[Request], "Principal | Awaitable[Principal | None] | None"]


class ManagementApp:
    """The Settings → API Keys page and its JSON API, as one ASGI app to mount.

    Args:
        manager: The :class:`~scout_auth.AsyncKeyManager` every change goes through.
        authorize: ``authorize(request) -> Principal | None`` (sync or async),
            given the Starlette :class:`~starlette.requests.Request`: who
            the host application says this is (``None``: not signed in).
        verifier: Verifies Org Credentials used for machine access (a key
            with the ``keys:manage`` scope). Default: an
            :class:`~scout_auth.AsyncVerifier` over the manager's store that
            reads no legacy secrets (they never manage keys).
        audit: The sink the audit views read. Default: the manager's.
        login_url: Where a page visit without a principal is sent (``?next=``
            added); ``None``: 401.
        create_per_minute: Keys an org may create (or rotate) per minute,
            per process.
        trusted_proxies: Proxies whose ``X-Forwarded-*`` headers give the
            origin (for the same-origin check) and client address, as for
            :class:`~scout_auth.starlette.ScoutAuthMiddleware`.
        proxy_header: ``"x-forwarded"`` or ``"forwarded"``.
        title: The page title.
        clock: POSIX time source (tests).

    Example::

        from starlette.applications import Starlette
        from starlette.routing import Mount
        from scout_auth.manage import ManagementApp, Principal

        def authorize(request):
            user = request.session.get("user")          # your login
            if user is None:
                return None
            return Principal(user["email"], admin_orgs=user["admin_of"])

        keys = ManagementApp(AsyncKeyManager(store, audit=buffer), authorize=authorize)
        app = Starlette(routes=[Mount("/settings/api-keys", app=keys)])
    """

    def __init__(
        self,
        manager: AsyncKeyManager,
        *,
        authorize: AsyncAuthorize,
        verifier: AsyncVerifier | None = None,
        audit: AuditSink | None = None,
        login_url: str | None = None,
        create_per_minute: float = 20.0,
        trusted_proxies: Iterable[str] = (),
        proxy_header: str = "x-forwarded",
        title: str = "API Keys",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(manager, AsyncKeyManager):
            raise TypeError("ManagementApp needs an AsyncKeyManager (Flask: management_blueprint)")
        if not callable(authorize):
            raise TypeError("authorize must be a callable: authorize(request) -> Principal | None")
        self.manager = manager
        self.authorize = authorize
        self._verifier = verifier
        self.audit = query_sink(audit, manager.audit)
        self.settings = settings(
            has_audit=self.audit is not None,
            has_vault=manager.vault is not None,
            login_url=login_url,
            title=title,
            create_per_minute=create_per_minute,
        )
        self.proxies = TrustedProxies.parse(trusted_proxies, header=proxy_header)
        self._clock = clock

    @property
    def verifier(self) -> AsyncVerifier:
        """The verifier of machine credentials (made on first use)."""
        if self._verifier is None:
            self._verifier = AsyncVerifier(self.manager.store, legacy_bearer=False)
        return self._verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve_asgi(scope, receive, send, self._respond)

    async def _respond(self, scope: Scope, receive: Receive) -> ManageResponse:
        try:
            body = await read_asgi_body(scope, receive, BODY_LIMIT)
        except ManageProblem as problem:
            return problem_response(problem)
        http = asgi_request(scope, self.proxies)
        request = ManageRequest(
            method=scope["method"].upper(),
            path=route_path(scope["path"], scope.get("root_path", "")) or "/",
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=joined(http.headers),
            body=body,
            origin=f"{http.scheme}://{http.authority}",
            mount=scope.get("root_path", ""),
            now=self._clock(),
        )

        async def perform(need: ManageNeed) -> object:
            if isinstance(need, Call):
                return await getattr(self.manager, need.method)(*need.args, **need.kwargs)
            if isinstance(need, Authorize):
                return await self._authorize(scope)
            if isinstance(need, VerifyKey):
                return await self._verify(scope, http, body)
            if isinstance(need, QueryAudit):
                assert self.audit is not None
                try:
                    return await self.audit.aquery(**need.kwargs)
                except ValueError as exc:
                    raise audit_error(exc) from exc
            raise AssertionError(need)

        flow = handle(request, self.settings)
        return await arun_flow(flow, perform, error_response, answer_locally)

    async def _authorize(self, scope: Scope) -> Principal | None:
        async def no_body() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        request = Request(scope, no_body)
        if inspect.iscoroutinefunction(self.authorize):
            result = await self.authorize(request)
        else:
            result = await run_in_threadpool(self.authorize, request)
            if inspect.isawaitable(result):
                result = await result
        return result  # type: ignore[no-any-return]

    async def _verify(self, scope: Scope, http: Any, body: bytes) -> OrgContext:
        client_ip = asgi_client_ip(scope, self.proxies)
        headers = joined(http.headers)
        if "signature" in headers or "signature-input" in headers:
            verified = await self.verifier.verify_signed_request(http, client_ip=client_ip)
            verified.body.feed(body, final=True)
            return verified.context
        return await self.verifier.verify_authorization(
            headers.get("authorization"), client_ip=client_ip
        )
