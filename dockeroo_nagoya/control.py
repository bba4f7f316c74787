"""The control script of a ``docker.system`` part: ``bin/<part> COMMAND``.

docker_meta gave every unit of nagoya commands to start, stop, back up and
restore it; this is that, for a system described by its part in
``parts/<part>/system.json`` (written at every buildout run; names, order,
gates and volumes, never an environment value).

Commands act in dependency order, members that do not depend on each other
at the same time: ``start`` (and its gates), ``stop`` (dependents first,
each with its stop-timeout), ``restart``, ``status``, ``logs``, ``exec``,
``backup``, ``restore``, ``remove`` (containers) and ``purge`` (containers,
volumes and the images this buildout built for them).

The members of a ``docker.control`` part may be on several engines (each
part's own ``docker-host``, ``machine-name`` or TLS options, else the
``[buildout]`` ones): each member carries its engine in the description,
each engine gets one client, connected the first time a command needs it,
and a command checks that every engine it needs answers before it acts.
``status`` then has an ENGINE column (``default``: the control part's own
engine, that is the ``[buildout]`` one; else the URL or Docker context).

Exit codes a shell script can rely on: 0 done, 1 failed (one line on stderr
says why), 2 usage error (also: ``purge`` with no terminal to ask on and no
``--yes``), 3 ``status`` found a container not running or not healthy, or an
engine that does not answer while another does (its members are not listed;
one line on stderr per such engine; when no engine answers, 1). The command
of ``exec`` passes its own exit code through.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import datetime
import importlib
import json
import logging
import math
import os
import sys
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping

import docker.errors
import zc.buildout

from . import (atomicfile, containers, logstreams, ownership, probes, runstate, scheduling,
               volumedata)
from . import options as opt
from .engine import Engine, EngineConfig, engine_errors
from .engine_options import described
from .members import ArchiveError

OK, FAILED, USAGE, NOT_UP = 0, 1, 2, 3

#: Modules the control script imports, to find the directories it needs on sys.path.
NEEDED_MODULES = ('dockeroo_nagoya', 'docker', 'requests', 'urllib3', 'idna', 'certifi',
                  'charset_normalizer', 'zc.buildout', 'setuptools', 'pip')

MANIFEST = 'manifest.json'

#: The description of the members, in ``parts/<part>/``.
DESCRIPTION = 'control.json'

log = logging.getLogger('dockeroo_nagoya.control')


class ControlError(Exception):
    """A failure said in one line; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


# -- the script -----------------------------------------------------------------------------
def importable_paths(modules: Iterable[str] = NEEDED_MODULES) -> list[str]:
    """The directories this process imports the needed modules from, in sys.path order."""
    found: list[str] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        origin = getattr(module, '__file__', None)
        if not origin:
            continue
        root = os.path.dirname(os.path.abspath(origin))
        depth = name.count('.') + (1 if os.path.basename(origin) == '__init__.py' else 0)
        for _ in range(depth):
            root = os.path.dirname(root)
        if root not in found:
            found.append(root)
    ordered = list(dict.fromkeys(p for p in sys.path if p in found))
    return ordered + [p for p in found if p not in ordered]


def script_text(python: str, description: str, part: str, recipe: str = 'docker.system',
                script: str | None = None) -> str:
    """``bin/<script>``: the buildout's Python, the package's directories, then :func:`main`."""
    script = script or part
    paths = ''.join(f'    {path!r},\n' for path in importable_paths())
    # Every name reaches the script as a Python literal (repr), never spliced into one.
    doc = f'Control script of the {recipe} part {part} (made by buildout: bin/{script} --help).'
    return (f'#!{python}\n'
            f'{doc!r}\n'
            f'import sys\n'
            f'sys.path[0:0] = [\n{paths}]\n\n'
            f'from dockeroo_nagoya import control\n\n'
            f"if __name__ == '__main__':\n"
            f'    sys.exit(control.main({description!r}, sys.argv[1:], prog={script!r}))\n')


def write_control(bin_directory: str, parts_directory: str, part: str, recipe: str,
                  description: Mapping[str, Any], script: str | None = None,
                  file_name: str = DESCRIPTION) -> list[str]:
    """``bin/<script>`` and ``parts/<part>/<file_name>``, each written whole (the script may
    be running): what a docker.system part and a docker.control part both install."""
    parts = os.path.join(parts_directory, part)
    os.makedirs(parts, exist_ok=True)
    os.makedirs(bin_directory, exist_ok=True)
    path = os.path.join(parts, file_name)
    atomicfile.write_text(path, json.dumps(description, indent=2, sort_keys=True) + '\n', 0o644)
    target = os.path.join(bin_directory, script or part)
    atomicfile.write_text(target, script_text(sys.executable, path, part, recipe, script), 0o755)
    return [target, parts]


def describe(part: str, owner: ownership.Owner, engine: EngineConfig, backups: str,
             members: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The description the control script reads: members in dependency order, with
    ``section``, ``container``, ``image``, ``after``, ``linked``, ``job``, ``start``,
    ``stop-timeout``, ``wait-for``, ``wait-timeout``, ``callbacks`` and ``volumes``
    (names only: never an option value such as env)."""
    members = [dict(m) for m in members]
    graph = {m['section']: {a for a in m['after']} for m in members}
    volumes = sorted({v['volume'] for m in members for v in m['volumes']})
    return {'format': 1, 'part': part, 'directory': owner.directory, 'installed': owner.installed,
            'host': owner.host,
            'engine': dataclasses.asdict(engine), 'backup-directory': backups,
            'levels': scheduling.levels(graph), 'members': members, 'volumes': volumes}


def describe_member(section: str, spec: containers.ContainerSpec, after: Iterable[str],
                    linked: Iterable[str] = (), engine: EngineConfig | None = None
                    ) -> dict[str, Any]:
    """One member's entry in :func:`describe`, from its container's parsed options.

    ``engine``: the member's own engine (a docker.control part's members each
    come from a part with its own engine options); without it the member is on
    the engine of the description, as every member of a docker.system is."""
    values = spec.values
    own = {'engine': dataclasses.asdict(engine)} if engine is not None else {}
    return {**own,
        'section': section, 'container': spec.name, 'image': values['image'],
        'after': sorted(after), 'linked': sorted(linked),
        'job': values['job'], 'start': values['start'], 'run-once': values['run-once'],
        'stop-timeout': spec.stop_timeout,
        'wait-for': [gate.text for gate in values['wait-for']],
        'wait-for-tls-verify': values['wait-for-tls-verify'],
        'wait-for-tls-ca': values['wait-for-tls-ca'],
        'wait-timeout': values['wait-timeout'],
        'callbacks': [list(line) for line in values['callbacks']],
        'volumes': [{'volume': v['source'], 'target': v['target'], 'mode': v['mode']}
                    for v in values['volumes']
                    if v['source'] and not v['source'].startswith(('/', '.', '~'))],
    }


# -- the described system -------------------------------------------------------------------
@dataclasses.dataclass
class Member:
    """One member as the description records it."""

    section: str
    container: str
    image: str
    after: list[str]
    linked: list[str]
    job: bool
    start: bool
    stop_timeout: int
    wait_for: list[str]
    wait_timeout: float | None
    callbacks: list[tuple[str, str]]
    volumes: list[dict[str, str]]
    engine: EngineConfig
    keep: bool = False
    run_once: bool = False
    wait_for_tls_verify: bool = True
    wait_for_tls_ca: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], engine: EngineConfig, part: str) -> Member:
        """``engine``: where the member is when its entry names no engine of its own
        (``part``: the control part, which says what is wrong with it)."""
        own = data.get('engine')
        return cls(section=data['section'], container=data['container'], image=data['image'],
                   engine=described(part, own) if own else engine,
                   after=list(data.get('after') or []), linked=list(data.get('linked') or []),
                   job=bool(data.get('job')), start=bool(data.get('start', True)),
                   stop_timeout=int(math.ceil(data.get('stop-timeout', 10))),
                   wait_for=list(data.get('wait-for') or []),
                   wait_timeout=data.get('wait-timeout'),
                   callbacks=[(e, t) for e, t in data.get('callbacks') or []],
                   volumes=list(data.get('volumes') or []), keep=bool(data.get('keep')),
                   run_once=bool(data.get('run-once')),
                   wait_for_tls_verify=bool(data.get('wait-for-tls-verify', True)),
                   wait_for_tls_ca=data.get('wait-for-tls-ca'))


@dataclasses.dataclass(frozen=True)
class Placed:
    """A volume or image of the system by name, on the engine that holds it: two engines
    may each have a volume of one name, and they are two volumes."""

    name: str
    engine: EngineConfig


class System:
    """A system as its part described it, and what the commands do to it."""

    def __init__(self, description: Mapping[str, Any]) -> None:
        self.part: str = description['part']
        self.directory: str = description['directory']
        #: The configuration that wrote the description (one written before configurations
        #: were told apart: the default one, on this machine).
        self.owner = ownership.Owner(
            self.directory, description.get('installed') or ownership.DEFAULT_INSTALLED,
            description.get('host') or ownership.this_host())
        #: What this command knows: the one client of each engine, warnings said.
        self.run = runstate.Run(self.owner)
        own = described(self.part, description['engine'])
        self.backups: str = description['backup-directory']
        members = [Member.from_dict(m, own, self.part) for m in description['members']]
        #: key -> the one configuration of each daemon (see :meth:`same_engine`).
        self._daemons = _one_per_daemon([own, *(m.engine for m in members)])
        self.config = self.same_engine(own)
        for member in members:
            member.engine = self.same_engine(member.engine)
        self.members = {m.section: m for m in members}
        #: Whether the members say their own engines (docker.control): status then says
        #: each one's; a docker.system's are all on its engine and its table stays as it was.
        self.spread = any('engine' in m for m in description['members'])
        self.volumes = self._placed_volumes(description.get('volumes') or [])
        self._reached: set[EngineConfig] = set()
        self._print = threading.Lock()

    @classmethod
    def load(cls, path: str) -> System:
        try:
            with open(path, encoding='utf-8') as handle:
                return cls(json.load(handle))
        except OSError as exc:
            raise ControlError(f'cannot read the description of the system {path} '
                               f'({exc.strerror}): run bin/buildout') from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ControlError(f'the description of the system {path} is damaged ({exc}): '
                               f'run bin/buildout') from None

    def _placed_volumes(self, names: Iterable[str]) -> list[Placed]:
        """Each named volume on each engine of the members that mount it."""
        placed = []
        for name in names:
            engines = dict.fromkeys(m.engine for m in self.members.values()
                                    if any(v['volume'] == name for v in m.volumes))
            placed.extend(Placed(name, engine) for engine in engines or [self.config])
        return placed

    # -- engines ------------------------------------------------------------------------
    def same_engine(self, config: EngineConfig) -> EngineConfig:
        """The configuration this command uses for the daemon ``config`` reaches.

        Members say their engines in their parts' words: one leaves the engine
        to ``[buildout]``, one spells the socket out, one has a timeout of its own.
        Those are one daemon (:meth:`EngineConfig.key`), so they get one
        configuration, hence one client, one ENGINE name (``default`` for the
        system's own) and one copy of each volume in a backup, instead of one per
        spelling. Every configuration the system compares goes through here
        (the members' when the description is read, a backup's when it is
        restored), so that comparing two is comparing their keys.
        """
        return self._daemons.get(config.key(), config)

    def engines(self) -> list[EngineConfig]:
        """The members' engines, in the order of the members (the system's own when none)."""
        return list(dict.fromkeys(m.engine for m in self.members.values())) or [self.config]

    def engine_name(self, config: EngineConfig) -> str:
        """An engine in the user's words, short enough for a column: ``default`` for the
        system's own, else its URL or Docker context, as an engine phrase starts."""
        if config == self.config:
            return opt.DEFAULT_ENGINE
        return config.context or config.host or config.describe()

    def placed_name(self, placed: Placed) -> str:
        """A volume or image as messages name it: with its engine when not the system's own."""
        if placed.engine == self.config:
            return placed.name
        return f'{placed.name} (on {self.engine_name(placed.engine)})'

    def reach(self, configs: Iterable[EngineConfig]) -> dict[EngineConfig, str]:
        """Connect to the engines not reached yet, all at the same time (one that does not
        answer may take its whole timeout); return the one-line failure of each that does
        not answer, naming the engine and the members on it."""
        todo = [c for c in dict.fromkeys(configs) if c not in self._reached]
        if len(todo) > 1:
            with concurrent.futures.ThreadPoolExecutor(
                    max_workers=len(todo), thread_name_prefix='dockeroo-nagoya-reach') as pool:
                answers = list(pool.map(self._reach_one, todo))
        else:
            answers = [self._reach_one(config) for config in todo]
        failures = {}
        for config, failure in zip(todo, answers):
            if failure is None:
                self._reached.add(config)
            else:
                failures[config] = failure
        return failures

    def _reach_one(self, config: EngineConfig) -> str | None:
        where = self.part
        if self.spread:
            names = [m.container for m in self.members.values() if m.engine == config]
            where = f'{self.part}: {"container" if len(names) == 1 else "containers"} ' \
                    f'{", ".join(names)}' if names else self.part
        try:
            with engine_errors(where, config):
                self.run.engine(config, where).api.ping()
        except zc.buildout.UserError as exc:
            return str(exc).strip().splitlines()[0] if str(exc).strip() else where
        return None

    def need(self, configs: Iterable[EngineConfig]) -> None:
        """Fail in one line, before anything is done, when an engine that a command needs
        does not answer (a stop must not stop half of the system)."""
        failures = self.reach(configs)
        if failures:
            raise ControlError('; '.join(failures.values()) + ' (nothing was done)')

    def engine_at(self, config: EngineConfig) -> Engine:
        """The engine's one client for this command, connected the first time it is needed."""
        self.need([config])
        return self.run.engine(config, self.part)

    def engine_of(self, member: Member) -> Engine:
        return self.engine_at(member.engine)

    # -- looking ----------------------------------------------------------------------
    def graph(self, sections: Iterable[str] | None = None) -> dict[str, set[str]]:
        wanted = set(self.members if sections is None else sections)
        return {s: {a for a in self.members[s].after if a in wanted} for s in self.members
                if s in wanted}

    def member(self, reference: str) -> Member:
        """A member by section or container name."""
        for member in self.members.values():
            if reference in (member.container, member.section):
                return member
        raise ControlError(f'{self.part}: no member {reference} (members: '
                           f'{", ".join(m.container for m in self.members.values())})', USAGE)

    def inspect(self, member: Member, engine: Engine | None = None) -> dict[str, Any] | None:
        return (engine or self.engine_of(member)).inspect('containers', member.container)

    def display(self, member: Member) -> str:
        return f'{self.part}: member {member.section}'

    def callbacks(self, member: Member) -> containers.Callbacks:
        return containers.Callbacks(self.display(member), self.directory, member.callbacks)

    def say(self, text: str) -> None:
        """One line on stdout, whole even when threads print at the same time."""
        with self._print:
            print(text, flush=True)

    def in_order(self, sections: Iterable[str] | None, work: Callable[[Member, Engine], None],
                 backwards: bool = False) -> None:
        """``work`` on each member after (or, ``backwards``, before) those it depends on."""
        graph = self.graph(sections)
        if backwards:
            graph = scheduling.reverse(graph)
        needed = [self.members[section].engine for section in graph]
        self.need(needed)   # every engine answers, or nothing is done
        engines = {config: self.run.engine(config, self.part) for config in dict.fromkeys(needed)}

        def one(section: str) -> None:
            member = self.members[section]
            engine = engines[member.engine].fork(self.part)
            try:
                with engine_errors(self.display(member), member.engine):
                    work(member, engine)
            finally:
                engine.close()

        scheduling.run_or_raise(graph, one, log)

    # -- acting on containers -------------------------------------------------------------
    def start(self, sections: Iterable[str] | None = None) -> None:
        def start_one(member: Member, engine: Engine) -> None:
            if member.job or not member.start:
                return
            details = self.inspect(member, engine)
            if details is None:
                raise ControlError(f'{self.display(member)}: container {member.container} does '
                                   f'not exist: run bin/buildout to create it')
            state = details['State']
            if member.run_once and not str(state.get('StartedAt', '')).startswith('0001-'):
                return  # toji's run_once: started once, never again
            if state.get('Paused'):
                engine.api.unpause(member.container)
                self.say(f'resumed {member.container}')
            elif not state.get('Running'):
                callbacks = self.callbacks(member)
                callbacks.fire('pre-start', lambda: engine.client.containers.get(member.container))
                engine.api.start(member.container)
                self.say(f'started {member.container}')
                self._gate(member, engine)
                callbacks.fire('post-start', lambda: engine.client.containers.get(member.container))

        self.in_order(sections, start_one)

    def _gate(self, member: Member, engine: Engine) -> None:
        if not member.wait_for:
            return
        gates = probes.trusting(probes.parse_gates('\n'.join(member.wait_for)),
                                member.wait_for_tls_verify, member.wait_for_tls_ca,
                                member.section, self.run)
        timeout = member.wait_timeout or containers.DEFAULT_WAIT_TIMEOUT
        probes.wait_until_ready(engine, member.container, member.container, gates, timeout,
                                self.display(member), log)

    def stop(self, sections: Iterable[str] | None = None) -> list[str]:
        """Stop the running members, dependents first; return the sections it stopped."""
        stopped: list[str] = []

        def stop_one(member: Member, engine: Engine) -> None:
            details = self.inspect(member, engine)
            if details is None or not details['State'].get('Running'):
                return
            containers.stop(engine, member.container, member.stop_timeout, self.callbacks(member))
            stopped.append(member.section)
            self.say(f'stopped {member.container}')

        self.in_order(sections, stop_one, backwards=True)
        return stopped

    def remove(self) -> None:
        def remove_one(member: Member, engine: Engine) -> None:
            details = self.inspect(member, engine)
            if details is None:
                return
            containers.remove(engine, details['Id'], member.stop_timeout, self.callbacks(member))
            self.say(f'removed {member.container}')

        self.in_order(None, remove_one, backwards=True)

    # -- volumes ----------------------------------------------------------------------------
    def users(self, volume: Placed, writers_only: bool = False) -> list[Member]:
        """Members whose running container mounts ``volume`` (read-write ones if asked): those
        on its engine (a volume of the same name elsewhere is another volume)."""
        found = []
        for member in self.members.values():
            if member.engine != volume.engine:
                continue
            with engine_errors(self.part, member.engine):
                details = self.inspect(member)
            if details is None or not details['State'].get('Running'):
                continue
            for mount in details.get('Mounts') or []:
                if mount.get('Type') == 'volume' and mount.get('Name') == volume.name and \
                        (mount.get('RW') or not writers_only):
                    found.append(member)
                    break
        return found

    @contextlib.contextmanager
    def held(self, volume: Placed) -> Iterator[None]:
        """Pause the members that write to ``volume`` (stop them where pausing fails)."""
        paused: list[Member] = []
        stopped: list[Member] = []
        engine = self.engine_at(volume.engine)
        shown = self.placed_name(volume)
        try:
            for member in self.users(volume, writers_only=True):
                try:
                    engine.api.pause(member.container)
                    paused.append(member)
                    self.say(f'paused {member.container} while archiving volume {shown}')
                except docker.errors.APIError as exc:
                    log.debug('pausing %s failed: %s', member.container, exc)
                    containers.stop(engine, member.container, member.stop_timeout,
                                    self.callbacks(member))
                    stopped.append(member)
                    self.say(f'stopped {member.container} while archiving volume {shown} '
                             f'(it cannot be paused)')
            yield
        finally:
            for member in paused:
                engine.api.unpause(member.container)
                self.say(f'resumed {member.container}')
            if stopped:
                self.start(m.section for m in stopped)

    def backup(self, target: str | None) -> str:
        """Every named volume into ``target`` as tar archives, with a manifest."""
        if target is None:
            target = os.path.join(self.backups, _now().strftime('%Y%m%dT%H%M%SZ'))
            candidate, count = target, 1
            while os.path.exists(candidate):    # two backups in one second
                candidate, count = f'{target}.{count}', count + 1
            target = candidate
        target = os.path.abspath(target)
        if os.path.exists(os.path.join(target, MANIFEST)):
            raise ControlError(f'{self.part}: {target} already holds a backup: give another '
                               f'directory')
        self.need(v.engine for v in self.volumes)
        missing = []
        for volume in self.volumes:
            with engine_errors(self.part, volume.engine):
                if self.engine_at(volume.engine).inspect('volumes', volume.name) is None:
                    missing.append(self.placed_name(volume))
        if missing:
            raise ControlError(f'{self.part}: volume {", ".join(missing)} does not exist: '
                               f'run bin/buildout (nothing was backed up)')
        os.makedirs(target, mode=0o700, exist_ok=True)
        entries: list[dict[str, Any]] = []
        archives: set[str] = set()
        for volume in self.volumes:
            engine = self.engine_at(volume.engine)
            archive, count = f'{volume.name}.tar', 2
            while archive in archives:   # a volume of this name on another engine too
                archive, count = f'{volume.name}.{count}.tar', count + 1
            archives.add(archive)
            with engine_errors(self.part, volume.engine):
                with self.held(volume):
                    try:
                        archived = volumedata.archive_to(engine, volume.name,
                                                         os.path.join(target, archive))
                    except (ArchiveError, OSError) as exc:
                        raise ControlError(f'{self.part}: volume {self.placed_name(volume)} '
                                           f'cannot be backed up into {target}: {exc}') from None
                # The labels say which part owns the volume: a restore into a removed
                # installation gives them back, so that part adopts the volume again.
                labels = (engine.inspect('volumes', volume.name) or {}).get('Labels') or {}
            entry = {'volume': volume.name, 'archive': os.path.basename(archived.path),
                     'size': archived.size, 'sha256': archived.sha256,
                     'content': archived.content, 'members': archived.members,
                     'labels': labels, 'time': _now().isoformat()}
            if volume.engine != self.config:   # a restore puts it back on that engine
                entry['engine'] = dataclasses.asdict(volume.engine)
            entries.append(entry)
            self.say(f'backed up volume {self.placed_name(volume)} ({archived.size} bytes, '
                     f'sha256 {archived.sha256[:12]})')
        manifest = {'format': 1, 'part': self.part, 'directory': self.directory,
                    'created': _now().isoformat(), 'volumes': entries}
        _write_json(os.path.join(target, MANIFEST), manifest)
        self.say(f'backup of {plural(len(entries), "volume")} in {target}')
        return target

    def latest_backup(self) -> str:
        try:
            found = sorted(entry for entry in os.listdir(self.backups)
                           if os.path.isfile(os.path.join(self.backups, entry, MANIFEST)))
        except FileNotFoundError:
            found = []
        if not found:
            raise ControlError(f'{self.part}: no backup in {self.backups}: give the directory '
                               f'of one')
        return os.path.join(self.backups, found[-1])

    def restore(self, source: str | None, force: bool) -> None:
        """Check every archive, then put the volumes back with their users stopped."""
        source = os.path.abspath(source) if source else self.latest_backup()
        entries = self._verified(source)
        self.need(e['place'].engine for e in entries)
        full = []
        for entry in entries:
            place = entry['place']
            engine = self.engine_at(place.engine)
            with engine_errors(self.part, place.engine):
                if engine.inspect('volumes', place.name) is not None and \
                        not volumedata.is_empty(engine, place.name):
                    full.append(place)
        if full and not force:
            raise ControlError(f'{self.part}: volume {", ".join(map(self.placed_name, full))} '
                               f'is not empty: restore --force writes the backup over it '
                               f'(nothing was restored)')
        for entry in entries:
            entry['over'] = entry['place'] in full   # its other files stay (--force)
        users = {m.section for e in entries for m in self.users(e['place'])}
        stopped = self.stop(users) if users else []
        try:
            for entry in entries:
                with engine_errors(self.part, entry['place'].engine):
                    self._restore_volume(source, entry)
        finally:
            if stopped:
                self.start(stopped)
        self.say(f'restored {plural(len(entries), "volume")} from {source}')

    def _verified(self, source: str) -> list[dict[str, Any]]:
        """The manifest's entries, once every archive matches its size and checksum."""
        try:
            with open(os.path.join(source, MANIFEST), encoding='utf-8') as handle:
                manifest = json.load(handle)
            entries = list(manifest['volumes'])
            for entry in entries:
                entry['volume'], entry['archive'], entry['sha256']  # noqa: B018 - all present
                entry['place'] = self._placed_entry(entry)
        except OSError as exc:
            raise ControlError(f'{self.part}: cannot read {os.path.join(source, MANIFEST)} '
                               f'({exc.strerror})') from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ControlError(f'{self.part}: {os.path.join(source, MANIFEST)} is not a '
                               f'backup manifest ({exc})') from None
        for entry in entries:
            path = os.path.join(source, os.path.basename(entry['archive']))
            try:
                digest = volumedata.file_digest(path)
                size = os.path.getsize(path)
            except OSError as exc:
                raise ControlError(f'{self.part}: cannot read {path} ({exc.strerror}): nothing '
                                   f'was restored') from None
            if digest != entry['sha256'] or size != entry.get('size', size):
                raise ControlError(f'{self.part}: {path} does not match its checksum in '
                                   f'{MANIFEST}: nothing was restored')
            entry['path'] = path
        self.say(f'checked {plural(len(entries), "archive")} in {source}')
        return entries

    def _placed_entry(self, entry: Mapping[str, Any]) -> Placed:
        """Where a backed-up volume goes back: the engine the backup says (the system's own
        when it says none), or, when the members that mount it have moved to another
        single engine since, that one."""
        place = Placed(entry['volume'], self.same_engine(described(self.part, entry['engine']))
                       if entry.get('engine') else self.config)
        known = [v for v in self.volumes if v.name == place.name]
        if not known or place in known:
            return place
        if len(known) == 1:
            return known[0]
        raise ControlError(f'{self.part}: the backup\'s volume {self.placed_name(place)} is '
                           f'on none of the engines that have it now '
                           f'({", ".join(self.engine_name(v.engine) for v in known)}): nothing '
                           f'was restored')

    def _restore_volume(self, source: str, entry: Mapping[str, Any]) -> None:
        place: Placed = entry['place']
        volume, shown = place.name, self.placed_name(place)
        engine = self.engine_at(place.engine)
        if engine.inspect('volumes', volume) is None:
            engine.api.create_volume(name=volume, labels=entry.get('labels') or None)
            self.say(f'created volume {shown}')
        try:
            volumedata.restore(engine, volume, entry['path'])
        except ArchiveError as exc:
            raise ControlError(f'{self.part}: {entry["path"]} cannot be restored into volume '
                               f'{shown}: {exc}') from None
        if entry.get('over'):   # files that are not in the backup were left: no whole-volume check
            self.say(f'restored volume {shown} over its content (files not in the backup stay)')
            return
        if entry.get('content') and volumedata.content_digest(engine, volume) != entry['content']:
            raise ControlError(f'{self.part}: volume {shown} does not hold what {entry["path"]} '
                               f'held after the restore (content checksum differs)')
        self.say(f'restored volume {shown}')

    # -- purge ----------------------------------------------------------------------------
    def built_images(self) -> list[Placed]:
        """The members' images that this buildout made (its docker.build parts), on each
        engine that runs them."""
        found = []
        for config in self.engines():
            engine = self.engine_at(config)
            with engine_errors(self.part, config):
                for image in sorted({m.image for m in self.members.values()
                                     if m.engine == config}):
                    details = engine.inspect('images', image)
                    labels = ((details or {}).get('Config') or {}).get('Labels') or {}
                    if self.owner.claims(labels):
                        found.append(Placed(image, config))
        return found

    def purge(self, images: list[Placed]) -> list[str]:
        """Remove containers, volumes and images; return what could not be removed."""
        self.remove()
        problems = []
        for kind, placed in [('volume', v) for v in self.volumes] + [('image', i) for i in images]:
            engine, shown = self.engine_at(placed.engine), self.placed_name(placed)
            remove = engine.api.remove_volume if kind == 'volume' else engine.api.remove_image
            try:
                with engine_errors(self.part, placed.engine):
                    try:
                        remove(placed.name)
                        self.say(f'removed {kind} {shown}')
                    except docker.errors.NotFound:
                        pass
                    except docker.errors.APIError as exc:
                        problems.append(f'{kind} {shown}: {_explain(exc)}')
            except zc.buildout.UserError as exc:   # that engine stopped answering meanwhile
                problems.append(f'{kind} {shown}: {exc}')
        return problems

    # -- reading ------------------------------------------------------------------------------
    def status_header(self) -> list[str]:
        return ['CONTAINER', *(['ENGINE'] if self.spread else []), 'STATE', 'HEALTH', 'IMAGE',
                'UPTIME', 'PORTS']

    def status_rows(self, unreachable: Iterable[EngineConfig] = ()
                    ) -> tuple[list[list[str]], bool]:
        """The status table's rows (not of the members on an ``unreachable`` engine), and
        whether every listed member is as it should be."""
        rows, healthy = [], True
        skipped = set(unreachable)
        for member in self.members.values():
            if member.engine in skipped:
                continue
            where = [self.engine_name(member.engine)] if self.spread else []
            with engine_errors(self.part, member.engine):
                details = self.inspect(member)
            if details is None:
                rows.append([member.container, *where, 'missing', '-', member.image, '-', '-'])
                healthy = False
                continue
            state = details['State']
            status = state.get('Status') or '?'
            health = (state.get('Health') or {}).get('Status') or '-'
            if status == 'exited':
                status = f'exited ({state.get("ExitCode")})'
            uptime = _uptime(state.get('StartedAt')) if state.get('Running') else '-'
            if member.job:
                fine = state.get('Status') == 'exited' and state.get('ExitCode') == 0
            elif not member.start:
                fine = True
            else:
                fine = state.get('Running') and not state.get('Paused') and \
                    health in ('-', 'healthy')
            healthy = healthy and bool(fine)
            rows.append([member.container, *where, status, health, member.image, uptime,
                         published_ports(details)])
        return rows, healthy


# -- commands ---------------------------------------------------------------------------------
def cmd_start(system: System, args: argparse.Namespace) -> int:
    system.start()
    return OK


def cmd_stop(system: System, args: argparse.Namespace) -> int:
    system.stop()
    return OK


def cmd_restart(system: System, args: argparse.Namespace) -> int:
    system.stop()
    system.start()
    return OK


def cmd_status(system: System, args: argparse.Namespace) -> int:
    """The table of the members of every engine that answers; one line on stderr for each
    engine that does not (an engine down is not all up: 3), a failure when none answers."""
    engines = system.engines()
    unreachable = system.reach(engines)
    if unreachable and len(unreachable) == len(engines):
        raise ControlError('; '.join(unreachable.values()))
    rows, healthy = system.status_rows(unreachable)
    table = [system.status_header(), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    sys.stdout.flush()
    for failure in unreachable.values():
        print(failure, file=sys.stderr, flush=True)
    return OK if healthy and not unreachable else NOT_UP


def cmd_logs(system: System, args: argparse.Namespace) -> int:
    tail: Any = args.tail if args.tail is not None else 'all'
    out = sys.stdout.buffer
    if args.name:
        member = system.member(args.name)
        api = system.engine_of(member).api
        with engine_errors(system.part, member.engine):
            if system.inspect(member) is None:
                raise ControlError(f'{system.part}: container {member.container} does not exist')
            if args.follow:
                for chunk in api.logs(member.container, stream=True, follow=True, tail=tail,
                                      since=args.since):
                    out.write(chunk)
                    out.flush()
            else:
                out.write(api.logs(member.container, tail=tail, since=args.since))
        return OK
    engines = system.engines()
    system.need(engines)
    sources = []
    for member in system.members.values():
        with engine_errors(system.part, member.engine):
            if system.inspect(member) is not None:
                sources.append((system.run.engine(member.engine, system.part), member.container))
    with engine_errors(system.part, engines[0] if len(engines) == 1 else None):
        for container, line in logstreams.interleaved(sources, tail, args.since, args.follow):
            out.write(container.encode() + b' | ' + line)
            if args.follow:
                out.flush()
    out.flush()
    return OK


def cmd_exec(system: System, args: argparse.Namespace) -> int:
    member = system.member(args.name)
    if not args.command:
        raise ControlError(f'{system.part}: exec needs a command after the NAME', USAGE)
    api = system.engine_of(member).api
    with engine_errors(system.part, member.engine):
        details = system.inspect(member)
        if details is None or not details['State'].get('Running'):
            raise ControlError(f'{system.part}: container {member.container} is not running')
        exec_id = api.exec_create(member.container, args.command, stdout=True, stderr=True,
                                  user=args.user or '', workdir=args.workdir)['Id']
        for out, err in api.exec_start(exec_id, stream=True, demux=True):
            for data, stream in ((out, sys.stdout), (err, sys.stderr)):
                if data:
                    stream.buffer.write(data)
                    stream.buffer.flush()
        code = api.exec_inspect(exec_id).get('ExitCode')
    return code if code is not None else FAILED


def cmd_backup(system: System, args: argparse.Namespace) -> int:
    system.backup(args.directory)
    return OK


def cmd_restore(system: System, args: argparse.Namespace) -> int:
    system.restore(args.directory, args.force)
    return OK


def cmd_remove(system: System, args: argparse.Namespace) -> int:
    system.remove()
    return OK


def cmd_purge(system: System, args: argparse.Namespace) -> int:
    system.need(system.engines())   # every engine answers, or nothing is removed
    images = system.built_images()
    what = ', '.join(
        [f'containers {" ".join(m.container for m in system.members.values())}'] +
        ([f'volumes {" ".join(map(system.placed_name, system.volumes))}']
         if system.volumes else []) +
        ([f'images {" ".join(map(system.placed_name, images))}'] if images else []))
    if not args.yes:
        if not sys.stdin.isatty():
            raise ControlError(f'{system.part}: purge removes {what}; with no terminal to ask '
                               f'on, give --yes', USAGE)
        answer = input(f'purge removes {what}; the data in those volumes is lost. '
                       f'Type yes to go on: ')
        if answer.strip().lower() != 'yes':
            raise ControlError(f'{system.part}: purge cancelled, nothing removed')
    problems = system.purge(images)
    if problems:
        raise ControlError(f'{system.part}: purge left {"; ".join(problems)}')
    return OK


def parser_for(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=f'Control the containers of the system {prog}, in dependency '
        f'order, each on its engine. Exit codes: 0 done, 1 failed, 2 usage error, 3 status '
        f'not all up (or an engine does not answer).')
    parser.add_argument('-q', '--quiet', action='store_true', help='print only errors')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    # The options every command takes, after it as well as before it (bin/sys stop -q).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('-q', '--quiet', action='store_true', default=argparse.SUPPRESS,
                        help='print only errors')

    def command(name: str, function: Callable[[System, argparse.Namespace], int],
                text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text, parents=[common])
        sub.set_defaults(function=function)
        return sub

    command('start', cmd_start, 'start the stopped members in dependency order and wait for '
            'their gates')
    command('stop', cmd_stop, 'stop the members, dependents first, each with its stop-timeout')
    command('restart', cmd_restart, 'stop, then start')
    command('status', cmd_status, 'a table of container (and engine, for members on several '
            'engines), state, health, image, uptime and published ports; exit code 3 when a '
            'member is not running, or not healthy, or an engine does not answer (one line '
            'each on stderr; 1 when none answers)')
    logs = command('logs', cmd_logs, 'the log of one member, or of all of them interleaved '
                   'by time with the container name before each line')
    logs.add_argument('name', nargs='?', metavar='NAME', help='member (section or container name)')
    logs.add_argument('-n', '--tail', type=_count, metavar='N', help='only the last N lines')
    logs.add_argument('-f', '--follow', action='store_true', help='keep printing new lines')
    logs.add_argument('--since', type=logs_since, metavar='WHEN',
                      help='only lines from WHEN on: a duration back from now (10m, 1h30m) or a '
                      'time (2026-01-31T12:00:00, UTC unless it says)')
    run = command('exec', cmd_exec, 'run a command in a running member; exits with its code')
    run.add_argument('-u', '--user', help='user to run it as')
    run.add_argument('-w', '--workdir', help='directory to run it in')
    run.add_argument('name', metavar='NAME', help='member (section or container name)')
    run.add_argument('command', nargs=argparse.REMAINDER, metavar='CMD', help='command and '
                     'arguments')
    backup = command('backup', cmd_backup, 'archive every named volume with a manifest; the '
                     'members that write to a volume are paused during its copy')
    backup.add_argument('directory', nargs='?', metavar='DIR',
                        help='where to write (default: a new directory under the part\'s '
                        'backup-directory)')
    restore = command('restore', cmd_restore, 'check every archive against the manifest, then '
                      'put the volumes back with the members that use them stopped')
    restore.add_argument('directory', nargs='?', metavar='DIR',
                         help='a backup (default: the newest in the backup-directory)')
    restore.add_argument('--force', action='store_true',
                         help='write over volumes that are not empty (files not in the backup '
                         'stay)')
    command('remove', cmd_remove, 'remove the containers (volumes and images stay)')
    purge = command('purge', cmd_purge, 'remove the containers, the named volumes and the '
                    'images this buildout built for them; asks first')
    purge.add_argument('-y', '--yes', action='store_true', help='do not ask')
    return parser


def main(description: str, argv: list[str], prog: str = 'system') -> int:
    """Run one command; return the exit code."""
    args = parser_for(prog).parse_args(argv)
    _log_to_terminal(logging.WARNING if args.quiet else logging.INFO)
    try:
        system = System.load(description)
        if args.quiet:
            system.say = lambda text: None  # type: ignore[method-assign]
        return args.function(system, args)
    except ControlError as exc:
        _error(prog, str(exc))
        return exc.code
    except zc.buildout.UserError as exc:
        _error(prog, str(exc))
        return FAILED
    except KeyboardInterrupt:
        _error(prog, 'interrupted')
        return 130


# -- small pieces -----------------------------------------------------------------------------
def _one_per_daemon(configs: Iterable[EngineConfig]) -> dict[str, EngineConfig]:
    """key -> one configuration per daemon (see :meth:`System.same_engine`): the first
    that names it (the system's own comes first), with the longest timeout of them all,
    so that no member's command gives up sooner than its own part would."""
    first: dict[str, EngineConfig] = {}
    longest: dict[str, int] = {}
    for config in configs:
        key = config.key()
        first.setdefault(key, config)
        longest[key] = max(longest.get(key, 0), config.timeout)
    return {key: dataclasses.replace(config, timeout=longest[key])
            for key, config in first.items()}


def _error(prog: str, message: str) -> None:
    """The first line of a message (a log tail is for the buildout's output)."""
    first = message.strip().splitlines()[0] if message.strip() else 'failed'
    first = first.removeprefix(f'{prog}: ')
    print(f'{prog}: error: {first}', file=sys.stderr, flush=True)


def _log_to_terminal(level: int) -> None:
    """Progress (gates that passed) on stdout, warnings on stderr."""
    root = logging.getLogger()
    root.setLevel(level)
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    out.setFormatter(logging.Formatter('%(message)s'))
    err.setFormatter(_PartFormatter('%(message)s'))
    for handler in (out, err):
        root.addHandler(handler)


class _PartFormatter(logging.Formatter):
    """A warning of a part's logger starts with the part's name, as buildout prints it
    (``web: docker-tls-verify = false: ...``); the script's own lines as they are."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.name == 'root' or record.name.startswith('dockeroo_nagoya'):
            return text
        return f'{record.name}: {text}'


def plural(count: int, word: str) -> str:
    """``1 volume``, ``2 volumes``."""
    return f'{count} {word}{"" if count == 1 else "s"}'


def published_ports(details: Mapping[str, Any]) -> str:
    """``127.0.0.1:8080->80/tcp``, as docker ps shows them; ``-`` for none."""
    found = []
    for port, bindings in sorted(((details.get('NetworkSettings') or {}).get('Ports') or {}).items()):
        for binding in bindings or []:
            found.append(f'{binding.get("HostIp") or "0.0.0.0"}:{binding.get("HostPort")}->{port}')
    return ', '.join(found) or '-'


#: ``--since``'s durations: up to ten years back (a time is taken for further back).
SINCE = opt.duration_up_to(3650 * 24 * 3600)


def logs_since(raw: str) -> datetime.datetime:
    """``--since``: a duration back from now, or a time (UTC unless it has an offset)."""
    try:
        return _now() - datetime.timedelta(seconds=SINCE(raw))
    except opt.Invalid:
        pass
    try:
        when = datetime.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f'a duration such as 10m or a time such as '
                                         f'2026-01-31T12:00:00, not {raw!r}') from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def _count(raw: str) -> int:
    try:
        return opt.integer(0, 10 ** 9)(raw)
    except opt.Invalid as exc:
        raise argparse.ArgumentTypeError(f'a number of lines: {exc}, not {raw!r}') from None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _uptime(started: str | None) -> str:
    """``3s``, ``4m05s``, ``2h10m``, ``3d04h`` since the engine's StartedAt."""
    if not started:
        return '-'
    try:
        when = datetime.datetime.fromisoformat(started[:26].rstrip('Z') + '+00:00'
                                               if '.' in started else started.replace('Z', '+00:00'))
    except ValueError:
        return '?'
    seconds = max(0, int((_now() - when).total_seconds()))
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    if days:
        return f'{days}d{hour:02d}h'
    if hours:
        return f'{hours}h{minute:02d}m'
    if minutes:
        return f'{minutes}m{second:02d}s'
    return f'{second}s'


def _explain(exc: docker.errors.APIError) -> str:
    text = exc.explanation or str(exc)
    return (text.decode('utf-8', 'replace') if isinstance(text, bytes) else str(text)).strip()


def _write_json(path: str, data: Any) -> None:
    """Write a manifest whole, never through a file or link planted at its name."""
    atomicfile.write_text(path, json.dumps(data, indent=2, sort_keys=True) + '\n', 0o644)


__all__ = ['main', 'script_text', 'importable_paths', 'System', 'Placed', 'ControlError']
