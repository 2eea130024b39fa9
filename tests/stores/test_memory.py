"""The in-memory store against the shared contract."""

from __future__ import annotations

import pytest

from scout_auth import InMemoryKeyStore
from tests.stores.contract import StoreContract


class TestInMemoryKeyStore(StoreContract):
    @pytest.fixture
    def store(self):
        return InMemoryKeyStore()
