"""Redis Cluster by URL, and what a plain client's ``MOVED`` means.

Theory of operation
-------------------
A cluster URL names one or more *startup nodes*, comma-separated::

    redis+cluster://[user:password@]host:port[,host:port...][/][?option=value...]
    rediss+cluster://...                          (the same over TLS)

The clients read the slot map from the first node that answers and follow
``MOVED`` / ``ASK`` redirects themselves, so one reachable node is enough
and the others only help while it is down. A cluster has database 0 only:
the path is empty, ``/`` or ``/0``. Query options are redis-py's, as for
``redis://``. The sync client is :class:`redis.cluster.RedisCluster`, the
async one :class:`redis.asyncio.cluster.RedisCluster`.

redis-py's sync cluster client reads the slot map in its constructor. Built
there, a store could not even be created while the cluster is unreachable,
unlike a ``redis://`` store, which connects on first use and answers 503
until Redis is back. :class:`LazyRedisCluster` makes the sync client on
first use instead (and again after a failed attempt), so a ``redis+cluster://``
store behaves the same.

A client that is *not* in cluster mode (a ``redis://`` URL, or a
``redis.Redis`` the application passed) pointed at a cluster node gets
``MOVED`` for every key of another node's slots (``ASK`` while a slot
migrates). Retrying cannot help: that is a configuration error, not an
outage. :func:`misrouted` turns it into
:class:`~scout_auth.exceptions.ConfigurationError` and logs the reason once
per process and component, at error level; a verifier answers the request 503
(``store_unavailable``) as for any store failure, never 500, never 200.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
import redis.retry
from redis.backoff import NoBackoff
from redis.exceptions import AskError, RedisClusterException, ResponseError

from ...exceptions import ConfigurationError

__all__ = [
    "CLUSTER_SCHEMES",
    "ClusterURL",
    "LazyRedisCluster",
    "cluster_clients",
    "is_cluster_url",
    "misrouted",
    "parse_cluster_url",
]

logger = logging.getLogger("scout_auth")

#: Cluster URL scheme → the plain scheme of one node (TLS or not).
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

_DEFAULT_PORT = 6379

# redis-py leaves the sync ClusterNode's constructor unannotated; this is its signature.
_sync_node: Callable[[str, int], redis.cluster.ClusterNode] = redis.cluster.ClusterNode


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` is a ``redis+cluster://`` or ``rediss+cluster://`` URL."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() in CLUSTER_SCHEMES


@dataclass(frozen=True, slots=True)
class ClusterURL:
    """A parsed cluster URL.

    Attributes:
        nodes: The startup nodes, ``(host, port)``, in the URL's order.
        node_url: The first node as a plain ``redis://`` / ``rediss://`` URL
            with the credentials and query options of the cluster URL (what
            redis-py parses into connection options).
    """

    nodes: tuple[tuple[str, int], ...]
    node_url: str


def parse_cluster_url(url: str) -> ClusterURL:
    """Parse ``redis+cluster://`` / ``rediss+cluster://``; ``ValueError`` if malformed.

    The error never repeats the URL: it may hold a password.
    """
    parts = urlsplit(url)
    plain = CLUSTER_SCHEMES.get(parts.scheme.lower())
    if plain is None:
        raise ValueError("not a Redis Cluster URL (redis+cluster:// or rediss+cluster://)")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    nodes = tuple(_node(text) for text in hosts.split(","))
    if parts.path not in ("", "/", "/0"):
        raise ValueError("a Redis Cluster URL has no database number but 0 (path '', '/' or '/0')")
    first = hosts.split(",")[0].strip()
    node_url = urlunsplit((plain, f"{userinfo}{at}{first}", "", parts.query, ""))
    return ClusterURL(nodes, node_url)


def _node(text: str) -> tuple[str, int]:
    text = text.strip()
    try:
        parsed = urlsplit(f"//{text}")
        host, port = parsed.hostname, parsed.port
    except ValueError:  # a port out of range or not a number
        host = port = None
    if not text or not host or parsed.netloc != text:
        raise ValueError("a Redis Cluster URL lists startup nodes as host:port,host:port,...")
    return host, _DEFAULT_PORT if port is None else port


def sync_cluster(url: ClusterURL, *, retries: int, **options: Any) -> redis.cluster.RedisCluster:
    """A sync cluster client (connects now: see :class:`LazyRedisCluster`).

    ``retries`` is the cluster client's own: on a connection error it reads
    the slot map again and retries at once (a failover moves slots).
    """
    others = [_sync_node(host, port) for host, port in url.nodes[1:]]
    return redis.cluster.RedisCluster(
        url=url.node_url,
        startup_nodes=others,
        retry=redis.retry.Retry(NoBackoff(), retries),
        **options,
    )


def async_cluster(
    url: ClusterURL, *, retries: int, **options: Any
) -> redis.asyncio.cluster.RedisCluster:
    """An async cluster client (it reads the slot map on its first command)."""
    others = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in url.nodes[1:]]
    return redis.asyncio.cluster.RedisCluster.from_url(
        url.node_url,
        startup_nodes=others,
        retry=redis.asyncio.retry.Retry(NoBackoff(), retries),
        **options,
    )


def cluster_clients(
    url: str, *, retries: int, **options: Any
) -> tuple[LazyRedisCluster, Callable[[], redis.asyncio.cluster.RedisCluster]]:
    """The sync client (made on first use) and a maker of async clients for ``url``.

    The options are checked now, by making one asyncio client (it does no
    I/O before its first command): a wrong one is an error here, not a 503
    on every request later.

    Raises:
        ValueError: A malformed URL, or options a cluster cannot take.
        TypeError: An option redis-py does not know.
    """
    parsed = parse_cluster_url(url)

    def make_async() -> redis.asyncio.cluster.RedisCluster:
        return async_cluster(parsed, retries=retries, **options)

    try:
        make_async()
    except RedisClusterException as exc:  # e.g. a database other than 0 (``?db=1``)
        raise ValueError(f"not a valid Redis Cluster configuration: {exc}") from exc
    return LazyRedisCluster(lambda: sync_cluster(parsed, retries=retries, **options)), make_async


class LazyRedisCluster:
    """A :class:`redis.cluster.RedisCluster` made on its first use, by ``make``.

    Every attribute is the real client's. Until a client could be made, each
    use tries again and fails with :class:`redis.ConnectionError` (a
    ``RedisError``: the store reports it as unavailable, 503), whatever
    redis-py raised (its "cannot be connected" error is not a ``RedisError``).
    """

    def __init__(self, make: Callable[[], redis.cluster.RedisCluster]) -> None:
        self._make = make
        self._client: redis.cluster.RedisCluster | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LazyRedisCluster(connected={self._client is not None})"

    def _get(self) -> redis.cluster.RedisCluster:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._make()
                except RedisClusterException as exc:
                    raise redis.ConnectionError(f"Redis Cluster not reachable: {exc}") from exc
            return self._client

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_make", "_client", "_lock"):
            raise AttributeError(name)  # not the client's (copy, pickle, a half-built proxy)
        return getattr(self._get(), name)

    def close(self) -> None:
        """Close the client if one was made."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


# Redis's refusal of a script reading a key of a slot its node does not serve.
_NON_LOCAL = "non local key in a cluster node"
_reported: set[str] = set()
_reported_lock = threading.Lock()


def misrouted(exc: BaseException, component: str) -> ConfigurationError | None:
    """The configuration error a ``MOVED`` / ``ASK`` reply means, or ``None`` for other errors.

    Only a client that does not follow cluster redirects lets one through
    (redis-py's cluster clients follow them). The first one seen by
    ``component`` ("key store", "nonce cache") in this process is logged at
    error level with the remedy; later ones are not logged again here.

    A script that reads a key the node does not serve (the one-server
    ``get_key`` script, whose record is found through the directory) is
    refused with a "non local key" error instead: the same misconfiguration.
    """
    if isinstance(exc, ResponseError) and _NON_LOCAL in str(exc):
        reply, where = "a script's non local key error", "a record on another node"
    elif isinstance(exc, AskError):  # MovedError is an AskError
        reply = "ASK" if type(exc) is AskError else "MOVED"
        where = f"slot {exc.slot_id} is served by {exc.host}:{exc.port}"
    else:
        return None
    error = ConfigurationError(
        f"the {component}'s Redis is a Redis Cluster: a node answered {reply}, and the "
        "client is not in cluster mode, so it cannot follow the redirect; use a "
        "redis+cluster://host:port[,host:port...] URL (rediss+cluster:// for TLS), "
        "or pass redis.cluster.RedisCluster / redis.asyncio.cluster.RedisCluster clients"
    )
    with _reported_lock:
        first = component not in _reported
        _reported.add(component)
    if first:
        logger.error("%s (%s)", error, where)
    return error
