"""Key hygiene: which of an org's keys need a person's attention. One read, no writes.

Theory of operation
-------------------
:func:`key_report` lists the org's keys once (``list_keys``) and asks for its
lifetime policy (:class:`~.policy.PolicyFor`), then sorts what it sees:

* **expiring** — enabled keys whose expiry falls within the window (already
  expired ones are left out: they no longer work; so are rotated-out keys,
  whose grace ends as intended);
* **unused** — enabled, unexpired keys with no use in the last N days (never
  used: counted from creation). ``last_used_at`` is written in the
  background at most once per usage interval, so "unused" is accurate to
  that interval;
* **grace in use** — rotated-out keys still in their grace period that were
  used after their successor was made: some client has not switched yet;
* **policy breaches** — enabled keys made before the org's policy that break
  it now (no expiry, or a lifetime above the maximum); a policy never
  changes existing keys, this is where they show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..exceptions import InvalidKeyOperation
from .lifecycle import Op, StoreCall
from .policy import LifetimePolicy, PolicyFor
from .records import KeyRecord

__all__ = ["KeyReport", "key_report"]

_MAX_DAYS = 3660


@dataclass(frozen=True, slots=True)
class KeyReport:
    """An org's keys that need attention (``KeyManager.key_report``).

    Attributes:
        org_id: The organization.
        at: When the report was made (UTC).
        expiring_days: The expiry window, in days.
        unused_days: The idleness window, in days.
        expiring: Enabled keys that expire within ``expiring_days``, soonest first.
        unused: Enabled, unexpired keys not used for ``unused_days``, idlest first.
        grace_in_use: ``(old, new)`` pairs: a rotated-out key in its grace
            period used after ``new`` was made.
        policy_breaches: ``(key, why)``: enabled keys that break the org's
            current lifetime policy.
    """

    org_id: str
    at: datetime
    expiring_days: int
    unused_days: int
    expiring: tuple[KeyRecord, ...]
    unused: tuple[KeyRecord, ...]
    grace_in_use: tuple[tuple[KeyRecord, KeyRecord], ...]
    policy_breaches: tuple[tuple[KeyRecord, str], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: key ids, names and times (never a secret)."""

        def key(record: KeyRecord) -> dict[str, Any]:
            return {
                "id": record.key_id,
                "name": record.name,
                "created_at": record.created_at.isoformat(),
                "expires_at": None if record.expires_at is None else record.expires_at.isoformat(),
                "last_used_at": None
                if record.last_used_at is None
                else record.last_used_at.isoformat(),
                "last_used_address": record.last_used_address,
            }

        return {
            "org_id": self.org_id,
            "at": self.at.isoformat(),
            "expiring_days": self.expiring_days,
            "unused_days": self.unused_days,
            "expiring": [key(k) for k in self.expiring],
            "unused": [key(k) for k in self.unused],
            "grace_in_use": [
                {**key(old), "replaced_by": new.key_id, "rotated_at": new.created_at.isoformat()}
                for old, new in self.grace_in_use
            ],
            "policy_breaches": [{**key(k), "why": why} for k, why in self.policy_breaches],
        }


def _days(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _MAX_DAYS:
        raise InvalidKeyOperation(f"{what} must be an int from 1 to {_MAX_DAYS}")
    return value


def _breach(record: KeyRecord, policy: LifetimePolicy) -> str | None:
    if record.expires_at is None:
        return "no expiry" if policy.requires_expiry else None
    lifetime = record.expires_at - record.created_at
    if policy.max_lifetime is not None and lifetime > policy.max_lifetime:
        return f"lifetime {lifetime.days} days > {policy.max_lifetime.days} days"
    return None


def key_report(org_id: str, now: float, expiring_days: int, unused_days: int) -> Op[KeyReport]:
    """See the module docstring."""
    expiring_days = _days(expiring_days, "expiring_days")
    unused_days = _days(unused_days, "unused_days")
    at = datetime.fromtimestamp(now, UTC)
    keys: Sequence[KeyRecord] = yield StoreCall("list_keys", (org_id,))
    policy: LifetimePolicy | None = yield PolicyFor(org_id)
    by_id = {k.key_id: k for k in keys}

    def live(k: KeyRecord) -> bool:
        return k.enabled and (k.expires_at is None or k.expires_at > at)

    horizon = at + timedelta(days=expiring_days)
    expiring = sorted(
        (
            k
            for k in keys
            if live(k)
            and k.replaced_by is None  # a rotated-out key ends with its grace, as meant
            and k.expires_at is not None
            and k.expires_at <= horizon
        ),
        key=lambda k: (k.expires_at, k.key_id),
    )
    idle_since = at - timedelta(days=unused_days)
    unused = sorted(
        (
            k
            for k in keys
            if live(k) and k.replaced_by is None and (k.last_used_at or k.created_at) <= idle_since
        ),
        key=lambda k: (k.last_used_at or k.created_at, k.key_id),
    )
    grace: list[tuple[KeyRecord, KeyRecord]] = []
    for old in keys:
        new = by_id.get(old.replaced_by or "")
        if new is None or not live(old) or old.last_used_at is None:
            continue
        if old.last_used_at > new.created_at:
            grace.append((old, new))
    breaches: list[tuple[KeyRecord, str]] = []
    if policy is not None:
        for k in keys:
            why = _breach(k, policy) if live(k) and k.replaced_by is None else None
            if why is not None:
                breaches.append((k, why))
    return KeyReport(
        org_id=org_id,
        at=at,
        expiring_days=expiring_days,
        unused_days=unused_days,
        expiring=tuple(expiring),
        unused=tuple(unused),
        grace_in_use=tuple(grace),
        policy_breaches=tuple(breaches),
    )
