"""The wheel, installed alone, with each extra alone, and with ``[all]``: each works.

Builds the wheel once, resolves ``[all]`` into a wheelhouse once (from PyPI,
through pip's cache), then installs into fresh virtual environments in
parallel from that wheelhouse only (``--no-index``): the bare wheel, every
extra of ``pyproject.toml`` alone, and ``all``. Each environment imports
what its extra enables and runs a one-line smoke; the bare one shows the
one-line ``pip install 'scout-auth[sql]'`` answer of the CLI.

Needs PyPI (or a pip index the environment points to): without it the tests
skip on a laptop and fail under ``CI=true`` (``tests/conftest.py``).
Deselect with ``-m 'not install'``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
import venv
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import unavailable

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[1]
EXTRAS: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
    "optional-dependencies"
]
#: Extras for the library's own development, not for users.
NOT_USER = {"test", "dev"}
USER_EXTRAS = sorted(set(EXTRAS) - NOT_USER)

_SQL_MIGRATE = "schema up to date"

#: What each install must be able to do: Python run in its environment.
SMOKES: dict[str, str] = {
    "": "import scout_auth, scout_auth.starlette, scout_auth.wsgi; print('ok')",
    "flask": "from scout_auth.flask import ScoutAuth; print('ok')",
    "fastapi": "from scout_auth.fastapi import ScoutSecurity; print('ok')",
    "sql": "from scout_auth.stores.sql import SQLKeyStore; print('ok')",
    "postgres": "import psycopg; from scout_auth.stores.sql import SQLKeyStore; print('ok')",
    "mariadb": (
        "import pymysql, asyncmy; from scout_auth.stores.sql import SQLKeyStore; print('ok')"
    ),
    "redis": "from scout_auth.stores.redis import RedisKeyStore; print('ok')",
    "client": "import httpx, requests; from scout_auth.client import SigningAuth; print('ok')",
    "manage": (
        "from scout_auth.manage._common import _environment; "
        "assert _environment().list_templates(); print('ok')"
    ),
    "otel": "from scout_auth.observability.otel import OTelObserver; OTelObserver(); print('ok')",
    "prometheus": (
        "from scout_auth.observability.prometheus import PrometheusObserver; "
        "PrometheusObserver(); print('ok')"
    ),
}
#: ``all`` runs every smoke above.
SMOKES["all"] = "; ".join(code.removesuffix("; print('ok')") for code in SMOKES.values()) + (
    "; print('ok')"
)
#: Installs whose CLI can migrate a SQLite store (the others must name the extra).
MIGRATES = {"sql", "postgres", "mariadb", "all"}


@dataclass
class Installed:
    name: str  # "" for the bare wheel
    python: Path | None
    log: str

    @property
    def scripts(self) -> Path:
        assert self.python is not None
        return self.python.parent


def _pypi_reachable() -> bool:
    if os.environ.get("PIP_INDEX_URL") or os.environ.get("PIP_FIND_LINKS"):
        return True  # the environment names its own index
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    return subprocess.run(  # noqa: S603 - our own interpreter's pip
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env, check=False
    )


def _install(name: str, wheel: Path, wheelhouse: Path, where: Path) -> Installed:
    target = where / (name or "bare")
    venv.create(target, with_pip=False, clear=True)
    python = target / "bin" / "python"
    if not python.exists():  # Windows
        python = target / "Scripts" / "python.exe"
    spec = f"{wheel}[{name}]" if name else str(wheel)
    # Offline from the wheelhouse: every dependency must come from the metadata.
    result = _pip(
        "--python",
        str(python),
        "install",
        "--no-index",
        "--find-links",
        str(wheelhouse),
        "--no-compile",
        "--quiet",
        spec,
    )
    if result.returncode != 0:
        return Installed(name, None, result.stdout + result.stderr)
    return Installed(name, python, "")


@pytest.fixture(scope="module")
def installs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Installed]:
    if not (ROOT / "pyproject.toml").exists():
        unavailable("no source tree to build the wheel from")
    if not _pypi_reachable():
        unavailable("PyPI not reachable: the extras install test needs an index")
    where = tmp_path_factory.mktemp("extras")
    dist = where / "dist"
    built = _pip("wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT))
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("scout_auth-*.whl")
    # One resolution of everything the user extras need; pip's cache keeps it quick.
    wheelhouse = where / "wheelhouse"
    resolved = _pip("wheel", "--quiet", "-w", str(wheelhouse), f"{wheel}[all]")
    if resolved.returncode != 0 and "Could not fetch URL" in resolved.stdout + resolved.stderr:
        unavailable("the package index did not answer: " + resolved.stderr.strip()[-200:])
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    names = ["", *USER_EXTRAS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(lambda n: _install(n, wheel, wheelhouse, where), names))
    return {i.name: i for i in done}


def _run(installed: Installed, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONSAFEPATH"] = "1"  # never import scout_auth from the source tree
    return subprocess.run(  # noqa: S603 - the test's own environment
        list(argv), capture_output=True, text=True, cwd=cwd, env=env, check=False, timeout=120
    )


def test_every_user_extra_has_a_smoke() -> None:
    assert set(USER_EXTRAS) | {""} == set(SMOKES)
    assert set(SMOKES) >= MIGRATES


@pytest.mark.parametrize("name", ["", *USER_EXTRAS], ids=lambda n: n or "bare")
def test_installs_and_runs(installs: dict[str, Installed], name: str, tmp_path: Path) -> None:
    installed = installs[name]
    assert installed.python is not None, f"pip install [{name}] failed:\n{installed.log}"
    smoke = _run(installed, str(installed.python), "-c", SMOKES[name], cwd=tmp_path)
    assert smoke.stdout.strip().splitlines()[-1:] == ["ok"], smoke.stdout + smoke.stderr
    cli = installed.scripts / ("scout-auth" if os.name != "nt" else "scout-auth.exe")
    store = f"sqlite:///{tmp_path / 'x.db'}"
    migrate = _run(installed, str(cli), "--store", store, "migrate", cwd=tmp_path)
    if name in MIGRATES:
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        assert migrate.stdout.strip() == _SQL_MIGRATE
    else:
        assert migrate.returncode != 0
        lines = migrate.stderr.strip().splitlines()
        assert len(lines) == 1, migrate.stderr
        assert "pip install 'scout-auth[sql]'" in lines[0]
        assert "Traceback" not in migrate.stderr
