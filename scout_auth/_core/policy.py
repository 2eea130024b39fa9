"""Per-org key lifetime policies: require an expiry, cap the lifetime, default one.

Theory of operation
-------------------
The host keeps each org's :class:`LifetimePolicy` where it keeps the org's
other settings, and gives the key manager ``lifetime_policy=``: one policy
for every org, or a callable ``org_id -> LifetimePolicy | None``. The
lifecycle ops yield :class:`PolicyFor` (``create_key``, ``rotate_key`` and a
``change_key`` that changes the expiry), then :func:`enforce` decides before
anything is written: a key that breaks its org's policy is refused with
:class:`~scout_auth.exceptions.InvalidKeyOperation` (the management API's
422). Keys that exist are never changed by a new policy; the report
(``scout-auth report``) lists those that break it.

The lifetime is measured from the key's creation: a rotated-in key is new,
so it is measured from the rotation, and inherits its predecessor's expiry
(or the policy's default when that had none).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..exceptions import InvalidKeyOperation

__all__ = ["LifetimePolicy", "PolicyFor", "enforce"]


@dataclass(frozen=True, slots=True)
class LifetimePolicy:
    """What an org asks of its keys' lifetimes.

    Attributes:
        require_expiry: Every key must expire (``expires_at=None`` is refused
            unless ``default_expiry`` fills it in).
        max_lifetime: At most this long from creation to expiry (implies
            ``require_expiry``).
        default_expiry: A key created without ``expires_at`` gets
            ``now + default_expiry``.

    Raises:
        ValueError: A non-positive duration, or a default above the maximum.

    Example:
        >>> from datetime import timedelta
        >>> policy = LifetimePolicy(
        ...     max_lifetime=timedelta(days=90), default_expiry=timedelta(days=30)
        ... )
        >>> policy.requires_expiry
        True
    """

    require_expiry: bool = False
    max_lifetime: timedelta | None = None
    default_expiry: timedelta | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.require_expiry, bool):
            raise TypeError("require_expiry must be True or False")
        for name in ("max_lifetime", "default_expiry"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, timedelta) or value <= timedelta(0)):
                raise ValueError(f"{name} must be a positive timedelta or None")
        if (
            self.max_lifetime is not None
            and self.default_expiry is not None
            and self.default_expiry > self.max_lifetime
        ):
            raise ValueError("default_expiry may not exceed max_lifetime")

    @property
    def requires_expiry(self) -> bool:
        """Whether a key without an expiry breaks this policy."""
        return self.require_expiry or self.max_lifetime is not None


@dataclass(frozen=True, slots=True)
class PolicyFor:
    """Need: the :class:`LifetimePolicy` of org ``org_id``, or ``None`` (no policy)."""

    org_id: str


def enforce(
    policy: LifetimePolicy | None,
    expires_at: datetime | None,
    *,
    created_at: datetime,
    now: datetime,
    fill_default: bool,
) -> datetime | None:
    """The expiry a key gets under ``policy``, or InvalidKeyOperation.

    Args:
        policy: The org's policy (``None``: anything goes).
        expires_at: The asked (or inherited) expiry.
        created_at: When the key was (or is being) created.
        now: The operation's time (the default counts from it).
        fill_default: ``None`` means "not said" (create, rotate), so the
            default applies; ``False``: it was asked for explicitly (a change).
    """
    if policy is None:
        return expires_at
    if policy is not None and not isinstance(policy, LifetimePolicy):
        raise TypeError("lifetime_policy must give a LifetimePolicy or None")
    if expires_at is None and fill_default and policy.default_expiry is not None:
        expires_at = now + policy.default_expiry
    if expires_at is None:
        if policy.requires_expiry:
            raise InvalidKeyOperation(
                "this organization's keys must expire (expires_at is required)"
            )
        return None
    if policy.max_lifetime is not None and expires_at - created_at > policy.max_lifetime:
        days = policy.max_lifetime / timedelta(days=1)
        raise InvalidKeyOperation(
            f"this organization's keys live at most {days:g} days (expires_at is too late)"
        )
    return expires_at
