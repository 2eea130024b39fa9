"""The in-memory store against the shared contract."""

from __future__ import annotations

import pytest

from scout_auth import InMemoryKeyStore
from scout_auth.testing import StoreContract


class TestInMemoryKeyStore(StoreContract):
    @pytest.fixture
    def store(self):
        return InMemoryKeyStore()

    @pytest.fixture
    def legacy_dump(self, store):
        def dump(org_id):
            record = store.get_legacy(org_id)
            return [] if record is None else [getattr(record, f) for f in record.__slots__]

        return dump
