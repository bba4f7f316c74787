"""What one buildout run knows, as one object: :class:`Run`.

A run is one ``bin/buildout`` (or one ``dockeroo-plan``, or one command of a
control script) in one buildout directory. What its parts tell each other
(the recipes configured, the parts reinstalled, the images and containers
promised, the removals under way, the hand-overs of moved parts, the orphan
sweeps done, the engine clients) lives here and nowhere else, so two runs in
one process (a test, a long-lived tool) never see each other's, and nothing
is hidden in a module.

Every entry point reaches its run without a module global:

- a recipe's ``__init__`` gets zc.buildout's ``Buildout`` object
  (``zc.buildout.buildout.Options._initialize``: ``recipe_class(buildout,
  name, self)``): the run is kept on it (:func:`of`);
- an uninstall hook gets the part's recorded options, which are buildout's
  ``Options`` of the running ``Buildout`` (``_read_installed_part_options``:
  ``self.Options(self, section, options)``; ``_uninstall_part``:
  ``uninstaller(part, installed_part_options[part])``): their ``buildout``
  attribute leads to the same run (:func:`of_options`);
- ``dockeroo-plan`` makes its planning run and gives it to the ``Buildout``
  before any recipe is made (:func:`attach`);
- a control script makes a run of its own for its command (:class:`Run`).

Code below a recipe reaches the run through the :class:`.engine.Engine` it
works with (``engine.run``): every engine client is made by a run.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import threading
from typing import Any, Hashable, Mapping

from ..engine.driver import Engine, EngineConfig, new_client
from .identities import Promises
from .ownership import Owner, owner_in
from .removals import Queue

#: Where a run is kept on zc.buildout's ``Buildout`` object (see :func:`of`).
RUN_ATTRIBUTE = '_dockeroo_nagoya_run'


@dataclasses.dataclass(eq=False)
class Run:
    """What one buildout run knows (see the module)."""

    #: The configuration the run works for: its directory, record of installed parts, machine.
    owner: Owner
    #: ``dockeroo-plan``: every engine client refuses any request that is not a read, the
    #: lock is neither taken nor kept, no orphan is swept, no file of the buildout written.
    planning: bool = False
    #: While planning: (engine key, normalised reference) -> the id an image an earlier part
    #: makes anew is planned to have, so the parts that use it decide as they will in the run.
    planned_images: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    #: The open file of the directory's lock (:mod:`.runlock`), held until the process ends.
    lock: int | None = None
    #: part -> recipe, for every part of ours configured in this run.
    configured: dict[str, str] = dataclasses.field(default_factory=dict)
    #: part -> the engine each configured part is on (its ``__init__`` says): an uninstall
    #: hook compares it with the engine the part was on.
    configured_engines: dict[str, EngineConfig] = dataclasses.field(default_factory=dict)
    #: The parts configured: ours, and every part ``[buildout] parts`` names (orphan sweep).
    parts: set[str] = dataclasses.field(default_factory=set)
    #: The parts buildout reinstalls in this run (their uninstall hook was deferred).
    reinstalling: set[str] = dataclasses.field(default_factory=set)
    #: part -> the options a reinstalled part had (its uninstall hook's), so that its
    #: install knows which of its objects were installed before.
    previous: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    #: Replaced images still in use when they were replaced: (engine, log, image id).
    retiring: list[tuple[EngineConfig, logging.Logger, str]] = dataclasses.field(
        default_factory=list)
    #: What parts promise each other before anything acts (:mod:`.identities`).
    promises: Promises = dataclasses.field(default_factory=Promises)
    #: The removals under way and the work for the end of the run (:mod:`.removals`).
    removals: Queue = dataclasses.field(default_factory=Queue)
    #: Guards the hand-over file of :mod:`.moves`.
    moves_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    #: Whether :func:`.moves.resume` looked at the hand-overs, and whether the end of the
    #: run looks at them again.
    moves_resumed: bool = False
    moves_at_end: bool = False
    #: The engines already swept for orphans in this run (:mod:`.orphans`).
    swept: list[Engine[Run]] = dataclasses.field(default_factory=list)
    #: Guards the record of kept objects (parts are removed in parallel threads).
    kept_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    #: What was said once already (warnings said once per part and run: :meth:`first_time`).
    said: set[Hashable] = dataclasses.field(default_factory=set)
    #: One shared client per engine configuration for the whole run.
    engines: dict[EngineConfig, Engine[Run]] = dataclasses.field(default_factory=dict)
    #: Where a plan fetches what the buildout has not fetched yet (:meth:`scratch`).
    _scratch: str | None = None
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.removals.forget = self.forget_everywhere

    @property
    def directory(self) -> str:
        return self.owner.directory

    @property
    def installed(self) -> str:
        """The path of the configuration's record of installed parts."""
        return self.owner.record

    def owner_of(self, directory: str) -> Owner:
        """The configuration this run works for in ``directory`` (buildout's default
        record on this machine for another directory)."""
        return self.owner if directory == self.owner.directory else Owner(directory)

    def engine(self, config: EngineConfig, part: str) -> Engine[Run]:
        """The run's one client of the engine ``config`` (made the first time)."""
        with self._lock:
            found = self.engines.get(config)
            if found is None:
                found = self.engines[config] = Engine(config, new_client(
                    config, part, planning=self.planning), self)
            return found

    def forget_everywhere(self, kind: str) -> None:
        """Drop a kind's listings of every shared engine (other threads changed it)."""
        for engine in list(self.engines.values()):
            engine.forget(kind)

    def close(self) -> None:
        """Close every client (a control script's command is done)."""
        for engine in self.engines.values():
            engine.close()
        self.engines.clear()

    def first_time(self, key: Hashable) -> bool:
        """True the first time ``key`` is asked in this run: what is said once per run."""
        with self._lock:
            if key in self.said:
                return False
            self.said.add(key)
            return True

    def scratch(self) -> str:
        """A directory of the plan's own, removed when the process ends (a plan writes no
        file of the buildout directory)."""
        with self._lock:
            if self._scratch is None:
                self._scratch = tempfile.mkdtemp(prefix='dockeroo-plan-sources-')
                atexit.register(shutil.rmtree, self._scratch, True)
            return self._scratch


def for_buildout(buildout: Mapping[str, Any], planning: bool = False) -> Run:
    """A new run of the configuration that the ``[buildout]`` options ``buildout`` say
    (its directory and ``installed``)."""
    directory = os.path.realpath(buildout['directory'])
    return Run(owner_in(directory, buildout.get('installed')), planning=planning)


def of(buildout: Any) -> Run:
    """The run of zc.buildout's ``Buildout`` object (made the first time a recipe asks).

    ``buildout`` may be a plain mapping of sections (a recipe made outside
    buildout): then the run is its own, shared with nothing.
    """
    found = getattr(buildout, RUN_ATTRIBUTE, None)
    if isinstance(found, Run):
        return found
    run = for_buildout(buildout['buildout'])
    with contextlib.suppress(AttributeError):
        setattr(buildout, RUN_ATTRIBUTE, run)
    return run


def attach(buildout: Any, run: Run) -> Run:
    """Give the ``Buildout`` object the run an entry point made (``dockeroo-plan``'s)."""
    found = getattr(buildout, RUN_ATTRIBUTE, None)
    if found is not None and found is not run:
        raise RuntimeError('this buildout has a run already')  # a recipe was made before
    setattr(buildout, RUN_ATTRIBUTE, run)
    return run


def of_options(options: Mapping[str, str]) -> Run:
    """The run of an uninstall hook: buildout hands the hook the part's recorded options
    as its ``Options``, whose ``buildout`` is the running ``Buildout`` (see the module).
    A plain mapping carries none: a run of its own for the current directory (buildout
    runs the hooks there)."""
    buildout = getattr(options, 'buildout', None)
    if buildout is not None:
        return of(buildout)
    return Run(Owner(os.path.realpath(os.getcwd())))


__all__ = ['Run', 'of', 'of_options', 'attach', 'for_buildout', 'RUN_ATTRIBUTE']
