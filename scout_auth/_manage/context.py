"""What every handler gets: the request, the app's settings, who asks, for which org."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .access import Principal
from .http import ManageProblem, ManageRequest
from .limits import CreateLimiter

__all__ = ["Context", "Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """One app's configuration (both mountings build it the same way).

    Attributes:
        limiter: Rate limit of key creation (and rotation) per org.
        has_audit: Whether an audit sink that can be queried is configured.
        has_vault: Whether the manager has a :class:`~scout_auth.KeyVault`
            (recoverable keys can be created and revealed).
        login_url: Where pages send a visitor without a principal (``None``: 401).
        title: The page title.
    """

    limiter: CreateLimiter = field(default_factory=CreateLimiter)
    has_audit: bool = False
    has_vault: bool = False
    login_url: str | None = None
    title: str = "API Keys"


@dataclass(frozen=True, slots=True)
class Context:
    """One request being handled, after routing and access checks."""

    request: ManageRequest
    settings: Settings
    principal: Principal
    params: Mapping[str, str]

    @property
    def org_id(self) -> str:
        """The org of the path."""
        return self.params["org"]

    @property
    def now(self) -> datetime:
        """The request's time."""
        return datetime.fromtimestamp(self.request.now, UTC)

    @property
    def actor(self) -> str:
        """How the audit trail names who acts."""
        return self.principal.user

    def require_admin(self) -> None:
        """403 unless the principal administers the org."""
        if not self.principal.can_admin(self.org_id):
            raise ManageProblem(
                403, "not_an_admin", "Only an organization admin can change API keys."
            )

    def url(self, path: str) -> str:
        """An absolute path inside the mount."""
        return self.request.mount.rstrip("/") + path
