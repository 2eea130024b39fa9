"""A bounded, expiring cache of verified credentials.

The warm path of a request is: fingerprint the presented credential, look it
up here, compare one float. No crypto (beyond a keyed BLAKE2b fingerprint),
no store I/O.

* Keys are keyed-BLAKE2b fingerprints of the credential under a random
  per-process key, so the cache never holds a secret and a memory dump gives
  no fast offline oracle for it.
* Entries expire at ``min(now + ttl, key expiry)``; the cache holds at most
  ``max_entries`` (oldest evicted first).
* :meth:`invalidate` drops every entry of a key and bumps an *epoch*. A fill
  that started before an invalidation is discarded (:meth:`put` is given the
  epoch read before the store was consulted), so a fill racing with a
  revocation can never resurrect the revoked key.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict

from .flow import KnownKey
from .records import KeyRecord, OrgContext

__all__ = ["VerifiedCache"]


class VerifiedCache:
    """Verified credentials, by fingerprint."""

    def __init__(self, *, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.epoch = 0
        # Keyed once: copying the keyed state is cheaper than keying anew.
        self._keyed = hashlib.blake2b(key=secrets.token_bytes(32), digest_size=16)
        self._bearer = self._keyed.copy()
        self._bearer.update(b"bearer\x00")
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[OrgContext, float]] = OrderedDict()
        # key id -> its fingerprints: the one fingerprint itself while a key
        # has one credential cached (the usual case; a one-element set
        # would cost ~200 bytes per entry), a set from the second on.
        self._by_key: dict[str, bytes | set[bytes]] = {}
        # Key records for signed requests, whose signatures differ every time
        # (so the verified-context cache cannot serve them): the store look-up
        # is what this saves, and once a flow proved the key, the context
        # derived from the record (a KnownKey) too. Same TTL, bound,
        # invalidation and epoch.
        self._records: OrderedDict[str, tuple[KeyRecord | KnownKey, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def fingerprint(self, *parts: str) -> bytes:
        """A keyed digest of the credential parts (never stored in clear)."""
        h = self._keyed.copy()
        for part in parts:
            # Length-prefixed, not separated: a part may hold any character
            # (an org id from a Basic credential may hold NUL), and
            # ("a\0b", "c") must never digest like ("a", "b\0c").
            data = part.encode("utf-8", "surrogatepass")
            h.update(b"%d:" % len(data))
            h.update(data)
        return h.digest()

    def bearer_fingerprint(self, token: str) -> bytes:
        """A keyed digest of a bearer token; ``"bearer\\0"`` absorbed once.

        The token is the one and last part, so unlike :meth:`fingerprint` it
        needs no terminator to stay unambiguous (and the per-request
        concatenation is saved).
        """
        h = self._bearer.copy()
        try:
            h.update(token.encode())
        except UnicodeEncodeError:  # lone surrogates: only from the Python API
            h.update(token.encode("utf-8", "surrogatepass"))
        return h.digest()

    def get(self, fp: bytes, now: float) -> OrgContext | None:
        """The cached context, or ``None`` if absent or past its deadline."""
        entry = self._entries.get(fp)
        if entry is None:
            return None
        context, deadline = entry
        if now >= deadline:
            self._drop(fp)
            return None
        return context

    def put(
        self, fp: bytes, context: OrgContext, valid_until: float, now: float, epoch: int
    ) -> None:
        """Cache ``context`` unless an invalidation happened since ``epoch``."""
        if self.ttl <= 0 or self.max_entries <= 0:
            return
        deadline = min(now + self.ttl, valid_until)
        with self._lock:
            if epoch != self.epoch:
                return
            self._entries[fp] = (context, deadline)
            self._entries.move_to_end(fp)
            self._index(context.key_id, fp)
            while len(self._entries) > self.max_entries:
                old_fp, (old_ctx, _) = self._entries.popitem(last=False)
                self._unindex(old_ctx.key_id, old_fp)

    def get_record(self, key_id: str, now: float) -> KeyRecord | KnownKey | None:
        """A cached key record (with its context once known), or ``None``."""
        entry = self._records.get(key_id)
        if entry is None or now >= entry[1]:
            return None
        return entry[0]

    def put_known(self, known: KnownKey) -> None:
        """Keep ``known`` in place of its record, if that very record is still cached.

        Identity, not equality: after an invalidation the entry is gone or
        holds a record fetched since, and ``known`` must not replace it.
        """
        with self._lock:
            entry = self._records.get(known.record.key_id)
            if entry is not None and entry[0] is known.record:
                self._records[known.record.key_id] = (known, entry[1])

    def put_record(self, record: KeyRecord, now: float, epoch: int) -> None:
        """Cache ``record`` unless an invalidation happened since ``epoch``."""
        if self.ttl <= 0 or self.max_entries <= 0:
            return
        with self._lock:
            if epoch != self.epoch:
                return
            self._records[record.key_id] = (record, now + self.ttl)
            self._records.move_to_end(record.key_id)
            while len(self._records) > self.max_entries:
                self._records.popitem(last=False)

    def invalidate(self, key_id: str) -> None:
        """Forget every entry for ``key_id``."""
        with self._lock:
            self.epoch += 1
            self._records.pop(key_id, None)
            fps = self._by_key.pop(key_id, ())
            for fp in (fps,) if isinstance(fps, bytes) else fps:
                self._entries.pop(fp, None)

    def clear(self) -> None:
        """Forget everything (for example after losing the change feed)."""
        with self._lock:
            self.epoch += 1
            self._entries.clear()
            self._by_key.clear()
            self._records.clear()

    def _drop(self, fp: bytes) -> None:
        with self._lock:
            entry = self._entries.pop(fp, None)
            if entry is not None:
                self._unindex(entry[0].key_id, fp)

    def _index(self, key_id: str, fp: bytes) -> None:
        by_key = self._by_key
        fps = by_key.get(key_id)
        if fps is None or fps == fp:
            by_key[key_id] = fp
        elif isinstance(fps, bytes):
            by_key[key_id] = {fps, fp}
        else:
            fps.add(fp)

    def _unindex(self, key_id: str, fp: bytes) -> None:
        fps = self._by_key.get(key_id)
        if fps is None:
            return
        if isinstance(fps, bytes):
            if fps == fp:
                del self._by_key[key_id]
            return
        fps.discard(fp)
        if not fps:
            del self._by_key[key_id]
