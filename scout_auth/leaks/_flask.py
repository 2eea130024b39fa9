"""The receiver as a Flask blueprint: the same handler, driven sync."""

from __future__ import annotations

import inspect

import flask

from .._core.leaked import LeakPolicy
from .._drivers.manager import KeyManager
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
from .._mounting import flask_mount, flask_response, read_flask_body, run_flow
from ._common import Notifier, OnLeak, receiver_settings
from ._keys import ScannerKeys

__all__ = ["leak_receiver_blueprint"]


def leak_receiver_blueprint(
    manager: KeyManager,
    *,
    scanner_keys: ScannerKeys | None = None,
    hmac_secret: str | bytes | None = None,
    hmac_header: str = DEFAULT_HMAC_HEADER,
    on_report: LeakPolicy = "disable",
    on_leak: OnLeak | None = None,
    replay_guard: ReplayGuard | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    name: str = "scout_auth_leaks",
) -> flask.Blueprint:
    """The secret-scanning receiver as a blueprint (POST to its prefix).

    The arguments are :class:`~scout_auth.leaks.LeakReceiverApp`'s, over a
    sync :class:`~scout_auth.KeyManager`; ``on_leak`` must be sync (it runs
    in a worker thread). The same reports get the same answers, byte for byte.

    Example::

        app.register_blueprint(
            leak_receiver_blueprint(manager, scanner_keys=ScannerKeys("github-keys.json")),
            url_prefix="/hooks/secret-scanning",
        )
    """
    if not isinstance(manager, KeyManager):
        raise TypeError("leak_receiver_blueprint needs a KeyManager (ASGI: LeakReceiverApp)")
    if on_leak is not None and inspect.iscoroutinefunction(on_leak):
        raise TypeError("on_leak must be a sync callable under Flask")
    settings, guard = receiver_settings(
        scanner_keys=scanner_keys,
        hmac_secret=hmac_secret,
        hmac_header=hmac_header,
        on_report=on_report,
        max_body=max_body,
        replay_guard=replay_guard,
        on_leak=on_leak,
    )
    notifier = Notifier(on_leak)

    def perform(need: LeakNeed) -> object:
        if isinstance(need, ScannerKey):
            assert scanner_keys is not None
            return scanner_keys.get(need.key_id)
        if isinstance(need, ClaimReport):
            return guard.claim(need.digest)
        if isinstance(need, ReleaseReport):
            guard.release(need.digest)
            return None
        if isinstance(need, ReportLeak):
            try:
                return manager.report_leak(
                    need.token, url=need.url, actor=need.actor, on_report=need.on_report
                )
            except Exception as exc:  # answered: see ReportLeak
                return exc
        if isinstance(need, Notify):
            notifier.notify(need.key, need.report)
            return None
        raise AssertionError(need)

    def respond(path: str) -> LeakResponse:
        request = flask.request
        try:
            body = read_flask_body(request, settings.body_limit)
        except LeakProblem as problem:
            return problem_response(problem)
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        leak_request = LeakRequest(
            method=request.method.upper(),
            path="/" + path,
            headers=headers,
            body=body,
            mount=flask_mount(request, path),
        )
        return run_flow(handle(leak_request, settings), perform, error_response)

    blueprint = flask.Blueprint(name, __name__)
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    @blueprint.route("/", defaults={"path": ""}, methods=methods, strict_slashes=False)
    @blueprint.route("/<path:path>", methods=methods)
    def view(path: str) -> flask.Response:
        return flask_response(respond(path))

    return blueprint
