"""Client auth helpers for httpx and requests.

Each class is *both* an ``httpx.Auth`` (one instance serves sync and async
httpx clients) and a ``requests.auth.AuthBase``::

    import httpx, requests
    from scout_auth.client import BearerAuth, SigningAuth

    httpx.get("https://api.example.com/files", auth=BearerAuth("scout_sk_…"))
    requests.post(url, data=b"…", auth=SigningAuth())   # key from $SCOUT_API_KEY

:class:`BearerAuth` sends the token as ``Authorization: Bearer``.
:class:`SigningAuth` keeps it on the client and signs every request (RFC
9421, Ed25519) covering ``@method``, ``@authority``, ``@target-uri`` and,
with a body, ``Content-Digest`` (RFC 9530), with a fresh ``created`` and a
random ``nonce`` — the secret never crosses the wire.

Needs httpx or requests (either is enough; the ``client`` extra installs
both: ``pip install 'scout-auth[client]'``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

# Either client library alone is enough: each class is an httpx.Auth when
# httpx is installed and a requests AuthBase when requests is.
if TYPE_CHECKING:
    import httpx
    import requests
    from httpx import Auth as _HttpxAuth
    from requests.auth import AuthBase as _RequestsAuth
else:
    try:
        from httpx import Auth as _HttpxAuth
    except ImportError:  # requests only

        class _HttpxAuth:
            pass

    try:
        from requests.auth import AuthBase as _RequestsAuth
    except ImportError:  # httpx only

        class _RequestsAuth:
            pass

    if _HttpxAuth.__module__ == __name__ and _RequestsAuth.__module__ == __name__:
        raise ImportError(
            "scout_auth.client needs httpx or requests: pip install 'scout-auth[client]'"
        )

from ._core.tokens import ParsedToken, parse_token
from ._signing.components import ComponentId, HttpRequest
from ._signing.digest import content_digest
from ._signing.signature import sign_request
from .exceptions import SignatureInvalid

__all__ = ["ENV_VAR", "BearerAuth", "SigningAuth"]

#: The environment variable read when no token is given.
ENV_VAR = "SCOUT_API_KEY"


def _load_token(token: str | None) -> tuple[str, ParsedToken]:
    if token is None:
        token = os.environ.get(ENV_VAR)
        if not token:
            raise ValueError(f"no token given and ${ENV_VAR} is not set")
    parsed = parse_token(token.strip())
    if parsed is None:
        raise ValueError("not a well-formed scout_sk_ token (format or checksum)")
    return token.strip(), parsed


def _field_names(components: Iterable[str]) -> Iterable[str]:
    # The HTTP fields among the covered components ("@method" is derived).
    for text in components:
        try:
            component = ComponentId.parse(text)
        except SignatureInvalid:
            continue  # sign_request() says what is wrong with it
        if not component.name.startswith("@"):
            yield component.name


class BearerAuth(_HttpxAuth, _RequestsAuth):
    """Send an Org Credential as ``Authorization: Bearer``.

    Args:
        token: A ``scout_sk_…`` token; default: ``$SCOUT_API_KEY``.

    Raises:
        ValueError: No token, or a malformed one (checked before any request).
    """

    def __init__(self, token: str | None = None) -> None:
        self._token, self._parsed = _load_token(token)
        self._header = f"Bearer {self._token}"

    def __repr__(self) -> str:
        return f"BearerAuth(key_id={self._parsed.key_id!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """httpx: add the header."""
        request.headers["Authorization"] = self._header
        yield request

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        """requests: add the header."""
        r.headers["Authorization"] = self._header
        return r


class SigningAuth(_HttpxAuth, _RequestsAuth):
    """Sign each request with the Org Credential (RFC 9421 + RFC 9530).

    Args:
        token: A ``scout_sk_…`` token; default: ``$SCOUT_API_KEY``. Only its
            key id is sent; the seed stays in this object.
        components: Extra header names to cover besides the defaults (for
            example ``["content-type"]``); they must be present on the request.
        digest_algorithms: RFC 9530 algorithms for ``Content-Digest``.
        label: The signature label.
        clock: POSIX time source (for tests).
        allow_multiline_fields: Sign a covered field that the request carries
            on several lines. Off by default: RFC 9421 §2.1 joins the lines
            with ``", "``, but a WSGI server (werkzeug, gunicorn) hands the
            application one value joined with ``","``, so the server rebuilds
            another base and the signature fails. Send such a field on one
            line (values joined with ``", "``) instead, or turn this on when
            every verifier sees the lines apart (ASGI).

    Raises:
        ValueError: No token, or a malformed one. When signing: a covered
            field on several lines (see ``allow_multiline_fields``), raised
            before anything is sent.
    """

    requires_request_body = True

    def __init__(
        self,
        token: str | None = None,
        *,
        components: Iterable[str] = (),
        digest_algorithms: Sequence[str] = ("sha-256",),
        label: str = "sig1",
        clock: Callable[[], float] = time.time,
        allow_multiline_fields: bool = False,
    ) -> None:
        _, self._parsed = _load_token(token)
        self._allow_multiline = allow_multiline_fields
        self._extra = tuple(c.lower() for c in components)
        self._fields = tuple(_field_names(self._extra))
        self._digest_algorithms = tuple(digest_algorithms)
        self._label = label
        self._clock = clock

    def __repr__(self) -> str:
        return f"SigningAuth(key_id={self._parsed.key_id!r})"

    def signature_headers(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> dict[str, str]:
        """The headers to add to a request: ``Content-Digest`` (with a body) and the signature."""
        parts = urlsplit(url)
        added: dict[str, str] = {}
        header_list = [(k.lower(), v) for k, v in headers if k.lower() != "content-digest"]
        if body:
            added["Content-Digest"] = content_digest(body, self._digest_algorithms)
            header_list.append(("content-digest", added["Content-Digest"]))
        if not any(k == "host" for k, _ in header_list):
            header_list.append(("host", parts.netloc))
        request = HttpRequest(
            method=method,
            scheme=parts.scheme,
            authority=dict(header_list)["host"],
            path=parts.path or "/",
            query=parts.query,
            headers=header_list,
        )
        components = ["@method", "@authority", "@target-uri", *self._extra]
        if body:
            components.append("content-digest")
        if not self._allow_multiline:
            self._refuse_multiline(header_list)
        added.update(
            sign_request(
                request,
                key_id=self._parsed.key_id,
                private_seed=self._parsed.seed,
                now=self._clock(),
                components=components,
                label=self._label,
            )
        )
        return added

    def _refuse_multiline(self, header_list: Sequence[tuple[str, str]]) -> None:
        # Behind WSGI the server sees one value joined with "," where RFC 9421
        # §2.1 joins with ", " (PEP 3333 environ has one value per name):
        # such a signature can only fail there, so say so before sending.
        for name in self._fields:
            lines = sum(1 for k, _ in header_list if k == name)
            if lines > 1:
                raise ValueError(
                    f"SigningAuth: the request carries the covered field {name!r} on "
                    f"{lines} lines; a WSGI server merges them with ',' and the signature "
                    "would fail there. Send it on one line (values joined with ', '), "
                    "or pass allow_multiline_fields=True if every verifier is ASGI"
                )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """httpx (sync and async): sign the fully read request."""
        # raw_path keeps the exact percent-encoding that goes on the wire.
        raw = request.url.raw_path.decode("ascii")
        url = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}{raw}"
        request.headers.update(
            self.signature_headers(
                request.method, url, request.headers.multi_items(), request.content
            )
        )
        yield request

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        """requests: sign the prepared request."""
        body = r.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body is not None and not isinstance(body, bytes):
            raise TypeError("SigningAuth needs the request body as bytes (not a stream)")
        if r.method is None or r.url is None:
            raise ValueError("the request is not prepared (no method or URL)")
        r.headers.update(self.signature_headers(r.method, r.url, r.headers.items(), body or b""))
        return r
