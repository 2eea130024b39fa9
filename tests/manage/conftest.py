from __future__ import annotations

import pytest

from .harness import Harness


@pytest.fixture(params=["starlette", "flask"])
def api(request: pytest.FixtureRequest) -> Harness:
    """The management API, once per mounting."""
    return Harness(request.param)
