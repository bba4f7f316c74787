"""Doing things to a graph of containers in dependency order, in parallel where it can.

nagoya's toji started a system level by level (toposort). Waiting for a
whole level wastes time when one of its members is slow, so each item is
started as soon as everything it depends on is done: bring-up then takes
about as long as the longest dependency chain. Stopping runs the same graph
backwards (dependents first).

A failure stops the scheduling of new items; the ones already running are
waited for (a half-made container is worse than a missing one), and then the
first failure is raised as it was.
"""
from __future__ import annotations

import concurrent.futures
import logging
from typing import Callable, Iterable, Mapping, TypeVar

from . import dependencies

T = TypeVar('T')

#: Threads (each with its own engine connection) at most, unless the caller says otherwise.
MAX_WORKERS = 16

log = logging.getLogger('dockeroo_nagoya')


class Failed(Exception):
    """Raised by :func:`run` with every failure; ``first`` is the one to report."""

    def __init__(self, failures: list[tuple[str, BaseException]]) -> None:
        super().__init__(str(failures[0][1]))
        self.failures = failures

    @property
    def first(self) -> tuple[str, BaseException]:
        return self.failures[0]


def run(graph: Mapping[str, Iterable[str]], work: Callable[[str], T],
        workers: int | None = None) -> dict[str, T]:
    """Call ``work(item)`` for every item after the items it depends on; return the results.

    ``graph`` maps each item to what it depends on (names outside the graph
    are ignored); it must have no cycle (see :func:`.dependencies.check_acyclic`).
    graphlib's ``get_ready()``/``done()`` hand out each item as soon as what it
    needs is done.

    Raises:
        Failed: when one or more items raised; nothing new was started after
            the first failure.
    """
    sorter = dependencies.sorter(graph)
    sorter.prepare()   # raises graphlib.CycleError (dependencies.check_acyclic says it first)
    done: dict[str, T] = {}
    failures: list[tuple[str, BaseException]] = []
    if not graph:
        return done
    with concurrent.futures.ThreadPoolExecutor(
            max_workers=workers or min(MAX_WORKERS, len(graph)),
            thread_name_prefix='dockeroo-nagoya') as pool:
        running: dict[concurrent.futures.Future[T], str] = {}

        def schedule() -> None:
            for node in sorter.get_ready():
                running[pool.submit(work, node)] = node

        schedule()
        while running:
            finished, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                node = running.pop(future)
                error = future.exception()
                if error is not None:
                    failures.append((node, error))
                else:
                    done[node] = future.result()
                    sorter.done(node)
            if not failures:
                schedule()
    if failures:
        raise Failed(failures)
    return done


def run_or_raise(graph: Mapping[str, Iterable[str]], work: Callable[[str], T],
                 log: logging.Logger, workers: int | None = None) -> dict[str, T]:
    """:func:`run`, with the first failure raised as it was and the others logged."""
    try:
        return run(graph, work, workers)
    except Failed as failed:
        for item, error in failed.failures[1:]:
            text = str(error).splitlines()[0] if str(error) else type(error).__name__
            log.warning('%s also failed: %s', item, text)
        raise failed.first[1] from None


__all__ = ['run', 'run_or_raise', 'Failed']
