"""``docker.commit``: a container saved as an image, again when the container changes.

The commit is redone when an option changed or the container's
configuration did: for a container of a part of this buildout, what that
part configures (its options and image, known before it acts, see
:mod:`..identities`), so ``${part:image-id}`` is right on the first run; for
any other container, its id and identity label. What the container got
from its ``env-file`` is reset in the image (:func:`..snapshots.commit`).
Writes into a running
container, and a container its part made anew with the same configuration,
are not looked for (that would take a scan of its files on every run):
change an option to save them. Options: docs/recipes/commit.rst.
"""
from __future__ import annotations

from typing import Any

import zc.buildout

from ..run import identities
from ..model import options as opt
from ..mechanisms import snapshots
from ..model.decisions import Decision
from ..engine.driver import engine_errors
from .base import CANDIDATE_OPTIONS, ImageRecipe, uninstaller
from ..mechanisms.throwaway import image_config, image_config_options

#: The options docker.commit and docker.persist share.
COMMIT_TABLE = (
    opt.Option('container', opt.text, required=True,
               doc='The container to commit (usually ``${run-part:name}``).'),
    opt.Option('name', opt.text, identity=False,
               doc="The image's name (default: the part's name); ``${part:image}``."),
    opt.Option('tag', opt.text, identity=False, doc="The image's tag (default ``latest``)."),
    *image_config_options(volumes=True),
    opt.Option('message', opt.text, doc='The commit message.'),
    opt.Option('author', opt.text, doc="The commit's author."),
    opt.Option('pause', opt.boolean, default='true',
               doc='Pause the container while it is committed.'),
    opt.Option('keep', opt.boolean, default='false', identity=False,
               doc='Keep the image when the part is removed.'),
    *CANDIDATE_OPTIONS,
)


class CommitRecipe(ImageRecipe):
    """An image of a container, as ``docker commit`` makes it."""

    recipe = 'docker.commit'
    table = COMMIT_TABLE

    def configure(self) -> None:
        self.image_from_options()
        # The container as its part configures it (or the live one, for a container no
        # part of this buildout keeps): known now, unchanged when its part makes it.
        with engine_errors(self.name, self.engine_config, 'looking up the container'):
            self.container_term = identities.container_term(
                self.engine, self.directory, self.values['container'])
        self.identity_now, self.image_labels = self.image_identity(container=self.container_term)
        self.expose_identity(self.identity_now)

    def source(self) -> dict[str, Any]:
        """The container to save, inspected now (it may have just been created)."""
        container = self.engine.inspect('containers', self.values['container'])
        if container is None:
            raise zc.buildout.UserError(
                f'{self.name}: option container: no container {self.values["container"]!r} '
                f'(name it with ${{run-part:name}} so that buildout makes it first)')
        return container

    def act(self, decision: Decision) -> list[str]:
        # The container inspected as the part acts (its part may have just made it), unless
        # deciding read it already (persist).
        container = decision.found.get('container') or self.source()
        self.make_image(decision, lambda labels: self.build(container, labels))
        return []

    def build(self, container: dict[str, Any], labels: dict[str, str]) -> str:
        values = self.values
        name = container['Name'].lstrip('/')
        self.log.info('committing container %s', name)
        return snapshots.commit(self.engine, self.name, container, image_config(values), labels,
                                self.log, message=values['message'], author=values['author'],
                                pause=values['pause'] and container['State'].get('Running', False))


uninstall = uninstaller(CommitRecipe)

__all__ = ['CommitRecipe', 'COMMIT_TABLE', 'uninstall']
