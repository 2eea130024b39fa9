"""Redis Clusters for the tests: the session's shared one, and private ones a test owns.

``$SCOUT_TEST_REDIS_CLUSTER_URL`` names an existing cluster for the session
(``.ci/run`` starts three primaries and three replicas and exports it), as a
cluster URL (``redis+cluster://127.0.0.1:7001,127.0.0.1:7002/``) or one
node's plain URL (``redis://127.0.0.1:7001/0``). Otherwise the suite starts
its own with the ``redis-server`` and ``redis-cli`` on the PATH (no
persistence, in a temporary directory, free loopback ports) and stops it at
the end: the shared Redis on 6379 is never touched. Without those binaries
the cluster suites skip, or fail under ``CI=true`` like every server suite.

A test that kills nodes (failover) never uses the shared cluster, which
other tests and other runs may be using: it starts a :func:`private_cluster`
of its own, with replicas and a short ``cluster-node-timeout``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from scout_auth.stores._redis.cluster import is_cluster_url, parse_cluster_url
from tests.conftest import unavailable

ENV = "SCOUT_TEST_REDIS_CLUSTER_URL"
PRIMARIES = 3


@dataclass(frozen=True)
class ClusterAddress:
    """How to reach a cluster.

    Attributes:
        url: The cluster URL (``redis+cluster://`` with every known node).
        node_url: One node's plain ``redis://`` URL: what a misconfigured
            service would use.
        nodes: ``(host, port)`` of the nodes named.
    """

    url: str
    node_url: str
    nodes: tuple[tuple[str, int], ...]


def address(given: str) -> ClusterAddress:
    """The :class:`ClusterAddress` of a cluster URL or of one node's ``redis://`` URL."""
    if is_cluster_url(given):
        parsed = parse_cluster_url(given)
        host, port = parsed.nodes[0]
        return ClusterAddress(given, f"redis://{host}:{port}/0", parsed.nodes)
    from urllib.parse import urlsplit

    parts = urlsplit(given)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    return ClusterAddress(f"redis+cluster://{host}:{port}/", given, ((host, port),))


def _free_port(taken: set[int]) -> int:
    # A cluster node also listens on port + 10000 (its bus port): keep both free.
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port in taken or port + 10000 >= 65536:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        taken.add(port)
        return port


def _cli(cli: str, port: int, *args: str) -> str:
    return subprocess.run(  # noqa: S603 - our own redis-cli, loopback
        [cli, "-p", str(port), *args], capture_output=True, text=True, check=False, timeout=10
    ).stdout


@dataclass
class PrivateCluster:
    """A cluster this test session started, and the processes of its nodes."""

    address: ClusterAddress
    cli: str
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.address.url

    def wait_ok(self, timeout: float = 30.0, *, ports: list[int] | None = None) -> None:
        """Wait until every live node (or ``ports``) says ``cluster_state:ok``."""
        deadline = time.monotonic() + timeout
        for port in ports or self.live_ports():
            while "cluster_state:ok" not in _cli(self.cli, port, "cluster", "info"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the private Redis Cluster is not ok (node {port})")
                time.sleep(0.05)

    def live_ports(self) -> list[int]:
        return [port for port, proc in self.processes.items() if proc.poll() is None]

    def primary_ports(self) -> list[int]:
        """Ports of the live primaries, as a live node sees them."""
        out = _cli(self.cli, self.live_ports()[0], "cluster", "nodes")
        ports = []
        for line in out.splitlines():
            fields = line.split()
            if "master" in fields[2] and "fail" not in fields[2]:
                ports.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
        return sorted(ports)

    def port_of_slot(self, slot: int) -> int:
        """The port of the primary serving ``slot`` right now."""
        for entry in _cluster_slots(self.cli, self.live_ports()[0]):
            if entry[0] <= slot <= entry[1]:
                return entry[2]
        raise LookupError(f"slot {slot} is not served")

    def wait_replicated(self, port: int, timeout: float = 10.0) -> None:
        """Wait until every replica of primary ``port`` has all its writes.

        Replication is asynchronous: a primary killed right after a write
        may take it along, and the promoted replica never had it.
        """
        deadline = time.monotonic() + timeout
        while True:
            info = dict(
                line.split(":", 1)
                for line in _cli(self.cli, port, "info", "replication").splitlines()
                if ":" in line
            )
            offset = int(info.get("master_repl_offset", "0"))
            replicas = [v for k, v in info.items() if k.startswith("slave") and k[5:].isdigit()]
            offsets = [int(dict(f.split("=") for f in r.split(","))["offset"]) for r in replicas]
            if offsets and min(offsets) >= offset:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replicas of node {port} did not catch up")
            time.sleep(0.02)

    def kill(self, port: int) -> None:
        """SIGKILL one node: no shutdown, no goodbye to the others."""
        proc = self.processes[port]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def _cluster_slots(cli: str, port: int) -> list[tuple[int, int, int]]:
    """``(first slot, last slot, primary port)`` of every live primary, from ``CLUSTER NODES``."""
    out = _cli(cli, port, "cluster", "nodes")
    ranges = []
    for line in out.splitlines():
        fields = line.split()
        if "master" not in fields[2] or "fail" in fields[2]:
            continue
        node_port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        for spec in fields[8:]:
            if spec.startswith("["):  # a slot being migrated
                continue
            first, _, last = spec.partition("-")
            ranges.append((int(first), int(last or first), node_port))
    return ranges


@contextmanager
def private_cluster(
    primaries: int = PRIMARIES, replicas: int = 0, *, node_timeout_ms: int = 5000
) -> Iterator[PrivateCluster]:
    """Start ``primaries`` primaries with ``replicas`` replicas each; stop them at the end.

    Nodes listen on free loopback ports, keep nothing on disk (no RDB, no
    AOF; a temporary directory for ``nodes.conf``) and give up on a silent
    peer after ``node_timeout_ms`` (then a replica takes over).
    """
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        unavailable("redis-server / redis-cli not on the PATH: no Redis Cluster")
    workdir = tempfile.mkdtemp(prefix="scout-cluster-")
    taken: set[int] = set()
    ports = [_free_port(taken) for _ in range(primaries * (1 + replicas))]
    nodes = tuple(("127.0.0.1", p) for p in ports)
    cluster = PrivateCluster(
        ClusterAddress(
            "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in nodes) + "/",
            f"redis://127.0.0.1:{ports[0]}/0",
            nodes,
        ),
        cli,
    )
    try:
        for port in ports:
            cluster.processes[port] = subprocess.Popen(  # noqa: S603
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
                    "--cluster-node-timeout",
                    str(node_timeout_ms),
                    # A replica may always take over (the test data is fresh).
                    "--cluster-replica-validity-factor",
                    "0",
                    # No RDB snapshots, no AOF; a replica's first sync loads
                    # from the socket, and each node has a file name of its own.
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--repl-diskless-load",
                    "on-empty-db",
                    "--dir",
                    workdir,
                    "--dbfilename",
                    f"dump-{port}.rdb",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        for port in ports:
            while "PONG" not in _cli(cli, port, "ping"):
                if time.monotonic() > deadline or cluster.processes[port].poll() is not None:
                    raise RuntimeError("a private Redis Cluster node did not start")
                time.sleep(0.05)
        subprocess.run(  # noqa: S603
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            check=True,
            timeout=60,
        )
        cluster.wait_ok(max(1.0, deadline - time.monotonic()))
        if replicas:
            _wait_replicas_linked(cluster, primaries * replicas, deadline)
        yield cluster
    finally:
        for proc in cluster.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in cluster.processes.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_replicas_linked(cluster: PrivateCluster, expected: int, deadline: float) -> None:
    """Wait until every replica has synced with its primary (else it cannot take over)."""
    while True:
        linked = sum(
            "master_link_status:up" in _cli(cluster.cli, port, "info", "replication")
            for port in cluster.live_ports()
        )
        if linked >= expected:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the private Redis Cluster's replicas did not sync")
        time.sleep(0.1)


@contextmanager
def cluster_address() -> Iterator[ClusterAddress]:
    """``$SCOUT_TEST_REDIS_CLUSTER_URL``, or a private three-primary cluster for the session."""
    given = os.environ.get(ENV)
    if given:
        yield address(given)
        return
    with private_cluster() as cluster:
        yield cluster.address
