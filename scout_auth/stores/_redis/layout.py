"""Redis key names and record (de)serialisation, shared by the sync and async paths.

Theory of operation
-------------------
Everything an organization owns lives in one Redis Cluster hash slot (the
hash tag ``{o:<org>}``), so every lifecycle write is one Lua script over keys
of one slot: atomic on a single server and on a cluster alike. A token names
only its key id, so a small *directory* entry (hash tag ``{k:<key id>}``)
maps a key id to its org; it is written once before the key and never
changes, so it needs no atomicity with the org's data (an orphan entry whose
key record is missing reads as "no such key"; interrupted writes can leave
such entries, which :mod:`.sweep` removes).

A look-up needs both, and one script reads the entry and then the record
(an undeclared key) in one round trip. On a cluster that works because the
store mints each new key id so that the entry's hash tag ``k:<key id>``
lands in the org's slot (:mod:`.slots`; the key managers ask the store for
new ids): entry and record are in one slot, on one node. A key id minted
before (random) usually has its entry on another node than its record;
the script then answers the org alone and the record is read in its slot:
two round trips, as before, and no data needs migrating (see
:meth:`.ops.Ops.get_key`). An entry whose record the script does not find
takes the same second trip: during a slot migration the node may hold the
entry and not yet the record.

A legacy secret sent as ``Bearer`` names no org either: a second directory
maps its look-up digest (an HMAC under a pepper that never reaches Redis,
see :mod:`scout_auth._core.pepper`) to the org, hash tag ``{l:<hex digest>}``,
and the org's legacy hash keeps the same digest in ``lookup_digest``. The
two live in different slots, so no write can change both atomically; the
record is the truth and the directory only a pointer to check. A look-up
reads the entry, then the org's record, and answers ``None`` unless that
record holds exactly the digest asked for: a stale or orphan entry never
names the wrong org. How writes claim, take over and release entries (and
why two orgs never both hold a digest) is in :mod:`.legacy`.

``legacy_digest_counts`` (run at startup and by ``doctor``, never per
request) needs every org's legacy hash. A counter or a set of orgs would be
one key in one slot, which the org's script cannot update on a cluster, so
it would drift; instead a ``SCAN`` with ``MATCH <prefix>:{o:*}:legacy``
visits every key of the database (on a cluster: of every primary), about
one round trip per thousand keys, then one ``HMGET`` per legacy record in
pipelined batches. Always exact, nothing to keep in step.

With ``prefix="scout"``::

    scout:{k:<key_id>}                string  org id (directory)
    scout:{l:<hex digest>}            string  org id (legacy look-up digest directory)
    scout:legacy-peppers              set     every pepper id a digest was stored with
    scout:{o:<org_id>}:key:<key_id>   hash    the key record (public key only; a
                                              recoverable key's sealed seed too)
    scout:{o:<org_id>}:keys           zset    "<created_at> <key_id>", score 0
    scout:{o:<org_id>}:legacy         hash    the legacy argon2id hash (+ ``enabled``,
                                              ``lookup_digest`` hex, ``pepper_id``)
    scout:{o:<org_id>}:legacy:usage   hash    legacy uses per UTC day, ``last`` use
    scout:{o:<org_id>}:roles          hash    role name -> JSON scopes
    scout:{o:<org_id>}:scopes         hash    scope catalogue: scope -> description
    scout:{o:<org_id>}:once:<id>      string  a lifecycle write's answer, by request id
                                              (expires after 5 minutes)
    scout:{o:<org_id>}:audit          stream  the org's audit events
    scout:{o:<org_id>}:audit:key:<k>  stream  the same events of key <k> only
    scout:{o:<org_id>}:audit:batches  zset    digests of recent audit batches
    scout:{k:<key_id>}:audit          string  org id of a key's audit stream
    scout:{n:<key_id>}:nonces         zset    a signing key's live nonces -> expiry (ms)
    scout:nonce:<key>                 string  a nonce nobody owns (SET NX PX)
    scout:events                      pub/sub channel of KeyEvents

``list_sealed_seeds`` (``scout-auth vault rewrap`` and ``status``, never per
request) finds key records as ``legacy_digest_counts`` finds legacy hashes:
a ``SCAN`` with ``MATCH <prefix>:{o:*}:key:*``, then ``HMGET`` of
``sealed_kek_id`` in pipelined batches. A sealed seed is four fields of the
key's own hash (``sealed_ciphertext``, ``sealed_nonce``, ``sealed_wrapped_key``
as base64, ``sealed_kek_id``), so creating, rotating and deleting a key writes
or removes it in the same script.

A signing key's nonces are one sorted set in a slot of its own (hash tag
``{n:<key id>}``): the per-key bound is one script over one key, atomic on a
cluster too. The orgs' nonces spread over the cluster, one org's do not:
CRC16 is linear, so for ids of one length the slot of ``n:<id>`` is the
slot of ``k:<id>`` XOR a constant, and a key id minted into its org's slot
(:mod:`.slots`) puts every key of that org's nonces in one slot (a test
says so). A hot signer loads one node either way.

Ids are percent-escaped (``%``, ``{``, ``}``, ``:``) in key names so no id can
break out of its hash tag or collide with another key. Values are text only
(base64 public keys, hex look-up digests, ISO 8601 UTC timestamps with
microseconds, JSON scopes), so clients with ``decode_responses`` on or off read them alike and
the fixed-width timestamps compare as strings, in Lua too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

from ..._core.records import KeyRecord, LegacyRecord, SealedSeed

__all__ = [
    "Layout",
    "bounded",
    "fields_from_reply",
    "format_time",
    "index_member",
    "json_list",
    "key_fields",
    "key_from_fields",
    "legacy_fields",
    "legacy_from_fields",
    "record_from_json",
    "sealed_fields",
    "text",
]

_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D", ":": "%3A"})
# SCAN MATCH is a glob: a prefix is matched literally (it may hold any of these).
_GLOB = re.compile(r"([\\*?\[\]])")
_MAX_NONCE_KEY = 200


def _quote(value: str) -> str:
    return value.translate(_ESCAPES)


@dataclass(frozen=True, slots=True)
class Layout:
    """Key names under one prefix (see the module docstring)."""

    prefix: str = "scout"

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "{}"):
            raise ValueError("prefix must be non-empty and contain no '{' or '}'")

    def directory(self, key_id: str) -> str:
        """The key id -> org id entry."""
        return f"{self.prefix}:{{k:{_quote(key_id)}}}"

    def key(self, org_id: str, key_id: str) -> str:
        """A key record (hash)."""
        return f"{self.prefix}:{{o:{_quote(org_id)}}}:key:{_quote(key_id)}"

    def key_name_parts(self, key_id: str) -> tuple[str, str]:
        """:meth:`key`'s name around the escaped org id: ``(head, tail)``, for
        a script that learns the org id from the directory."""
        return f"{self.prefix}:{{o:", f"}}:key:{_quote(key_id)}"

    def index(self, org_id: str) -> str:
        """The org's keys, ordered by (created_at, key_id)."""
        return f"{self.prefix}:{{o:{_quote(org_id)}}}:keys"

    def legacy(self, org_id: str) -> str:
        """The org's legacy hash record."""
        return f"{self.prefix}:{{o:{_quote(org_id)}}}:legacy"

    @property
    def legacy_peppers(self) -> str:
        """The set of pepper ids any legacy digest was stored with."""
        return f"{self.prefix}:legacy-peppers"

    def legacy_directory(self, lookup_digest: bytes) -> str:
        """The legacy look-up digest -> org id entry (a slot of its own)."""
        return f"{self.prefix}:{{l:{lookup_digest.hex()}}}"

    @property
    def legacy_pattern(self) -> str:
        """A ``SCAN MATCH`` glob for every org's legacy hash under this prefix, and nothing else.

        Only a legacy hash ends in ``}:legacy``: ids in names are escaped, so
        no other name has a ``}`` after its hash tag.
        """
        literal = _GLOB.sub(r"\\\1", self.prefix)
        return f"{literal}:{{o:*}}:legacy"

    @property
    def key_pattern(self) -> str:
        """A ``SCAN MATCH`` glob for every key record under this prefix (and a
        few other names, which :meth:`key_record` tells apart)."""
        literal = _GLOB.sub(r"\\\1", self.prefix)
        return f"{literal}:{{o:*}}:key:*"

    def key_record(self, name: str) -> str | None:
        """The key id of a key record's name, else ``None`` (an audit stream's, say)."""
        head = f"{self.prefix}:{{o:"
        if not name.startswith(head):
            return None
        _, brace, rest = name[len(head) :].partition("}")
        # Ids are escaped in names: after the hash tag, exactly ":key:<id>".
        if not brace or not rest.startswith(":key:") or ":" in rest[5:] or "}" in rest:
            return None
        return unquote(rest[5:])

    @property
    def directory_patterns(self) -> tuple[str, str]:
        """``SCAN MATCH`` globs for the key-id and the legacy look-up directories.

        They also match a key's audit directory (``{k:<id>}:audit``);
        :meth:`directory_entry` tells them apart.
        """
        literal = _GLOB.sub(r"\\\1", self.prefix)
        return f"{literal}:{{k:*}}", f"{literal}:{{l:*}}"

    def directory_entry(self, name: str) -> tuple[str, str] | None:
        """``("k", key id)`` or ``("l", hex digest)`` for a directory entry, else ``None``."""
        head = f"{self.prefix}:{{"
        if not (name.startswith(head) and name.endswith("}")):
            return None
        kind, sep, quoted = name[len(head) : -1].partition(":")
        # Ids are escaped in names: a '}' inside means another kind of key.
        if not sep or kind not in ("k", "l") or "}" in quoted:
            return None
        return kind, unquote(quoted)

    def legacy_usage(self, org_id: str) -> str:
        """The org's legacy uses per UTC day (``YYYY-MM-DD`` fields) and ``last``."""
        return f"{self.prefix}:{{o:{_quote(org_id)}}}:legacy:usage"

    def roles(self, org_id: str) -> str:
        """The org's roles: name -> JSON list of scopes."""
        return f"{self.prefix}:{{o:{_quote(org_id)}}}:roles"

    def scope_catalogue(self, org_id: str) -> str:
        """The org's scope catalogue: scope name -> description."""
        return f"{self.prefix}:{{o:{_quote(org_id)}}}:scopes"

    def once(self, org_id: str, request_id: str) -> str:
        """The recorded answer of one lifecycle write (its retries replay it)."""
        return f"{self.prefix}:{{o:{_quote(org_id)}}}:once:{_quote(request_id)}"

    def audit(self, org_id: str) -> str:
        """The org's audit stream."""
        return f"{self.prefix}:{{o:{_quote(org_id)}}}:audit"

    def audit_key(self, org_id: str, key_id: str) -> str:
        """The audit stream of one key (in its org's slot)."""
        return f"{self.prefix}:{{o:{_quote(org_id)}}}:audit:key:{_quote(key_id)}"

    def audit_batches(self, org_id: str) -> str:
        """Digests of the org's recent audit batches (a retried batch is skipped)."""
        return f"{self.prefix}:{{o:{_quote(org_id)}}}:audit:batches"

    def audit_directory(self, key_id: str) -> str:
        """Key id -> org id, for per-key audit queries (outlives the key)."""
        return f"{self.prefix}:{{k:{_quote(key_id)}}}:audit"

    @property
    def channel(self) -> str:
        """The pub/sub channel carrying KeyEvents."""
        return f"{self.prefix}:events"

    def nonce(self, key: str) -> str:
        """A nonce entry nobody owns; very long keys are hashed to bound memory."""
        return f"{self.prefix}:nonce:{bounded(key)}"

    def nonces(self, owner: str) -> str:
        """The live nonces of signing key ``owner`` (zset member -> expiry in ms)."""
        return f"{self.prefix}:{{n:{_quote(bounded(owner))}}}:nonces"


def bounded(value: str) -> str:
    """``value``, or its digest if it is very long: client-chosen names stay small."""
    if len(value) > _MAX_NONCE_KEY:
        return "#" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return value


def text(value: bytes | str) -> str:
    """A reply value as text, whatever the client's ``decode_responses``."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def fields_from_reply(reply: object) -> dict[str, str]:
    """A hash reply (a dict from HGETALL, a flat list from Lua) as ``{field: value}``."""
    if isinstance(reply, Mapping):
        return {text(k): text(v) for k, v in reply.items()}
    if isinstance(reply, Sequence) and not isinstance(reply, bytes | str):
        items = [text(v) for v in reply]
        return dict(zip(items[::2], items[1::2], strict=True))
    return {}


def record_from_json(reply: bytes | str) -> dict[str, str]:
    """A hash a script returned as one JSON object (``cjson.encode``) as ``{field: value}``.

    Only text values are stored (module docstring), so every value is a string.
    """
    fields = json.loads(reply)
    if not isinstance(fields, dict):
        raise ValueError("a key record is a JSON object")
    return fields


def format_time(value: datetime) -> str:
    """Fixed-width ISO 8601 in UTC with microseconds (sorts as a string)."""
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_time(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def index_member(record: KeyRecord) -> str:
    """The org index entry of a key: sorts like ``(created_at, key_id)``."""
    return f"{format_time(record.created_at)} {record.key_id}"


def key_fields(record: KeyRecord) -> list[str]:
    """A key record as flat ``HSET`` field/value pairs (text only, no secret exists).

    ``created_by`` is left out when ``None``, so such a record reads the same
    as one written before the field existed (``""`` is a creator's name);
    so is ``last_used_address``.
    """
    scopes = None if record.scopes is None else sorted(record.scopes)
    creator = [] if record.created_by is None else ["created_by", record.created_by]
    address = (
        [] if record.last_used_address is None else ["last_used_address", record.last_used_address]
    )
    return [
        "key_id", record.key_id,
        "org_id", record.org_id,
        "name", record.name,
        "public_key", base64.b64encode(record.public_key).decode("ascii"),
        "enabled", "1" if record.enabled else "0",
        "created_at", format_time(record.created_at),
        "expires_at", "" if record.expires_at is None else format_time(record.expires_at),
        "scopes", json.dumps(scopes),
        "replaced_by", record.replaced_by or "",
        "roles", json.dumps(sorted(record.roles)),
        "allowed_ips", json.dumps(None if record.allowed_ips is None else list(record.allowed_ips)),
        "use_count", str(record.use_count),
        "last_used_at", "" if record.last_used_at is None else format_time(record.last_used_at),
        "description", record.description,
        *creator,
        *address,
        *sealed_fields(record.sealed_seed),
    ]  # fmt: skip


def sealed_fields(sealed: SealedSeed | None) -> list[str]:
    """A sealed seed as ``HSET`` pairs (base64 bytes); none for a key that has none.

    ``None`` writes no field, so such a key reads the same as one written
    before recoverable keys existed.
    """
    if sealed is None:
        return []
    return [
        "sealed_ciphertext", _b64(sealed.ciphertext),
        "sealed_nonce", _b64(sealed.nonce),
        "sealed_wrapped_key", _b64(sealed.wrapped_key),
        "sealed_kek_id", sealed.kek_id,
    ]  # fmt: skip


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _sealed_from_fields(fields: Mapping[str, str]) -> SealedSeed | None:
    kek_id = fields.get("sealed_kek_id")
    if not kek_id:
        return None
    return SealedSeed(
        ciphertext=base64.b64decode(fields.get("sealed_ciphertext", "")),
        nonce=base64.b64decode(fields.get("sealed_nonce", "")),
        wrapped_key=base64.b64decode(fields.get("sealed_wrapped_key", "")),
        kek_id=kek_id,
    )


def json_list(values: frozenset[str] | tuple[str, ...] | None) -> str:
    """A set (sorted) or tuple (in order) as JSON text; ``None`` as ``null``."""
    if values is None:
        return "null"
    return json.dumps(sorted(values) if isinstance(values, frozenset) else list(values))


def key_from_fields(fields: Mapping[str, str]) -> KeyRecord:
    """The inverse of :func:`key_fields`."""
    scopes = json.loads(fields["scopes"])
    ips = json.loads(fields.get("allowed_ips", "null"))
    created = _parse_time(fields["created_at"])
    assert created is not None
    return KeyRecord(
        key_id=fields["key_id"],
        org_id=fields["org_id"],
        name=fields["name"],
        public_key=base64.b64decode(fields["public_key"]),
        enabled=fields["enabled"] == "1",
        created_at=created,
        expires_at=_parse_time(fields.get("expires_at", "")),
        scopes=None if scopes is None else frozenset(scopes),
        replaced_by=fields.get("replaced_by") or None,
        roles=frozenset(json.loads(fields.get("roles", "[]"))),
        allowed_ips=None if ips is None else tuple(ips),
        use_count=int(fields.get("use_count", "0")),
        last_used_at=_parse_time(fields.get("last_used_at", "")),
        description=fields.get("description", ""),
        created_by=fields.get("created_by"),
        sealed_seed=_sealed_from_fields(fields),
        last_used_address=fields.get("last_used_address") or None,
    )


def legacy_fields(record: LegacyRecord) -> list[str]:
    """A legacy record as flat ``HSET`` pairs: the argon2id hash and the keyed digest only.

    ``lookup_digest`` and ``pepper_id`` are left out when ``None``, so a
    record without a digest reads the same as one written before digests.
    """
    fields = [
        "org_id", record.org_id,
        "secret_hash", record.secret_hash,
        "created_at", format_time(record.created_at),
    ]  # fmt: skip
    if record.lookup_digest is not None:
        fields += ["lookup_digest", record.lookup_digest.hex()]
    if record.pepper_id is not None:
        fields += ["pepper_id", record.pepper_id]
    return fields


def legacy_from_fields(fields: Mapping[str, str]) -> LegacyRecord:
    """The inverse of :func:`legacy_fields`."""
    created = _parse_time(fields["created_at"])
    assert created is not None
    digest = fields.get("lookup_digest")
    return LegacyRecord(
        fields["org_id"],
        fields["secret_hash"],
        created,
        fields.get("enabled", "1") == "1",
        lookup_digest=bytes.fromhex(digest) if digest else None,
        pepper_id=fields.get("pepper_id") or None,
    )
