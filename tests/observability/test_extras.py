"""Each optional face without its extra: one ImportError line naming it; the extras' metadata."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A meta path finder that refuses the named top-level modules, as if not installed.
_BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
try:
    import {module}
except ImportError as exc:
    print(type(exc).__name__ + ": " + str(exc))
else:
    print("imported")
"""


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("scout_auth.observability.otel", {"opentelemetry"}, "otel"),
        ("scout_auth.observability.prometheus", {"prometheus_client"}, "prometheus"),
        ("scout_auth.stores.sql", {"sqlalchemy"}, "sql"),
        ("scout_auth.stores.redis", {"redis"}, "redis"),
    ],
)
def test_missing_extra_is_one_line(module: str, blocked: set[str], extra: str) -> None:
    code = _BLOCKER.format(blocked=sorted(blocked), module=module)
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    lines = result.stdout.strip().splitlines()
    assert lines == [
        f"ImportError: {sorted(blocked)[0]} is not installed: pip install 'scout-auth[{extra}]'"
    ], result.stdout + result.stderr


def test_observability_face_imports_without_either_extra() -> None:
    code = _BLOCKER.format(
        blocked=["opentelemetry", "prometheus_client"], module="scout_auth.observability"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    assert out.strip() == "imported"


def test_extras_metadata() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert [d.split(">")[0] for d in extras["otel"]] == ["opentelemetry-api"]
    assert [d.split(">")[0] for d in extras["prometheus"]] == ["prometheus-client"]
    assert "otel" in extras["all"][0]
    assert "prometheus" in extras["all"][0]
    assert any(d.startswith("opentelemetry-sdk") for d in extras["dev"])
    # The extras named in the one-line errors are all real extras.
    from scout_auth._extras import EXTRAS

    assert set(EXTRAS.values()) <= set(extras)
