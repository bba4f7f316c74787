"""``docker.system``: many containers as one part, brought up in parallel in dependency order.

``containers`` names buildout sections; each holds docker.run's options
(toji's spellings too), so a toji INI translates section by section. A
member's container is named after its section unless it sets ``name``.
A member comes up after the members it ``links`` to, takes ``volumes-from``
or names in ``depends`` (by section or container name); members that do not
depend on each other are created, started and gated at the same time, each
as soon as what it needs is up. A container is recreated exactly when
docker.run would recreate it, or when a member it links to or takes volumes
from was recreated (after that member). A member taken out of
``containers`` is removed on the next run; removing the part removes every
container, dependents first, and never a volume.

The part also writes ``bin/<part>``, a control script (start, stop,
restart, status, logs, exec, backup, restore, remove, purge; see
:mod:`dockeroo_nagoya.cli.control`), and its description in
``parts/<part>/system.json``.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import logging
import math
import os
import threading
import time
from typing import Any, Mapping

import zc.buildout

from ..mechanisms import containers, containerspec, controlscript, secrets
from ..model import dependencies, scheduling
from ..run import identities
from ..mechanisms.callbacks import Callbacks
from ..mechanisms.containerplan import Plan
from ..mechanisms.runner import Runner, absent_names
from ..model import options as opt
from ..model.decisions import Change, Decision, state
from ..engine.driver import Engine, engine_errors, identity_hash
from ..engine.labels import LABEL
from .base import PLAIN_SECRETS, Defer, Recipe, kept, uninstaller

#: Threads that create new members ahead of their turn: creating is quick and off the
#: critical path (a member's turn comes after a start); more at once only take the engine
#: from the starts the others wait for (20 at once made a fan-out's first start slower).
AHEAD_WORKERS = 4

#: Which member of its system a container is (the part label says which system).
LABEL_MEMBER = f'{LABEL}.member'

#: A member's options: docker.run's, plus the members it must come up after.
MEMBER_TABLE = containerspec.TABLE + (
    opt.Option('depends', opt.words, default='', identity=False,
               doc='Members (section or container names) this one comes after.'),)

#: The identity key that makes a container new when a member it links to is new.
LINKED = 'linked containers'

DESCRIPTION = 'system.json'


@dataclasses.dataclass
class Member:
    """One container of the system and what it comes up after."""

    section: str
    spec: containerspec.ContainerSpec
    after: set[str] = dataclasses.field(default_factory=set)    # sections it waits for
    linked: set[str] = dataclasses.field(default_factory=set)   # sections it is recreated with

    @property
    def name(self) -> str:
        return self.spec.name

    def summary(self) -> dict[str, Any]:
        """What removing it needs later, when only the part's recorded options are left,
        and the restart policy an install leaves it with (see :meth:`SystemRecipe.settled`)."""
        values = self.spec.values
        return {'section': self.section, 'container': self.name, 'after': sorted(self.after),
                'stop-timeout': self.spec.stop_timeout, 'keep': values['keep'],
                'callbacks': [list(line) for line in values['callbacks']],
                'restart': values['restart']}


class SystemRecipe(Recipe):
    """A system of containers (toji's unit) as one part."""

    recipe = 'docker.system'
    kind = 'containers'
    owns = ('containers',)
    table = (
        opt.Option('containers', opt.words, required=True,
                   doc=("The buildout sections that are the members, each with ``docker.run``'s "
                        'options.')),
        opt.Option('backup-directory', opt.path, identity=False,
                   doc='Where ``backup`` writes (default ``var/backups/PART``).'),
    )

    # -- configuration -----------------------------------------------------------------
    def configure(self) -> None:
        sections = self.values['containers']
        seen: set[str] = set()
        for section in sections:
            if section in seen:
                raise opt.invalid(self.name, 'containers', 'each section once',
                                  f'{section} twice')
            seen.add(section)
        self.members: dict[str, Member] = {}
        by_container: dict[str, str] = {}
        for section in sections:
            member = self._member(section)
            other = by_container.get(member.name)
            if other is not None:
                raise zc.buildout.UserError(
                    f'{self.name}: members {other} and {section} both name their container '
                    f'{member.name}: set name in one of them')
            by_container[member.name] = section
            self.members[section] = member
        with engine_errors(self.name, self.engine_config, 'looking up the images'):
            for member in self.members.values():
                member.spec.check_image(self.engine)
                identities.will_run_container(
                    self.run, self.engine_config, member.name,
                    functools.partial(member.spec.configured_identity, self.engine))
        self._resolve(by_container)
        with engine_errors(self.name, self.engine_config, 'looking up the linked containers'):
            for member in self.members.values():
                member.spec.check_links(self.engine, system=True)
        graph = self.graph()
        dependencies.check_acyclic(graph, self.name, 'containers')
        self.order = dependencies.order(graph)
        self.backups = self.values['backup-directory'] or os.path.join(
            self.directory, 'var', 'backups', self.name)
        # Written into the part so buildout sees a member's change, and so the uninstall
        # hook can remove the containers in order with their stop-timeouts.
        self.options['members'] = json.dumps(
            [self.members[s].summary() for s in self.order], separators=(',', ':'))
        self.options['members-signature'] = identity_hash(
            {s: m.spec.values for s, m in self.members.items()})

    def _member(self, section: str) -> Member:
        opt.check_part_name(section, f'{self.name}: option containers', 'section')
        display = f'{self.name}: member {section}'
        try:
            raw = dict(self.buildout[section])
        except KeyError as exc:
            if exc.args and exc.args[0] != section:
                raise  # a reference inside the member names what is missing: buildout says which
            raise opt.invalid(self.name, 'containers', 'names of sections of this buildout',
                              f'{section} (there is no [{section}])') from None
        if raw.get('recipe'):
            raise zc.buildout.UserError(
                f'{self.name}: option containers: section [{section}] has a recipe; a member '
                f'section holds docker.run\'s options only (remove its recipe line)')
        containerspec.take_toji_aliases(raw, display)
        for key in PLAIN_SECRETS:
            if key in raw:
                raise secrets.plain_secret_refused(display, key, 'a docker.system member', (),
                                                   container=True)
        self.warn_misspelt(raw, opt.known_names(MEMBER_TABLE) | set(containerspec.TOJI_ALIASES) | {
            'detach'}, f'member {section}: ')
        values = opt.parse_options(display, raw, MEMBER_TABLE)
        if values['name'] is None:
            try:
                values['name'] = opt.name(section)
            except opt.Invalid as exc:
                raise opt.invalid(display, 'name', f'{exc} (the section name is not one: '
                                  f'set name)', section) from None
        spec = containerspec.ContainerSpec.from_values(display, values['name'], values,
                                                       self.directory, self.run)
        return Member(section, spec)

    def _resolve(self, by_container: Mapping[str, str]) -> None:
        """Turn references to members into sections (order) and container names (engine)."""
        def member_of(reference: str) -> str | None:
            return by_container.get(reference) or (reference if reference in self.members else None)

        def members_of(reference: str) -> list[str]:
            target = member_of(reference)
            return [target] if target else []

        needs = dependencies.resolve(
            {section: member.spec.values for section, member in self.members.items()},
            members_of,
            lambda section, reference: opt.invalid(
                f'{self.name}: member {section}', 'depends',
                f'members of this system ({", ".join(self.members)})', reference))
        for section, member in self.members.items():
            member.after, member.linked = needs[section].after, needs[section].linked
            # The engine knows the members by container name.
            values = member.spec.values
            for link in values['links']:
                target = member_of(link[0])
                if target:
                    link[0] = self.members[target].name
            resolved = []
            for line in values['volumes-from']:
                source, _, mode = line.rpartition(':')
                target = member_of(source)
                resolved.append(f'{self.members[target].name if target else source}:{mode}')
            values['volumes-from'] = resolved

    def graph(self) -> dict[str, set[str]]:
        """section -> the sections it comes up after."""
        return {section: set(member.after) for section, member in self.members.items()}

    # -- install and update --------------------------------------------------------------
    def _installed(self, fresh: bool, previous: Mapping[str, str] | None) -> set[str]:
        """The member containers an earlier run installed."""
        if fresh and previous is not None:
            return {m['container'] for m in _recorded_members(previous, self.log)}
        if fresh:
            return set()
        return {m.name for m in self.members.values()}

    def settled(self, fresh: bool, previous: Mapping[str, str] | None) -> set[str]:
        """The member containers whose restart policy is the one wanted now, by the record
        of the last successful install (which left each with its recorded ``restart``).

        Any member's change reinstalls the whole system: the members whose ``restart``
        did not change are then not inspected one by one (:meth:`.Runner.decide`). A
        record from before members recorded their ``restart`` settles none."""
        if not fresh or previous is None:
            return set()
        recorded = {m['container']: m for m in _recorded_members(previous, self.log)}
        return {member.name for member in self.members.values()
                if 'restart' in recorded.get(member.name, {})
                and recorded[member.name]['restart'] == member.spec.values['restart']}

    def _departed(self) -> list[dict[str, Any]]:
        """Containers of members no longer in ``containers``."""
        names = {m.name for m in self.members.values()}
        return [c for c in self.engine.part_objects('containers', self.directory, self.name)
                if _name(c) not in names]

    def decide(self, fresh: bool) -> Decision:
        """Each member as docker.run decides it, in dependency order: a member linked to
        one that is made anew is made anew after it. Containers of members no longer in
        ``containers`` are removed first."""
        previous = self.run.previous.get(self.name)
        installed = self._installed(fresh, previous)
        settled = self.settled(fresh, previous)
        departed = self._departed()
        found = [Change('container', _name(c), 'remove', [state('it is no longer in containers')],
                        c['Id']) for c in departed]
        ids: dict[str, str] = {}
        steps: dict[str, tuple[Plan, Change]] = {}
        absent = absent_names(self.engine, self.directory,
                              [member.name for member in self.members.values()])
        for section in self.order:
            runner = Runner(self, self.members[section].spec,
                                       labels={LABEL_MEMBER: section})
            runner.absent = self.members[section].name in absent
            step, change = self.decide_member(runner, section, ids, fresh, installed, settled)
            ids[section] = change.id if change.action in ('none', 'start', 'update') and \
                change.id else f'planned:{self.members[section].name}'
            steps[section] = (step, change)
            found.append(change)
        return Decision(found, found={'installed': installed, 'departed': departed,
                                      'steps': steps, 'settled': settled}, fresh=fresh)

    def decide_member(self, runner: Runner, section: str, ids: Mapping[str, str],
                      fresh: bool, installed: set[str],
                      settled: set[str]) -> tuple[Plan, Change]:
        """One member's decision (its step and change), given the ids of the members it
        links to or takes volumes from (``ids``: planned ones when deciding, the ones
        acting made when it decides again); ``settled``: see :meth:`settled`."""
        member = self.members[section]
        linked = {self.members[s].name: ids[s] for s in sorted(member.linked)}
        step = runner.decide(fresh, expected=member.name in installed,
                             extra_identity={LINKED: linked},
                             restart_unchanged=member.name in settled)
        return step, runner.change(step)

    def act(self, decision: Decision) -> list[str]:
        previous = self.run.previous.pop(self.name, None)
        # One listing of containers and one of images, copied to every member's thread.
        self.engine.owned('containers', self.directory)
        for member in self.members.values():
            self.engine.image_id(member.spec.values['image'])
        removed = {c.id for c in decision.changes if c.action == 'remove'}
        self._remove_departed([c for c in decision.found['departed'] if c['Id'] in removed],
                              previous)
        self.engine.owned('containers', self.directory)   # again, if a departure changed it
        by_member = {change.object: change for change in decision.changes}
        self._bring_up(decision, by_member)
        self.engine.forget()
        return self._write_control()

    def _remove_departed(self, departed: list[dict[str, Any]],
                         previous: Mapping[str, str] | None) -> None:
        """Containers of members no longer in ``containers`` (dependents first)."""
        if not departed:
            return
        recorded = {m['container']: m for m in _recorded_members(previous or {}, self.log)}
        remove_in_order(self.engine, self.directory, self.name, departed, recorded, self.log,
                        why='it is no longer in containers', keep=False)

    def _bring_up(self, decision: Decision, by_member: Mapping[str, Change]) -> None:
        """Each member in its turn (after what it depends on), as decided; a member linked
        to one that acting made anew is decided again with the id that one got (through
        :meth:`decide_member`, as the decision was). New ones are created ahead."""
        fresh, installed = decision.fresh, decision.found['installed']
        settled = decision.found['settled']
        steps = decision.found['steps']
        ids: dict[str, str] = {}
        remade: set[str] = set()
        started = time.monotonic()
        runners: dict[str, Runner] = {}
        for section, member in self.members.items():
            runners[section] = Runner(
                self, member.spec, engine=self.engine.fork(member.spec.part),
                labels={LABEL_MEMBER: section})

        def create_ahead(section: str) -> None:
            with engine_errors(self.members[section].spec.part, self.engine_config):
                runners[section].create_ahead(steps[section][0])

        def converge(section: str) -> str | None:
            member = self.members[section]
            if section in ahead:
                ahead.pop(section).result()
            with engine_errors(member.spec.part, self.engine_config):
                step, change = steps[section]
                change = by_member.get(member.name, change)
                if member.linked & remade:
                    step, change = self.decide_member(runners[section], section, ids, fresh,
                                                      installed, settled)
                found = runners[section].act(step, change, fresh)
                if found is not None and found != change.id:
                    remade.add(section)
                ids[section] = found or change.id or f'absent:{member.name}'
            return found

        graph = self.graph()
        # Members to be created that wait for another one and link to none (their identity
        # is known now) are created ahead, while the first ones start (those start at once
        # anyway); each one's turn is then only its start.
        early = [s for s, m in self.members.items() if graph[s] and not m.linked
                 and steps[s][0].current is None
                 and by_member.get(m.name, steps[s][1]).action == 'create']
        try:
            with concurrent.futures.ThreadPoolExecutor(
                    max_workers=AHEAD_WORKERS, thread_name_prefix='dockeroo-nagoya-ahead') as pool:
                ahead = {section: pool.submit(create_ahead, section) for section in early}
                try:
                    scheduling.run_or_raise(graph, converge, self.log)
                except BaseException:
                    concurrent.futures.wait(list(ahead.values()))
                    for runner in runners.values():
                        runner.discard_ahead()
                    raise
        finally:
            for runner in runners.values():
                runner.engine.close()
        chain = len(dependencies.levels(graph))
        self.log.info('%d containers of %s up in %.1fs (longest dependency chain: %d)',
                      len(self.members), self.name, time.monotonic() - started, chain)

    def _write_control(self) -> list[str]:
        """``bin/<part>`` and ``parts/<part>/system.json``, made anew at every run."""
        return controlscript.write_control(self.buildout['buildout']['bin-directory'],
                                           self.buildout['buildout']['parts-directory'],
                                           self.name, self.recipe, self.description(),
                                           file_name=DESCRIPTION)

    def description(self) -> dict[str, Any]:
        """What the control script needs: no option values beyond names (env never)."""
        return controlscript.describe(
            self.name, self.owner, self.engine_config, self.backups,
            [controlscript.describe_member(section, self.members[section].spec,
                                           self.members[section].after,
                                           self.members[section].linked)
             for section in self.order])

    # -- removal ------------------------------------------------------------------------
    @classmethod
    def removal_objects(cls, engine: Engine, directory: str, part: str,
                        options: Mapping[str, str]) -> list[Change]:
        """The members' containers, each kept by its own ``keep`` (recorded with it)."""
        recorded = {m['container']: m for m in _recorded_members(
            options, logging.getLogger(part))}
        found = []
        for container in engine.part_objects('containers', directory, part):
            name = _name(container)
            change = Change('container', name, 'remove', [state('its part was removed')],
                            container['Id'])
            found.append(kept(change, f'keep = true in member {recorded[name].get("section")}')
                         if (recorded.get(name) or {}).get('keep') else change)
        return found

    @classmethod
    def remove_containers(cls, engine: Engine, directory: str, part: str,
                          options: Mapping[str, str], going: list[Change],
                          log: logging.Logger,
                          defer: Defer | None = None) -> None:
        """Dependents first, independent members at the same time."""
        ids = {change.id for change in going}
        found = [c for c in engine.part_objects('containers', directory, part) if c['Id'] in ids]
        recorded = {m['container']: m for m in _recorded_members(options, log)}
        remove_in_order(engine, directory, part, found, recorded, log,
                        why='its part was removed', keep=False)


# -- removing in order (departed members, the whole part) ------------------------------
def remove_in_order(engine: Engine, directory: str, part: str, found: list[dict[str, Any]],
                    recorded: Mapping[str, Mapping[str, Any]], log: logging.Logger,
                    why: str, keep: bool) -> None:
    """Stop and remove containers, dependents first, independent ones at the same time."""
    by_name = {_name(c): c for c in found}
    graph = {name: {dep for dep in _after_names(recorded.get(name), recorded) if dep in by_name}
             for name in by_name}

    def remove(name: str) -> None:
        """Until its processes ended; the engine's clean-up goes on alongside the next ones."""
        member = recorded.get(name) or {}
        if keep and member.get('keep'):
            log.info('keeping container %s (keep = true)', name)
            return
        callbacks = Callbacks(f'{part}: member {member.get("section", name)}', directory,
                              [tuple(line) for line in member.get('callbacks') or []])
        container = by_name[name]['Id']
        timeout = int(math.ceil(member.get('stop-timeout', 10)))
        forked = engine.fork(part)
        in_flight.acquire()

        def finish() -> None:
            try:
                with engine_errors(part, engine.config):
                    containers.remove(forked, container, timeout, callbacks)
            finally:
                forked.close()
                in_flight.release()
            log.info('removed container %s: %s', name, why)

        try:
            with engine_errors(part, engine.config):
                ended = containers.end_processes(forked, container, timeout, callbacks)
        except BaseException:
            forked.close()
            in_flight.release()
            raise
        if ended:
            cleaning.append(cleanup.submit(finish))
        else:
            finish()

    cleaning: list[concurrent.futures.Future[None]] = []
    # Containers stopped and not yet removed, at most: the engine cleans up after an exit
    # one container at a time on a network, and a burst of exits only slows it down.
    in_flight = threading.BoundedSemaphore(scheduling.MAX_WORKERS)
    with concurrent.futures.ThreadPoolExecutor(
            max_workers=scheduling.MAX_WORKERS, thread_name_prefix='dockeroo-nagoya-cleanup') \
            as cleanup:
        try:
            scheduling.run_or_raise(dependencies.reverse(graph), remove, log)
        finally:
            concurrent.futures.wait(cleaning)
            engine.forget('containers')
    for future in cleaning:
        future.result()


def _after_names(member: Mapping[str, Any] | None,
                 recorded: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The container names a recorded member comes up after."""
    if not member:
        return set()
    sections = {m['section']: name for name, m in recorded.items()}
    return {sections[s] for s in member.get('after') or () if s in sections}


def _recorded_members(options: Mapping[str, str], log: logging.Logger) -> list[dict[str, Any]]:
    try:
        found = json.loads(options.get('members') or '[]')
    except ValueError:
        log.warning('the recorded members of the part cannot be read; removing with defaults')
        return []
    return [m for m in found if isinstance(m, dict) and 'container' in m] \
        if isinstance(found, list) else []


def _name(container: Mapping[str, Any]) -> str:
    """A listed container's own name (a linked one is also listed as ``/linker/alias``)."""
    names = container.get('Names') or ['/?']
    return next((n for n in names if n.count('/') == 1), names[0]).lstrip('/')


uninstall = uninstaller(SystemRecipe)

__all__ = ['SystemRecipe', 'uninstall', 'LABEL_MEMBER', 'remove_in_order']
