"""What comes up after what: the one reading of ``depends``, ``links`` and ``volumes-from``.

A container comes up after the containers it ``links`` to, takes
``volumes-from`` or names in ``depends``; it is made anew with the ones it
links to or takes volumes from. ``docker.system`` (its members), ``docker.control``
(the containers of its parts), the removal of ``docker.run`` parts and the
control script all order containers by these rules, so they are read here
once, and the graph they make is checked and ordered here, on Python's
:mod:`graphlib` (its ``CycleError`` names the cycle). Running a graph in that
order, in parallel, is :mod:`.scheduling`'s.
"""
from __future__ import annotations

import contextlib
import dataclasses
import graphlib
from typing import Any, Callable, Iterable, Mapping

import zc.buildout

from . import options as opt


@dataclasses.dataclass
class Needs:
    """What one container comes up after, and what it is made anew with (a subset)."""

    after: set[str] = dataclasses.field(default_factory=set)
    linked: set[str] = dataclasses.field(default_factory=set)


def references(values: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """``(depends, linked)``: the names a container's parsed options refer to.

    ``linked`` are the containers of ``links`` and ``volumes-from`` (it is made
    anew with them); ``depends`` only orders. ``values`` are the parsed options
    (``links`` as ``[CONTAINER, ALIAS]``, ``volumes-from`` as ``CONTAINER:MODE``).
    """
    linked = [link[0] for link in values.get('links') or ()]
    linked += [line.rpartition(':')[0] for line in values.get('volumes-from') or ()]
    return list(values.get('depends') or ()), linked


def resolve(members: Mapping[str, Mapping[str, Any]],
            lookup: Callable[[str], Iterable[str]],
            unknown: Callable[[str, str], zc.buildout.UserError | None]) -> dict[str, Needs]:
    """Each member's :class:`Needs`, as member keys.

    ``lookup(reference)`` names the members a reference means (none: a
    container outside, which orders nothing here). A ``depends`` reference
    that means no member is passed to ``unknown(member, reference)``, whose
    error (the part, the option, what was expected) is raised; ``None`` lets
    it order only buildout's parts.
    """
    found: dict[str, Needs] = {}
    for member, values in members.items():
        needs = Needs()
        depends, linked = references(values)
        for reference in depends:
            targets = set(lookup(reference))
            if not targets:
                error = unknown(member, reference)
                if error is not None:
                    raise error
            needs.after |= targets
        for reference in linked:
            needs.linked.update(lookup(reference))
        needs.after |= needs.linked
        found[member] = needs
    return found


def volumes_from_line(raw: str) -> str:
    """``CONTAINER[:ro|rw]`` (nagoya writes the mode, dockeroo leaves it out)."""
    name, _, mode = raw.strip().partition(':')
    if not opt.NAME_RE.match(name) or mode not in ('', 'ro', 'rw'):
        raise opt.Invalid('volumes-from lines CONTAINER[:ro|rw]')
    return f'{name}:{mode or "rw"}'


def link_line(raw: str) -> list[str]:
    """``CONTAINER[:ALIAS]``."""
    name, _, alias = raw.strip().partition(':')
    if not opt.NAME_RE.match(name) or (alias and not opt.NAME_RE.match(alias)):
        raise opt.Invalid('links lines CONTAINER[:ALIAS]')
    return [name, alias or name]


def recorded(options: Mapping[str, str]) -> frozenset[str]:
    """The container names a part's recorded options say it comes after (unreadable
    lines name nothing: they were checked when the part was installed); ``{index}``
    stands for each replica's number."""
    try:
        replicas = opt.integer(1, opt.MAX_REPLICAS)(options.get('replicas') or '')
    except opt.Invalid:
        replicas = 0
    found: set[str] = set()
    for index in range(1, replicas + 1) if replicas else (None,):
        def value(option: str) -> str:
            raw = options.get(option) or ''
            return raw if index is None else raw.replace('{index}', str(index))

        def lines(option: str, parse: Callable[[str], Any]) -> list[Any]:
            parsed = []
            for line in value(option).splitlines():
                with contextlib.suppress(opt.Invalid):
                    if line.strip():
                        parsed.append(parse(line))
            return parsed

        depends, linked = references({'depends': opt.words(value('depends')),
                                      'links': lines('links', link_line),
                                      'volumes-from': lines('volumes-from', volumes_from_line)})
        found.update(depends, linked)
    return frozenset(found)


def sorter(graph: Mapping[str, Iterable[str]]) -> graphlib.TopologicalSorter[str]:
    """The graph's sorter; names outside the graph are left out (they order nothing here)."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for node, needs in graph.items():
        sorter.add(node, *(n for n in needs if n in graph))
    return sorter


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One dependency cycle as a path (``[a, b, a]``: a comes after b, b after a), or
    ``None`` when there is none."""
    try:
        sorter(graph).prepare()
    except graphlib.CycleError as exc:
        cycle = list(reversed(exc.args[1]))[:-1]   # graphlib walks from what is needed
        order = list(graph)
        first = min(range(len(cycle)), key=lambda i: order.index(cycle[i]))
        cycle = cycle[first:] + cycle[:first]
        return cycle + cycle[:1]
    return None


def check_acyclic(graph: Mapping[str, Iterable[str]], part: str, option: str,
                  sources: str = 'links, volumes-from and depends') -> None:
    """Refuse a dependency cycle in one line that names it."""
    cycle = find_cycle(graph)
    if cycle:
        raise zc.buildout.UserError(
            f'{part}: option {option}: dependency cycle {" -> ".join(cycle)} '
            f'(from {sources}): break it')


def levels(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Items grouped by the length of their longest dependency chain (for reading and
    ordering, not running: :func:`.scheduling.run` starts each as soon as it can)."""
    topological = sorter(graph)
    topological.prepare()
    position = {node: index for index, node in enumerate(graph)}
    grouped = []
    while topological.is_active():
        ready = sorted(topological.get_ready(), key=position.__getitem__)
        grouped.append(ready)
        topological.done(*ready)
    return grouped


def order(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """Every item after those it depends on (level by level, each in the graph's order)."""
    return [node for level in levels(graph) for node in level]


def reverse(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """The graph with every edge turned round: what depends on each item."""
    turned: dict[str, set[str]] = {node: set() for node in graph}
    for node, needs in graph.items():
        for need in needs:
            if need in turned:
                turned[need].add(node)
    return turned


__all__ = ['Needs', 'references', 'resolve', 'recorded', 'link_line', 'volumes_from_line',
           'find_cycle', 'check_acyclic', 'levels', 'order', 'reverse', 'sorter']
