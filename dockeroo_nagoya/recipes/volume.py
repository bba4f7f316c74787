"""``docker.volume``: a named volume whose data is never lost silently.

A reinstall adopts the existing volume. When the options really need a new
volume (driver, driver options, labels are fixed at creation), the content
is archived into the backup directory, the volume made anew and the content
put back. Removing the part keeps the volume unless ``keep = false``; then
its content is archived first, unless ``archive = false`` says the content is
disposable: a builder machine's private keys, which must leave with their
part and never land on the disk of the machine that runs buildout. That
switch is explicit because the default is the promise that no data is
destroyed silently.

Making a volume anew is safe against an interrupted run: once the content
is archived, a marker in the backup directory names the archive until the
content is back, so a run killed between removing the old volume and
restoring into the new one is finished by the next run (which restores
from the archive) instead of leaving an empty volume.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Mapping

import zc.buildout

from ..mechanisms import archives, atomicfile, containers, members
from ..mechanisms.callbacks import Callbacks
from ..model import options as opt
from ..mechanisms import volumedata
from ..model.decisions import Change, ContainerRemoved, Decision, Promise, state
from ..engine.driver import Engine
from ..engine.labels import labels_of
from .base import Recipe, uninstaller


def backup_directory(directory: str, options: Mapping[str, str]) -> str:
    raw = options.get('backup-directory') or os.path.join(directory, 'var', 'backups')
    return os.path.join(directory, os.path.expanduser(raw.strip()))


class VolumeRecipe(Recipe):
    """A named Docker volume."""

    recipe = 'docker.volume'
    kind = 'volumes'
    owns = ('volumes',)
    keep_default = True
    kept_kinds = ('volume',)
    table = (
        opt.Option('name', opt.name,
                   doc="The volume's name (default: the part's name); ``${part:name}``."),
        opt.Option('driver', opt.text, default='local', doc='The volume driver.'),
        opt.Option('driver-opts', opt.key_values, default='', doc='``KEY=VALUE`` driver options.'),
        opt.Option('labels', opt.key_values, default='', doc='``KEY=VALUE`` labels.'),
        opt.Option('keep', opt.boolean, default='true', identity=False,
                   doc='Leave the volume when the part is removed (else archived, then removed).'),
        opt.Option('archive', opt.boolean, default='true', identity=False,
                   doc=('Archive the content before the volume is removed (``false``: disposable '
                        'content).')),
        opt.Option('restore-from', opt.existing_file, identity=False,
                   doc='An archive made by this recipe, to seed a new volume.'),
        opt.Option('backup-directory', opt.path, identity=False,
                   doc='Where archives go (default ``var/backups``).'),
    )

    def configure(self) -> None:
        self.name_from_part()
        self.backups = backup_directory(self.directory, self.options)

    def identity_values(self) -> dict[str, Any]:
        values = super().identity_values()
        values.pop('name')
        return values

    def decide(self, fresh: bool) -> Decision:
        """Create, recreate (new driver or labels: its content carried over), finish an
        interrupted recreate, or nothing; then the part's volumes under old names."""
        name = self.values['name']
        identity = self.identity()
        pending = self._pending_restore()
        current = self.find_named('volumes', name, 'volume')
        found: dict[str, Any] = {'identity': identity, 'pending': pending, 'current': current}
        promises: list[Promise] = []
        if current is None:
            change = Change('volume', name, 'create', [state(
                'restored from the archive of an interrupted recreate' if pending else
                f'seeded from {self.values["restore-from"]}' if self.values['restore-from'] else
                'it was removed' if self.installed_before(fresh) else '')])
        elif self.identity_of(current) != identity:
            change = Change('volume', name, 'recreate', [state(
                f'{_changes(current, self.values) or "its identity changed"}: its content is '
                f'archived and put back' + ('' if self.values['archive'] else
                                            ', then the archive removed (archive = false)'))],
                current['Name'])
            found['users'] = self.users_to_remove(current)
            promises = [ContainerRemoved(self.engine_config, user['Names'][0].lstrip('/'),
                                         user['Id'], f'volume {name} is made anew by {self.name}')
                        for user in found['users']]
        elif pending is not None:
            change = Change('volume', name, 'update', [state(
                'finishing an interrupted recreate: its content is restored')], current['Name'])
        else:
            change = Change('volume', name, 'none', [], current['Name'])
        change.reasons[:] = [r for r in change.reasons if r.note]
        old = self.decide_old_names(name, fresh, self.values['keep'],
                                    (state(_removal(self.values['archive'])),))
        return Decision([change, *old], promises, found, fresh)

    def act(self, decision: Decision) -> list[str]:
        try:
            return self._act(decision)
        except members.ArchiveError as exc:
            raise _archive_error(self.name, self.values['name'], exc) from None

    def _act(self, decision: Decision) -> list[str]:
        name = self.values['name']
        found = decision.found
        identity, pending, current = found['identity'], found['pending'], found['current']
        action, old = decision.action(name), decision.changes[1:]
        if action == 'none' and not old and not decision.fresh:
            return []  # the everyday rerun: the run's one listing of volumes stays valid
        if action in ('create', 'recreate'):
            self._check_driver()
        made: dict[str, Any] | None = None
        if action == 'create':
            if pending is None and self.values['restore-from']:
                self._check_archive(self.values['restore-from'])
            self.log.info('creating volume %s', name)
            made = self._create(identity)
            if pending is not None:
                self._finish_restore(pending, created=True)
            elif self.values['restore-from']:
                self.log.info('seeding volume %s from %s', name, self.values['restore-from'])
                volumedata.restore(self.engine, name, self.values['restore-from'],
                                   links=members.IN_TARGET)
        elif action in ('recreate', 'update'):
            assert current is not None
            if pending is not None:
                # First the content back, so that a new recreate archives all of it.
                self._finish_restore(pending, created=False)
            if action == 'recreate':
                self._recreate(current, identity, found.get('users'))
        self._settle_old_names(name, old, decision.fresh)
        if made is not None and pending is None and not self.values['restore-from'] and not old:
            self.engine.created('volumes', self.directory, made)   # the next part's look
        else:                                                       # asks nothing again
            self.engine.forget('volumes')
        return []

    def _check_archive(self, path: str) -> None:
        """Refuse an archive whose members would land outside the volume, before making it."""
        try:
            archives.check(path, links=members.IN_TARGET)
        except archives.ArchiveError as exc:
            raise opt.invalid(self.name, 'restore-from', f'an archive of a volume ({exc})',
                              path) from None

    def _create(self, identity: str) -> dict[str, Any]:
        return self.engine.api.create_volume(
            name=self.values['name'], driver=self.values['driver'],
            driver_opts=self.values['driver-opts'] or None,
            labels=self.labels(identity, self.values['labels']))

    def _check_driver(self) -> None:
        """Name an unknown driver as such, before anything is archived or removed (the
        engine's own refusal reads like any other)."""
        driver = self.values['driver']
        if driver == 'local':
            return
        known = ((self.engine.api.info().get('Plugins') or {}).get('Volume') or [])
        managed = [p.get('Name', '').split(':')[0] for p in self.engine.api.plugins()
                   if p.get('Enabled')]
        if driver not in known and driver.split(':')[0] not in managed:
            raise opt.invalid(self.name, 'driver', 'a volume driver this engine has ('
                              + ', '.join(sorted(set(known) | set(managed))) + ')', driver)

    def _recreate(self, current: dict[str, Any], identity: str,
                  users: list[dict[str, Any]] | None = None) -> None:
        """New driver or labels need a new volume: carry the content over.

        A volume in use cannot be removed, even by stopped containers. When every
        container using it belongs to a part of this configuration (which makes it
        again later in this run: it references the volume), those containers are
        stopped and removed first; any other user refuses the change before
        anything is archived, so a refused change writes no archive.
        """
        name = self.values['name']
        changed = _changes(current, self.values)
        if users is None:  # not read by deciding (a decision that recreates by request)
            users = self.users_to_remove(current)
        self.log.info('recreating volume %s (%s): archiving its content first', name,
                      changed or 'its identity changed')
        for user in users:
            self.log.info('removing container %s (it uses volume %s): its part makes it again '
                          'in this run', user['Names'][0].lstrip('/'), name)
            containers.remove(self.engine, user['Id'], STOP_TIMEOUT,
                              Callbacks(self.name, self.directory, []))
        if users:
            self.engine.forget('containers')
        path, _ = volumedata.backup(self.engine, name, self.backups)
        self.log.info('content of %s archived in %s', name, path)
        marker = self._marker()
        atomicfile.write_text(marker, path + '\n', 0o600)
        try:
            self.engine.api.remove_volume(name)
        except Exception:
            self.log.error('volume %s could not be removed; its archive is %s', name, path)
            os.remove(marker)
            raise
        self._create(identity)
        volumedata.restore(self.engine, name, path)
        os.remove(marker)
        self.log.info('content of %s restored into the new volume', name)
        if not self.values['archive']:
            # The archive only carried the content over: disposable content is not kept
            # on this machine's disk once it is back.
            _discard_archive(path)
            self.log.info('removed the archive %s (archive = false)', path)

    def users_to_remove(self, current: dict[str, Any]) -> list[dict[str, Any]]:
        """The containers a recreate removes first (their parts make them again in this
        run); any other user refuses the change."""
        name = self.values['name']
        users = self.engine.users('volumes', name)
        others = [u for u in users if not self.replaced_in_this_run(u)]
        if others:
            raise zc.buildout.UserError(
                f'{self.name}: volume {name} must be made anew '
                f'({_changes(current, self.values) or "its identity changed"}) but is used by '
                f'{", ".join(u["Names"][0].lstrip("/") for u in others)}, which no part of this '
                f'configuration makes again: remove them first')
        return users

    def _marker(self) -> str:
        """The file that names the archive of a volume being made anew, until it is restored."""
        os.makedirs(self.backups, exist_ok=True)
        return os.path.join(self.backups, f'.{self.values["name"]}.restore')

    def _pending_restore(self) -> str | None:
        """The archive an interrupted recreate left to restore, if any."""
        marker = os.path.join(self.backups, f'.{self.values["name"]}.restore')
        try:
            with open(marker, encoding='utf-8') as handle:
                archive = handle.read().strip()
        except FileNotFoundError:
            return None
        if not os.path.isfile(archive):
            raise zc.buildout.UserError(
                f'{self.name}: volume {self.values["name"]} was being made anew when a run was '
                f'interrupted, and its archive {archive} is gone: restore the content by hand, '
                f'then remove {marker}')
        return archive

    def _finish_restore(self, archive: str, created: bool) -> None:
        """Put back the content an interrupted recreate archived (again: restoring is idempotent)."""
        name = self.values['name']
        self.log.info('finishing an interrupted recreate of volume %s: restoring its content '
                      'from %s', name, archive)
        volumedata.restore(self.engine, name, archive)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._marker())
        self.log.info('content of %s restored%s', name, ' into the new volume' if created else '')
        if not self.values['archive']:
            _discard_archive(archive)
            self.log.info('removed the archive %s (archive = false)', archive)

    def _settle_old_names(self, name: str, old: list[Change], fresh: bool) -> None:
        """The part's volumes under old names: their data copied into the new one (on the
        run that renamed it, while it is empty), then kept or removed as decided."""
        if fresh:
            for change in old:
                if volumedata.is_empty(self.engine, name):
                    self._stop_replaced_users(change.object)
                    self.log.info('copying the content of %s (the old name of this part\'s '
                                  'volume) into %s', change.object, name)
                    volumedata.copy_volume(self.engine, change.object, name)
        self.act_on_old_names(old, fresh, lambda engine, change: _remove(
            engine, change.object, False, self.backups, self.log, archive=self.values['archive']))

    def _stop_replaced_users(self, volume: str) -> None:
        """Stop the running containers on the old volume that their parts replace in this
        run anyway, so that what they write until then is in the copy too."""
        for user in self.engine.users('volumes', volume, running=True):
            if self.replaced_in_this_run(user):
                self.log.info('stopping %s before copying the content of %s: its part '
                              'replaces it in this run', user['Names'][0].lstrip('/'), volume)
                containers.stop(self.engine, user['Id'], STOP_TIMEOUT,
                                Callbacks(self.name, self.directory, []))

    @classmethod
    def removal_objects(cls, engine: Engine, directory: str, part: str,
                        options: Mapping[str, str]) -> list[Change]:
        """The base's, saying whether the content is archived first: what a plan shows
        before a part whose data is disposable goes."""
        found = super().removal_objects(engine, directory, part, options)
        # A value that no longer parses archives: a removal never loses data by mistake.
        archive = opt.saved_flag(options, 'archive', True)
        for change in found:
            change.reasons.append(state(_removal(archive)))
        return found

    @classmethod
    def remove_object(cls, engine: Engine, directory: str, part: str,
                      options: Mapping[str, str], change: Change, log: logging.Logger) -> None:
        """A volume is archived first unless the part said its content is disposable."""
        if change.kind != 'volume':
            super().remove_object(engine, directory, part, options, change, log)
            return
        archive = opt.saved_flag(options, 'archive', True)
        try:
            _remove(engine, change.object, False, backup_directory(directory, options), log,
                    archive=archive)
        except members.ArchiveError as exc:
            raise _archive_error(part, change.object, exc) from None


def _changes(current: dict[str, Any], values: dict[str, Any]) -> str:
    """Say which fixed property forces a new volume."""
    said = []
    if current.get('Driver') != values['driver']:
        said.append('driver changed')
    if (current.get('Options') or {}) != (values['driver-opts'] or {}):
        said.append('driver-opts changed')
    user = {k: v for k, v in labels_of(current).items() if not k.startswith('io.dockeroo-nagoya.')}
    if user != values['labels']:
        said.append('labels changed')
    return ', '.join(said)


def _remove(engine: Engine, name: str, keep: bool, backups: str, log: logging.Logger,
            archive: bool = True) -> None:
    """Remove a volume of ours, never without an archive of its content unless the part
    said its content is disposable (``archive = false``)."""
    if keep:
        log.info('keeping volume %s (keep = true); its data stays', name)
        return
    users = engine.users('volumes', name)
    if users:
        names = ', '.join(c['Names'][0].lstrip('/') for c in users)
        raise zc.buildout.UserError(
            f'volume {name} is still used by the containers {names}: remove them first')
    if archive:
        path, _ = volumedata.backup(engine, name, backups)
        log.info('archived volume %s into %s (keep = false)', name, path)
    engine.api.remove_volume(name)
    log.info('removed volume %s%s', name, '' if archive else
             ' and its content, without an archive (archive = false)')


def _archive_error(part: str, volume: str, exc: members.ArchiveError) -> zc.buildout.UserError:
    """One line for content that cannot be archived or put back (a member the rules of
    :mod:`dockeroo_nagoya.mechanisms.members` refuse)."""
    return zc.buildout.UserError(f'{part}: the content of volume {volume} cannot be archived '
                                 f'or restored: {exc}')


def _removal(archive: bool) -> str:
    """How a volume goes, as a plan says it."""
    return 'its content is archived first' if archive else \
        'its content goes with it, without an archive (archive = false)'


def _discard_archive(path: str) -> None:
    """Remove an archive :func:`volumedata.backup` wrote, and its checksum file."""
    for name in (path, path + '.sha256'):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


#: Seconds a container on a renamed volume gets to stop before its content is copied
#: (none when its main process can never see the signal: see containers.stop).
STOP_TIMEOUT = 10

uninstall = uninstaller(VolumeRecipe)

__all__ = ['VolumeRecipe', 'uninstall']
