"""The receiver as an ASGI app (Starlette ``Mount``, FastAPI ``app.mount``)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from .._adapters.gate import route_path
from .._core.leaked import LeakPolicy
from .._drivers.manager import AsyncKeyManager
from .._leaks.flow import (
    DEFAULT_HMAC_HEADER,
    DEFAULT_MAX_BODY,
    ClaimReport,
    LeakNeed,
    LeakProblem,
    LeakRequest,
    LeakResponse,
    Notify,
    ReleaseReport,
    ReportLeak,
    ScannerKey,
    error_response,
    problem_response,
)
from .._leaks.replay import ReplayGuard
from .._leaks.routes import handle
from .._mounting import arun_flow, read_asgi_body, serve_asgi
from ._common import Notifier, OnLeak, receiver_settings
from ._keys import ScannerKeys

__all__ = ["LeakReceiverApp"]


class LeakReceiverApp:
    """The secret-scanning receiver, as one ASGI app to mount (POST to its root).

    Args:
        manager: The :class:`~scout_auth.AsyncKeyManager` that disables or
            deletes reported keys (its audit sink gets the ``leaked`` events).
        scanner_keys: GitHub's published public keys (:class:`ScannerKeys`):
            reports signed with ``Github-Public-Key-Signature`` are checked
            against them.
        hmac_secret: The generic variant: a shared secret (at least 32
            bytes) whose HMAC-SHA256 of the raw body comes in ``hmac_header``
            as ``sha256=<hex>``. At least one of the two is required.
        hmac_header: The generic variant's header name.
        on_report: ``"disable"`` (default) or ``"delete"`` a reported key.
        on_leak: ``on_leak(key, report)``, sync (run in a worker thread) or
            async (a task): called once per real key after it was stopped,
            never on the request path; an exception is logged.
        replay_guard: Where report digests are remembered (default: an
            :class:`InMemoryReplayGuard`; a fleet: :class:`RedisReplayGuard`).
        max_body: The largest report in bytes (default 1 MiB).

    Example::

        leaks = LeakReceiverApp(manager, scanner_keys=ScannerKeys("github-keys.json"))
        app = Starlette(routes=[Mount("/hooks/secret-scanning", app=leaks)])
    """

    def __init__(
        self,
        manager: AsyncKeyManager,
        *,
        scanner_keys: ScannerKeys | None = None,
        hmac_secret: str | bytes | None = None,
        hmac_header: str = DEFAULT_HMAC_HEADER,
        on_report: LeakPolicy = "disable",
        on_leak: OnLeak | None = None,
        replay_guard: ReplayGuard | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if not isinstance(manager, AsyncKeyManager):
            raise TypeError(
                "LeakReceiverApp needs an AsyncKeyManager (Flask: leak_receiver_blueprint)"
            )
        self.manager = manager
        self.scanner_keys = scanner_keys
        self.settings, self.replay_guard = receiver_settings(
            scanner_keys=scanner_keys,
            hmac_secret=hmac_secret,
            hmac_header=hmac_header,
            on_report=on_report,
            max_body=max_body,
            replay_guard=replay_guard,
            on_leak=on_leak,
        )
        self.notifier = Notifier(on_leak)

    def __repr__(self) -> str:
        return f"LeakReceiverApp(manager={self.manager!r}, on_report={self.settings.on_report!r})"

    async def __call__(self, scope: Scope, receive_: Receive, send: Send) -> None:
        await serve_asgi(scope, receive_, send, self._respond)

    async def _respond(self, scope: Scope, receive_: Receive) -> LeakResponse:
        try:
            body = await read_asgi_body(scope, receive_, self.settings.body_limit)
        except LeakProblem as problem:
            return problem_response(problem)
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", []):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        request = LeakRequest(
            method=scope["method"].upper(),
            path=route_path(scope["path"], scope.get("root_path", "")),
            headers=headers,
            body=body,
            mount=scope.get("root_path", ""),
        )
        return await arun_flow(handle(request, self.settings), self._perform, error_response)

    async def _perform(self, need: LeakNeed) -> object:
        if isinstance(need, ScannerKey):
            assert self.scanner_keys is not None
            return await run_in_threadpool(self.scanner_keys.get, need.key_id)
        if isinstance(need, ClaimReport):
            return await self.replay_guard.aclaim(need.digest)
        if isinstance(need, ReleaseReport):
            await self.replay_guard.arelease(need.digest)
            return None
        if isinstance(need, ReportLeak):
            try:
                return await self.manager.report_leak(
                    need.token, url=need.url, actor=need.actor, on_report=need.on_report
                )
            except Exception as exc:  # answered: see ReportLeak
                return exc
        if isinstance(need, Notify):
            self.notifier.anotify(need.key, need.report)
            return None
        raise AssertionError(need)
