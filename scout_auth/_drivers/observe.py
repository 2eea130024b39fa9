"""What the verifier and the adapters tell an observer: metrics and traces, off by default.

Theory of operation
-------------------
A verifier built without ``observer=`` holds ``None`` and the adapters test
that once per request (one attribute read, one ``is not None``): metrics
off cost nothing measurable. With an :class:`Observer`, three kinds of
point report to it:

* **Per request** (the adapters): one call, :meth:`Observer.observe`, with
  a precomputed :class:`Label` (how the request proved itself:
  ``bearer`` / ``signed`` / ``legacy``; the outcome, ``ok`` or the stable
  error code; its HTTP status; and ``hit`` when the verified cache
  answered it), the seconds the verification took and the context. An
  accepted request's label is read from a table (:data:`ACCEPTED`,
  :data:`SIGNED_OK`), a refusal's is built by :func:`report`; the warm path
  makes no other observer call and takes no lock.
* **Cache look-ups** (the verifier): ``verify_authorization`` and the other
  ``verify_*`` calls report whether the verified cache held the credential
  (:meth:`Observer.cache`), so a script calling the verifier directly
  counts them too. The adapters' warm path (``cached_authorization``) does
  not call it: its hit rides on the request's label.
* **Cold paths** (the verifier): every need a flow sends to the store, the
  nonce cache or argon2 runs inside :meth:`Observer.cold`, which a tracing
  observer turns into a child span and which counts store failures. It is
  installed by wrapping the driver's ``_perform`` once, at construction
  (:func:`observe_perform`): the warm path never reaches it.
* **State read when collected**: the legacy argon2 queue, the audit
  buffer and the change feed are read by the exporter when it collects
  (:func:`read_state`), never pushed from the request path.

Labels are bounded by construction: kinds are three words, outcomes are
the library's error codes (anything else is ``other``), store operations
are method names. No key id or org id is ever a label; a tracing observer
may put them on spans only when asked to (they identify customers).
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._core.flow import CheckLegacySecret, FetchKey, Need, RememberNonce
from .._core.records import CredentialKind, OrgContext
from ..exceptions import AuthError, StoreUnavailable

__all__ = [
    "ACCEPTED",
    "KINDS",
    "OUTCOMES",
    "SIGNED_OK",
    "Label",
    "Observer",
    "State",
    "cold_name",
    "label",
    "observe_perform",
    "outcome_of",
    "read_state",
    "report",
    "request_kind",
]

#: How a request proved itself: the values of the ``kind`` label.
KINDS = ("bearer", "signed", "legacy")


def _codes() -> frozenset[str]:
    seen: set[str] = set()
    todo: list[type[AuthError]] = [AuthError]
    while todo:
        cls = todo.pop()
        seen.add(cls.code)
        todo.extend(cls.__subclasses__())
    return frozenset(seen)


#: Every ``outcome`` label value: ``ok``, each stable error code, ``other``.
OUTCOMES = frozenset({"ok", "other"}) | _codes()


@dataclass(frozen=True, slots=True, eq=False)
class Label:
    """The bounded labels of one request, made once and reused (see :func:`label`).

    ``cache`` is ``"hit"`` when the adapters' warm path answered the request
    from the verified cache, else ``None`` (a look-up the verifier made
    itself is reported through :meth:`Observer.cache`). Compared and hashed
    by identity: observers key their counts by it, and :func:`label` hands
    out one instance per value.
    """

    kind: str
    outcome: str
    status: int
    cache: str | None = None


_LABELS: dict[tuple[str, str, int, str | None], Label] = {}


def label(kind: str, outcome: str, status: int, cache: str | None = None) -> Label:
    """The one :class:`Label` of these values (bounded: kinds x outcomes x statuses)."""
    key = (kind, outcome, status, cache)
    found = _LABELS.get(key)
    if found is None:
        found = _LABELS.setdefault(key, Label(kind, outcome, status, cache))
    return found


#: An accepted request's label: ``ACCEPTED[cache hit][legacy credential]``.
ACCEPTED = (
    (label("bearer", "ok", 200), label("legacy", "ok", 200)),
    (label("bearer", "ok", 200, "hit"), label("legacy", "ok", 200, "hit")),
)
#: An accepted signed request's label.
SIGNED_OK = label("signed", "ok", 200)


def request_kind(signed: bool, authorization: str | None, context: OrgContext | None) -> str:
    """``signed``, ``legacy`` or ``bearer``: how a request tried to prove itself."""
    if signed:
        return "signed"
    if context is not None:
        return "legacy" if context.kind is CredentialKind.LEGACY else "bearer"
    # Refused: the scheme says what it tried (a bearer-carried legacy secret
    # that failed cannot be told from a bad token: it counts as bearer).
    if authorization is not None and authorization[:6].lower() == "basic ":
        return "legacy"
    return "bearer"


def outcome_of(exc: AuthError | None) -> str:
    """The ``outcome`` label of a verification: ``ok``, its code, or ``other``."""
    if exc is None:
        return "ok"
    code = exc.code
    return code if code in OUTCOMES else "other"


def cold_name(need: Need) -> str:
    """The span and label name of a cold-path step (bounded: one per need type)."""
    kind = type(need)
    if kind is CheckLegacySecret:
        return "argon2"
    if kind is FetchKey:
        return "store.get_key"
    if kind is RememberNonce:
        return "nonce.remember"
    # FetchRoles -> store.fetch_roles, FindLegacy -> store.find_legacy, ...
    name = kind.__name__
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return "store." + snake


class Observer:
    """Receives what verification sees; every method does nothing here.

    Subclass it (or use :class:`scout_auth.observability.otel.OTelObserver`,
    :class:`scout_auth.observability.prometheus.PrometheusObserver`) and pass
    it as ``Verifier(store, observer=...)``. Methods run on the request path
    (``request``) or around cold steps (``cold``): keep them cheap and never
    raise from them.
    """

    __slots__ = ()

    def observe(self, label: Label, seconds: float, context: OrgContext | None) -> None:
        """One verified or refused request: the only call an adapter makes per request.

        ``seconds`` is the verification's own time, measured by the adapter
        from before the credential check to its answer (not the app's).
        Here it calls :meth:`request` (and :meth:`cache` for a warm hit);
        an observer that counts overrides it and keeps it lock-free.
        """
        self.request(label.kind, label.outcome, label.status, seconds, context)
        if label.cache is not None:
            self.cache(label.cache == "hit")

    def request(
        self,
        kind: str,
        outcome: str,
        status: int,
        seconds: float,
        context: OrgContext | None,
    ) -> None:
        """One verified or refused request (``outcome`` is ``ok`` or an error code).

        Called by :meth:`observe` as this class defines it: override either.
        """

    def attach(self, verifier: Any) -> None:
        """A verifier was built with this observer (its state is read when collected)."""

    def cache(self, hit: bool) -> None:
        """The verifier looked a credential up in the verified cache."""

    def cold(self, name: str) -> contextlib.AbstractContextManager[None]:
        """The context a cold step runs in (``store.get_key``, ``argon2``, ...)."""
        return contextlib.nullcontext()

    def store_error(self, operation: str) -> None:
        """A store (or nonce cache) call failed: the request is answered 503."""


@dataclass(frozen=True, slots=True)
class State:
    """What a verifier's helpers hold right now (read when metrics are collected).

    ``None`` where the thing does not exist (no audit buffer, a store with
    no change feed).
    """

    legacy_admitted: int
    legacy_capacity: int
    audit_pending: int | None
    audit_dropped: int | None
    feed_listening: bool | None
    feed_reconnects: int | None


def read_state(verifier: Any) -> State:
    """Read a verifier's queue, buffer and feed state (duck-typed: no store import)."""
    legacy = verifier.legacy
    audit = verifier.audit
    store = verifier.store
    listening = getattr(type(store), "listening", None)
    # The stores keep their feed thread as _feed (SQL) or _listener (Redis);
    # its ``subscriptions`` counts 1 + reconnections.
    feed = getattr(store, "_feed", None) or getattr(store, "_listener", None)
    subscriptions = getattr(feed, "subscriptions", None)
    return State(
        legacy_admitted=legacy.admitted_count,
        legacy_capacity=legacy.concurrency + legacy.queue,
        audit_pending=None if audit is None else audit.pending,
        audit_dropped=None if audit is None else audit.dropped,
        feed_listening=None if listening is None else bool(store.listening),
        feed_reconnects=(None if not isinstance(subscriptions, int) else max(subscriptions - 1, 0)),
    )


def observe_perform(perform: Callable[..., Any], observer: Observer) -> Callable[..., Any]:
    """``perform`` (a driver's ``_perform(now, epoch, need)``) run inside ``observer.cold``."""
    if inspect.iscoroutinefunction(perform):

        async def aobserved(now: float, epoch: int, need: Need) -> object:
            name = cold_name(need)
            with observer.cold(name):
                try:
                    return await perform(now, epoch, need)
                except StoreUnavailable:
                    observer.store_error(name)
                    raise

        return aobserved

    def observed(now: float, epoch: int, need: Need) -> object:
        name = cold_name(need)
        with observer.cold(name):
            try:
                return perform(now, epoch, need)
            except StoreUnavailable:
                observer.store_error(name)
                raise

    return observed


def report(
    observer: Observer,
    signed: bool,
    authorization: str | None,
    context: OrgContext | None,
    exc: AuthError | None,
    started: float,
) -> None:
    """What an adapter calls once for a request it has no precomputed label for.

    A refusal, mostly (an accepted request takes its label from
    :data:`ACCEPTED` or :data:`SIGNED_OK`). ``started`` is
    :func:`time.perf_counter` read before the verification.
    """
    seconds = time.perf_counter() - started
    kind = request_kind(signed, authorization, context)
    status = 200 if exc is None else exc.status
    observer.observe(label(kind, outcome_of(exc), status), seconds, context)
