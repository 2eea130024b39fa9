"""The SQL key store, from a URL and from a service's own engines.

Run from the repository root: ``python -m examples.sql_store``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from scout_auth import AsyncKeyManager, AsyncVerifier, KeyManager, Verifier
from scout_auth.stores.sql import SQLKeyStore, upgrade


def from_url(url: str) -> None:
    store = SQLKeyStore(url)  # sync engine and async twin (aiosqlite) created on first use
    store.create_all()  # or upgrade(url) on every deploy
    new = KeyManager(store).create_key("org_1", "billing-sync prod", scopes=["drive:read"])
    print("verified:", Verifier(store).verify_token(new.token).org_id)
    store.close()


async def shared_engines(url: str) -> None:
    # A service that already has engines hands them over: the store shares
    # their pools and leaves disposing them to the service.
    engine = create_engine(url)
    async_engine = create_async_engine(url.replace("sqlite://", "sqlite+aiosqlite://"))
    upgrade(engine)
    store = SQLKeyStore(engine=engine, async_engine=async_engine)
    new = await AsyncKeyManager(store).create_key("org_2", "nightly export")
    print("verified:", (await AsyncVerifier(store).verify_token(new.token)).org_id)
    await async_engine.dispose()
    engine.dispose()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        from_url(f"sqlite:///{Path(tmp) / 'keys.db'}")
        anyio.run(shared_engines, f"sqlite:///{Path(tmp) / 'service.db'}")
