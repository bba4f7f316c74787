"""``docker.diskimage`` (dockeroo's ``docker.gentoo-diskimage``): a disk image file from an image.

A throwaway builder container from ``build-image`` runs ``prepare-script``;
the whole filesystem of ``base-image`` is unpacked into ``build-root``
inside it; ``build-script`` makes ``image-file`` (for instance with
``mke2fs -d``, which needs no loop device and no privileges), and that file
is copied to the part's ``location``. ``privileged = true`` gives the
builder loop devices and mounts for scripts that want them. The file is made
again only when the id of either image, a script or another option changes;
its identity is kept next to it.
"""
from __future__ import annotations

import contextlib
import json
import os
import posixpath
import tarfile
from typing import Any

import zc.buildout

from ..mechanisms import archives, atomicfile, readfiles
from ..model import options as opt
from ..model.decisions import Change, Decision, Reason, state
from ..engine.driver import identity_hash
from .base import Recipe, uninstaller
from ..mechanisms.throwaway import Throwaway, script_text


class DiskImageRecipe(Recipe):
    """A file made in a builder from an image's filesystem."""

    recipe = 'docker.diskimage'
    kind = 'files'
    table = (
        opt.Option('build-image', opt.image_reference, required=True,
                   doc='The image of the throwaway container that makes the file.'),
        opt.Option('base-image', opt.image_reference, required=True,
                   doc='The image whose whole filesystem is unpacked into ``build-root``.'),
        opt.Option('build-root', opt.text, required=True,
                   doc="Where the base image's files go in the builder (``$BUILD_ROOT``)."),
        opt.Option('image-file', opt.text, required=True,
                   doc='The file ``build-script`` makes in the builder (``$IMAGE_FILE``).'),
        opt.Option('prepare-script', script_text, doc='Shell script run in the builder first.'),
        opt.Option('build-script', script_text,
                   doc='Shell script that makes ``image-file`` from ``build-root``.'),
        opt.Option('build-script-shell', opt.text, default='/bin/sh',
                   doc='The shell of both scripts.'),
        opt.Option('build-script-user', opt.text, doc='The user of both scripts.'),
        opt.Option('build-volumes-from', opt.words, default='',
                   doc='Containers whose volumes the builder mounts.'),
        opt.Option('privileged', opt.boolean, default='false',
                   doc='Give the scripts loop devices and mounts.'),
        opt.Option('location', opt.path, identity=False,
                   doc='Where the file is copied to (default ``parts/PART``); ``${part:path}``.'),
    )

    def configure(self) -> None:
        values = self.values
        for option in ('build-root', 'image-file'):
            path = values[option]
            if not path.startswith('/') or posixpath.normpath(path) == '/':
                raise opt.invalid(self.name, option, 'an absolute path below / in the builder', path)
        parts = self.buildout['buildout'].get('parts-directory') or \
            os.path.join(self.directory, 'parts')
        self.location = values['location'] or os.path.join(parts, self.name)
        self.path = os.path.join(self.location, posixpath.basename(values['image-file']))
        self.options['location'] = self.location
        self.options['path'] = self.path

    def decide(self, fresh: bool) -> Decision:
        """Make the file again when the identity of its inputs (the options and the two
        images' ids) is not the one recorded beside it, or it is gone."""
        inputs = {'build-image': self.local_image_id('build-image'),
                  'base-image': self.local_image_id('base-image')}
        identity = self.identity(**inputs)
        found = {'identity': identity, 'inputs': inputs}
        before = _read_record(os.path.join(self.location, '.dockeroo-nagoya.json'))
        if before.get('identity') == identity and os.path.isfile(self.path):
            return Decision([Change('file', self.path, 'none')], found=found, fresh=fresh)
        if not os.path.isfile(self.path):
            return Decision([Change('file', self.path, 'create')], found=found, fresh=fresh)
        changed = sorted(k for k, v in {**self.identity_values(), **inputs}.items()
                         if before.get('inputs', {}).get(k) != _digest(v))
        return Decision([Change('file', self.path, 'update', [
            Reason.of(key) for key in changed] or [state('its inputs changed')])],
            found=found, fresh=fresh)

    def act(self, decision: Decision) -> list[str]:
        identity, inputs = decision.found['identity'], decision.found['inputs']
        change = decision.changes[0]
        record = os.path.join(self.location, '.dockeroo-nagoya.json')
        if change.action == 'none':
            return [self.location]
        if change.action == 'update':
            self.log.info('making %s again: %s', self.path,
                          ', '.join(r.text() for r in change.reasons))
        else:
            self.log.info('making %s', self.path)
        os.makedirs(self.location, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(record)
        size = self.build(self.labels(identity))
        atomicfile.write_text(record, json.dumps({'identity': identity, 'inputs': {
            k: _digest(v) for k, v in {**self.identity_values(), **inputs}.items()}}))
        self.log.info('made %s (%d bytes)', self.path, size)
        return [self.location]

    def build(self, labels: dict[str, str]) -> int:
        values = self.values
        root = values['build-root'].rstrip('/')
        env = {'BUILD_ROOT': root, 'IMAGE_FILE': values['image-file']}
        with Throwaway(self.engine, values['build-image'], self.name, labels, what='builder',
                       volumes_from=values['build-volumes-from'],
                       privileged=values['privileged'], log=self.log) as builder:
            self.run_script(builder, 'prepare-script', env)
            with Throwaway(self.engine, values['base-image'], self.name, labels,
                           what='base image container', log=self.log) as base:
                self.log.info('unpacking the filesystem of %s into %s', values['base-image'], root)

                def fill(tar: tarfile.TarFile) -> None:
                    archives.add_stream(tar, base.export(), prefix=root,
                                        skip=archives.ENGINE_FILES)

                builder.put('/', archives.tar_stream(fill))
            self.run_script(builder, 'build-script', env)
            try:
                chunks, _ = builder.get(values['image-file'])
                return archives.extract_file(chunks, self.path)
            except FileNotFoundError:
                raise zc.buildout.UserError(
                    f'{self.name}: option image-file: the scripts did not make '
                    f'{values["image-file"]} in the builder') from None
            except archives.ArchiveError as exc:
                raise zc.buildout.UserError(f'{self.name}: option image-file: {exc}') from None

    def run_script(self, builder: Throwaway, option: str, env: dict[str, str]) -> None:
        if self.values[option]:
            builder.run(option, self.values[option], shell=self.values['build-script-shell'],
                        user=self.values['build-script-user'], env=env)


def _digest(value: Any) -> str:
    return identity_hash(value)[:12]


def _read_record(path: str) -> dict[str, Any]:
    """The record of the last build; an unreadable one only means building again."""
    try:
        return readfiles.read_record(path)
    except readfiles.Unreadable:
        return {}


uninstall = uninstaller(DiskImageRecipe)

__all__ = ['DiskImageRecipe', 'uninstall']
