"""Objects of this buildout that no part accounts for any more, cleaned once per run.

Buildout forgets a part whose install or update failed: it is dropped from
``.installed.cfg``. Its objects stay, labelled with the buildout and the
part, so the next install adopts them. But when the part then leaves the
configuration, buildout has nothing to uninstall, the uninstall hook never
runs, and those objects belong to nobody. A process killed in the middle of
a run leaves throwaway containers, volume helpers and images that were never
tagged the same way.

So once per run and engine, before the first part is installed, updated or
uninstalled (all of the run's configuration has been read and checked by
then, and :mod:`.runlock` keeps any other run of the directory out), this
module removes, of the objects this configuration made (its directory, its
record of installed parts and its machine: :mod:`.ownership`; another
configuration of the directory, or another machine running the same path
against the engine, has orphans of its own that only it can tell):

- containers, images and networks whose part is neither in the
  configuration's record (``.installed.cfg``) nor configured in this run;
- throwaway containers (their ``with`` block is over: no run of the
  configuration is under way);
- untagged images (a build, import or commit that was never tagged); one
  that a container still uses stays;
- volume helper containers that mount one of its volumes.

Volumes are never removed: an orphan volume is reported, with the command
that removes it, because data is never destroyed silently. Objects a part's
uninstall hook left on purpose (``keep = true``) are recorded by id in
:data:`KEPT_NAME` when the part goes, and left alone.
"""
from __future__ import annotations

import configparser
import json
import logging
import os
from typing import Any, Iterable, Mapping

from . import atomicfile, readfiles
from ..run import removals, runlock
from ..engine.errors import APIError, NotFound
from ..engine.driver import Engine, explain
from ..engine.labels import LABEL_BUILDOUT, LABEL_HELPER, LABEL_PART, labels_of
from .throwaway import PREFIX as THROWAWAY_PREFIX

#: Ids (volume names) of the objects parts kept when they were removed, per kind.
KEPT_NAME = '.dockeroo-nagoya.kept.json'

log = logging.getLogger('dockeroo_nagoya')


def _swept_already(engine: Engine) -> bool:
    """Whether this engine was swept for the buildout in this run, under this spelling
    or another one of the same daemon. The daemon's ID (a request) is asked only when a
    second address connects (two spellings of one address are one key: no request):
    most runs name one engine one way."""
    done = engine.run.swept
    if any(other.config.key() == engine.config.key() for other in done) or \
            any(other.daemon == engine.daemon for other in done):
        return True
    done.append(engine)
    return False


def installed_parts(path: str) -> set[str]:
    """The parts ``.installed.cfg`` lists (buildout appends ``[buildout]``; the last wins).

    Only the ``[buildout]`` sections are parsed: the rest of the file is every
    part's recorded options (a system's members among them), which every run's
    sweep would otherwise parse again after buildout did.
    """
    parser = _installed_parser(path, only='buildout')
    if parser is None:
        return set()
    return set((parser.get('buildout', 'parts', fallback='') or '').split())


def _installed_parser(path: str, only: str | None = None
                      ) -> configparser.RawConfigParser | None:
    """``.installed.cfg`` parsed (its section ``only`` alone, when given), or ``None`` when
    it is not there or has no ``[buildout]``."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # options as written
    try:
        with open(path, encoding='utf-8') as handle:
            if only is None:
                parser.read_file(handle)
            else:  # a section header starts its line; a value's further lines are indented
                inside, kept = False, []
                for line in handle:
                    if line.startswith('['):
                        inside = line.split(']', 1)[0] == f'[{only}'
                    if inside:
                        kept.append(line)
                parser.read_string(''.join(kept), path)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise OrphanCheckImpossible(f'{path} cannot be read ({exc})') from None
    return parser if parser.has_section('buildout') else None


def installed_options(path: str) -> dict[str, dict[str, str]]:
    """part -> its recorded options, for the parts ``.installed.cfg`` lists (a part's
    section stays in the file after buildout forgot the part: only ``parts`` says)."""
    parser = _installed_parser(path)
    if parser is None:
        return {}
    parts = (parser.get('buildout', 'parts', fallback='') or '').split()
    return {part: dict(parser.items(part)) if parser.has_section(part) else {}
            for part in parts}


class OrphanCheckImpossible(Exception):
    """The record of installed parts cannot be read: then nothing is removed."""


def sweep_once(engine: Engine, directory: str) -> None:
    """Sweep this buildout's orphans on this engine, the first time a part acts in this run."""
    run = engine.run
    if not runlock.held(run) or directory != run.directory:
        return  # without the lock, a throwaway container may be another run's, still at work
    if _swept_already(engine):
        return
    if not run.parts and not os.path.exists(run.installed):
        # No part of ours is configured (a run that only uninstalls): the record is the
        # one its uninstall hooks noted, and without it nothing can be told apart.
        return
    try:
        known = installed_parts(run.installed) | run.parts
    except OrphanCheckImpossible as exc:
        log.warning('not looking for orphans: %s', exc)
        return
    kept = read_kept(directory)
    swept = Sweep(engine, directory, known, kept)
    swept.containers()
    swept.images()
    swept.networks()
    swept.volumes()
    if swept.changed:
        engine.forget()


class Sweep:
    """One pass over the objects of one buildout on one engine."""

    def __init__(self, engine: Engine, directory: str, known: set[str],
                 kept: Mapping[str, list[str]]) -> None:
        self.engine = engine
        self.api = engine.api
        self.directory = directory
        self.owner = engine.run.owner_of(directory)
        self.known = known
        self.kept = {kind: set(ids) for kind, ids in kept.items()}
        #: Whether anything was removed: only then are the run's shared listings stale.
        self.changed = False

    def orphan(self, kind: str, obj: Mapping[str, Any], key: str) -> str | None:
        """The part of an object nobody accounts for, else ``None``."""
        part = labels_of(dict(obj)).get(LABEL_PART) or '?'
        if part in self.known or key in self.kept.get(kind, ()):
            return None
        return part

    def listed(self, kind: str) -> list[dict[str, Any]]:
        """The objects of ``kind`` whose orphans this configuration may sweep."""
        return [obj for obj in self.engine.owned(kind, self.directory)
                if self.owner.sweeps(labels_of(obj))]

    def containers(self) -> None:
        for container in self.listed('containers'):
            name = _container_name(container)
            part = self.orphan('containers', container, container['Id'])
            if name.startswith(THROWAWAY_PREFIX):
                why = 'a throwaway container an interrupted run left'
            elif part is not None:
                why = f'its part {part} is neither installed nor configured'
            else:
                continue
            if removals.in_hand(self.engine.run, self.engine.config.key(), name):
                continue  # its part's own teardown is removing it in this run
            self._remove_container(container['Id'], name, why)
        owned = {v['Name'] for v in self.listed('volumes')}
        if not owned:
            return
        for helper in self.api.containers(all=True, filters={'label': LABEL_HELPER}):
            if helper.get('State') != 'created' or labels_of(helper).get(LABEL_BUILDOUT):
                continue  # helpers are never started, and never labelled with a buildout
            mounted = {m.get('Name') for m in helper.get('Mounts') or []}
            if mounted & owned:
                self._remove_container(helper['Id'], _container_name(helper),
                                       f'a helper an interrupted run left on the volume '
                                       f'{", ".join(sorted(mounted & owned))}')

    def _remove_container(self, container: str, name: str, why: str) -> None:
        try:
            self.api.remove_container(container, force=True, v=False)
            self.changed = True
            log.info('removed container %s: %s', name, why)
        except NotFound:
            pass
        except APIError as exc:
            log.warning('container %s (%s) not removed: %s', name, why, explain(exc))

    def images(self) -> None:
        if self.changed:
            self.engine.forget('containers')
        for image in self.listed('images'):
            tags = [t for t in image.get('RepoTags') or [] if t != '<none>:<none>']
            part = self.orphan('images', image, image['Id'])
            if part is not None:
                why = f'its part {part} is neither installed nor configured'
            elif not tags:
                why = 'an image an interrupted run never tagged'
            else:
                continue
            for reference in tags or [image['Id']]:
                try:
                    self.api.remove_image(reference)
                    self.changed = True
                    log.info('removed image %s: %s', _short(reference), why)
                except NotFound:
                    pass
                except APIError as exc:
                    # An old image a container still runs on is in use, not orphaned.
                    (log.debug if exc.status_code == 409 else log.warning)(
                        'image %s (%s) not removed: %s', _short(reference), why, explain(exc))

    def networks(self) -> None:
        for network in self.listed('networks'):
            part = self.orphan('networks', network, network['Id'])
            if part is None:
                continue
            why = f'its part {part} is neither installed nor configured'
            users = self.engine.users('networks', network['Name'])
            if users:
                names = ', '.join(sorted(_container_name(c) for c in users))
                log.warning('network %s (%s) not removed: the containers %s use it',
                            network['Name'], why, names)
                continue
            try:
                self.api.remove_network(network['Id'])
                self.changed = True
                log.info('removed network %s: %s', network['Name'], why)
            except NotFound:
                pass
            except APIError as exc:
                log.warning('network %s (%s) not removed: %s', network['Name'], why, explain(exc))

    def volumes(self) -> None:
        for volume in self.listed('volumes'):
            part = self.orphan('volumes', volume, volume['Name'])
            if part is not None:
                log.warning('volume %s belongs to part %s, which is neither installed nor '
                            'configured; its data is kept: remove it with docker volume rm %s '
                            'when it is not needed, or configure the part again',
                            volume['Name'], part, volume['Name'])


# -- what removed parts kept on purpose ------------------------------------------------
def read_kept(directory: str) -> dict[str, list[str]]:
    found = read_record(directory, KEPT_NAME, 'objects kept by removed parts may be reported')
    return {kind: list(ids) for kind, ids in found.items() if isinstance(ids, list)}


def read_record(directory: str, name: str, unreadable: str) -> dict[str, Any]:
    """A JSON object the buildout directory keeps between runs (``{}``: none yet, or one
    that cannot be read: said in a line with what that means, ``unreadable``)."""
    try:
        return readfiles.read_record(os.path.join(directory, name))
    except readfiles.Unreadable as exc:
        log.warning('%s cannot be read (%s): %s', name, exc, unreadable)
        return {}


def write_record(directory: str, name: str, record: Mapping[str, Any]) -> None:
    """Write such a record at once (a reader never sees half of it), keys in their order."""
    atomicfile.write_text(os.path.join(directory, name), json.dumps(record, indent=1))


def released(engine: Engine, directory: str, part: str,
             kinds: Iterable[str] = ('containers', 'images', 'networks', 'volumes'),
             unchanged: bool = False) -> None:
    """After a part's uninstall hook: whatever of it is left was kept on purpose; record it.

    ``kinds``: what the part can have made (each is listed afresh, unless the hook
    removed nothing: ``unchanged``).
    """
    for kind in () if unchanged else kinds:
        engine.forget(kind)
    left = {kind: [obj['Name'] if kind == 'volumes' else obj['Id']
                   for obj in engine.part_objects(kind, directory, part)]
            for kind in kinds}
    if not any(left.values()):
        return
    with engine.run.kept_lock:  # parts are removed in parallel threads (see removals)
        kept = read_kept(directory)
        for kind, ids in left.items():
            kept[kind] = sorted(set(kept.get(kind, [])) | set(ids))
        write_record(directory, KEPT_NAME, dict(sorted(kept.items())))


def _container_name(container: Mapping[str, Any]) -> str:
    names: Iterable[str] = container.get('Names') or [container.get('Name') or container['Id']]
    return next((n for n in names if n.count('/') <= 1), next(iter(names))).lstrip('/')


def _short(reference: str) -> str:
    return reference[:19] if reference.startswith('sha256:') else reference


__all__ = ['sweep_once', 'released', 'installed_parts', 'installed_options',
           'read_record', 'write_record', 'KEPT_NAME']
