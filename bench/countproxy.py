"""A unix-socket proxy in front of the Docker engine that counts API requests.

Point a client at it with ``DOCKER_HOST=unix:///path/to/proxy.sock``: every
byte goes through unchanged, and every HTTP request line the client sends
is counted (method and path, without the query), so a benchmark can say how
many engine requests a run made and of which kind.
"""
from __future__ import annotations

import collections
import os
import re
import socket
import threading
import time

#: A request line wherever it starts: after the headers' blank line, or right after the
#: body of the request before it on the same connection (a JSON body ends without CRLF).
REQUEST_LINE = re.compile(rb'(?<![A-Z])(GET|POST|PUT|DELETE|HEAD) (/[^ ?\r\n]*)[^ \r\n]* HTTP/1\.[01]\r\n')

#: A response's status line (the engine's answer to a request).
STATUS_LINE = re.compile(rb'HTTP/1\.[01] [1-5][0-9][0-9] ')


class CountingProxy:
    """Forward ``listen`` to ``target`` (both unix sockets), counting requests."""

    def __init__(self, listen: str, target: str = '/var/run/docker.sock') -> None:
        self.listen = listen
        self.target = target
        self.counts: collections.Counter[str] = collections.Counter()
        #: (monotonic time, method, path) of every request, for timelines.
        self.trace: list[tuple[float, str, str]] = []
        #: Monotonic time of every response's status line: when the engine answered.
        self.answers: list[float] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None

    def __enter__(self) -> 'CountingProxy':
        if os.path.exists(self.listen):
            os.unlink(self.listen)
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(self.listen)
        self._server.listen(1024)   # compose opens a connection per container at once
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        if os.path.exists(self.listen):
            os.unlink(self.listen)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.trace.clear()
            self.answers.clear()

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        tail = b''
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if count:
                    window = tail + data
                    found = [(m.group(1).decode(), m.group(2).decode())
                             for m in REQUEST_LINE.finditer(window)
                             if m.end() > len(tail)]
                    if found:
                        now = time.monotonic()
                        with self._lock:
                            for method, path in found:
                                self.counts[f'{method} {_kind(path)}'] += 1
                                self.trace.append((now, method, path))
                    tail = window[-256:]
                elif STATUS_LINE.search(data):   # a status line split across reads is missed;
                    with self._lock:             # timelines only need most of them
                        self.answers.append(time.monotonic())
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _kind(path: str) -> str:
    """``/v1.41/containers/abc/json`` -> ``/containers/*/json``: one key per kind of call."""
    parts = [p for p in path.split('/') if p]
    if parts and re.match(r'^v\d+\.\d+$', parts[0]):
        parts = parts[1:]
    if len(parts) >= 3:
        parts[1] = '*'
    return '/' + '/'.join(parts)
