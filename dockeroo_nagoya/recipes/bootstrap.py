"""``docker.bootstrap`` (dockeroo's ``docker.gentoo-bootstrap``): an image from a root filesystem.

No registry needed: the root is made on the host by ``rootfs-command`` (say
``debootstrap``) and/or taken from ``archives`` (tarballs by path or URL,
laid over it in order), then ``layout`` is laid over that, and the lot is
imported as one layer. A ``script`` may then run in a container of the new
image, committed into it (``commit = true``, the default). The image is made
again exactly when an input changes: the archives' content (their sha256),
the command, the layout's files, the script or an option.
"""
from __future__ import annotations

import collections
import os
import shlex
import subprocess
import tempfile

import zc.buildout

from ..mechanisms import archives
from ..model import options as opt
from ..model.decisions import Decision
from ..engine.driver import identity_hash
from .base import ImageRecipe, uninstaller
from ..mechanisms.throwaway import Throwaway, binds, image_config, image_config_options, script_text


class BootstrapRecipe(ImageRecipe):
    """An image imported from archives, a rootfs command and a layout."""

    recipe = 'docker.bootstrap'
    table = (
        opt.Option('name', opt.text, identity=False,
                   doc="The image's name (default: the part's name); ``${part:image}``."),
        opt.Option('tag', opt.text, identity=False, doc="The image's tag (default ``latest``)."),
        opt.Option('archives', opt.text, default='', identity=False, aliases=('archive',),
                   doc=('Lines of ``URL-or-path [/prefix] [sha256:DIGEST]``: tarballs (plain, gzip,'
                        ' bzip2 or xz) laid over the root in order; downloads cached.')),
        opt.Option('rootfs-command', opt.text,
                   doc=('A host command that fills the root (``{rootfs}`` and ``$ROOTFS`` name it),'
                        ' run first.')),
        opt.Option('layout', opt.existing_directory, identity=False,
                   doc='A host directory laid over the root last (owners and modes kept).'),
        opt.Option('script', script_text, aliases=('build-script',),
                   doc=('Shell script run in a throwaway container of the new image, then '
                        'committed.')),
        opt.Option('script-shell', opt.text, default='/bin/sh', aliases=('build-shell',),
                   doc='The shell that runs ``script``.'),
        opt.Option('script-user', opt.text, doc='The user that runs ``script``.'),
        opt.Option('commit', opt.boolean, default='true',
                   doc='Commit the container the script ran in as the image.'),
        opt.Option('volumes', opt.text, default='',
                   doc="``SOURCE:/path[:ro]`` binds for the script's container."),
        opt.Option('volumes-from', opt.words, default='',
                   doc="Containers whose volumes the script's container mounts."),
        opt.Option('keep', opt.boolean, default='false', identity=False,
                   doc='Keep the image when the part is removed.'),
        *image_config_options(volumes=False),
    )

    def configure(self) -> None:
        made = (self.options.get('image') or '').strip()
        if made:  # dockeroo's example names the image it makes with image
            named = (self.options.get('name') or '').strip()
            if named and named != made:
                raise opt.invalid(self.name, 'image', f'the image to make, or name, not both '
                                  f'(name = {named})', made)
            self.options['name'] = made
        self.image_from_options()
        values = self.values
        try:
            self.archives = archives.parse_archives(self.directory)(values['archives'])
        except opt.Invalid as exc:
            raise opt.invalid(self.name, 'archives', str(exc), values['archives']) from None
        try:
            self.binds = binds(self.directory)(values['volumes'])
        except opt.Invalid as exc:
            raise opt.invalid(self.name, 'volumes', str(exc), values['volumes']) from None
        if not self.archives and not values['rootfs-command']:
            raise opt.invalid(self.name, 'archives', 'at least one archive, or a rootfs-command')
        self.downloads = archives.Downloads(self.buildout['buildout'], self.directory)
        try:
            self.digests = [archives.content_digest(a, self.downloads) for a in self.archives]
        except archives.ArchiveError as exc:
            raise zc.buildout.UserError(f'{self.name}: option archives: {exc}') from None
        self.layout_digest = archives.tree_digest(values['layout']) if values['layout'] else None
        # In the options, so that buildout reinstalls the part when a file changes.
        self.options['input-digest'] = identity_hash([self.digests, self.layout_digest])

    def made_identity(self) -> tuple[str, dict[str, str]]:
        return self.image_identity(
            archives=[[digest, archive.prefix] for digest, archive in zip(self.digests, self.archives)],
            layout=self.layout_digest)

    def image_inputs(self) -> tuple[str, dict[str, str]]:
        return self.made_identity()

    def act(self, decision: Decision) -> list[str]:
        self.make_image(decision, self.build)
        return []

    def build(self, labels: dict[str, str]) -> str:
        values = self.values
        try:
            layers = [archives.Layer(archives.local_file(a, self.downloads), a.prefix)
                      for a in self.archives]
            for layer in layers:
                layer.names()  # checked before anything runs or reaches the engine
        except archives.ArchiveError as exc:
            raise zc.buildout.UserError(f'{self.name}: option archives: {exc}') from None
        config = image_config(values, volumes=False)
        parts = self.buildout['buildout'].get('parts-directory') or self.directory
        os.makedirs(parts, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f'{self.name}-rootfs-', dir=parts,
                                         ignore_cleanup_errors=True) as rootfs:
            if values['rootfs-command']:
                self.run_rootfs_command(values['rootfs-command'], rootfs)
                layers.insert(0, archives.Layer(rootfs, is_directory=True))
            if values['layout']:
                layers.append(archives.Layer(values['layout'], is_directory=True))
            self.log.info('importing the root filesystem of %s', self.image)
            try:
                fill = archives.root_filesystem(layers)
                image_id = archives.import_image(self.engine, archives.tar_stream(fill),
                                                 config.changes(labels))
            except archives.ArchiveError as exc:
                raise zc.buildout.UserError(f'{self.name}: {exc}') from None
        if values['script']:
            with Throwaway(self.engine, image_id, self.name, labels, what='new image',
                           shell=values['script-shell'], binds=self.binds,
                           volumes_from=values['volumes-from'], log=self.log) as box:
                box.run('script', values['script'], user=values['script-user'],
                        env=values['env'], workdir=values['working-dir'])
                if values['commit']:
                    image_id = box.commit(config, labels)
        return image_id

    def run_rootfs_command(self, command: str, rootfs: str) -> None:
        """Run the host command that fills ``{rootfs}``; a failure says how and ends the build."""
        line = command.replace('{rootfs}', shlex.quote(rootfs))
        self.log.info('running rootfs-command: %s', line)
        tail: collections.deque[str] = collections.deque(maxlen=15)
        process = subprocess.Popen(['/bin/sh', '-c', line], cwd=self.directory,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, env={**os.environ, 'ROOTFS': rootfs})
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                text = raw.decode('utf-8', 'replace').rstrip()
                if text:
                    tail.append(text)
                    self.log.debug('rootfs-command | %s', text)
            code = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if code != 0:
            if tail:
                self.log.error('%s: last output of rootfs-command:\n%s', self.name,
                               '\n'.join('  ' + text for text in tail))
            last = ' '.join(tail[-1].split()) if tail else 'no output'
            raise zc.buildout.UserError(
                f'{self.name}: rootfs-command exited with code {code}: {last}')


uninstall = uninstaller(BootstrapRecipe)

__all__ = ['BootstrapRecipe', 'uninstall']
