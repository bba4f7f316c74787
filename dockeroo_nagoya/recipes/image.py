"""``docker.image`` (nagoya moromi's standard images): an image described by options.

No Dockerfile to write: the options say what goes in, and the recipe
writes the Dockerfile and its build context itself, so the image is rebuilt
exactly when an option, the content of a resource (names, modes, bytes) or
the ``from`` image changes. Unlike moromi, ``VOLUME`` comes after ``runs``
(so what they write under a volume path stays in the image) and a ``runs``
entry does not leave its directory as the image's working directory.
Options: docs/recipes/image.rst.
"""
from __future__ import annotations

import io
import json
import posixpath
import tarfile
import tempfile
from typing import IO, Any

import zc.buildout

from ..run import identities
from ..model import options as opt
from ..mechanisms import resources
from ..model.decisions import Decision
from ..engine.driver import engine_errors, identity_hash
from ..mechanisms.progress import follow_build
from .base import CANDIDATE_OPTIONS, ImageRecipe, uninstaller
from ..mechanisms.throwaway import ImageConfig, command_line, container_paths, ports

#: The resource options, and whether what they copy in is made executable.
RESOURCE_OPTIONS = {'libs': False, 'runs': True, 'entrypoint': True}
#: What each resource option does with its lines.
RESOURCE_DOCS = {
    'libs': 'Resource lines ``HOSTPATH in /DIR`` (for ``/DIR/BASENAME``) or ``HOSTPATH at /PATH``: '
            'files copied in.',
    'runs': 'Resource lines as ``libs``; copied in (executable) and run in order in their own '
            'directory.',
    'entrypoint': 'One resource line, copied in (executable); the ENTRYPOINT, its directory the '
                  'WORKDIR.',
}


class ImageFromOptionsRecipe(ImageRecipe):
    """An image built from a generated Dockerfile (moromi's sections)."""

    recipe = 'docker.image'

    table = (
        opt.Option('from', opt.image_reference, required=True,
                   doc='The base image (required, local).'),
        opt.Option('name', opt.text, identity=False,
                   doc="The image's name (default: the part's name); ``${part:image}``."),
        opt.Option('tag', opt.text, identity=False, doc="The image's tag (default ``latest``)."),
        opt.Option('maintainer', opt.text, doc="The image's maintainer label."),
        # Resource lines, parsed in configure (host paths are relative to the buildout).
        *(opt.Option(option, opt.text, default='', identity=False,
                     doc=RESOURCE_DOCS[option]) for option in RESOURCE_OPTIONS),
        opt.Option('env', opt.key_values, default='', aliases=('envs',),
                   doc="The image's ENV: ``KEY=VALUE`` lines (moromi's ``envs``)."),
        opt.Option('expose', ports, default='', aliases=('exposes',),
                   doc="The image's EXPOSE (moromi's ``exposes``)."),
        opt.Option('volumes', container_paths, default='',
                   doc="The image's VOLUME, after ``runs``."),
        opt.Option('command', command_line, doc="The image's CMD."),
        opt.Option('user', opt.text, doc="The image's USER."),
        opt.Option('working-dir', opt.text,
                   doc="The image's WORKDIR (default: the entrypoint's directory)."),
        opt.Option('labels', opt.key_values, default='', doc='``KEY=VALUE`` labels of the image.'),
        opt.Option('no-cache', opt.boolean, default='false', identity=False,
                   doc="Build without the engine's cache."),
        opt.Option('keep', opt.boolean, default='false', identity=False,
                   doc='Keep the image when the part is removed.'),
        *CANDIDATE_OPTIONS,
    )

    def configure(self) -> None:
        self.image_from_options()
        for option in RESOURCE_OPTIONS:
            raw = self.values[option]
            try:
                self.values[option] = resources.parse(self.directory, single=option == 'entrypoint')(raw)
            except opt.Invalid as exc:
                raise opt.invalid(self.name, option, str(exc), raw) from None
        # What each resource copies in, by option: identity without the host paths.
        self.resource_digests = {
            option: [[r.target, resources.digest(r)] for r in self.values[option]]
            for option in RESOURCE_OPTIONS}
        # In the options, so that buildout reinstalls the part when a file changes.
        self.options['input-digest'] = identity_hash(self.resource_digests)
        with engine_errors(self.name, self.engine_config, 'looking up the from image'):
            from_term = identities.image_term(self.engine, self.directory, self.values['from'])
        if from_term.startswith('absent:'):
            raise opt.invalid(self.name, 'from', 'an image on the Docker engine or made by a part of '
                              'this buildout (docker.pull, docker.build or docker.image: reference '
                              'it as ${part:image})', self.values['from'])
        self.identity_now, self.image_labels = self.image_identity(
            resources=self.resource_digests, **{'from-id': from_term})
        self.expose_identity(self.identity_now)

    def act(self, decision: Decision) -> list[str]:
        self.make_image(decision, lambda labels: self.build(self.base(), labels))
        return []

    def base(self) -> dict[str, Any]:
        """The image ``from`` names, inspected as the build starts."""
        base = self.engine.inspect('images', self.values['from'])
        if base is None:
            raise self.missing_image('from')
        return base

    def dockerfile(self, base: dict[str, Any]) -> str:
        """The Dockerfile: moromi's order, with the configuration after the resources."""
        values = self.values
        said = [f'FROM {base["Id"]}']
        said += ImageConfig(env=tuple(values['env'].items())).changes({})
        for index, resource in enumerate(values['libs']):
            said.append(_copy(f'libs/{index}', resource))
        workdir = (base.get('Config') or {}).get('WorkingDir') or '/'
        for index, resource in enumerate(values['runs']):
            said.append(_copy(f'runs/{index}', resource))
            said.append(f'WORKDIR {posixpath.dirname(resource.target)}')
            said.append(f'RUN {json.dumps([resource.target])}')
        if values['runs']:
            said.append(f'WORKDIR {workdir}')
        for resource in values['entrypoint']:
            said.append(_copy('entrypoint/0', resource))
            said.append(f'WORKDIR {posixpath.dirname(resource.target)}')
            said.append(f'ENTRYPOINT {json.dumps([resource.target])}')
        said += ImageConfig(command=values['command'], expose=values['expose'],
                            user=values['user'], working_dir=values['working-dir'],
                            volumes=values['volumes']).changes({})
        return '\n'.join(said) + '\n'

    def build(self, base: dict[str, Any], labels: dict[str, str]) -> str:
        values = self.values
        user_labels = dict(values['labels'])
        if values['maintainer']:
            user_labels['maintainer'] = values['maintainer']
        with tempfile.TemporaryFile() as context:
            self.write_context(context, self.dockerfile(base))
            context.seek(0)
            stream = self.engine.api.build(
                fileobj=context, custom_context=True, labels={**user_labels, **labels},
                nocache=values['no-cache'], rm=True, forcerm=True, pull=False, decode=True)
            image_id = follow_build(self.name, stream, self.log)
        if image_id is None:
            raise zc.buildout.UserError(f'{self.name}: the engine did not say which image it built')
        return image_id

    def write_context(self, target: IO[bytes], dockerfile: str) -> None:
        """The build context: the Dockerfile and each resource under ``OPTION/INDEX/``."""
        with tarfile.open(fileobj=target, mode='w', format=tarfile.PAX_FORMAT) as tar:
            data = dockerfile.encode()
            info = tarfile.TarInfo('Dockerfile')
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
            for option, executable in RESOURCE_OPTIONS.items():
                for index, resource in enumerate(self.values[option]):
                    try:
                        resources.add(tar, resource, _context_name(f'{option}/{index}', resource),
                                      executable)
                    except OSError as exc:
                        raise zc.buildout.UserError(
                            f'{self.name}: option {option}: {resource.source}: '
                            f'{exc.strerror}') from None


def _context_name(folder: str, resource: resources.Resource) -> str:
    return f'{folder}/{posixpath.basename(resource.source) or "resource"}'


def _copy(folder: str, resource: resources.Resource) -> str:
    """``COPY`` of a resource from the context to its target (a directory's content to the target)."""
    return f'COPY {json.dumps([_context_name(folder, resource), resource.target])}'


uninstall = uninstaller(ImageFromOptionsRecipe)

__all__ = ['ImageFromOptionsRecipe', 'uninstall']
