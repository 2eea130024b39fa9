"""What the server made of a signed request, in words: a debugging aid. Sans-I/O.

Theory of operation
-------------------
When a peer's signature fails, the one useful fact is the signature base
(RFC 9421 §2.5) the server rebuilt: the peer signed some bytes, and a single
differing byte fails the check. :func:`explain_signature` rebuilds it with
the verifier's own code (:func:`~scout_auth._signing.signature.parse_request_signature`)
and reports, in order:

1. the chosen signature's label, ``keyid``, parameters and covered components;
2. what the policy says (accepted, or the error code the verifier answers);
3. the signature base, byte for byte — rebuilt even when the policy refused
   (an expired or nonce-less signature still has a base; it is read again
   under a policy that demands nothing);
4. optionally whether the signature verifies with a given public key, and
   whether a given body matches the ``Content-Digest``;
5. hints: a covered field sent on several lines (WSGI servers merge them
   with ``","``, RFC 9421 §2.1 with ``", "``).

Nothing secret is printed: the base may hold covered credential fields
(``authorization``, ``cookie``…), whose values are replaced by their length,
and anything that looks like a ``scout_sk_`` token is cut to its key id.
Signature bytes and nonces are not secret. Not checked here: nonce replay,
the key's state and scopes, ``expected_authorities``.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..exceptions import AuthError, MissingCredentials
from .components import HttpRequest
from .digest import DigestChecker
from .policy import DEFAULT_POLICY, SignaturePolicy
from .signature import RequestSignature, parse_request_signature

__all__ = ["PublicKeySource", "explain_signature", "parse_http_request"]

#: A public key to check the signature with: raw 32 bytes, a pyca key, or a
#: look-up from key id to raw bytes (``None``: no such key).
PublicKeySource = bytes | Ed25519PublicKey | Callable[[str], bytes | None]

# Fields that carry credentials: if covered, their values stay out of the report.
_CREDENTIAL_FIELDS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
# Broader than TOKEN_REGEX on purpose: a mangled token is a secret too.
_TOKENISH = re.compile(r"scout_sk_([a-z2-7]{20})?[0-9A-Za-z_]*", re.IGNORECASE)
# A policy that demands nothing, to rebuild the base of a refused signature.
_ANY = SignaturePolicy(
    required_components=(),
    alternatives=(),
    body_components=(),
    max_age=1e15,
    max_skew=1e15,
    require_nonce=False,
)
_REQUEST_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP/\d(?:\.\d)?")


def _redact_tokens(text: str) -> str:
    def cut(match: re.Match[str]) -> str:
        key_id = match.group(1)
        return f"scout_sk_{key_id}_…" if key_id else "scout_sk_…"

    return _TOKENISH.sub(cut, text)


def parse_http_request(
    raw: str | bytes,
    *,
    scheme: str = "https",
    method: str | None = None,
    url: str | None = None,
) -> tuple[HttpRequest, bytes]:
    """Read a raw HTTP/1.1 request (or only its header lines) into an :class:`HttpRequest`.

    Args:
        raw: The request as captured: a request line (``POST /files HTTP/1.1``),
            header lines, an empty line and the body. Without a request line,
            header lines only, and ``method`` and ``url`` must say the rest.
            Bytes are read as Latin-1 (RFC 9110 §5.5).
        scheme: The scheme the client used (a request line does not say).
        method: The method, when ``raw`` has no request line (or to override it).
        url: The absolute URL the client addressed; overrides the scheme, the
            ``Host`` header and the request target.

    Returns:
        The request and its body bytes (``b""`` when none).

    Raises:
        ValueError: Something it cannot read; the message names a line
            number, never a value.
    """
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        head, _, body = text.partition("\n\n")
    lines = head.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)  # blank lines before a request line are ignored (RFC 9112 §2.2)
    while lines and not lines[-1]:
        lines.pop()  # the header block's own end, when the input stops there
    target: str | None = None
    first = _REQUEST_LINE.fullmatch(lines[0].strip()) if lines else None
    start = 0
    if first is not None:
        method = method or first.group(1)
        target = first.group(2)
        start = 1
    headers: list[tuple[str, str]] = []
    for number, line in enumerate(lines[start:], start=start + 1):
        if line[:1] in (" ", "\t"):
            if not headers:
                raise ValueError(f"line {number}: a continuation line with no field before it")
            # obs-fold (RFC 9112 §5.2): kept, for the base to unfold as a server would.
            name, value = headers[-1]
            headers[-1] = (name, f"{value}\r\n{line}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ValueError(f"line {number} is not a header field (name: value)")
        headers.append((name, value.strip(" \t")))
    if url is not None:
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc:
            raise ValueError("url must be absolute (scheme://host/path)")
        scheme, authority, path, query = parts.scheme, parts.netloc, parts.path, parts.query
    elif target is not None and "://" in target:
        parts = urlsplit(target)  # absolute-form (RFC 9112 §3.2.2)
        scheme, authority, path, query = parts.scheme, parts.netloc, parts.path, parts.query
    elif target is not None:
        host = [v for n, v in headers if n.lower() == "host"]
        if len(host) != 1:
            raise ValueError("exactly one Host header is needed (or pass url)")
        authority = host[0]
        path, _, query = target.partition("?")
    else:
        raise ValueError("no request line (METHOD /path HTTP/1.1): pass method and url")
    if method is None:
        raise ValueError("no request line (METHOD /path HTTP/1.1): pass method and url")
    body_bytes = body.encode("latin-1")
    return HttpRequest(method, scheme, authority, path or "/", query, headers), body_bytes


def _public_key(source: PublicKeySource, key_id: str) -> Ed25519PublicKey | None:
    if isinstance(source, Ed25519PublicKey):
        return source
    raw = source if isinstance(source, bytes) else source(key_id)
    if raw is None:
        return None
    return Ed25519PublicKey.from_public_bytes(bytes(raw))


def _base_lines(sig: RequestSignature) -> list[str]:
    lines = sig.base.decode("ascii").split("\n")
    shown = []
    for line in lines:
        name = line.partition('": ')[0].lstrip('"')
        if name in _CREDENTIAL_FIELDS:
            value = line.partition('": ')[2]
            line = f'"{name}": <a credential, {len(value)} characters, not shown>'
        shown.append(_redact_tokens(line))
    return shown


def _when(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return "out of range"


def explain_signature(
    request: HttpRequest | str | bytes,
    *,
    body: bytes | None = None,
    public_key: PublicKeySource | None = None,
    policy: SignaturePolicy = DEFAULT_POLICY,
    label: str | None = None,
    now: float | None = None,
    scheme: str = "https",
) -> str:
    """Explain, for a human, how the server reads a request's signature.

    Shows the signature's parameters, the policy's verdict, the signature
    base (RFC 9421 §2.5) exactly as the server rebuilds it, and, when given
    the key or the body, whether they match. For debugging a peer's client:
    compare the base with the bytes the peer signed. Never prints a token,
    a seed or a covered credential field (see the module docstring).

    Args:
        request: The request as the server sees it, or a raw HTTP/1.1
            request (``str`` or ``bytes``, see :func:`parse_http_request`).
        body: The body, to check against ``Content-Digest``; a raw request
            brings its own.
        public_key: The key to check the signature with: raw 32 bytes (as
            :attr:`KeyRecord.public_key`), an ``Ed25519PublicKey``, or a
            callable from key id to raw bytes (``None`` when unknown), for
            example ``lambda kid: (r := store.get_key(kid)) and r.public_key``.
        policy: The server's policy (``verifier.signature_policy``).
        label: The server's label (``verifier.signature_label``).
        now: The time to judge freshness at (default: now); a captured
            request can be judged at the time it was captured.
        scheme: The scheme of a raw request (a request line does not say).

    Returns:
        Several lines of text, ending with a newline.

    Raises:
        ValueError: A raw request that cannot be read.

    Example::

        print(explain_signature(request, public_key=record.public_key))
    """
    if not isinstance(request, HttpRequest):
        request, raw_body = parse_http_request(request, scheme=scheme)
        body = raw_body if body is None else body
    moment = time.time() if now is None else now
    has_body = request.has_body() or bool(body)
    out: list[str] = []
    verdict: AuthError | None = None
    try:
        sig = parse_request_signature(request, policy, now=moment, label=label, has_body=has_body)
    except MissingCredentials:
        return "not signed: no Signature-Input or Signature header\n"
    except AuthError as exc:
        verdict = exc
        try:
            sig = parse_request_signature(request, _ANY, now=0.0, label=label, has_body=has_body)
        except AuthError as again:
            return (
                f"refused before a signature base could be built: {again.code}: "
                f"{_redact_tokens(again.detail)}\n"
            )
    out.append(f"signature {sig.label!r} by key id {_redact_tokens(sig.key_id)!r}")
    out.append(f"  created: {sig.created} ({_when(sig.created)}), now {int(moment)}")
    out.append(
        "  expires: " + ("-" if sig.expires is None else f"{sig.expires} ({_when(sig.expires)})")
    )
    out.append(f"  nonce:   {'-' if sig.nonce is None else repr(sig.nonce)}")
    out.append(f"  alg:     {sig.alg or '- (the key type decides)'}")
    if sig.tag is not None:
        out.append(f"  tag:     {sig.tag!r}")
    out.append(f"  covers:  {' '.join(sig.components) or '(nothing)'}")
    if verdict is None:
        out.append("policy: accepted (signature parameters and covered components)")
    else:
        out.append(
            f"policy: refused, {verdict.status} {verdict.code}: {_redact_tokens(verdict.detail)}"
        )
    out.append(
        "signature base, indented here by two spaces (LF line ends, no final newline;"
        " the client must have signed exactly these bytes):"
    )
    out.extend(f"  {line}" for line in _base_lines(sig))
    out.append(
        f"signature ({len(sig.signature)} bytes): {base64.b64encode(sig.signature).decode()}"
    )
    out.append(_check(sig, public_key))
    if body is not None and "content-digest" in sig.components:
        out.append(_digest(request, body))
    out.extend(_hints(request, sig))
    out.append("not checked here: nonce replay, the key's state and scopes, expected_authorities")
    return "\n".join(out) + "\n"


def _check(sig: RequestSignature, source: PublicKeySource | None) -> str:
    if source is None:
        return "verification: not checked (no public key given)"
    try:
        key = _public_key(source, sig.key_id)
    except ValueError:
        return "verification: the public key given is not a valid Ed25519 key"
    if key is None:
        return f"verification: no public key for key id {_redact_tokens(sig.key_id)!r}"
    try:
        key.verify(sig.signature, sig.base)
    except InvalidSignature:
        return (
            "verification: FAILS - the client signed other bytes than the base above, "
            "or with another key"
        )
    return "verification: the signature verifies with this key"


def _digest(request: HttpRequest, body: bytes) -> str:
    value = request.field("content-digest")
    if value is None:  # covered, so present; parse_request_signature made sure
        return "content-digest: missing"
    try:
        checker = DigestChecker.from_header(value)
        checker.update(body)
        checker.verify()
    except AuthError as exc:
        return f"content-digest: {exc.code}: {exc.detail} ({len(body)} body bytes)"
    return f"content-digest: matches the {len(body)} body bytes"


def _hints(request: HttpRequest, sig: RequestSignature) -> list[str]:
    hints = []
    for name in sig.components:
        if name.startswith("@"):
            continue
        lines = len(request.field_values(name))
        if lines > 1:
            hints.append(
                f"hint: {name!r} arrived on {lines} field lines, joined with ', ' "
                "(RFC 9421 §2.1); a WSGI server (werkzeug, gunicorn) joins them with ',' "
                "and its base differs: send a covered field on one line"
            )
    return hints
