"""The logs of many containers as one stream, interleaved by time (``logs`` of a control script).

The engine stamps every line (``timestamps``) in a fixed-width RFC 3339 form,
so the stamps sort as text. Without ``follow`` each container's lines are
read and merged; with it, one thread per container follows its log on a
connection of its own and lines are printed in stamp order once they are a
moment old (lines of different containers arriving at about the same time
still come out in the order they were written).
"""
from __future__ import annotations

import contextlib
import datetime
import heapq
import queue
import threading
import time
from typing import Any, Iterable, Iterator

from ..engine.driver import Engine, EngineConfig, new_client
from ..engine.errors import DockerException

#: How long a followed line waits for earlier lines of other containers.
SETTLE = 0.25


def _split(line: bytes) -> tuple[bytes, bytes]:
    """(stamp, the line without it)."""
    stamp, _, text = line.partition(b' ')
    return stamp, text if text.endswith(b'\n') else text + b'\n'


def interleaved(containers: Iterable[tuple[Engine, str]], tail: Any,
                since: datetime.datetime | None, follow: bool) -> Iterator[tuple[str, bytes]]:
    """(container, line) of every container's log, in time order; each container is given
    with its engine (a control script's members may be on several: the engines' clocks
    are taken to agree, as the stamps are compared across them)."""
    sources = list(containers)
    names = [name for _, name in sources]
    if not follow:
        streams = []
        for index, (engine, name) in enumerate(sources):
            text = engine.api.logs(name, timestamps=True, tail=tail, since=since)
            streams.append([(*_split(line), index) for line in text.splitlines(keepends=True)])
        for _, line, index in heapq.merge(*streams, key=lambda item: (item[0], item[2])):
            yield names[index], line
        return
    arrived: queue.Queue[tuple[bytes, int, bytes] | None] = queue.Queue()
    for index, (engine, name) in enumerate(sources):
        threading.Thread(target=_follow, args=(engine.config, name, index, tail, since, arrived),
                         daemon=True, name=f'logs-{name}').start()
    waiting: list[tuple[bytes, int, float, bytes]] = []
    running = len(names)
    while running or waiting:
        try:
            item = arrived.get(timeout=SETTLE / 2)
            if item is None:
                running -= 1
            else:
                heapq.heappush(waiting, (item[0], item[1], time.monotonic(), item[2]))
        except queue.Empty:
            pass
        now = time.monotonic()
        # The earliest stamp goes once it has waited SETTLE for earlier lines of other members.
        while waiting and (now - waiting[0][2] >= SETTLE or not running):
            _, index, _, line = heapq.heappop(waiting)
            yield names[index], line


def _follow(config: EngineConfig, name: str, index: int, tail: Any,
            since: datetime.datetime | None, arrived: queue.Queue) -> None:
    """Put each line of one container's log on the queue, until it ends; then ``None``."""
    client = None
    try:
        client = new_client(config, 'logs')
        pending = b''
        for chunk in client.api.logs(name, stream=True, follow=True, timestamps=True,
                                     tail=tail, since=since):
            pending += chunk
            *lines, pending = pending.split(b'\n')
            for line in lines:
                stamp, text = _split(line + b'\n')
                arrived.put((stamp, index, text))
        if pending:
            stamp, text = _split(pending)
            arrived.put((stamp, index, text))
    except (DockerException, OSError):
        pass
    finally:
        arrived.put(None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


__all__ = ['interleaved']
