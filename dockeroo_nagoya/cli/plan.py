"""``dockeroo-plan``: what ``bin/buildout`` would do, and why, before anything is done.

Run in a buildout directory as ``bin/buildout`` is, with its options
(``-c CONFIG``, ``section:option=value``, ``-N``, ``-v``) and ``--json``.
Buildout's own machinery reads the configuration and ``.installed.cfg``
(:class:`zc.buildout.buildout.Buildout`, its ``_read_installed_part_options``
and ``_compute_part_signatures``, and install()'s comparison of a part's
recorded and configured options), so a part is said to be installed,
updated, reinstalled (with the options that differ) or uninstalled exactly
as the run would. Each part's recipe is made as the run makes it (its
``__init__`` validates and computes identities) and asked what it would do
with :meth:`~dockeroo_nagoya.recipes.base.Recipe.planned`: the same ``decide()``
whose decision the run's ``act()`` performs, its promises to the parts after
it published as the run publishes them; a removed part is asked with
``decide_removal``.

Read-only by construction: the plan is a run that plans
(:attr:`.runstate.Run.planning`, given to buildout's ``Buildout`` before any
recipe is made): every engine client refuses any request that is not a read,
the run lock is neither taken nor kept, no orphan is swept and no file of the
buildout is written. Exit status: 0 no changes, 2 changes, 1 an error (a
configuration mistake is the line ``bin/buildout`` gives).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import sys
from typing import Any

import zc.buildout
import zc.buildout.buildout

from ..model import decisions
from ..engine import driver as engine
from ..run import runstate
from ..model.decisions import Change, Reason
from ..model.engine_options import engine_move, reach
from ..recipes.base import Recipe, engine_config, recipe_class

#: The order of the totals line.
TOTALS = ('create', 'recreate', 'update', 'start', 'build', 'pull', 'push', 'remove', 'unknown')

def part_actions(buildout: zc.buildout.buildout.Buildout, installed: dict[str, Any],
                 install_parts: list[str]) -> dict[str, tuple[str, list[Reason]]]:
    """part -> (install, update, reinstall or uninstall, why), as ``Buildout.install`` decides."""
    installed_parts = (installed['buildout'].get('parts') or '').split()
    found: dict[str, tuple[str, list[Reason]]] = {}
    for part in reversed(installed_parts):
        if part not in install_parts:
            found[part] = ('uninstall', [decisions.state('it is no longer in parts')])
            continue
        old = installed[part].copy()
        files = old.pop('__buildout_installed__')
        new = buildout.get(part)
        if old == new:
            gone = [f for f in (files or '').split('\n') if f and not os.path.exists(
                buildout._buildout_path(f))]
            if not gone:
                found[part] = ('update', [])
                continue
            found[part] = ('reinstall', [decisions.state(f'{gone[0]} it installed is gone')])
            continue
        reasons = []
        for key in sorted(set(old) | set(new)):
            before, after = old.get(key), new.get(key)
            if before == after:
                continue
            if key == '__buildout_signature__':
                reasons.append(Reason('recipe', note='its distribution changed'))
            else:
                reasons.append(Reason.of(key, before, after))
        found[part] = ('reinstall', reasons)
    for part in install_parts:
        found.setdefault(part, ('install', []))
    return found


def plan_buildout(buildout: zc.buildout.buildout.Buildout) -> dict[str, Any]:
    """The plan as data: parts (what buildout does) and changes (what the recipes do), for
    the planning run given to ``buildout`` (:func:`.runstate.attach`)."""
    buildout._update_sys_path()
    run = runstate.of(buildout)   # whose objects these are, with no part of ours too
    installed, _ = buildout._read_installed_part_options()
    conf_parts = (buildout['buildout']['parts'] or '').split()
    [buildout[part]['recipe'] for part in conf_parts]  # the recipes' __init__: validation
    install_parts = list(buildout._parts)
    buildout._compute_part_signatures(install_parts)
    directory = os.path.realpath(buildout['buildout']['directory'])
    actions = part_actions(buildout, installed, install_parts)
    parts: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []

    def add(part: str, recipe: str, found: list[Change]) -> None:
        action, why = actions[part]
        parts.append({'part': part, 'recipe': recipe, 'action': action,
                      'reasons': [r.as_dict() for r in why], '_reasons': why})
        changes.extend({'part': part, 'recipe': recipe, **c.as_dict(), '_change': c} for c in found)

    # Uninstalls first, last installed first, as buildout does.
    for part in reversed((installed['buildout'].get('parts') or '').split()):
        options = installed[part]
        if actions[part][0] not in ('uninstall', 'reinstall'):
            continue
        cls = recipe_class(options)
        recipe = str(options.get('recipe', ''))
        config = engine_config(part, options, recorded=True, run=run)
        moving = None
        if actions[part][0] == 'reinstall':
            if cls is None:
                continue
            if run.configured.get(part) == cls.recipe:
                moving = engine_move(run, part, dict(options))
                if moving is None:
                    cls.uninstall(part, options)  # only notes the reinstall (recipe.py)
                    continue
                config = moving.old
        found: list[Change] = []
        if cls is not None:
            there, why = reach(run, part, config)
            if there is None:  # the run says what is left there, and goes on
                found = [Change('engine', config.describe(), 'unknown', [decisions.state(
                    f'{why}: what {part} made there is left')])]
            else:
                with engine.engine_errors(part, config):
                    found = cls.decide_removal(there, directory, part, options)
            if moving is not None:
                found = [dataclasses.replace(change, reasons=[decisions.state(
                    f'{part} moves to {moving.new.describe()}')]) if change.action == 'remove'
                    else change for change in decisions.moving_removal(found)]
        if actions[part][0] == 'uninstall':
            add(part, recipe, found)
        else:
            changes.extend({'part': part, 'recipe': recipe, **c.as_dict(), '_change': c}
                           for c in found)
    for part in install_parts:
        recipe = buildout[part].recipe
        name = str(buildout[part].get('recipe', ''))
        found = []
        if isinstance(recipe, Recipe):
            fresh = actions[part][0] != 'update'
            with engine.engine_errors(part, recipe.engine_config):
                found = recipe.planned(fresh).changes
        add(part, name, found)
    return {'directory': directory, 'parts': parts, 'changes': changes,
            'totals': totals(parts, changes)}


def totals(parts: list[dict[str, Any]], changes: list[dict[str, Any]]) -> dict[str, int]:
    counted = collections.Counter(c['action'] for c in changes)
    found = {action: counted[action] for action in TOTALS if counted[action]}
    found['unchanged'] = counted['none']
    found['parts-changed'] = sum(1 for p in parts if p['action'] != 'update')
    return found


def render(plan: dict[str, Any]) -> str:
    """The plan as a reader reads it: parts that change, their objects that change, totals."""
    lines = []
    by_part: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for change in plan['changes']:
        by_part[change['part']].append(change)
    for part in plan['parts']:
        moved = [c for c in by_part.pop(part['part'], []) if c['action'] != 'none']
        if part['action'] == 'update' and not moved:
            continue
        why = ', '.join(r.text() for r in part['_reasons'])
        lines.append(f'{part["part"]} ({part["recipe"]}): {part["action"]}' +
                     (f': {why}' if why else ''))
        lines.extend(f'  {c["_change"].text()}' for c in moved)
    for part, left in by_part.items():  # a reinstall's removals under a recipe that changed
        lines.extend(f'  {c["_change"].text()}' for c in left if c['action'] != 'none')
    lines.append(summary(plan['totals']))
    return '\n'.join(lines)


def summary(found: dict[str, int]) -> str:
    said = [f'{found[action]} to {action}' for action in TOTALS if found.get(action)]
    if not said and not found.get('parts-changed'):
        return 'No changes.'
    if not said:
        return (f'No changes to engine objects; buildout records {found["parts-changed"]} '
                f'part{"s" if found["parts-changed"] != 1 else ""} anew.')
    return f'Plan: {", ".join(said)}, {found["unchanged"]} unchanged.'


def as_json(plan: dict[str, Any]) -> str:
    def clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if not k.startswith('_')} for row in rows]
    return json.dumps({'directory': plan['directory'], 'parts': clean(plan['parts']),
                       'changes': clean(plan['changes']), 'totals': plan['totals']}, indent=1)


def _plan_command(result: dict[str, Any]) -> Any:
    """Buildout's ``plan`` command: the plan of a planning run, said on ``result['stdout']``
    and kept in ``result['plan']`` (the entry point's exit status comes from it)."""
    @zc.buildout.buildout.command
    def plan(self: zc.buildout.buildout.Buildout, args: list[str]) -> None:
        __doing__ = 'Planning.'  # noqa: F841 - buildout's error report names what it was doing
        # The plan's run, before any recipe is made (extensions make parts: foreach).
        runstate.attach(self, runstate.for_buildout(self['buildout'], planning=True))
        self._load_extensions()  # as install does first: the parts of a list (foreach) are theirs
        found = result['plan'] = plan_buildout(self)
        out = result.get('stdout') or sys.stdout
        print(as_json(found) if result.get('json') else render(found), file=out)
        out.flush()
    return plan


class _CreatedDirectories(logging.Handler):
    """The directories buildout's start makes when they are missing (its eggs cache)."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == 'Creating directory %r.' and isinstance(record.args, tuple) \
                and record.args:
            self.paths.append(str(record.args[0]))

    def remove(self, directory: str) -> None:
        """Remove them again (and the parents made with them) while empty, up to the buildout."""
        for path in reversed(self.paths):
            path = os.path.realpath(path)
            while path.startswith(directory + os.sep):
                try:
                    os.rmdir(path)
                except OSError:
                    break
                path = os.path.dirname(path)


def main(argv: list[str] | None = None) -> int:
    """``dockeroo-plan [-c CONFIG] [section:option=value ...] [-N] [-v] [--json]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    result: dict[str, Any] = {'json': '--json' in args}
    args = [a for a in args if a != '--json']
    zc.buildout.buildout.Buildout.plan = _plan_command(result)
    zc.buildout.buildout.Buildout.COMMANDS.add('plan')
    if result['json']:  # buildout's and the recipes' log lines go to stderr, the JSON alone out
        result['stdout'], sys.stdout = sys.stdout, sys.stderr
    created = _CreatedDirectories()
    logging.getLogger('zc.buildout').addHandler(created)
    try:
        zc.buildout.buildout.main(args + ['plan'])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout = result.get('stdout') or sys.stdout
        created.remove(os.path.realpath(os.getcwd()))  # buildout's start went there
    found = result.get('plan')
    if found is None:
        return 1
    moved = any(c['action'] != 'none' for c in found['changes']) or \
        any(p['action'] != 'update' for p in found['parts'])
    return 2 if moved else 0


def entry() -> None:
    sys.exit(main())


__all__ = ['main', 'plan_buildout', 'render', 'summary', 'as_json']
