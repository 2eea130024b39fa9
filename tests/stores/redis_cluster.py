"""A private Redis Cluster for the test session: three primaries on free loopback ports.

``$SCOUT_TEST_REDIS_CLUSTER_URL`` names an existing cluster to use instead.
Otherwise the suite starts its own with the ``redis-server`` and
``redis-cli`` on the PATH (no replicas, no persistence, in a temporary
directory) and stops it at the end: the shared Redis on 6379 is never
touched. Without those binaries the cluster suites skip, or fail under
``CI=true`` like every server suite.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest

from tests.conftest import IN_CI

ENV = "SCOUT_TEST_REDIS_CLUSTER_URL"
PRIMARIES = 3


def _free_port() -> int:
    # A cluster node also listens on port + 10000 (its bus port): keep both free.
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def _missing(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: server suites must not skip)", pytrace=False)
    pytest.skip(reason)


def _wait_ok(cli: str, port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        out = subprocess.run(  # noqa: S603
            [cli, "-p", str(port), "cluster", "info"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if "cluster_state:ok" in out:
            return
        time.sleep(0.1)
    raise RuntimeError("the private Redis Cluster did not reach cluster_state:ok")


@contextmanager
def private_cluster() -> Iterator[str]:
    """Start a three-primary cluster; yield its URL (one node; clients discover the rest)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        _missing("redis-server / redis-cli not on the PATH: no Redis Cluster")
    workdir = tempfile.mkdtemp(prefix="scout-cluster-")
    ports = [_free_port() for _ in range(PRIMARIES)]
    nodes = []
    try:
        for port in ports:
            nodes.append(
                subprocess.Popen(  # noqa: S603
                    [
                        server,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"nodes-{port}.conf",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        workdir,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 30
        for port in ports:
            while subprocess.run(  # noqa: S603
                [cli, "-p", str(port), "ping"],
                capture_output=True,
                check=False,
            ).returncode:
                if time.monotonic() > deadline:
                    raise RuntimeError("a private Redis Cluster node did not start")
                time.sleep(0.05)
        subprocess.run(  # noqa: S603
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            check=True,
            timeout=60,
        )
        for port in ports:
            _wait_ok(cli, port, deadline)
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            try:
                node.wait(10)
            except subprocess.TimeoutExpired:
                node.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def cluster_url() -> Iterator[str]:
    """``$SCOUT_TEST_REDIS_CLUSTER_URL``, or a private cluster for the session."""
    given = os.environ.get(ENV)
    if given:
        yield given
        return
    with private_cluster() as url:
        yield url
