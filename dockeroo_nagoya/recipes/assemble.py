"""``docker.assemble`` (dockeroo's ``docker.gentoo-build``): a small image from what a builder makes.

A throwaway builder container from ``build-image`` installs ``packages``
into a separate root (``build-root``, ``/target`` by default) with its own
package manager, while ``build-dependencies`` go into the builder only. That
root, then the ``copy`` paths from the builder, then ``layout`` are put into
a throwaway container of ``base-image`` (``scratch``: nothing), ``script``
runs there and the container is committed as the image. Both containers go
away; only the image is left, made again exactly when an input changes
(options, scripts, layouts, or the id of the build or base image).

Package managers: Debian's apt (``apt-get --download-only`` against an empty
package database, then ``dpkg -x`` of every package into the root: files
only, no maintainer scripts, no dpkg database) and Gentoo's portage (``use``,
``accept-keywords``, ``mask`` and ``unmask`` go into the builder's
``/etc/portage/package.*``, which is where ``ROOT=... emerge`` reads them).
"""
from __future__ import annotations

import io
import tarfile

import zc.buildout

from ..mechanisms import archives, copying
from ..model import options as opt
from ..model.decisions import Decision
from ..engine.driver import identity_hash
from .base import ImageRecipe, uninstaller
from ..mechanisms.throwaway import (Throwaway, image_config, image_config_options, scratch_image,
                                    script_text)

WORK = '/var/tmp/dockeroo-nagoya'
PORTAGE_FILES = {'use': 'package.use', 'accept-keywords': 'package.accept_keywords',
                 'mask': 'package.mask', 'unmask': 'package.unmask'}
BUILDER_SCRIPTS = ('pre-build-script', 'build-script', 'post-build-script')
#: What each script is for, in the order they run.
SCRIPT_DOCS = {
    'pre-build-script': 'Shell script run in the builder first.',
    'build-script': 'Shell script run in the builder after ``build-dependencies``.',
    'post-build-script': 'Shell script run in the builder after ``packages``.',
    'script': 'Shell script run in the assembling container (``base-image`` with the root), '
              'before the commit.',
}

PORTAGE_CONFIG = f'''
for file in {WORK}/portage/*; do
  kind=${{file##*/}}
  if [ -f "/etc/portage/$kind" ]; then
    cat "$file" >> "/etc/portage/$kind"
  else
    mkdir -p "/etc/portage/$kind"
    cat "$file" > "/etc/portage/$kind/dockeroo-nagoya"
  fi
done
'''
APT_UPDATE = 'ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update -q\n'
INSTALL = {
    'apt': 'export DEBIAN_FRONTEND=noninteractive\n' + APT_UPDATE +
           'apt-get install -q -y --no-install-recommends "$@"\n',
    'portage': 'emerge --quiet-build=y --noreplace "$@"\n',
}
INSTALL_INTO_ROOT = {
    'apt': f'''export DEBIAN_FRONTEND=noninteractive
work={WORK}/apt
rm -rf "$work"; mkdir -p "$work/archives/partial"; : > "$work/status"
{APT_UPDATE}apt-get -q -y -o Dir::State::status="$work/status" -o Dir::Cache::archives="$work/archives" \\
  -o APT::Install-Recommends=false --download-only install "$@"
for deb in "$work"/archives/*.deb; do echo "unpacking ${{deb##*/}}"; dpkg -x "$deb" "$BUILD_ROOT"; done
# Merge /usr as the builder does, so the root lays cleanly over a merged base image.
for dir in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$dir" ] && [ -d "$BUILD_ROOT/$dir" ] && [ ! -L "$BUILD_ROOT/$dir" ]; then
    mkdir -p "$BUILD_ROOT/usr/$dir"
    cp -a "$BUILD_ROOT/$dir/." "$BUILD_ROOT/usr/$dir/"
    rm -rf "$BUILD_ROOT/$dir"
    ln -s "usr/$dir" "$BUILD_ROOT/$dir"
  fi
done
rm -rf "$work"
''',
    'portage': 'ROOT="$BUILD_ROOT" emerge --quiet-build=y --root-deps=rdeps --oneshot "$@"\n',
}


def detected(scripts: dict[str, str]) -> str:
    """A script that picks the package manager the builder has."""
    return (f'if command -v apt-get >/dev/null 2>&1; then\n{scripts["apt"]}'
            f'elif command -v emerge >/dev/null 2>&1; then\n{scripts["portage"]}'
            'else echo "the builder has neither apt-get nor emerge" >&2; exit 1; fi\n')


def script_options(prefix: str, aliases: tuple[str, ...] = ()) -> tuple[opt.Option, ...]:
    """A script option with its ``-shell`` and ``-user``."""
    return (opt.Option(prefix, script_text, aliases=aliases,
                       doc=SCRIPT_DOCS.get(prefix, 'Shell script.')),
            opt.Option(f'{prefix}-shell', opt.text, default='/bin/sh',
                       aliases=tuple(f'{a}-shell' for a in aliases),
                       doc=f'The shell that runs ``{prefix}``.'),
            opt.Option(f'{prefix}-user', opt.text, aliases=tuple(f'{a}-user' for a in aliases),
                       doc=f'The user that runs ``{prefix}``.'))


def image_or_scratch(raw: str) -> str:
    value = raw.strip()
    return value if value == 'scratch' else opt.image_reference(value)


class AssembleRecipe(ImageRecipe):
    """An image assembled from a builder's output root."""

    recipe = 'docker.assemble'
    table = (
        opt.Option('name', opt.text, identity=False,
                   doc="The image's name (default: the part's name); ``${part:image}``."),
        opt.Option('tag', opt.text, identity=False, doc="The image's tag (default ``latest``)."),
        opt.Option('build-image', opt.image_reference, required=True,
                   doc="The builder's image, run as a throwaway container."),
        opt.Option('build-layout', opt.existing_directory, identity=False,
                   doc="A host directory laid over the builder's ``/``."),
        opt.Option('build-volumes-from', opt.words, default='',
                   doc='Containers whose volumes the builder mounts.'),
        opt.Option('build-env', opt.key_values, default='',
                   doc="The builder's environment: ``KEY=VALUE`` lines."),
        opt.Option('build-root', opt.text, default='/target',
                   doc='Where the packages go in the builder (``$BUILD_ROOT``).'),
        *(option for name in BUILDER_SCRIPTS for option in script_options(name)),
        opt.Option('build-dependencies', opt.words, default='',
                   doc='Packages installed into the builder only.'),
        opt.Option('packages', opt.words, default='',
                   doc=('Packages installed into ``build-root`` (apt: unpacked with ``dpkg -x``; '
                        'portage: ``ROOT=... emerge``).')),
        opt.Option('package-manager', opt.one_of('auto', 'apt', 'portage'), default='auto',
                   doc='``auto`` (detected), ``apt`` or ``portage``.'),
        *(opt.Option(name, opt.lines, default='',
                     doc=f"portage: lines of the builder's ``/etc/portage/{PORTAGE_FILES[name]}``")
          for name in PORTAGE_FILES),
        opt.Option('base-image', image_or_scratch, default='scratch',
                   doc='The image the root is put into (``scratch``: empty).'),
        opt.Option('copy', opt.text, default='',
                   doc=('``SOURCE [TARGET]`` lines: paths from the builder put into the image (a '
                        'directory ends with ``/``).')),
        opt.Option('layout', opt.existing_directory, identity=False,
                   doc='A host directory put into the image after the root and ``copy``.'),
        opt.Option('layout-uid', opt.integer(0, opt.MAX_ID), default='0',
                   doc="Owner of the ``layout``'s files."),
        opt.Option('layout-gid', opt.integer(0, opt.MAX_ID), default='0',
                   doc="Group of the ``layout``'s files."),
        *script_options('script', aliases=('assemble-script',)),
        opt.Option('volumes-from', opt.words, default='',
                   doc='Containers whose volumes the assembling container mounts.'),
        opt.Option('keep', opt.boolean, default='false', identity=False,
                   doc='Keep the image when the part is removed.'),
        *image_config_options(volumes=True),
    )

    def configure(self) -> None:
        self.image_from_options()
        values = self.values
        if not values['build-root'].startswith('/') or values['build-root'].rstrip('/') == '':
            raise opt.invalid(self.name, 'build-root', 'an absolute path below /', values['build-root'])
        portage = [name for name in PORTAGE_FILES if values[name]]
        if portage and values['package-manager'] == 'apt':
            raise opt.invalid(self.name, portage[0], 'nothing with package-manager = apt '
                              '(it is a portage option)', '\n'.join(values[portage[0]]))
        try:
            self.copies = copying.parse_paths(values['copy'], False, False, self.directory) \
                if values['copy'].strip() else []
        except opt.Invalid as exc:
            raise opt.invalid(self.name, 'copy', str(exc), values['copy']) from None
        self.layout_digest = archives.tree_digest(
            values['layout'], values['layout-uid'], values['layout-gid']) if values['layout'] else None
        self.build_layout_digest = archives.tree_digest(values['build-layout']) \
            if values['build-layout'] else None
        # In the options, so that buildout reinstalls the part when a file changes.
        self.options['input-digest'] = identity_hash([self.layout_digest, self.build_layout_digest])

    def made_identity(self) -> tuple[str, dict[str, str]]:
        """The identity of the image from the ids of its build and base images, read now."""
        values = self.values
        build_id = self.local_image_id('build-image')
        base_id = 'scratch' if values['base-image'] == 'scratch' else \
            self.local_image_id('base-image')
        return self.image_identity(**{
            'build-image-id': build_id, 'base-image-id': base_id, 'layout': self.layout_digest,
            'build-layout': self.build_layout_digest})

    def image_inputs(self) -> tuple[str, dict[str, str]]:
        return self.made_identity()

    def act(self, decision: Decision) -> list[str]:
        self.make_image(decision, self.build)
        return []

    def build(self, labels: dict[str, str]) -> str:
        values = self.values
        env = {**values['build-env'], 'BUILD_ROOT': values['build-root']}
        with Throwaway(self.engine, values['build-image'], self.name, labels, what='builder',
                       volumes_from=values['build-volumes-from'], log=self.log) as builder:
            if values['build-layout']:
                builder.put('/', archives.tar_stream(
                    lambda tar: archives.add_directory(tar, values['build-layout'])))
            builder.run('setup', 'mkdir -p "$BUILD_ROOT"', user='0', env=env)
            self.configure_portage(builder, env)
            self.run_builder_script(builder, 'pre-build-script', env)
            if values['build-dependencies']:
                builder.run('build-dependencies', self.package_script(INSTALL), user='0', env=env,
                            args=values['build-dependencies'])
            self.run_builder_script(builder, 'build-script', env)
            if values['packages']:
                builder.run('packages', self.package_script(INSTALL_INTO_ROOT), user='0', env=env,
                            args=values['packages'])
            self.run_builder_script(builder, 'post-build-script', env)
            return self.assemble(builder, labels)

    def assemble(self, builder: Throwaway, labels: dict[str, str]) -> str:
        """Lay the builder's root, copies and layout over the base image and commit."""
        values = self.values
        base = scratch_image(self.engine) if values['base-image'] == 'scratch' else values['base-image']
        config = image_config(values)
        with Throwaway(self.engine, base, self.name, labels, what='assemble container',
                       shell=values['script-shell'], volumes_from=values['volumes-from'],
                       log=self.log) as box:
            chunks, _ = builder.get(values['build-root'].rstrip('/') + '/.')
            box.put('/', chunks)
            for copy in self.copies:
                try:
                    copying.write_container(self.engine, box.id or '',
                                            copying.read_container(self.engine, builder.id or '', copy))
                except copying.CopyError as exc:
                    raise zc.buildout.UserError(
                        f'{self.name}: option copy: {exc} (the builder, from '
                        f'{values["build-image"]})') from None
            if values['layout']:
                box.put('/', archives.tar_stream(lambda tar: archives.add_directory(
                    tar, values['layout'], uid=values['layout-uid'], gid=values['layout-gid'])))
            if values['script']:
                box.run('script', values['script'], user=values['script-user'],
                        env=values['env'], workdir=values['working-dir'])
            return box.commit(config, labels)

    def configure_portage(self, builder: Throwaway, env: dict[str, str]) -> None:
        """``use`` and friends into the builder's /etc/portage/package.* (file or directory)."""
        wanted = {PORTAGE_FILES[name]: self.values[name] for name in PORTAGE_FILES
                  if self.values[name]}
        if not wanted:
            return
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w') as tar:
            for name, entries in wanted.items():
                data = ''.join(f'{entry}\n' for entry in entries).encode()
                info = tarfile.TarInfo(f'{WORK.lstrip("/")}/portage/{name}')
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        builder.put('/', buf.getvalue())
        builder.run('portage configuration', PORTAGE_CONFIG, user='0', env=env)

    def run_builder_script(self, builder: Throwaway, option: str, env: dict[str, str]) -> None:
        if self.values[option]:
            builder.run(option, self.values[option], shell=self.values[f'{option}-shell'],
                        user=self.values[f'{option}-user'], env=env)

    def package_script(self, scripts: dict[str, str]) -> str:
        manager = self.values['package-manager']
        return detected(scripts) if manager == 'auto' else scripts[manager]


uninstall = uninstaller(AssembleRecipe)

__all__ = ['AssembleRecipe', 'uninstall']
