"""A werkzeug WSGI middleware for any WSGI app.

Example::

    from scout_auth import InMemoryKeyStore, Verifier
    from scout_auth.wsgi import ScoutAuthMiddleware

    app.wsgi_app = ScoutAuthMiddleware(app.wsgi_app, verifier=Verifier(store))

A verified request reaches the app with the :class:`~scout_auth.OrgContext`
in ``environ["scout_auth.org"]`` (``None`` on exempt paths); any other gets
the same ``problem+json`` answer as the ASGI middleware.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import IO, TYPE_CHECKING, Unpack

from werkzeug.wrappers import Response

from ._adapters.gate import Gate, content_length, denial_fields, loggable, wsgi_route_path
from ._adapters.options import AdapterKwargs, AdapterOptions
from ._adapters.requests import wsgi_client_ip, wsgi_request
from ._core.problem import problem_for
from ._core.records import CredentialKind, OrgContext
from ._drivers.observe import ACCEPTED, SIGNED_OK, Observer, report
from ._drivers.verifier import Verifier
from ._signing.body import BodyGuard
from .exceptions import AuthError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Module constants: reading an enum member, or indexing a table with a
# bool (not a specialised subscript), costs more per request than a name.
_LEGACY = CredentialKind.LEGACY
_BEARER_HIT, _LEGACY_HIT = ACCEPTED[True]
_BEARER_OK, _LEGACY_OK = ACCEPTED[False]

__all__ = [
    "ENVIRON_KEY",
    "ERROR_KEY",
    "ErrorHandler",
    "ScoutAuthMiddleware",
    "authenticate_environ",
    "problem_response",
    "read_verified_body",
]

#: Where the :class:`~scout_auth.OrgContext` lives in the WSGI environ.
ENVIRON_KEY = "scout_auth.org"
#: Where a rejected request's :class:`~scout_auth.exceptions.AuthError` lives.
ERROR_KEY = "scout_auth.error"

logger = logging.getLogger("scout_auth")

#: ``on_error``: given the environ and the refusal, return a response, or ``None`` for the
#: default problem response.
ErrorHandler = Callable[["WSGIEnvironment", AuthError], Response | None]


def problem_response(exc: AuthError, *, realm: str = "api") -> Response:
    """A werkzeug Response answering ``exc`` (problem+json)."""
    status, headers, body = problem_for(exc, realm=realm)
    return Response(body, status=status, headers=headers)


_SPOOL_IN_MEMORY = 1024 * 1024
_CHUNK = 64 * 1024


def read_verified_body(environ: WSGIEnvironment, guard: BodyGuard) -> None:
    """Read a signed body through ``guard`` and hand it back as ``wsgi.input``.

    Raises:
        AuthError: 400 on a malformed ``Content-Length``, 413 past the size
            limit, 401 on a digest mismatch (or on a body that the signature
            covers no digest of); the app is then never called.
    """
    length = content_length(environ.get("CONTENT_LENGTH") or None)
    guard.check_length(length)
    stream = environ["wsgi.input"]
    # A declared length that fits in memory is read into a BytesIO: what the
    # spool would hold in memory anyway, without its Python-level set-up on
    # every request. Past 1 MiB, or with no length (chunked), it may go to disk.
    spool: IO[bytes] = (
        io.BytesIO()
        if length is not None and length <= _SPOOL_IN_MEMORY
        else tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115 - handed to the app
    )
    # PEP 3333: read no further than CONTENT_LENGTH, or to EOF when the server
    # says the input is terminated (chunked); with neither there is no body.
    remaining = (
        length if length is not None else (-1 if environ.get("wsgi.input_terminated") else 0)
    )
    while remaining:
        chunk = stream.read(_CHUNK if remaining < 0 else min(_CHUNK, remaining))
        if not chunk:
            break
        guard.feed(chunk, final=False)
        spool.write(chunk)
        if remaining > 0:
            remaining -= len(chunk)
    guard.feed(b"", final=True)
    spool.seek(0)
    environ["wsgi.input"] = spool
    environ["CONTENT_LENGTH"] = str(guard.size)


def authenticate_environ(
    verifier: Verifier,
    options: AdapterOptions,
    environ: WSGIEnvironment,
    path: str | None = None,
) -> OrgContext:
    """Verify the request ``environ`` describes, whether or not its path is exempt.

    Bearer and legacy credentials come from ``options.header``. A request
    with ``Signature-Input`` / ``Signature`` is verified as RFC 9421 signed
    request, then its body is read and checked (:func:`read_verified_body`).
    ``path`` is the route path if the caller has it already (default:
    ``PATH_INFO`` read as werkzeug routes it).
    """
    method = environ.get("REQUEST_METHOD", "GET")
    if path is None:
        path = wsgi_route_path(environ.get("PATH_INFO", ""))
    required = options.scopes_for(method, path)
    return _authenticate(verifier, Gate(options), environ, required)


def _authenticate(
    verifier: Verifier, gate: Gate, environ: WSGIEnvironment, required: tuple[str, ...]
) -> OrgContext:
    # Shared by the WSGI middleware and Flask, once the gate gave ``required``.
    observer = verifier.observer  # observability: None is off
    if observer is not None:
        return _observed(observer, verifier, gate, environ, required)
    return _verify_environ(verifier, gate, environ, required)


def _observed(
    observer: Observer,
    verifier: Verifier,
    gate: Gate,
    environ: WSGIEnvironment,
    required: tuple[str, ...],
) -> OrgContext:
    # _verify_environ timed and reported to the verifier's observer in one
    # call with a precomputed label (observe.py).
    started = perf_counter()
    options = gate.options
    value = environ.get(options.environ_key)
    if not isinstance(value, str):
        value = None
    signed = "HTTP_SIGNATURE_INPUT" in environ or "HTTP_SIGNATURE" in environ
    try:
        if signed:
            context = _verify_environ(verifier, gate, environ, required)
            label = SIGNED_OK
        else:
            context, hit = _bearer(verifier, options, environ, value, required)
            if hit:  # the warm path
                label = _LEGACY_HIT if context.kind is _LEGACY else _BEARER_HIT
            else:
                label = _LEGACY_OK if context.kind is _LEGACY else _BEARER_OK
    except AuthError as exc:
        report(observer, signed, value, None, exc, started)
        raise
    observer.observe(label, perf_counter() - started, context)
    return context


def _verify_environ(
    verifier: Verifier, gate: Gate, environ: WSGIEnvironment, required: tuple[str, ...]
) -> OrgContext:
    # Each step without a call where it can: this runs on every request.
    options = gate.options
    value = environ.get(options.environ_key)
    if not isinstance(value, str):
        value = None
    if "HTTP_SIGNATURE_INPUT" in environ or "HTTP_SIGNATURE" in environ:
        proxies = options.proxies
        client_ip = (
            wsgi_client_ip(environ, proxies) if proxies.networks else environ.get("REMOTE_ADDR")
        )
        request = wsgi_request(environ, proxies)
        gate.check_length(environ.get("CONTENT_LENGTH") or None)
        verified = verifier.verify_signed_request(
            request,
            authorization=value,
            required_scopes=required,
            client_ip=client_ip,
            max_body_size=options.max_body_size,
        )
        read_verified_body(environ, verified.body)
        return verified.context
    return _bearer(verifier, options, environ, value, required)[0]


def _bearer(
    verifier: Verifier,
    options: AdapterOptions,
    environ: WSGIEnvironment,
    value: str | None,
    required: tuple[str, ...],
) -> tuple[OrgContext, bool]:
    # The bearer steps, and whether the cache answered (for the observer).
    proxies = options.proxies
    client_ip = wsgi_client_ip(environ, proxies) if proxies.networks else environ.get("REMOTE_ADDR")
    authorization = value if options.header == "authorization" else options.authorization(value)
    # A cached credential is answered without the full verification call.
    cached = verifier.cached_authorization(authorization, required, client_ip)
    if cached is not None:
        return cached, True
    context = verifier.verify_authorization(
        authorization, required_scopes=required, client_ip=client_ip
    )
    return context, False


def _deny(
    verifier: Verifier,
    options: AdapterOptions,
    environ: WSGIEnvironment,
    exc: AuthError,
    method: str | None,
    path: str,
) -> None:
    """Record and log a refusal (WSGI middleware and Flask): audit event, one escaped log line."""
    environ[ERROR_KEY] = exc
    client_ip = wsgi_client_ip(environ, options.proxies)
    verifier.record_denial(exc, method=method, path=path, client_ip=client_ip)
    fields = denial_fields(exc, method, path, client_ip, environ.get("HTTP_X_REQUEST_ID"))
    logger.info("denied %s %s: %s", loggable(method), loggable(path), exc.code, extra=fields)


class ScoutAuthMiddleware:
    """Authenticate every request before it reaches the wrapped WSGI app.

    Args:
        app: The WSGI app to protect.
        verifier: A :class:`~scout_auth.Verifier`.
        exempt_paths: Paths served without credentials (``"/public/*"`` for
            a prefix).
        header: Header carrying the credential (default ``authorization``).
        realm: ``WWW-Authenticate`` realm.
        required_scopes: Scopes every non-exempt request needs.
        on_error: ``on_error(environ, exc)`` may return a werkzeug Response
            to send instead of the default answer; ``None`` keeps it.
        max_body_size: Largest body of a signed request; 413 above.
        rules: Route rules ``(method, path pattern, scopes)``, e.g.
            ``("POST", "/files/*", ["files:write"])``: a matching request
            needs those scopes too (403 ``insufficient_scope`` otherwise).
        trusted_proxies: Addresses / CIDR ranges of reverse proxies whose
            forwarding headers are believed: for a signature's ``@scheme`` /
            ``@authority`` and for the client address IP allowlists check
            (otherwise ``REMOTE_ADDR``).
        proxy_header: The header family those proxies write: ``"x-forwarded"``
            (default: ``X-Forwarded-For`` / ``-Proto`` / ``-Host``) or
            ``"forwarded"`` (RFC 7239 ``Forwarded``); the other is ignored.
        proxy_hops: How many trusted proxies append to that header (default
            1): the value that many places from the right is believed; a
            shorter chain leaves the client address unknown (docs/middleware.md).

    Rules and exemptions match ``PATH_INFO`` (the path below the mount,
    ``SCRIPT_NAME``) as werkzeug routes it; methods are matched upper-cased
    and a ``GET`` rule also governs ``HEAD``.

    Signed requests (RFC 9421): WSGI reads synchronously, so the signed
    body is read first (bounded by ``max_body_size``, spooled to disk past
    1 MiB), checked against the ``Content-Digest`` the signature covers, and
    only then handed to the app as ``wsgi.input``. The app never sees an
    unverified byte (``buffer_signed_body`` is always on here).
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        verifier: Verifier,
        on_error: ErrorHandler | None = None,
        **options: Unpack[AdapterKwargs],
    ) -> None:
        if not isinstance(verifier, Verifier):
            raise TypeError("the WSGI middleware needs a (sync) Verifier")
        self.app = app
        self.verifier = verifier
        self.options = AdapterOptions.build(**options)
        self.gate = Gate(self.options)
        self.on_error = on_error

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[ENVIRON_KEY] = None
        # PATH_INFO is the path below the mount (SCRIPT_NAME, PEP 3333): what
        # the wrapped app routes on.
        path = wsgi_route_path(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD", "GET")
        required = self.gate.scopes(method, path)
        if required is None:  # exempt
            return self.app(environ, start_response)
        try:
            environ[ENVIRON_KEY] = _authenticate(self.verifier, self.gate, environ, required)
        except AuthError as exc:
            _deny(self.verifier, self.options, environ, exc, method, path)
            response = self.on_error(environ, exc) if self.on_error is not None else None
            if response is None:
                response = problem_response(exc, realm=self.options.realm)
            return response(environ, start_response)
        return self.app(environ, start_response)
