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

T = TypeVar('T')

#: Threads (each with its own engine connection) at most, unless the caller says otherwise.
MAX_WORKERS = 16

log = logging.getLogger('dockeroo_nagoya')


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One dependency cycle as a path (``[a, b, a]``), or ``None`` when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for after in sorted(graph.get(node, ())):
            if after not in graph:
                continue
            if state.get(after) == 1:
                return path[path.index(after):] + [after]
            if after not in state:
                found = visit(after)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def reverse(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """The graph with every edge turned round: what depends on each item."""
    turned: dict[str, set[str]] = {node: set() for node in graph}
    for node, needs in graph.items():
        for need in needs:
            if need in turned:
                turned[need].add(node)
    return turned


def levels(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Items grouped by the length of their longest dependency chain (for reading, not running)."""
    depth: dict[str, int] = {}

    def of(node: str) -> int:
        if node not in depth:
            needs = [n for n in graph.get(node, ()) if n in graph]
            depth[node] = 1 + max((of(n) for n in needs), default=-1)
        return depth[node]

    for node in graph:
        of(node)
    grouped: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node in graph:
        grouped[depth[node]].append(node)
    return grouped


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
    are ignored); it must have no cycle (see :func:`find_cycle`).

    Raises:
        Failed: when one or more items raised; nothing new was started after
            the first failure.
    """
    needs = {node: {n for n in graph[node] if n in graph and n != node} for node in graph}
    done: dict[str, T] = {}
    failures: list[tuple[str, BaseException]] = []
    pending = dict(needs)
    if not pending:
        return done
    with concurrent.futures.ThreadPoolExecutor(
            max_workers=workers or min(MAX_WORKERS, len(pending)),
            thread_name_prefix='dockeroo-nagoya') as pool:
        running: dict[concurrent.futures.Future[T], str] = {}

        def schedule() -> None:
            for node in [n for n, wanted in pending.items() if wanted <= done.keys()]:
                del pending[node]
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
            if not failures:
                schedule()
    if failures:
        raise Failed(failures)
    if pending:
        raise ValueError(f'items that wait for each other: {", ".join(sorted(pending))}')
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


__all__ = ['find_cycle', 'reverse', 'levels', 'run', 'run_or_raise', 'Failed']
