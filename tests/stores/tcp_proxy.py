"""A loopback TCP proxy a test can cut, to take Redis or a database "down" without touching it.

Shared by the Redis and SQL fault suites. The faults, from loud to silent:

* :meth:`TcpProxy.stop` / :meth:`TcpProxy.drop_connections`: connections cut
  (the client sees a reset at once);
* ``stall = True``: new connections are accepted but never connected
  upstream (a server that hangs at connect);
* ``frozen = True``: every byte on every connection is dropped, old and new
  (a black hole: no RST, no FIN);
* :meth:`TcpProxy.freeze_open`: the connections open *now* go silent
  (forward nothing, close nothing) while new ones work — a pooled
  connection to a peer that died or moved, the case only a client-side
  timeout or keepalive notices; :meth:`TcpProxy.thaw` lets them talk again;
* :meth:`TcpProxy.hold_reply_when`: when a request matching a predicate
  goes upstream, the server's answer to it is held back for some seconds,
  then delivered (a server that stalls exactly when a given command
  arrives: the command *ran*, the client timed out).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(eq=False)
class _Link:
    """One proxied connection: a client socket and its upstream socket."""

    client: socket.socket
    upstream: socket.socket | None = None
    frozen: bool = False
    #: Replies upstream -> client are held until this monotonic time.
    hold_until: float = 0.0


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target``; :meth:`stop` / :meth:`start` at will.

    The port stays the same across restarts. See the module docstring for
    the faults it can inject.
    """

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 6379)) -> None:
        """Proxy to ``target`` (default: the local Redis)."""
        self.target = target
        self.port = 0
        self.stall = False
        self.frozen = False
        self._server: socket.socket | None = None
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._hold: tuple[Callable[[bytes], bool], float] | None = None
        #: How many requests matched the :meth:`hold_reply_when` predicate.
        self.held_replies = 0

    @property
    def url(self) -> str:
        """A Redis URL through the proxy (Redis suites)."""
        return f"redis://127.0.0.1:{self.port}/15"

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> TcpProxy:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Refuse new connections and cut every open one."""
        if self._server is not None:
            with contextlib.suppress(OSError):  # wakes the blocked accept() (Linux)
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        self.drop_connections()

    def drop_connections(self) -> None:
        """Cut every open connection (the server keeps accepting)."""
        with self._lock:
            links, self._links = self._links, set()
        for link in links:
            for sock in (link.client, link.upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()

    def freeze_open(self) -> int:
        """Silence the connections open now (new ones work); how many were frozen."""
        with self._lock:
            for link in self._links:
                link.frozen = True
            return len(self._links)

    def thaw(self) -> None:
        """Let frozen connections talk again (what they sent meanwhile is lost)."""
        with self._lock:
            for link in self._links:
                link.frozen = False
        self.frozen = False

    def hold_reply_when(
        self, matches: Callable[[bytes], bool] | None, seconds: float = 0.0
    ) -> None:
        """Hold the answer to a request matching ``matches`` for ``seconds``; ``None``: stop."""
        self._hold = None if matches is None else (matches, seconds)

    @property
    def connections(self) -> int:
        """Open sockets (client and upstream sides both count)."""
        with self._lock:
            return sum(1 + (link.upstream is not None) for link in self._links)

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            link = _Link(client)
            with self._lock:
                self._links.add(link)
            if self.stall:
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                self._close(link)
                continue
            upstream.settimeout(None)
            link.upstream = upstream
            threading.Thread(target=self._pump, args=(link, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(link, False), daemon=True).start()

    def _pump(self, link: _Link, to_upstream: bool) -> None:
        src, dst = (link.client, link.upstream) if to_upstream else (link.upstream, link.client)
        assert src is not None
        assert dst is not None
        try:
            while data := src.recv(65536):
                if self.frozen or link.frozen:
                    continue  # forward nothing, close nothing
                if to_upstream:
                    hold = self._hold
                    if hold is not None and hold[0](data):
                        self.held_replies += 1
                        link.hold_until = time.monotonic() + hold[1]
                else:
                    wait = link.hold_until - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                dst.sendall(data)
        except OSError:
            pass
        self._close(link)

    def _close(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)
        for sock in (link.client, link.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
