"""``docker.copy``: files between containers, or between a container and the host.

dockeroo's options: ``container-from``, ``container-to`` and ``paths`` (see
:mod:`dockeroo_nagoya.mechanisms.copying` for their syntax). Leaving out one of the two
containers makes that side the host. Owners and modes are kept in a
container; on the host by the host's rules of :mod:`dockeroo_nagoya.mechanisms.members`
(the buildout user's, no set-id bit, no group or world write). A copy is
redone only when its source's content changed (or its target container is a
new one). What was copied is recorded in ``location`` (dockeroo's option,
``parts/PART`` by default); the record outlives a reinstall (a package
upgrade reinstalls every part, and must not copy everything again) and goes
when the part is removed. Removing the part copies nothing back; the copies
on the host stay, unless ``keep = false``: then they are the part's installed
files, which buildout removes with the part (and before a reinstall, after
which they are copied again), so a copied private key does not outlive it.

``from-engine`` (ours): the engine of ``container-from``, when it is not the
part's own (the part's own engine, that of its ``docker-host``,
``machine-name`` or ``[buildout]`` options, is where ``container-to`` is). One
phrase (:func:`dockeroo_nagoya.model.options.engine_spec`): ``default`` (the
buildout's own engine, its ``[buildout]`` options), a URL (``tcp://HOST:2376``,
``unix:///PATH``, ``ssh://HOST``) or a Docker context's name, optionally
followed by ``tls=DIR``. The source is read and its digest taken there, the
copy written on the part's engine (or on the host without ``container-to``),
passing through this process's memory, never through a file on this
machine's disk: a builder machine's certificate goes from the credentials
container here to a container on the builder's engine. It needs
``container-from``; a value that names no engine (a misspelt context) stops
the run before anything acts.

``sync`` (ours, default false): a directory line makes the target directory
hold exactly what the source's does. A copy only adds and replaces, so a
builder taken out of a machine's count would otherwise leave its private
key in the machine's volume. What the target holds and the source no longer
has is removed when the line is copied again (its source changed, its
target is new, or sync was just turned on), and the plan names it; how, in
a container that may never run, is :mod:`dockeroo_nagoya.mechanisms.copying`'s.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import zc.buildout

from ..mechanisms import atomicfile, copying, readfiles
from ..run import identities
from ..model import options as opt
from ..model.decisions import Change, Decision, state
from ..engine.driver import Engine, EngineConfig, engine_errors
from ..model.engine_options import engine_of_spec
from .base import Recipe, uninstaller

RECORD = 'copied.json'


class CopyRecipe(Recipe):
    """Copies of paths, done again when their source changes."""

    recipe = 'docker.copy'
    kind = 'containers'
    table = (
        opt.Option('container-from', opt.name,
                   doc='The container to copy from (left out: the host).'),
        opt.Option('container-to', opt.name, doc='The container to copy to (left out: the host).'),
        opt.Option('from-engine', opt.engine_spec,
                   doc=("The engine of ``container-from`` when it is not the part's: ``default``, a"
                        ' URL or a Docker context, optionally ``tls=DIR``.')),
        opt.Option('paths', opt.text, required=True,
                   doc=('One path a line; a trailing ``/`` copies a directory; a second path on the'
                        ' line renames it.')),
        opt.Option('keep', opt.boolean, default='true', identity=False,
                   doc='Leave the copies on the host when the part is removed.'),
        opt.Option('sync', opt.boolean, default='false', identity=False,
                   doc=("Each directory line's target holds exactly what the source holds (what the"
                        ' source no longer has is removed).')),
    )

    def configure(self) -> None:
        source, target = self.values['container-from'], self.values['container-to']
        if not source and not target:
            raise opt.invalid(self.name, 'container-from', 'container-from, container-to or both '
                              '(a side without a container is the host)')
        self.from_config = self._from_engine()
        try:
            self.copies = copying.parse_paths(self.values['paths'], host_source=not source,
                                              host_target=not target, base=self.directory)
        except opt.Invalid as exc:
            raise opt.invalid(self.name, 'paths', str(exc), self.values['paths']) from None
        if self.values['sync'] and not any(copy.directory for copy in self.copies):
            self.log.warning('sync = true acts on directory lines (SOURCE/ ...), and paths has '
                             'none: nothing is ever removed')
        self.location = os.path.join(self.directory, self.options.get('location') or os.path.join(
            self.buildout['buildout']['parts-directory'], self.name))
        self.options['location'] = self.location
        # Read now, so that a damaged record is one line before anything acts (plan too).
        self.done = readfiles.read_state(self.name, os.path.join(self.location, RECORD),
                                         'every line is copied again')

    def _from_engine(self) -> EngineConfig:
        """The engine ``container-from`` is on: ``from-engine``'s, else the part's own."""
        spec = self.values['from-engine']
        if spec is None:
            return self.engine_config
        if not self.values['container-from']:
            raise zc.buildout.UserError(
                f'{self.name}: option from-engine: it is the engine of container-from, which is '
                f'not set (a copy from the host reads this machine\'s files: leave out from-engine)')
        return engine_of_spec(self.name, 'from-engine', spec, self.buildout['buildout'],
                              self.engine_config.timeout, run=self.run)

    def _config_of(self, option: str) -> EngineConfig:
        """The engine ``container-from`` or ``container-to`` is on (``from-engine``'s for the
        source, the part's own for the target)."""
        return self.from_config if option == 'container-from' else self.engine_config

    def _side(self, option: str) -> tuple[Engine, EngineConfig]:
        """The engine of ``container-from`` or ``container-to``, with its config (for the
        address an engine that does not answer is named by)."""
        config = self._config_of(option)
        with engine_errors(self.name, config):
            return self.run.engine(config, self.name), config

    def decide(self, fresh: bool) -> Decision:
        """Each line copied again when its content or target changed (read now); a
        container a part of this run makes first (a plan: it is not there yet) means every
        line is copied."""
        later = [self.values[o] for o in ('container-from', 'container-to') if self.values[o]
                 and identities.will_have_container(self.run, self._config_of(o),
                                                    self.values[o])
                 and self._inspect(o) is None]
        if later:
            removed = [state('what its directory holds and the source does not is removed '
                             'then')] if self.values['sync'] else []
            return Decision([Change('copy', copy.text, 'create',
                                    [state(f'{later[0]} is made first')]
                                    + (removed if copy.directory else []))
                             for copy in self.copies], fresh=fresh)
        target, made = self._copies_to_make()
        return Decision([Change('copy', one.copy.text, 'none' if one.why is None else 'create'
                                if one.why == 'first copy' else 'update',
                                ([state(one.why)] if one.why else [])
                                + ([state(f'removes {", ".join(one.stale)}')]
                                   if one.stale else []))
                         for one in made], found={'target': target, 'made': made}, fresh=fresh)

    def _copies_to_make(self) -> tuple[str | None, list[copying.CopyToMake]]:
        """The target's container id and each copy read from the source's engine, with why
        it is made (and, with sync, what goes): what the plan shows and the run acts on."""
        source = self._container('container-from')
        found = self._details('container-to')
        target = found['Id'] if found else None
        sync = None
        if self.values['sync']:
            sync = copying.SyncTarget(
                self.name, self.engine if found else None, target,
                self.values['container-to'] or '',
                tuple(m.get('Destination') or '' for m in (found or {}).get('Mounts') or []))
        engine, config = self._side('container-from')
        try:
            with engine_errors(self.name, config):
                return target, copying.copies_to_make(engine, self.copies, source, target,
                                                      self.done, sync)
        except copying.CopyError as exc:
            raise self._copy_error(exc) from None

    def _copy_error(self, exc: copying.CopyError) -> zc.buildout.UserError:
        """One line under the option the failure is about."""
        option = 'sync' if isinstance(exc, copying.SyncError) else 'paths'
        return zc.buildout.UserError(f'{self.name}: option {option}: {exc}')

    def act(self, decision: Decision) -> list[str]:
        if 'made' in decision.found:
            target, made = decision.found['target'], decision.found['made']
        else:  # a container made first: read now that it is (it is one line if it is not)
            target, made = self._copies_to_make()
        # A line left by the decision though a copy was due keeps its earlier record.
        left = {one.copy.text for one, change in zip(made, decision.changes)
                if change.action == 'none' and one.why is not None}
        # Each line as decided: left when its change is none, copied (why: its reasons) else.
        made = [dataclasses.replace(one, why=None if change.action == 'none' else one.why or
                                    ', '.join(r.text() for r in change.reasons) or change.action)
                for one, change in zip(made, decision.changes)]
        written: list[str] = []
        try:
            record = copying.make_copies(self.engine, made, target, self.log, self.name,
                                         self.labels(self.identity()), written)
            for text in left:
                if text in self.done:
                    record[text] = self.done[text]
                else:
                    record.pop(text, None)
            os.makedirs(self.location, exist_ok=True)
            atomicfile.write_text(os.path.join(self.location, RECORD),
                                  json.dumps(record, indent=1, sort_keys=True), 0o644)
        except copying.CopyError as exc:
            self._take_back(written)
            raise self._copy_error(exc) from None
        except OSError as exc:
            self._take_back(written)
            raise zc.buildout.UserError(f'{self.name}: option location: cannot record the '
                                        f'copies in {self.location}: {exc.strerror}') from None
        if self.values['keep'] or target:
            return []
        return [copy.target for copy in self.copies]

    def _take_back(self, written: list[str]) -> None:
        """With ``keep = false``, what a failed run wrote on the host goes: buildout only
        removes the files of a part that installed, and a copied key must not stay."""
        if self.values['keep'] or not written:
            return
        try:
            copying.remove_on_host(written)
        except copying.CopyError as exc:
            self.log.warning('%s (it was copied before the failure)', exc)
        else:
            self.log.info('removed %s: the copy failed (keep = false)', ', '.join(written))

    def _inspect(self, option: str) -> dict[str, Any] | None:
        """The container an option names, inspected on its own engine."""
        engine, config = self._side(option)
        with engine_errors(self.name, config):
            return engine.inspect('containers', self.values[option])

    def _container(self, option: str) -> str | None:
        found = self._details(option)
        return found['Id'] if found else None

    def _details(self, option: str) -> dict[str, Any] | None:
        """The container an option names, inspected (``None``: the option names none, that
        side is the host); one it names that does not exist is one line."""
        name = self.values[option]
        if not name:
            return None
        found = self._inspect(option)
        if found is None:
            where = 'the Docker engine' if option == 'container-to' or \
                self.values['from-engine'] is None else f'{self.from_config.describe()} (from-engine)'
            raise zc.buildout.UserError(f'{self.name}: option {option}: no container {name} '
                                        f'on {where}')
        return found

    @classmethod
    def removal_objects(cls, engine: Engine, directory: str, part: str,
                        options: Mapping[str, str]) -> list[Change]:
        """The record of the copies and its directory when nothing else is in it; the
        copies stay where they went (buildout removes those on the host it was given:
        ``keep = false``)."""
        location = options.get('location')
        record = os.path.join(location, RECORD) if location else ''
        if not location or not os.path.isfile(record):
            return []
        why = [state('its part was removed')]
        found = [Change('file', record, 'remove', why)]
        if os.listdir(location) == [RECORD]:
            found.append(Change('directory', location, 'remove', why))
        return found


uninstall = uninstaller(CopyRecipe)

__all__ = ['CopyRecipe', 'uninstall']
