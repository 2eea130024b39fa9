"""The receiver's one handler: a signed report in, the labels (or a problem) out."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .._adapters import answers
from .._adapters.answers import BodyLimit, Problem, Response
from .._audit.events import redact
from .._core.leaked import LeakPolicy, check_policy
from .._core.records import KeyRecord
from ..exceptions import StoreError, StoreUnavailable
from .signature import valid_key_id, verify_ecdsa, verify_hmac

__all__ = [
    "DEFAULT_MAX_BODY",
    "REFUSALS",
    "ClaimReport",
    "LeakNeed",
    "LeakProblem",
    "LeakReport",
    "LeakRequest",
    "LeakResponse",
    "Notify",
    "ReceiverSettings",
    "ReleaseReport",
    "ReportLeak",
    "ScannerKey",
    "error_response",
    "problem_response",
    "receive",
    "refuse",
]

#: The largest report body read (1 MiB); past it: 413, unread.
DEFAULT_MAX_BODY = 1024 * 1024
#: The most tokens one report may carry (each is a store read).
DEFAULT_MAX_TOKENS = 1000

GITHUB_KEY_ID_HEADER: Final = "github-public-key-identifier"
GITHUB_SIGNATURE_HEADER: Final = "github-public-key-signature"
#: The generic variant's header: ``sha256=<hex HMAC-SHA256 of the raw body>``.
DEFAULT_HMAC_HEADER: Final = "x-scanner-signature-256"

_SOURCE = re.compile(r"[^A-Za-z0-9_.-]")
_TEXT_LIMIT = 2048

BASE_HEADERS: tuple[tuple[str, str], ...] = (
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
)


@dataclass(frozen=True, slots=True)
class LeakRequest:
    """One request as an adapter read it (headers lower-case, body whole)."""

    method: str
    path: str
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    #: The mount prefix (``/hooks/secret-scanning``): the OpenAPI document's server URL.
    mount: str = ""


#: What to send: the shared :class:`~scout_auth._adapters.answers.Response`.
LeakResponse = Response


@dataclass(frozen=True, slots=True)
class LeakReport:
    """What a scanner said about one real key's token, for ``on_leak(key, report)``.

    Never holds the token. Attributes:
        token_type: The scanner's name for the token type (``scout_api_key``).
        url: Where the token was found (up to 2048 characters; anything after a
            ``scout_sk_`` prefix cut off, as in the audit trail).
        source: Where on the scanner's side (``content``, ``commit``, ``gist``…).
        scanner: ``"github"`` (ECDSA-signed) or ``"hmac"`` (the generic variant).
        action: What was done: ``"disable"`` or ``"delete"``.
    """

    token_type: str
    url: str | None
    source: str | None
    scanner: Literal["github", "hmac"]
    action: LeakPolicy


@dataclass(frozen=True, slots=True)
class ReceiverSettings:
    """A receiver's configuration, validated once (the adapters build it)."""

    on_report: LeakPolicy = "disable"
    has_scanner_keys: bool = False
    hmac_secret: bytes | None = field(default=None, repr=False)
    hmac_header: str = DEFAULT_HMAC_HEADER
    max_body: int = DEFAULT_MAX_BODY
    max_tokens: int = DEFAULT_MAX_TOKENS

    def __post_init__(self) -> None:
        check_policy(self.on_report)
        if not self.has_scanner_keys and self.hmac_secret is None:
            raise ValueError("a receiver needs scanner_keys, hmac_secret, or both")
        if self.hmac_secret is not None and (
            not isinstance(self.hmac_secret, bytes) or len(self.hmac_secret) < 32
        ):
            raise ValueError("hmac_secret must be at least 32 bytes")
        if not isinstance(self.hmac_header, str) or not re.fullmatch(
            r"[a-z0-9-]{1,100}", self.hmac_header
        ):
            raise ValueError("hmac_header must be a lower-case header name")
        if self.hmac_header.startswith("github-"):
            raise ValueError("hmac_header may not be a Github-* header")
        for name in ("max_body", "max_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int")

    @property
    def body_limit(self) -> BodyLimit:
        """``max_body`` and the sentence of its 413 (the adapters stop reading there)."""
        return BodyLimit(self.max_body, "The report is too large.")


@dataclass(frozen=True, slots=True)
class ScannerKey:
    """Need: the scanner's public key with id ``key_id``, or ``None`` if unknown."""

    key_id: str


@dataclass(frozen=True, slots=True)
class ClaimReport:
    """Need: the replay guard's ``claim(digest)``: ``True`` if not seen before."""

    digest: bytes


@dataclass(frozen=True, slots=True)
class ReleaseReport:
    """Need: the replay guard's ``release(digest)`` (processing failed)."""

    digest: bytes


@dataclass(frozen=True, slots=True)
class ReportLeak:
    """Need: ``manager.report_leak(token, url=, actor=, on_report=)``.

    Answered, not raised: the adapter returns the exception a call raised,
    so the handler can release its replay claim before it propagates.
    """

    token: str = field(repr=False)
    url: str | None
    actor: str
    on_report: LeakPolicy


@dataclass(frozen=True, slots=True)
class Notify:
    """Need: run ``on_leak(key, report)`` off the request path (no answer awaited)."""

    key: KeyRecord
    report: LeakReport


LeakNeed = ScannerKey | ClaimReport | ReleaseReport | ReportLeak | Notify


#: A refusal (``status``, stable ``code``, ``detail``): the shared
#: :class:`~scout_auth._adapters.answers.Problem`.
LeakProblem = Problem


#: Every refusal by its stable code: its status, and when it happens (the
#: OpenAPI document's words). :func:`refuse` takes the status from here, so
#: a refusal cannot be raised undocumented.
REFUSALS: dict[str, tuple[int, str]] = {
    "invalid_request": (400, "The `Content-Length` header is malformed."),
    "invalid_report": (400, "The body is not a JSON list of `{token, type, url, source}` "
                            "objects with string fields and a non-empty `token`."),
    "unsigned": (401, "No signature: neither both `Github-Public-Key-*` headers nor the "
                      "HMAC header (or only one of the two GitHub headers)."),
    "unknown_key": (401, "`Github-Public-Key-Identifier` names no key the scanner publishes."),
    "bad_signature": (401, "The ECDSA or HMAC signature does not verify over the raw body."),
    "not_found": (404, "A path below the mount point (reports go to the mount point itself)."),
    "method_not_allowed": (405, "A method other than POST on the mount point."),
    "replayed": (409, "The same body was received before (within the replay window)."),
    "body_too_large": (413, "The body is larger than the receiver's limit."),
    "too_many_tokens": (413, "The report lists more tokens than the receiver's limit."),
    "store_unavailable": (503, "The key store or the replay guard is unavailable: retry "
                               "after `Retry-After` seconds (nothing was changed)."),
}  # fmt: skip


def refuse(code: str, detail: str, *, headers: Sequence[tuple[str, str]] = ()) -> LeakProblem:
    """The refusal ``code`` (its status from :data:`REFUSALS`), saying ``detail``."""
    return LeakProblem(REFUSALS[code][0], code, detail, headers=headers)


def problem_response(problem: LeakProblem) -> LeakResponse:
    """The problem+json answer (RFC 9457) of ``problem``."""
    return answers.problem_response(problem, base=BASE_HEADERS)


def error_response(exc: Exception) -> LeakResponse | None:
    """The answer to an exception out of the drive loop, or ``None`` for a bug."""
    if isinstance(exc, LeakProblem):
        return problem_response(exc)
    if isinstance(exc, StoreError | StoreUnavailable):
        retry = str(getattr(exc, "retry_after", 1))
        detail = "The key store is unavailable; try again."
        return problem_response(
            refuse("store_unavailable", detail, headers=[("retry-after", retry)])
        )
    return None


Flow = Generator[LeakNeed, Any, LeakResponse]


def receive(request: LeakRequest, settings: ReceiverSettings) -> Flow:
    """Answer one report: see the package's theory of operation.

    Raises:
        LeakProblem: A refusal (the adapters answer it with :func:`error_response`).
        StoreError: The store failed while a token was processed (503; the
            replay claim was released first, so a retry is accepted).
    """
    if request.path not in ("", "/"):
        raise refuse("not_found", "The report endpoint is the mount point itself.")
    if request.method != "POST":
        raise refuse("method_not_allowed", "Reports are POSTed.")
    if len(request.body) > settings.max_body:
        raise settings.body_limit.too_large()
    scanner = yield from _authenticate(request, settings)
    items = _parse(request.body, settings.max_tokens)
    digest = hashlib.sha256(request.body).digest()
    if not (yield ClaimReport(digest)):
        raise refuse("replayed", "This report was received before.")
    labels: list[dict[str, str]] = []
    done: dict[str, KeyRecord | None] = {}
    for item in items:
        token = item["token"]
        if token not in done:
            actor = "secret-scanner:" + (_SOURCE.sub("", item["source"] or "")[:64] or "unknown")
            answer = yield ReportLeak(token, item["url"], actor, settings.on_report)
            if isinstance(answer, BaseException):
                yield ReleaseReport(digest)
                raise answer
            done[token] = answer
            if answer is not None:
                report = LeakReport(
                    token_type=item["type"],
                    url=item["url"],
                    source=item["source"],
                    scanner=scanner,
                    action=settings.on_report,
                )
                yield Notify(answer, report)
        label = "false_positive" if done[token] is None else "true_positive"
        labels.append({"token_raw": token, "token_type": item["type"], "label": label})
    return answers.json_response(labels, base=BASE_HEADERS)


def _authenticate(
    request: LeakRequest, settings: ReceiverSettings
) -> Generator[LeakNeed, Any, Literal["github", "hmac"]]:
    headers = request.headers
    signature = headers.get(GITHUB_SIGNATURE_HEADER)
    key_id = headers.get(GITHUB_KEY_ID_HEADER)
    if settings.has_scanner_keys and (signature is not None or key_id is not None):
        if not signature or not key_id:
            raise refuse("unsigned", "Both Github-Public-Key-* headers are required.")
        if not valid_key_id(key_id):
            raise refuse("unknown_key", "The signing key is unknown.")
        key = yield ScannerKey(key_id)
        if key is None:
            raise refuse("unknown_key", "The signing key is unknown.")
        if not verify_ecdsa(key, signature, request.body):
            raise refuse("bad_signature", "The report's signature does not verify.")
        return "github"
    mac = headers.get(settings.hmac_header)
    if settings.hmac_secret is not None and mac is not None:
        if not verify_hmac(settings.hmac_secret, mac, request.body):
            raise refuse("bad_signature", "The report's signature does not verify.")
        return "hmac"
    raise refuse("unsigned", "The report is not signed.")


def _text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise refuse("invalid_report", f"{name!r} must be a string.")
    return value[:_TEXT_LIMIT]


def _redacted(url: str | None) -> str | None:
    # The URL often holds the token itself (a gist's raw link, ?token=): it
    # reaches the audit trail and the host's callback with it cut off.
    return None if url is None else redact(url)


def _parse(body: bytes, max_tokens: int) -> list[dict[str, Any]]:
    """The report's items, checked whole before anything changes."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise refuse("invalid_report", "The report is not JSON.") from None
    if not isinstance(data, list):
        raise refuse("invalid_report", "A report is a JSON list of tokens.")
    if len(data) > max_tokens:
        raise refuse("too_many_tokens", f"A report holds at most {max_tokens} tokens.")
    items: list[dict[str, Any]] = []
    for entry in data:
        if not isinstance(entry, dict):
            raise refuse("invalid_report", "Each reported token is an object.")
        token = entry.get("token")
        if not isinstance(token, str) or not token or len(token) > _TEXT_LIMIT:
            raise refuse("invalid_report", "Each reported token needs a 'token' string.")
        items.append(
            {
                "token": token,
                "type": _text(entry, "type") or "",
                "url": _redacted(_text(entry, "url")),
                "source": _text(entry, "source"),
            }
        )
    return items
