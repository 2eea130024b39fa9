"""A loopback TCP proxy a test can cut, to take Redis or a database "down" without touching it.

Shared by the Redis and SQL fault suites.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target``; :meth:`stop` / :meth:`start` at will.

    The port stays the same across restarts. ``stall=True`` accepts new
    connections but never connects them upstream; ``frozen=True`` silently
    drops every byte on open connections (a dead peer that sends no RST).
    """

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 6379)) -> None:
        """Proxy to ``target`` (default: the local Redis)."""
        self.target = target
        self.port = 0
        self.stall = False
        self.frozen = False
        self._server: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

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
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(client)
            if self.stall:
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.add(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.frozen:
                    dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._conns.discard(sock)
            sock.close()
