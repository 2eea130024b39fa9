"""What a Redis operation can ask for (its *needs*), and the exactly-once wrapper.

Theory of operation
-------------------
An operation (:mod:`.ops`, :mod:`.legacy`, ...) is a
generator that yields needs — a :class:`Call` (one command), a
:class:`Batch` (commands in one round trip), a :class:`Lua` (a script run
atomically), a :class:`Scan` (key names by pattern, on every primary of a
cluster), a :class:`Notify` (tell this process's subscribers) — and
returns its result; :mod:`.driver` performs them.

Exactly once
------------
A command whose answer is lost (a timeout, a connection cut after the
server ran it) may or may not have taken effect, and redis-py, as well as
the store, sends it again. Running a lifecycle script twice would answer
wrongly ("duplicate key id" for a key just created, "not found" for one
just deleted) and publish twice. So each lifecycle write carries a fresh
*request id*: the script (wrapped by :func:`once`) first looks for
``<prefix>:{o:<org>}:once:<request id>`` in the org's slot; if it is there
it returns the answer recorded in it and does nothing else, otherwise it
acts, then records its answer there for :data:`ONCE_TTL_MS` (far longer
than any retry: they are immediate). A retry of the same need, by whoever
sends it, is therefore exactly-once. Every other need is a read or an
idempotent write and may be sent again freely, except the usage counters
and the nonce cache's writes (``repeatable=False``): a lost usage flush is
lost, never counted twice, and a nonce write whose answer was lost is a
503, never "already seen" because it found the nonce it stored itself.

A lifecycle write that fails (the outcome is unknown) is reported by the
driver as :class:`~scout_auth.exceptions.StoreUnavailable`, after it has
told this process's subscribers the events the write would have published:
other instances learn of a committed write through the feed, but this one
skips its own messages, and dropping a cache entry is harmless if the write
never happened.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..._core.store import KeyEvent

__all__ = [
    "ONCE_TTL_MS",
    "Batch",
    "Call",
    "Lua",
    "Need",
    "Notify",
    "Op",
    "Scan",
    "Script",
    "once",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, run by ``EVALSHA`` (``EVAL`` when the server lacks it)."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", sha)


@dataclass(frozen=True, slots=True)
class Call:
    """Need: one command; the answer is its reply.

    A ``Call`` is a read or an idempotent write (``SET NX``, ``SADD``, a
    ``SET`` of the same value): the driver may send it again after a
    connection error or timeout, unless ``repeatable`` is ``False``: a
    write whose *answer* a second run would change (the nonce cache's
    ``SET NX``, which would answer "already there" to its own resend).

    ``best_effort``: a failure answers ``None`` instead of failing the
    operation (for clean-ups after the write already committed).
    """

    args: tuple[str, ...]
    best_effort: bool = False
    repeatable: bool = True


@dataclass(frozen=True, slots=True)
class Batch:
    """Need: commands in one round trip; the answer is the list of replies.

    Reads, or idempotent writes (``SET NX``) that need no atomicity.
    """

    calls: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Lua:
    """Need: run ``script`` atomically; the answer is its reply.

    ``repeatable``: the script may run again after a lost answer (it is
    idempotent, or a lifecycle write with its request id); the driver only
    retries those. ``events``: what the script publishes; if it fails, the
    driver tells this process's subscribers anyway (module docstring).
    ``replicate``: a write that can take access away; a store configured
    with ``wait_replicas`` waits for replicas to acknowledge it.
    """

    script: Script
    keys: tuple[str, ...]
    args: tuple[str, ...]
    best_effort: bool = False
    repeatable: bool = False
    events: tuple[KeyEvent, ...] = ()
    replicate: bool = False


@dataclass(frozen=True, slots=True)
class Scan:
    """Need: every key name matching the glob ``match`` (``SCAN``; on a cluster,
    on every primary). Names may repeat; the answer is a list.

    Walks the whole keyspace, ``count`` keys per round trip: for rare
    whole-store reads only (startup, ``doctor``), never per request.
    """

    match: str
    count: int = 1000


@dataclass(frozen=True, slots=True)
class Notify:
    """Need: deliver ``events`` to this process's subscribers (after the write)."""

    events: tuple[KeyEvent, ...]


Need = Call | Batch | Lua | Scan | Notify
Op = Generator[Need, Any, T]

#: How long a lifecycle write's answer stays recorded for its retries (ms).
ONCE_TTL_MS = 300_000


def once(name: str, body: str) -> Script:
    """A lifecycle script that runs ``body`` at most once per request id.

    Its last key is the request's ``once`` entry (:meth:`Layout.once`); the
    body keeps its own ``KEYS`` and ``ARGV``. The body's answer, ``false``
    included, is recorded as JSON ``[answer]``, and a run that finds the
    entry returns that instead of acting (and publishing) again.
    """
    source = f"""
local done = redis.call('GET', KEYS[#KEYS])
if done then return cjson.decode(done)[1] end
local reply = (function()
{body.strip()}
end)()
redis.call('SET', KEYS[#KEYS], cjson.encode({{reply}}), 'PX', {ONCE_TTL_MS})
return reply
"""
    return Script(name, source)
