"""``docker.commit``: a container saved as an image, again when the container changes.

Options:

- ``container`` (required): the container, by name or id; usually
  ``${part:name}`` of a ``docker.run`` part, which also makes buildout
  install that part first.
- ``name`` (the part name) and ``tag`` (``latest``): the image;
  ``${part:image}`` is ``NAME:TAG`` and ``${part:image-id}`` its id.
- Changes to the image's configuration, as ``docker commit --change`` makes
  them: ``command``, ``entrypoint`` (a JSON array or a command line), ``env``
  and ``labels`` (``KEY=VALUE`` lines), ``expose``, ``user``,
  ``working-dir``, ``volumes`` (``VOLUME`` paths). ``message`` and
  ``author`` go into the image's history; ``pause`` (true) pauses a running
  container while its filesystem is read.
- ``test``: commands the new image must pass before ``NAME:TAG`` moves to it
  (see :class:`~dockeroo_nagoya.recipe.ImageRecipe`); ``keep`` leaves the
  image when the part goes.

The commit is redone when the container is another one (its id changed:
say ``docker.run`` recreated it) or the same container was reconfigured
(its identity label changed), or when an option changed. Writes into a
running container that keeps its id and configuration are not looked for
(that would take a scan of its files on every run): change an option or
recreate the container to save them.
"""
from __future__ import annotations

from typing import Any

import zc.buildout

from .. import options as opt
from .. import snapshots
from ..engine import LABEL_IDENTITY, labels_of
from ..recipe import CANDIDATE_OPTIONS, ImageRecipe, uninstaller
from ..throwaway import image_config, image_config_options

#: The options docker.commit and docker.persist share.
COMMIT_TABLE = (
    opt.Option('container', opt.text, required=True),
    opt.Option('name', opt.text, identity=False),
    opt.Option('tag', opt.text, identity=False),
    *image_config_options(volumes=True),
    opt.Option('message', opt.text),
    opt.Option('author', opt.text),
    opt.Option('pause', opt.boolean, default='true'),
    opt.Option('keep', opt.boolean, default='false', identity=False),
    *CANDIDATE_OPTIONS,
)


class CommitRecipe(ImageRecipe):
    """An image of a container, as ``docker commit`` makes it."""

    recipe = 'docker.commit'
    table = COMMIT_TABLE

    def configure(self) -> None:
        self.image_from_options()
        self.record_image_id()

    def source(self) -> dict[str, Any]:
        """The container to save, inspected now (it may have just been created)."""
        container = self.engine.inspect('containers', self.values['container'])
        if container is None:
            raise zc.buildout.UserError(
                f'{self.name}: option container: no container {self.values["container"]!r} '
                f'(name it with ${{run-part:name}} so that buildout makes it first)')
        return container

    def source_identity(self, container: dict[str, Any]) -> dict[str, Any]:
        """What says the container is another one: its id and its identity label."""
        return {'container-id': container['Id'],
                'container-identity': labels_of(container).get(LABEL_IDENTITY) or
                container.get('Created')}

    def apply(self, fresh: bool) -> list[str]:
        container = self.source()
        identity, labels = self.image_identity(**self.source_identity(container))
        self.make_image(identity, labels, fresh, lambda: self.build(container, labels))
        self.options['image-id'] = self.image_id or ''
        return []

    def build(self, container: dict[str, Any], labels: dict[str, str]) -> str:
        values = self.values
        name = container['Name'].lstrip('/')
        self.log.info('committing container %s', name)
        return snapshots.commit(self.engine, container['Id'], image_config(values), labels,
                                message=values['message'], author=values['author'],
                                pause=values['pause'] and container['State'].get('Running', False))


uninstall = uninstaller(CommitRecipe)

__all__ = ['CommitRecipe', 'COMMIT_TABLE', 'uninstall']
