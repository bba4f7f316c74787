"""Removing the containers of removed parts in the background, dependents first.

Buildout calls the uninstall hooks of removed parts one after the other, in
the reverse of the order it installed them in, so dependents come first.
Stopping each part's containers before its hook returns would make tearing
down N services take the sum of N stops. A ``docker.run`` part's hook hands
its removal to :func:`submit` instead and returns; the removal starts as soon
as the pending removals of the containers that come after it (``depends``,
``links``, ``volumes-from``) are done. Independent containers so stop at the
same time, and no container stops before the ones that depend on it.

Everything pending is finished before anything else acts on the engine, and
its first failure is raised there: in the uninstall hook of any other recipe
(a volume or network needs its containers gone), before any install or update,
and when the process ends. Buildout has by then dropped the parts from
``.installed.cfg``; a container whose removal failed is the next run's orphan.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import dataclasses
import logging
import os
import sys
import threading
from typing import Callable, Protocol

import zc.buildout



class Run(Protocol):
    """What the removals need of a buildout run (:class:`.runstate.Run`, which holds their
    queue and imports this module)."""

    @property
    def removals(self) -> Queue: ...

log = logging.getLogger('dockeroo_nagoya')

#: Removals at the same time at most (each with its own engine connection).
WORKERS = 16


@dataclasses.dataclass
class Removal:
    part: str
    #: (engine key, name) of the part's containers, and of the containers they come after
    #: (one engine's: links and volumes-from never reach another).
    names: frozenset[tuple[str, str]]
    after: frozenset[tuple[str, str]]
    #: Done when the processes have ended: what they come after may stop then.
    ended: concurrent.futures.Future[None]
    #: Done when the engine has cleaned up too.
    future: concurrent.futures.Future[None] | None = None


@dataclasses.dataclass(eq=False)
class Queue:
    """One run's removals (:attr:`.runstate.Run.removals`)."""

    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    pending: list[Removal] = dataclasses.field(default_factory=list)
    pool: concurrent.futures.ThreadPoolExecutor | None = None
    #: Work for the end of the run, after every removal (see :func:`at_end`).
    at_end: list[Callable[[], None]] = dataclasses.field(default_factory=list)
    registered: bool = False
    #: (engine key, name) of the containers whose removal this run has taken in hand (see
    #: :func:`in_hand`): a name is one container per engine, and another engine's container
    #: of that name is another object.
    in_hand: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    #: Failures :func:`finish` was asked not to raise: the end of the run reports them.
    failed: list[BaseException] = dataclasses.field(default_factory=list)
    #: Drops a kind's listings of the run's engines (:meth:`.runstate.Run.forget_everywhere`).
    forget: Callable[[str], None] = lambda kind: None

    def register(self) -> None:
        """The exit hook, once (under ``lock``)."""
        if not self.registered:
            atexit.register(_at_exit, self)
            self.registered = True


class DependentNotRemoved(zc.buildout.UserError):
    """A container was left because one that depends on it could not be removed."""


def in_hand(run: Run, engine: str, name: str) -> bool:
    """Whether this run already removes the container ``name`` on the engine of key
    ``engine`` (:meth:`.engine.EngineConfig.key`; its part's teardown): the orphan sweep
    leaves it alone, so that one object is removed once."""
    with run.removals.lock:
        return (engine, name) in run.removals.in_hand


def submit(run: Run, part: str, engine: str, names: frozenset[str], after: frozenset[str],
           work: Callable[[], Callable[[], None] | None]) -> None:
    """Run ``work`` once every pending removal of a container that comes after ``names`` is done.

    ``engine`` is the key of the engine the containers are on (:func:`in_hand`).

    The dependents were submitted earlier (buildout removes them first) and the
    pool takes work in order, so a removal only ever waits for started ones.
    ``work`` may return the rest of the removal (the engine's clean-up once the
    processes ended): it runs on its own, and nothing waits for it but the end.
    """
    queue = run.removals
    with queue.lock:
        if queue.pool is None:
            queue.pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=WORKERS, thread_name_prefix='dockeroo-nagoya-removal')
            queue.register()
        mine = frozenset((engine, name) for name in names)
        dependents = [r for r in queue.pending if r.after & mine]
        queue.in_hand.update(mine)
        removal = Removal(part, mine, frozenset((engine, name) for name in after),
                          concurrent.futures.Future())
        removal.future = queue.pool.submit(_after, removal, dependents, work)
        queue.pending.append(removal)


def _after(removal: Removal, dependents: list[Removal],
           work: Callable[[], Callable[[], None] | None]) -> None:
    """Wait for the dependents' processes to end, end ours, then let the engine clean up.

    Waiting only for ``ended`` of earlier removals, which have their worker
    already, a removal never waits for one that cannot start.
    """
    concurrent.futures.wait([r.ended for r in dependents])
    failed = [r.part for r in dependents if r.ended.exception() is not None]
    try:
        if failed:
            raise DependentNotRemoved(
                f'{removal.part}: its containers were left running because '
                f'{", ".join(failed)} (which depends on them) could not be removed; the next '
                f'run with a part of this package removes them')
        rest = work()
    except BaseException as exc:
        removal.ended.set_exception(exc)
        raise
    removal.ended.set_result(None)
    if rest is not None:
        rest()


def finish(run: Run, raising: bool = True) -> None:
    """Wait for every pending removal; raise the first failure (the others are logged).

    ``raising=False`` (before an install or update) logs them and leaves them to the end
    of the run: raised there, buildout would count them against the part it is installing.
    """
    _finish(run.removals, raising)


def _finish(queue: Queue, raising: bool) -> None:
    with queue.lock:
        waiting = [r.future for r in queue.pending if r.future is not None]
        queue.pending.clear()
    if waiting:
        concurrent.futures.wait(waiting)
        queue.forget('containers')
    failures = [e for e in (f.exception() for f in waiting) if e is not None]
    if not raising:
        for failure in failures:
            log.error('%s', failure)
        queue.failed.extend(failures)
        return
    failures = [*queue.failed, *failures]
    queue.failed.clear()
    for later in failures[1:]:
        log.error('%s', later)
    if failures:
        raise failures[0]


def at_end(run: Run, work: Callable[[], None]) -> None:
    """Run ``work`` when the run ends, after every pending removal.

    For what can only go once later parts have been installed: an old network
    that the containers of reinstalled parts still use until they are replaced.
    ``work`` reports its own trouble; an exception from it fails the run.
    """
    with run.removals.lock:
        run.removals.register()
        run.removals.at_end.append(work)


def _at_exit(queue: Queue) -> None:
    """A run that only removes parts ends here: report a failure as buildout would."""
    doing = 'Removing the containers of removed parts.'
    try:
        _finish(queue, True)
        doing = ('Removing objects at the end of the run (under their old names, or on the '
                 'engine their part left).')
        while queue.at_end:
            queue.at_end.pop(0)()
    except Exception as exc:  # the process is ending: say it, and fail the run
        sys.stdout.flush()
        sys.stderr.write(f'While:\n  {doing}\nError: {exc}\n')
        sys.stderr.flush()
        os._exit(1)


__all__ = ['Queue', 'submit', 'finish', 'at_end', 'in_hand', 'DependentNotRemoved']
