"""What a signature covers, read from an ASGI scope or a WSGI environ.

Both are plain dicts, so this stays framework-free. The verifier needs the
request *as the client sent it*: the raw, still percent-encoded path, the
``Host`` the client addressed and the scheme it used.

Behind a reverse proxy the scheme, host and peer seen here are the proxy's;
which forwarding headers are believed instead, and from whom, is
:class:`~scout_auth._adapters.proxies.TrustedProxies`' business (``proxies.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .._signing.components import HttpRequest
from .proxies import TrustedProxies, joined

__all__ = [
    "TrustedProxies",
    "asgi_client_ip",
    "asgi_request",
    "wsgi_client_ip",
    "wsgi_request",
]


def asgi_client_ip(scope: Mapping[str, Any], proxies: TrustedProxies) -> str | None:
    """The client address of an ASGI scope (see :meth:`TrustedProxies.client_ip`)."""
    client = scope.get("client")
    peer = client[0] if client else None
    if not proxies.trusts(peer):
        return peer
    names = proxies.header_names
    pairs = [(k.decode("latin-1"), v) for k, v in scope["headers"]]
    headers = joined(((k, v.decode("latin-1")) for k, v in pairs if k in names), names)
    return proxies.client_ip(peer, headers)


def wsgi_client_ip(environ: Mapping[str, Any], proxies: TrustedProxies) -> str | None:
    """The client address of a WSGI environ (``REMOTE_ADDR``, or forwarded if trusted)."""
    peer = environ.get("REMOTE_ADDR")
    if not proxies.trusts(peer):
        return peer
    # The server already joined repeated lines into one environ value.
    headers: dict[str, str] = {}
    for name in proxies.header_names:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
        if value is not None:
            headers[name] = value
    return proxies.client_ip(peer, headers)


def _build(
    method: str,
    scheme: str,
    authority: str,
    path: str,
    query: str,
    headers: tuple[tuple[str, str], ...],
    peer: str | None,
    proxies: TrustedProxies,
    index: dict[str, list[str]] | None,
) -> HttpRequest:
    if proxies.trusts(peer):
        forwarding = joined(headers, proxies.header_names)
        scheme, authority = proxies.origin(peer, forwarding, scheme, authority)
    if index is None:  # HttpRequest builds the index itself, on first use
        return HttpRequest(method, scheme, authority, path, query, headers)
    return HttpRequest._indexed(method, scheme, authority, path, query, headers, index)


def asgi_request(scope: Mapping[str, Any], proxies: TrustedProxies) -> HttpRequest:
    """The request an ASGI ``http`` (or ``websocket``) scope describes."""
    headers = tuple([(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]])
    # The header index (lower-cased name -> values) in the same pass: ASGI
    # servers send names lower-cased (ASGI HTTP spec, "headers"), so with no
    # repeated name it is the pairs themselves. Checked, not assumed: anything
    # else leaves the index to HttpRequest.
    built = {k: [v] for k, v in headers}
    names = "".join(built)
    index: dict[str, list[str]] | None = None
    if len(built) == len(headers) and names == names.lower():
        index = built
        host = built.get("host")
        authority = host[0] if host else None
    else:
        authority = next((v for k, v in headers if k == "host"), None)
    if authority is None:
        server = scope.get("server") or ("", None)
        authority = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    raw_path = scope.get("raw_path")
    path = (
        raw_path.decode("latin-1")
        if raw_path
        else quote(scope.get("root_path", "") + scope["path"])
    )
    client = scope.get("client")
    method = scope.get("method", "GET")  # websocket handshakes are GETs
    scheme = {"ws": "http", "wss": "https"}.get(
        scope.get("scheme", "http"), scope.get("scheme", "http")
    )
    query = scope.get("query_string", b"").decode("latin-1")
    return _build(
        method,
        scheme,
        authority,
        path,
        query,
        headers,
        client[0] if client else None,
        proxies,
        index,
    )


# Environ key -> header name (``HTTP_USER_AGENT`` -> ``user-agent``), or None
# for a key that is no header: the same few dozen keys arrive with every
# request, and translating each costs three string operations. Bounded (the
# keys are client-chosen header names): a full table starts again.
_WSGI_NAMES: dict[str, str | None] = {}
_MAX_WSGI_NAMES = 512


def _wsgi_name(key: str) -> str | None:
    """The header name an environ key carries (``None``: none), remembered."""
    if key.startswith("HTTP_"):
        name = key[5:].lower().replace("_", "-")
    elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        name = key.lower().replace("_", "-")
    else:
        name = None
    if len(_WSGI_NAMES) >= _MAX_WSGI_NAMES:
        _WSGI_NAMES.clear()
    _WSGI_NAMES[key] = name
    return name


def wsgi_request(environ: Mapping[str, Any], proxies: TrustedProxies) -> HttpRequest:
    """The request a WSGI environ describes (PEP 3333)."""
    headers: list[tuple[str, str]] = []
    known = _WSGI_NAMES
    for key, value in environ.items():
        try:  # one look-up, and safe against another thread's clear()
            name = known[key]
        except KeyError:
            name = _wsgi_name(key)
        # HTTP_* always; CONTENT_TYPE / CONTENT_LENGTH only when not empty.
        if name is not None and (value or key[0] == "H"):
            headers.append((name, value))
    authority = environ.get("HTTP_HOST")
    if not authority:
        port = environ.get("SERVER_PORT", "")
        authority = (
            f"{environ.get('SERVER_NAME', '')}:{port}" if port else environ.get("SERVER_NAME", "")
        )
    # The path as sent (RAW_URI / REQUEST_URI, set by gunicorn, werkzeug and
    # others) keeps its percent-encoding; PATH_INFO is already decoded. The
    # query always comes from QUERY_STRING, which PEP 3333 passes undecoded.
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw_uri and raw_uri.startswith("/"):
        path = raw_uri.partition("?")[0]
    else:
        # PEP 3333: PATH_INFO is bytes decoded as latin-1; re-encode exactly.
        script_path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        path = quote(script_path.encode("latin-1"), safe="/;=,:@!$&'()*+~-._")
    query = environ.get("QUERY_STRING", "")
    # The names above are lower-cased already: the index is the pairs
    # themselves unless a name repeats (CONTENT_TYPE beside HTTP_CONTENT_TYPE).
    built = {k: [v] for k, v in headers}
    index = built if len(built) == len(headers) else None
    return _build(
        environ.get("REQUEST_METHOD", "GET"),
        environ.get("wsgi.url_scheme", "http"),
        authority,
        path or "/",
        query,
        tuple(headers),
        environ.get("REMOTE_ADDR"),
        proxies,
        index,
    )
