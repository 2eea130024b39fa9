"""Whose forwarding headers to believe: which header, how many hops.

Theory of operation — trusting proxies (the model is werkzeug's
``ProxyFix``: the operator says which header and how many hops, nothing is
guessed):

* Forwarding headers are believed only when the connection's peer is in
  ``trusted_proxies``. Anyone else can write them, so from anyone else they
  are ignored and the peer, the ``Host`` header and the scheme stand.
* The operator names the *one* header family the proxies write:
  ``"x-forwarded"`` (``X-Forwarded-For`` / ``-Proto`` / ``-Host``) or
  ``"forwarded"`` (RFC 7239 ``Forwarded: for=;proto=;host=``). The other
  family is never read, not even as a fallback: a client behind a proxy
  that writes only ``Forwarded`` could otherwise pick its own address with
  ``X-Forwarded-For``.
* Every proxy appends its hop on the right (RFC 7239 §5.2; the
  ``X-Forwarded-For`` convention), so with ``hops`` proxies in front of the
  app the value ``hops`` places from the right is the one the outermost
  trusted proxy wrote; everything left of it is the client's to invent.
  Repeated header lines are joined first (RFC 9110 §5.3). Values are
  counted from the right and only the last ``hops`` are looked at, each at
  most ``_MAX_HOP`` characters, so a huge header costs no more than a small
  one.
* The client address: the ``hops``-th ``X-Forwarded-For`` value, or the
  ``for=`` of the ``hops``-th ``Forwarded`` element. When it is not there
  (fewer values than ``hops``, no ``for=``) or is no IP address
  (``unknown``, an obfuscated ``_node``, garbage), the answer is ``None``:
  unknown, which IP allowlists refuse. Unlike ``ProxyFix`` we do not fall
  back to the peer, because the peer is the proxy, and proxies live in the
  private ranges that allowlists tend to grant.
* Scheme and authority come from the same family and the same hop position
  (``X-Forwarded-Proto`` / ``-Host`` counted like ``-For``, or ``proto=`` /
  ``host=`` of that ``Forwarded`` element). When absent they fall back to
  the connection's own, which only makes a signature made for the public
  origin fail (401), never pass where it should not.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["TrustedProxies", "joined"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The header family a proxy writes -> the (lower-case) header names read.
_FAMILIES: dict[str, tuple[str, ...]] = {
    "x-forwarded": ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"),
    "forwarded": ("forwarded",),
}

# The most one proxy's hop may take in a header: an address with its port, a
# scheme, a host (255 octets) quoted and escaped, with room to spare. Only the
# last hops * _MAX_HOP characters of a header are ever looked at.
_MAX_HOP = 1024
# Quote characters one Forwarded element may hold: for=, by=, host= and proto=
# quoted, and then some. More in the window is refused, not scanned.
_MAX_QUOTES = 16


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """Peers whose forwarding headers are believed, which header, how many hops.

    Args:
        networks: Addresses or CIDR ranges (``"10.0.0.0/8"``, ``"::1"``).
        header: The header family the proxies write: ``"x-forwarded"``
            (``X-Forwarded-For`` / ``-Proto`` / ``-Host``) or ``"forwarded"``
            (RFC 7239 ``Forwarded``). The other family is ignored.
        hops: How many trusted proxies append to that header in front of
            the app; the value that many places from the right is believed.

    Raises:
        ValueError: ``header`` is neither family, or ``hops`` is not an int >= 1.

    Example:
        >>> proxies = TrustedProxies.parse(["10.0.0.0/8"], header="forwarded")
        >>> proxies.client_ip("10.0.0.2", {"forwarded": "for=192.0.2.7"})
        '192.0.2.7'
    """

    networks: tuple[_Network, ...] = ()
    header: str = "x-forwarded"
    hops: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.header, str) or self.header not in _FAMILIES:
            raise ValueError("proxy header must be 'x-forwarded' or 'forwarded'")
        # bool is an int to Python; hops=True is a mistake, not one hop.
        if isinstance(self.hops, bool) or not isinstance(self.hops, int) or self.hops < 1:
            raise ValueError("proxy hops must be an int >= 1")

    @classmethod
    def parse(
        cls, entries: Iterable[str], *, header: str = "x-forwarded", hops: int = 1
    ) -> TrustedProxies:
        """Validate ``entries``, ``header`` and ``hops`` once (``ValueError`` on a bad one)."""
        if isinstance(entries, str):
            raise TypeError("trusted_proxies takes a list of addresses or networks")
        networks = tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries)
        return cls(networks, header, hops)

    @property
    def header_names(self) -> tuple[str, ...]:
        """The lower-case names of the headers read (``x-forwarded-for``, … or ``forwarded``)."""
        return _FAMILIES[self.header]

    def trusts(self, peer: str | None) -> bool:
        """Whether ``peer`` (an IP address string) is a trusted proxy."""
        if not self.networks or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False  # fail closed: a peer we cannot parse is not trusted
        return any(address in net for net in self.networks)

    def client_ip(self, peer: str | None, headers: Mapping[str, str]) -> str | None:
        """The client address: ``peer``, or the forwarded one if ``peer`` is trusted.

        Args:
            peer: The connection's peer address.
            headers: The request's forwarding headers, lower-case name to
                value, repeated lines joined with ``", "``; only
                :attr:`header_names` are read.

        Returns:
            ``peer`` when it is not a trusted proxy. Otherwise the address
            ``hops`` places from the right of the configured header, port
            and brackets removed — or ``None`` when that hop is missing or
            is no IP address, so that an IP allowlist refuses it.
        """
        if not self.trusts(peer):
            return peer
        if self.header == "forwarded":
            element = _forwarded_element(headers.get("forwarded"), self.hops)
            node = element.get("for") if element else None
        else:
            node = _from_right(headers.get("x-forwarded-for"), self.hops)
        return None if node is None else _node_address(node)

    def origin(
        self, peer: str | None, headers: Mapping[str, str], scheme: str, authority: str
    ) -> tuple[str, str]:
        """``(scheme, authority)`` the client addressed, lower-case scheme.

        The trusted hop's ``proto`` / ``host`` (same header family and hop
        position as :meth:`client_ip`); each falls back to the given
        ``scheme`` / ``authority`` when ``peer`` is not trusted or the hop
        does not carry it.
        """
        if self.trusts(peer):
            if self.header == "forwarded":
                element = _forwarded_element(headers.get("forwarded"), self.hops) or {}
                proto, host = element.get("proto"), element.get("host")
            else:
                proto = _from_right(headers.get("x-forwarded-proto"), self.hops)
                host = _from_right(headers.get("x-forwarded-host"), self.hops)
            scheme, authority = proto or scheme, host or authority
        return scheme.lower(), authority


def _from_right(value: str | None, n: int) -> str | None:
    # The n-th comma-separated value from the right (X-Forwarded-*; no quoting
    # there), None when there are fewer or it is empty. rsplit with maxsplit
    # stops after n commas; the window bounds the scan when there are fewer.
    if value is None:
        return None
    tail = value[-_MAX_HOP * n :]
    parts = tail.rsplit(",", n)
    if len(parts) < n or (len(parts) == n and len(tail) < len(value)):
        return None  # fewer than n values, or the n-th is longer than a hop may be
    return parts[-n].strip() or None


def _forwarded_element(value: str | None, n: int) -> dict[str, str] | None:
    # The n-th RFC 7239 element from the right, as {lower-case name: value},
    # or None (fewer elements, or malformed). Scanned right to left: commas
    # inside a quoted-string (host="a,for=192.0.2.1") separate nothing, and a
    # quote the client left open on the left must not change how the
    # proxies' elements on the right are read — a left-to-right parse would
    # pair the client's stray quote with the one a proxy opened.
    if value is None:
        return None
    lo = max(0, len(value) - _MAX_HOP * n)
    if value.count('"', lo) > _MAX_QUOTES * n:
        return None  # more quoted-strings than hops write: bound the loop below
    end = pos = len(value)
    comma, dquote = value.rfind(",", lo, pos), value.rfind('"', lo, pos)
    found = 0
    while True:
        if dquote > comma:  # a quoted-string ends at dquote: skip to its opening
            pos = _opening_quote(value, lo, dquote)
            if pos < 0:
                return None
            dquote = value.rfind('"', lo, pos)
            if comma > pos:
                comma = value.rfind(",", lo, pos)
            continue
        found += 1
        if found == n:
            if comma < 0 and lo > 0:
                return None  # the element runs past the window: too long for a hop
            return _pairs(value[comma + 1 : end])
        if comma < 0:
            return None  # fewer than n elements
        end = pos = comma
        comma = value.rfind(",", lo, pos)


def _opening_quote(value: str, lo: int, closing: int) -> int:
    # RFC 9110 §5.6.4: inside a quoted-string '\"' is an escaped quote; the
    # opening one is the first quote to the left with an even run of
    # backslashes before it.
    at = closing
    while True:
        at = value.rfind('"', lo, at)
        if at < 0:
            return -1
        backslashes = at - lo - len(value[lo:at].rstrip("\\"))
        if backslashes % 2 == 0:
            return at


_TCHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]"
# RFC 7239 §4: forwarded-element = [ pair ] *( ";" [ pair ] ), pair =
# token "=" ( token / quoted-string ). Tolerated: OWS around a pair, and an
# unquoted value with ":" or brackets in it (for=192.0.2.7:8080, which §6
# says to quote): no delimiter is in it, so nothing becomes ambiguous.
_VALUE = r'[^\x00-\x20\x7f",;]'
_QDTEXT = r'(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t -~\x80-\xff])'  # RFC 9110 §5.6.4
_PAIR = re.compile(rf'[ \t]*(?:({_TCHAR}+)=(?:({_VALUE}+)|"({_QDTEXT}*)"))?[ \t]*(;|\Z)')
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def _pairs(element: str) -> dict[str, str] | None:
    pairs: dict[str, str] = {}
    pos = 0
    while True:
        match = _PAIR.match(element, pos)
        if match is None:
            return None
        name, token, quoted, sep = match.groups()
        if name is not None:
            name = name.lower()
            if name in pairs:
                return None  # RFC 7239 §4: each parameter at most once per element
            pairs[name] = token if token is not None else _QUOTED_PAIR.sub(r"\1", quoted)
        if not sep:
            return pairs
        pos = match.end()


# RFC 7239 §6: node = nodename [ ":" node-port ], IPv6 in brackets; a port is
# 1-5 digits or an obfuscated "_…". X-Forwarded-For is usually a bare address,
# but some proxies add the port too.
_PORT = re.compile(r"[0-9]{1,5}|_[A-Za-z0-9._-]+")


def _node_address(node: str) -> str | None:
    # Only an IP address comes out; "unknown", "_hidden" and garbage are None.
    node = node.strip()
    port = None
    if node.startswith("["):
        node, bracket, rest = node[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    elif node.count(":") == 1:  # v4 with a port (a bare IPv6 has several colons)
        node, _, port = node.partition(":")
    if port is not None and _PORT.fullmatch(port) is None:
        return None
    if not node.isascii() or "%" in node:  # no zone ids from a header
        return None
    try:
        ipaddress.ip_address(node)
    except ValueError:
        return None
    return node


def joined(headers: Iterable[tuple[str, str]], names: tuple[str, ...]) -> dict[str, str]:
    """``names`` found in ``headers`` (lower-case name, value pairs), each one value."""
    # Repeated fields join with ", " in order (RFC 9110 §5.3), so a proxy that
    # adds its own line instead of appending to the client's is read the same.
    found: dict[str, str] = {}
    for name, value in headers:
        if name in names:
            found[name] = f"{found[name]}, {value}" if name in found else value
    return found
