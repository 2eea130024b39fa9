"""Directory entries left behind by interrupted writes, and the sweep that removes them.

Theory of operation
-------------------
A key id's directory entry ``{k:<id>}`` is claimed (``SET NX``) before the
key's record is written in the org's slot: two slots, so no script writes
both. A create or rotation interrupted between the two, or a delete whose
best-effort release of the entry failed, leaves an entry with no record
behind it; so can a legacy look-up entry ``{l:<digest>}`` whose org no
longer holds that digest. Such orphans are harmless — a look-up reads "no
such key", a later claim of the same id takes the entry over, the record
and not the entry is the truth — and rare: only interrupted administrative
writes make them, never a request.

They get no expiry: the entry of a *live* key must never vanish, and
making it permanent after the record is written would be one more write
whose answer can be lost. :meth:`SweepOps.sweep` removes them instead, for
maintenance (a ``SCAN`` of the keyspace, like ``legacy_digest_counts``):

1. Entries idle for ``min_idle`` seconds (``OBJECT IDLETIME``, which does
   not touch them) are candidates: the claim of a write in flight is
   seconds old, and a claim that meets an existing entry reads it first.
2. A candidate is an orphan if nothing in its org's slot backs it (no key
   record; no legacy record holding the digest). It is deleted only if it
   still names that org (one script), then its backing is read again and
   the entry put back (``SET NX``) if a record appeared meanwhile.

Step 2 is the sweeper's half of Dekker's mutual exclusion; the writer's
half is in the writes: after its record is written, a create or rotation
reads its entry and puts it back if it is gone (``ops``), and a
legacy write drops a digest whose entry it no longer holds
(``legacy.py``). Each side writes, then reads what the other writes, so
at least one sees the other: a sweep never leaves a live key without its
entry.

``OBJECT IDLETIME`` is not kept under an LFU ``maxmemory-policy`` (the
sweep then fails with a store error and removes nothing); a key store
wants ``noeviction`` anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from .layout import Layout, text
from .needs import Batch, Call, Lua, Op, Scan
from .ops import RELEASE_DIRECTORY

__all__ = ["SweepOps"]

_BATCH = 500


@dataclass(frozen=True, slots=True)
class SweepOps:
    """The sweep of one store's directories (see the module docstring)."""

    layout: Layout

    def sweep(self, min_idle: float) -> Op[int]:
        """Remove orphan directory entries idle for ``min_idle`` seconds; how many."""
        names: set[str] = set()
        for pattern in self.layout.directory_patterns:
            names.update(text(n) for n in (yield Scan(pattern)))
        entries = sorted(n for n in names if self.layout.directory_entry(n) is not None)
        removed = 0
        for start in range(0, len(entries), _BATCH):
            chunk = entries[start : start + _BATCH]
            idle = yield Batch(tuple(("OBJECT", "IDLETIME", n) for n in chunk))
            old = [n for n, i in zip(chunk, idle, strict=True) if i is not None and i >= min_idle]
            if not old:
                continue
            orgs = yield Batch(tuple(("GET", n) for n in old))
            named = [(n, text(o)) for n, o in zip(old, orgs, strict=True) if o is not None]
            backed = yield Batch(tuple(self._backing(n, org) for n, org in named))
            for (name, org), backing in zip(named, backed, strict=True):
                if not self._is_backed(name, backing):
                    removed += yield from self._remove(name, org)
        return removed

    def _remove(self, name: str, org: str) -> Op[int]:
        if not (yield Lua(RELEASE_DIRECTORY, (name,), (org,), repeatable=True)):
            return 0  # it names another org now
        # Dekker, sweeper's half: a record written meanwhile gets its entry back.
        if self._is_backed(name, (yield Call(self._backing(name, org)))):
            yield Call(("SET", name, org, "NX"))
            return 0
        return 1

    def _backing(self, name: str, org: str) -> tuple[str, ...]:
        # What in the org's slot makes the entry live.
        kind, value = self._entry(name)
        if kind == "k":
            return ("EXISTS", self.layout.key(org, value))
        return ("HGET", self.layout.legacy(org), "lookup_digest")

    def _is_backed(self, name: str, reply: object) -> bool:
        kind, value = self._entry(name)
        if kind == "k":
            return bool(reply)
        return isinstance(reply, bytes | str) and text(reply) == value

    def _entry(self, name: str) -> tuple[str, str]:
        entry = self.layout.directory_entry(name)
        assert entry is not None
        return entry
