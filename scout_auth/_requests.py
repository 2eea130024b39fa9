"""What a signature covers, read from an ASGI scope or a WSGI environ.

Both are plain dicts, so this stays framework-free. The verifier needs the
request *as the client sent it*: the raw, still percent-encoded path, the
``Host`` the client addressed and the scheme it used.

Behind a reverse proxy the scheme and host seen here are the proxy's. Only
when the peer address is in ``trusted_proxies`` are ``X-Forwarded-Proto`` /
``X-Forwarded-Host`` (or RFC 7239 ``Forwarded: proto=…;host=…``) believed,
and then only their last value — the one the trusted proxy itself appended
(the model is werkzeug's ``ProxyFix`` with one hop). Anyone else can set
those headers, so they are ignored by default.

The same rule gives the *client address* that IP allowlists check: the
connection's peer, or — only when that peer is a trusted proxy — the last
``X-Forwarded-For`` hop (else the last ``Forwarded: for=``), the address the
trusted proxy itself saw. A spoofed header from anyone else changes nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ._sigbase import HttpRequest

__all__ = [
    "TrustedProxies",
    "asgi_client_ip",
    "asgi_request",
    "wsgi_client_ip",
    "wsgi_path",
    "wsgi_request",
]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """Peers whose forwarding headers are believed.

    Args:
        networks: Addresses or CIDR ranges (``"10.0.0.0/8"``, ``"::1"``).
    """

    networks: tuple[_Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        """Validate ``entries`` once (``ValueError`` on a bad one)."""
        if isinstance(entries, str):
            raise TypeError("trusted_proxies takes a list of addresses or networks")
        return cls(tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries))

    def trusts(self, peer: str | None) -> bool:
        """Whether ``peer`` (an IP address string) is a trusted proxy."""
        if not self.networks or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False  # fail closed: a peer we cannot parse is not trusted
        return any(address in net for net in self.networks)

    def client_ip(
        self, peer: str | None, forwarded_for: str | None, forwarded: str | None
    ) -> str | None:
        """The client address: ``peer``, or the forwarded one if ``peer`` is trusted.

        Returned as found (port and brackets removed); the caller parses it
        and must fail closed when it does not parse (``unknown``, an
        obfuscated ``_node``).
        """
        if not self.trusts(peer):
            return peer
        hop = _last(forwarded_for) or _forwarded(forwarded).get("for")
        return peer if hop is None else _node_address(hop)


def _node_address(node: str) -> str:
    # RFC 7239 §6: node = "[v6]:port" / "v4:port" / bare; XFF: a bare address.
    node = node.strip().strip('"')
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else node
    if node.count(":") == 1:  # v4 with a port (a bare IPv6 has several colons)
        return node.partition(":")[0]
    return node


def _joined(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in headers if k == name]
    return ", ".join(values) if values else None


def asgi_client_ip(scope: Mapping[str, Any], proxies: TrustedProxies) -> str | None:
    """The client address of an ASGI scope (see :meth:`TrustedProxies.client_ip`)."""
    client = scope.get("client")
    peer = client[0] if client else None
    if not proxies.networks:
        return peer
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    return proxies.client_ip(
        peer, _joined(headers, "x-forwarded-for"), _joined(headers, "forwarded")
    )


def wsgi_path(environ: Mapping[str, Any]) -> str:
    """``PATH_INFO`` as routing sees it: the UTF-8 path, not its latin-1 transport form.

    PEP 3333 hands the (percent-decoded) path over as bytes decoded as
    latin-1; werkzeug and Flask route on those bytes decoded as UTF-8, and so
    must exemptions and scope rules, or a rule written for ``/dossiers/é*``
    would never match and its scopes would not be asked for.
    """
    path: str = environ.get("PATH_INFO", "")
    if path.isascii():
        return path
    return path.encode("latin-1", "replace").decode("utf-8", "replace")


def wsgi_client_ip(environ: Mapping[str, Any], proxies: TrustedProxies) -> str | None:
    """The client address of a WSGI environ (``REMOTE_ADDR``, or forwarded if trusted)."""
    peer = environ.get("REMOTE_ADDR")
    if not proxies.networks:
        return peer
    return proxies.client_ip(
        peer, environ.get("HTTP_X_FORWARDED_FOR"), environ.get("HTTP_FORWARDED")
    )


def _last(value: str | None) -> str | None:
    if not value:
        return None
    last = value.rsplit(",", 1)[-1].strip()
    return last or None


def _forwarded(value: str | None) -> dict[str, str]:
    # RFC 7239 §4: comma-separated elements of ;-separated pairs; the last
    # element is the one our (trusted) proxy added.
    element = _last(value)
    pairs: dict[str, str] = {}
    for pair in (element or "").split(";"):
        name, sep, val = pair.partition("=")
        if sep:
            pairs[name.strip().lower()] = val.strip().strip('"')
    return pairs


def _forwarded_origin(headers: Mapping[str, str], scheme: str, authority: str) -> tuple[str, str]:
    fwd = _forwarded(headers.get("forwarded"))
    scheme = _last(headers.get("x-forwarded-proto")) or fwd.get("proto") or scheme
    authority = _last(headers.get("x-forwarded-host")) or fwd.get("host") or authority
    return scheme.lower(), authority


def _build(
    method: str,
    scheme: str,
    authority: str,
    path: str,
    query: str,
    headers: Sequence[tuple[str, str]],
    peer: str | None,
    proxies: TrustedProxies,
) -> HttpRequest:
    if proxies.trusts(peer):
        combined: dict[str, str] = {}
        for name, value in headers:
            if name in ("forwarded", "x-forwarded-proto", "x-forwarded-host"):
                combined[name] = f"{combined[name]}, {value}" if name in combined else value
        scheme, authority = _forwarded_origin(combined, scheme, authority)
    return HttpRequest(method, scheme, authority, path, query, headers)


def asgi_request(scope: Mapping[str, Any], proxies: TrustedProxies) -> HttpRequest:
    """The request an ASGI ``http`` (or ``websocket``) scope describes."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
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
        method, scheme, authority, path, query, headers, client[0] if client else None, proxies
    )


def wsgi_request(environ: Mapping[str, Any], proxies: TrustedProxies) -> HttpRequest:
    """The request a WSGI environ describes (PEP 3333)."""
    headers: list[tuple[str, str]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].lower().replace("_", "-"), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers.append((key.lower().replace("_", "-"), value))
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
    return _build(
        environ.get("REQUEST_METHOD", "GET"),
        environ.get("wsgi.url_scheme", "http"),
        authority,
        path or "/",
        query,
        headers,
        environ.get("REMOTE_ADDR"),
        proxies,
    )
