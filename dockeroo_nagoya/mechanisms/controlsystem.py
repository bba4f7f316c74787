"""A system as its control script's description says it, and what the commands do to it:
start, stop, backup, restore, remove, purge and status, in dependency order, each member
on its engine."""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import logging
import math
import os
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

import zc.buildout

from . import atomicfile, containers, containerspec, probes
from ..model import dependencies, scheduling
from ..run import ownership, runstate
from .callbacks import Callbacks
from . import volumedata
from ..model import options as opt
from ..engine.callbackobjects import container_object
from ..engine.driver import Engine, EngineConfig, engine_errors, explain
from ..engine.errors import APIError, NotFound
from ..model.engine_options import described, record
from .members import ArchiveError


OK, FAILED, USAGE, NOT_UP = 0, 1, 2, 3

T = TypeVar('T')

MANIFEST = 'manifest.json'

log = logging.getLogger('dockeroo_nagoya.cli.control')


class ControlError(Exception):
    """A failure said in one line; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


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
                   engine=described(part, own) if own is not None else engine,
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
        return read_json(path, cls,
                         lambda why: f'cannot read the description of the system {path} '
                                     f'({why}): run bin/buildout',
                         lambda why: f'the description of the system {path} is damaged '
                                     f'({why}): run bin/buildout')

    def _placed_volumes(self, names: Iterable[str]) -> list[Placed]:
        """Each named volume on each engine of the members that mount it."""
        placed: list[Placed] = []
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
        return (engine or self.engine_of(member)).named('containers', member.container)

    def display(self, member: Member) -> str:
        return f'{self.part}: member {member.section}'

    def callbacks(self, member: Member) -> Callbacks:
        return Callbacks(self.display(member), self.directory, member.callbacks)

    def say(self, text: str) -> None:
        """One line on stdout, whole even when threads print at the same time."""
        with self._print:
            print(text, flush=True)

    def in_order(self, sections: Iterable[str] | None, work: Callable[[Member, Engine], None],
                 backwards: bool = False) -> None:
        """``work`` on each member after (or, ``backwards``, before) those it depends on."""
        graph = self.graph(sections)
        if backwards:
            graph = dependencies.reverse(graph)
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
                callbacks.fire('pre-start', lambda: container_object(engine, member.container))
                engine.api.start(member.container)
                self.say(f'started {member.container}')
                self._gate(member, engine)
                callbacks.fire('post-start', lambda: container_object(engine, member.container))

        self.in_order(sections, start_one)

    def _gate(self, member: Member, engine: Engine) -> None:
        if not member.wait_for:
            return
        gates = probes.trusting(probes.parse_gates('\n'.join(member.wait_for)),
                                member.wait_for_tls_verify, member.wait_for_tls_ca,
                                member.section, self.run)
        timeout = member.wait_timeout or containerspec.DEFAULT_WAIT_TIMEOUT
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
                except APIError as exc:
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
            target = os.path.join(self.backups, utc_now().strftime('%Y%m%dT%H%M%SZ'))
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
                     'labels': labels, 'time': utc_now().isoformat()}
            if volume.engine != self.config:   # a restore puts it back on that engine
                entry['engine'] = record(volume.engine)
            entries.append(entry)
            self.say(f'backed up volume {self.placed_name(volume)} ({archived.size} bytes, '
                     f'sha256 {archived.sha256[:12]})')
        manifest = {'format': 1, 'part': self.part, 'directory': self.directory,
                    'created': utc_now().isoformat(), 'volumes': entries}
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
        def placed(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
            entries = list(manifest['volumes'])
            for entry in entries:
                entry['volume'], entry['archive'], entry['sha256']  # noqa: B018 - all present
                entry['place'] = self._placed_entry(entry)
            return entries

        path = os.path.join(source, MANIFEST)
        entries = read_json(path, placed, lambda why: f'{self.part}: cannot read {path} ({why})',
                            lambda why: f'{self.part}: {path} is not a backup manifest ({why})')
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
                       if entry.get('engine') is not None else self.config)
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
                    except NotFound:
                        pass
                    except APIError as exc:
                        problems.append(f'{kind} {shown}: {explain(exc)}')
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


def utc_now() -> datetime.datetime:
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
    seconds = max(0, int((utc_now() - when).total_seconds()))
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


def read_json(path: str, read: Callable[[Any], T], unreadable: Callable[[str], str],
              damaged: Callable[[str], str]) -> T:
    """``read`` of the JSON document at ``path`` (a description, a manifest): a file that
    cannot be read, or whose content ``read`` does not take, is one line saying so."""
    try:
        with open(path, encoding='utf-8') as handle:
            return read(json.load(handle))
    except OSError as exc:
        raise ControlError(unreadable(str(exc.strerror))) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ControlError(damaged(str(exc))) from None


def _write_json(path: str, data: Any) -> None:
    """Write a manifest whole, never through a file or link planted at its name."""
    atomicfile.write_text(path, json.dumps(data, indent=2, sort_keys=True) + '\n', 0o644)


__all__ = ['System', 'Placed', 'ControlError', 'Member', 'plural', 'published_ports']
