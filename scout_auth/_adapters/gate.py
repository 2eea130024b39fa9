"""The request gate: what every adapter decides per request, written once.

Theory of operation
-------------------
Each framework adapter (Starlette/ASGI, plain WSGI, Flask) only *reads* its
framework's request into plain values and *writes* the answer back; every
decision in between lives here, with no framework, driver or event loop:

* **Which path.** Rules and exemptions match the path the application
  routes on: for ASGI the scope's ``path`` minus its ``root_path`` (what
  Starlette's ``get_route_path`` gives its router, so a ``Mount`` or
  ``uvicorn --root-path`` prefix is not part of it); for WSGI ``PATH_INFO``
  (``SCRIPT_NAME`` is the mount prefix, PEP 3333) read as UTF-8, as werkzeug
  routes. Matching any other path than routing does is a bypass: no rule
  matches and the route's scopes are never asked for.
* **Which method.** Rules see the method as routing does: werkzeug
  upper-cases it (``get`` reaches the ``GET`` view), and every framework
  serves ``HEAD`` with the ``GET`` view (RFC 9110 §9.3.2), so a ``GET`` rule
  governs ``HEAD`` too (:meth:`ScopeRule.matches`).
* **Exemption, then scopes.** :meth:`Gate.scopes` answers ``None`` for an
  exempt path, else every scope the request needs.
* **Framing.** ``Content-Length`` is ``1*DIGIT`` (RFC 9110 §8.6); anything
  else is a 400, never an ``int()`` that raises.
* **Logging.** Every client-supplied string in a log line goes through
  :func:`loggable`: control characters escaped (no forged lines from a
  ``%0d%0a`` path) and length capped.

The client address comes from ``_requests`` (trusted proxies, one header
named by the operator), the verification itself from the verifier's public
methods (:meth:`~scout_auth.Verifier.cached_authorization` for the warm
path, :meth:`~scout_auth.Verifier.verify_signed_request` for signed
requests, whose body guard is bound to the *covered* ``Content-Digest``).
"""

from __future__ import annotations

from ..exceptions import AuthError, BodyTooLarge, InvalidRequest
from .options import AdapterOptions

__all__ = [
    "Gate",
    "content_length",
    "denial_fields",
    "loggable",
    "route_path",
    "wsgi_route_path",
]

#: Longest client-supplied string written into a log line (then ``...``).
LOG_LIMIT = 200

# Longer than any length a server accepts; int() of a huge digit string is
# also refused by Python (sys.int_info.str_digits_check_threshold).
_MAX_LENGTH_DIGITS = 18


def route_path(path: str, root_path: str) -> str:
    """ASGI: the path the app routes on, as Starlette's ``get_route_path``.

    ASGI puts the mount prefix (``root_path``) in front of ``path``; routing
    matches what follows it. A path equal to its prefix routes as ``/``.
    """
    if not root_path or not path.startswith(root_path):
        return path
    rest = path[len(root_path) :]
    if not rest:
        return "/"
    # "/apix" is not under the mount "/api": only a whole segment is a prefix.
    return rest if rest[0] == "/" else path


def wsgi_route_path(path_info: str) -> str:
    """WSGI: ``PATH_INFO`` as werkzeug routes it — UTF-8, not its latin-1 transport form.

    PEP 3333 hands the (percent-decoded) path over as bytes decoded as
    latin-1; werkzeug and Flask route on those bytes decoded as UTF-8, and so
    must exemptions and rules, or a rule for ``/dossiers/é*`` never matches.
    Leading slashes fold into one, as in werkzeug's ``Request.path``: an app
    that dispatches on it serves ``//files`` as ``/files``.
    """
    if not path_info.isascii():
        path_info = path_info.encode("latin-1", "replace").decode("utf-8", "replace")
    if path_info[:1] == "/" and path_info[1:2] != "/":
        return path_info  # the usual case
    return "/" + path_info.lstrip("/")


def content_length(value: str | None) -> int | None:
    """A ``Content-Length`` value as an int; ``None`` when absent.

    Raises:
        InvalidRequest: The value is not ``1*DIGIT`` in ASCII (RFC 9110 §8.6):
            ``²``, ``-1``, ``1e3``, ``5, 5`` — answered 400, never parsed
            loosely.
        BodyTooLarge: More digits than any body this server accepts.
    """
    if value is None:
        return None
    value = value.strip(" \t")
    # str.isdigit() accepts "²" and other Unicode digits that int() refuses.
    if not (value.isascii() and value.isdigit()):
        raise InvalidRequest("Content-Length is not a decimal number")
    if len(value) > _MAX_LENGTH_DIGITS:
        raise BodyTooLarge()
    return int(value)


def loggable(value: object) -> str:
    """``value`` made safe for one log line: escaped and at most :data:`LOG_LIMIT` long.

    Client-supplied strings (paths, methods, org ids) may hold CR/LF, other
    control characters or terminal escapes; written raw they forge log lines.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isprintable() and len(text) <= LOG_LIMIT:
        return text  # the usual case: nothing to escape
    escaped = text[: LOG_LIMIT + 1].encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= LOG_LIMIT else escaped[:LOG_LIMIT] + "..."


def denial_fields(
    exc: AuthError,
    method: str | None,
    path: str,
    client_ip: str | None,
    request_id: str | None,
) -> dict[str, object]:
    """The fields of a denial's log line, for ``extra=`` (JSON formatters pick them up).

    Everything a client sent is escaped as in :func:`loggable`; the org and
    key are named only when the request proved it holds a real key.
    """
    org_id, key_id = (exc.subject[0], exc.subject[1]) if exc.subject is not None else (None, None)
    return {
        "code": exc.code,
        "status": exc.status,
        "method": loggable(method or ""),
        "path": loggable(path),
        "org_id": None if org_id is None else loggable(org_id),
        "key_id": key_id,
        "client_ip": client_ip,
        "request_id": None if request_id is None else loggable(request_id),
    }


class Gate:
    """The per-request decisions of every adapter, over validated options.

    Args:
        options: The adapter's :class:`~scout_auth._adapters.options.AdapterOptions`.
    """

    __slots__ = ("_exact", "_memo", "_prefixes", "_required", "_rules", "options")

    def __init__(self, options: AdapterOptions) -> None:
        self.options = options
        self._exact = options.exempt_exact
        self._prefixes = options.exempt_prefixes
        self._rules = bool(options.rules)
        self._required = options.required_scopes
        # The options' own memo of rule answers, read here without a call.
        self._memo = options._memo

    def scopes(self, method: str, path: str) -> tuple[str, ...] | None:
        """``None`` if ``path`` (the route path) is exempt, else the scopes it needs.

        ``method`` is the request method as sent; rules see it as routing
        does (see the module docstring).
        """
        # Every request runs this: attribute reads and one dict look-up.
        if path in self._exact or path.startswith(self._prefixes):
            return None
        if not self._rules:
            return self._required
        found = self._memo.get((method, path))
        return found if found is not None else self.options.scopes_for(method, path)

    def check_length(self, value: str | None) -> None:
        """Refuse a signed request's declared ``Content-Length`` before any crypto.

        Raises:
            InvalidRequest: Not ``1*DIGIT`` (see :func:`content_length`).
            BodyTooLarge: Over ``max_body_size``.
        """
        length = content_length(value)
        if length is not None and length > self.options.max_body_size:
            raise BodyTooLarge()
