"""Parts whose engine changed: what they made on the old engine goes once they are on the new one.

A part's options name its engine; when they name another one (``engine =
tcp://box3:2376`` for ``tcp://box2:2376``, a line of a list of machines given
another address, ``docker-host`` taken out so that ``[buildout]``'s applies),
buildout reinstalls the part. Its install cannot adopt what the old engine
holds, and no later run would look there (the part is configured, so the
orphan sweep of that engine leaves its objects alone). So the uninstall hook
hands the part's recorded options here (:func:`leave_behind`), and what the
part made on the old engine is removed by its recipe's own removal, as for a
removed part, at the end of the run, once the part is installed on the new
engine: the replacement is made before the old one goes, and a run whose
install of the part failed leaves the old objects as they are (running).

The hand-over is written into :data:`MOVING_NAME` (one file per configuration
of the directory: :meth:`.ownership.Owner.record_name`; another configuration's
parts are not this run's to judge) before buildout forgets the part's old options, so that a run killed, or failed, in between leaves nothing
the next run cannot finish: before its first part acts, :func:`resume`
removes the old objects of the parts installed on their new engine since (or
gone from the configuration), and keeps waiting for the others.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import zc.buildout

from . import orphans
from ..run import removals
from ..model.decisions import Change, moving_removal
from ..engine.driver import Engine, EngineConfig, engine_errors
from ..model.engine_options import engine_config, reach

if TYPE_CHECKING:
    from ..run.runstate import Run

#: The parts whose objects on an engine they left are still to be removed: part ->
#: {'options': its recorded options then, 'to': the engine it went to, in words}.
MOVING_NAME = '.dockeroo-nagoya.moving.json'

log = logging.getLogger('dockeroo_nagoya')


class Removable(Protocol):
    """What a hand-over needs of a part's recipe class: its removal, decided and done as
    for a removed part."""

    owns: tuple[str, ...]

    def decide_removal(self, engine: Engine, directory: str, part: str,
                       options: Mapping[str, str]) -> list[Change]: ...

    def remove(self, engine: Engine, directory: str, part: str, options: Mapping[str, str],
               decision: list[Change], log: logging.Logger) -> None: ...


#: The recipe class of a part's recorded options (``None``: not known here). The recipes
#: hand it in (:func:`.recipe.recipe_class`): this module is below them and imports none.
RecipeOf = Callable[[Mapping[str, str]], Removable | None]


def leave_behind(run: Run, part: str, options: Mapping[str, str], old: EngineConfig,
                 new: EngineConfig, recipe_of: RecipeOf) -> None:
    """Hand over what a reinstalled part made on the engine ``old`` it leaves for ``new``:
    removed at the end of the run once the part is installed there (see the module)."""
    with run.moves_lock:
        moving = _read(run)
        moving[part] = {'options': dict(options), 'to': new.describe()}
        _write(run, moving)
    logging.getLogger(part).info(
        'moves from %s to %s: what it made on the old engine is removed at the end of the '
        'run, once it is installed on the new one', old.describe(), new.describe())
    _retire_at_end(run, recipe_of)


def resume(run: Run, recipe_of: RecipeOf) -> None:
    """Before the first part of this run acts: finish the hand-overs an earlier run left
    (killed, or its install of the part failed), once per run; a plan changes nothing."""
    if run.planning or run.moves_resumed:
        return
    run.moves_resumed = True
    if not os.path.exists(os.path.join(run.directory, _record_name(run))):
        return
    _retire_at_end(run, recipe_of)
    retire(run, recipe_of)


def _retire_at_end(run: Run, recipe_of: RecipeOf) -> None:
    if not run.moves_at_end:
        run.moves_at_end = True
        removals.at_end(run, lambda: retire(run, recipe_of, at_end=True))


def retire(run: Run, recipe_of: RecipeOf, at_end: bool = False) -> None:
    """Remove what the parts handed over made on the engines they left, each once it is
    installed on its new engine (or gone from the configuration); the first failure is
    raised once the others were tried (the hand-over stays: the next run tries again)."""
    with run.moves_lock:
        moving = _read(run)
    if not moving:
        return
    try:
        installed = orphans.installed_options(run.installed)
    except orphans.OrphanCheckImpossible as exc:
        log.warning('not removing what parts left on the engines they moved from: %s', exc)
        return
    parts = run.parts
    failures: list[zc.buildout.UserError] = []
    for part, entry in list(moving.items()):
        options = entry.get('options') or {}
        old = engine_config(part, options, recorded=True).key()
        configured = run.configured_engines.get(part)
        if configured is not None and configured.key() == old:
            del moving[part]  # back on that engine: its install adopted what is there
            continue
        record = installed.get(part)
        if record is not None and engine_config(part, record, recorded=True).key() == old:
            continue  # its old record stands (its uninstall did not finish): it moves again
        if record is None and (configured is not None or part in parts):
            if at_end:
                logging.getLogger(part).info(
                    'what it made on %s stays until it is installed on %s',
                    engine_config(part, options, recorded=True).describe(),
                    entry.get('to') or 'its new engine')
            continue
        try:
            if _tear_down(run, part, options, entry.get('to') or 'another engine',
                          recipe_of):
                del moving[part]
        except zc.buildout.UserError as exc:
            failures.append(exc)
    with run.moves_lock:
        left = _read(run)
        for part in set(left) - set(moving):
            del left[part]
        _write(run, left)
    for later in failures[1:]:
        log.error('%s', later)
    if failures:
        raise failures[0]


def _tear_down(run: Run, part: str, options: Mapping[str, str], to: str,
               recipe_of: RecipeOf) -> bool:
    """The part's removal on the engine it left (for ``to``); False when its recipe is
    not known here any more (the hand-over stays). An engine that does not answer is
    said, and what is there stays."""
    old = engine_config(part, options, recorded=True)
    cls = recipe_of(options)
    if cls is None:
        log.warning('%s: what it made on %s is left: its recipe %s is not installed', part,
                    old.describe(), options.get('recipe'))
        return False
    part_log = logging.getLogger(part)
    engine, why = reach(run, part, old)
    if engine is None:
        say_left(run, part, why, to)
        return True
    part_log.info('removing what it made on %s: it is on %s now', old.describe(), to)
    directory = run.directory
    with engine_errors(part, old):
        orphans.sweep_once(engine, directory)
        decision = moving_removal(cls.decide_removal(engine, directory, part, options))
        cls.remove(engine, directory, part, options, decision, part_log)
        orphans.released(engine, directory, part, kinds=cls.owns,
                         unchanged=not any(c.action == 'remove' for c in decision))
    return True


def say_left(run: Run, part: str, why: str, to: str) -> None:
    """One warning line: a part that went to ``to`` left objects on an engine that cannot
    be reached (``why``). They stay: the part is configured, so no orphan sweep takes
    them, and no later run looks there."""
    logging.getLogger(part).warning(
        'moves to %s, but %s: what it made there is left there, and stays (docker rm -f '
        '$(docker ps -aq %s) on that engine removes its containers)', to, why,
        run.owner.filters(part))


def _read(run: Run) -> dict[str, dict[str, Any]]:
    found = orphans.read_record(run.directory, _record_name(run), 'what parts left on the '
                                'engines they moved from is not removed')
    return {part: entry for part, entry in found.items() if isinstance(entry, dict)}


def _record_name(run: Run) -> str:
    """The hand-over file of this run's configuration of the directory."""
    return run.owner.record_name(MOVING_NAME)


def _write(run: Run, moving: Mapping[str, Any]) -> None:
    """In the order of the hand-overs (buildout's uninstall order: a part's dependents
    before it, so that they go first); no file when nothing is handed over (a settled
    buildout has none)."""
    name = _record_name(run)
    path = os.path.join(run.directory, name)
    if moving:
        orphans.write_record(run.directory, name, moving)
    elif os.path.exists(path):
        os.remove(path)


__all__ = ['leave_behind', 'resume', 'retire', 'say_left', 'MOVING_NAME']
