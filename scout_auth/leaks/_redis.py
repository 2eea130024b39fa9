"""A replay guard shared by a fleet: one Redis key per report digest."""

from __future__ import annotations

import inspect
from typing import Any

from .._leaks.replay import DEFAULT_REPLAY_WINDOW
from ..exceptions import StoreError

__all__ = ["RedisReplayGuard"]


class RedisReplayGuard:
    """Report digests in Redis (``SET NX PX``), so a replay to any instance is refused.

    Args:
        client: A ``redis.Redis`` (sync receiver) or ``redis.asyncio.Redis``
            (ASGI receiver), or a cluster client: each digest is one key.
        prefix: Namespace of the keys (``<prefix>:leaks:<hex digest>``).
        window: Seconds a digest is remembered.

    A Redis error is a 503 (``StoreError``): a report is never accepted
    unguarded, and the scanner retries.
    """

    def __init__(
        self, client: Any, *, prefix: str = "scout", window: float = DEFAULT_REPLAY_WINDOW
    ) -> None:
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ValueError("prefix must be a non-empty string without '{' or '}'")
        if not window >= 0.001:
            raise ValueError("window must be at least a millisecond")
        self.client = client
        self.prefix = prefix
        self.window_ms = int(window * 1000)

    def __repr__(self) -> str:
        return f"RedisReplayGuard(prefix={self.prefix!r}, window_ms={self.window_ms!r})"

    def _key(self, digest: bytes) -> str:
        return f"{self.prefix}:leaks:{digest.hex()}"

    def claim(self, digest: bytes) -> bool:
        """See :class:`~scout_auth.leaks.ReplayGuard`."""
        try:
            return bool(self.client.set(self._key(digest), b"1", nx=True, px=self.window_ms))
        except Exception as exc:
            raise StoreError("the replay guard's Redis is unavailable") from exc

    def release(self, digest: bytes) -> None:
        """See :class:`~scout_auth.leaks.ReplayGuard`."""
        try:
            self.client.delete(self._key(digest))
        except Exception as exc:
            raise StoreError("the replay guard's Redis is unavailable") from exc

    async def aclaim(self, digest: bytes) -> bool:
        """See :class:`~scout_auth.leaks.ReplayGuard` (an async client's call is awaited)."""
        try:
            answer = self.client.set(self._key(digest), b"1", nx=True, px=self.window_ms)
            if inspect.isawaitable(answer):
                answer = await answer
        except Exception as exc:
            raise StoreError("the replay guard's Redis is unavailable") from exc
        return bool(answer)

    async def arelease(self, digest: bytes) -> None:
        """See :class:`~scout_auth.leaks.ReplayGuard`."""
        try:
            answer = self.client.delete(self._key(digest))
            if inspect.isawaitable(answer):
                await answer
        except Exception as exc:
            raise StoreError("the replay guard's Redis is unavailable") from exc
