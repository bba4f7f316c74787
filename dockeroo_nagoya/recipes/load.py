"""``docker.load`` (dockeroo's): a tar file into the engine, loaded again only when it changed.

``path`` (required: a file ``docker save`` or a ``docker.save`` part wrote;
plain, gzip, bzip2 or xz), ``name`` (the image, default the part name;
``tag``, default ``latest``), ``keep`` (default ``false``: removing the part
removes the tag, if it still names the image loaded). The image's id is read
from the file's manifest when buildout starts (``${part:image-id}``), so a
file with other content is another configuration, and the file is loaded
exactly when the engine's ``name`` is not that image. An archive of more
than one image is loaded whole; ``name`` picks the one exposed.
"""
from __future__ import annotations

import logging
from typing import Mapping

import zc.buildout

from .. import identities
from .. import options as opt
from ..decisions import Change, Reason, state
from ..engine import Engine, engine_errors
from ..imagefiles import NotAnImageArchive, archived_images
from ..recipe import ImageRecipe, Recipe, uninstaller
from ..recipe import _remove_image as remove_image


class LoadRecipe(Recipe):
    """An image loaded from a file with the engine's ``docker load``."""

    recipe = 'docker.load'
    kind = 'images'
    owns = ()
    table = (
        opt.Option('name', opt.text, identity=False),
        opt.Option('tag', opt.text, identity=False),
        opt.Option('path', opt.existing_file, required=True, identity=False),
        opt.Option('keep', opt.boolean, default='false', identity=False),
    )

    def configure(self) -> None:
        self.image = ImageRecipe.image_named_by_options(self)  # type: ignore[arg-type]
        self.path = self.options['path'] = self.values['path']
        try:
            images = archived_images(self.path)
        except NotAnImageArchive as exc:
            raise opt.invalid(self.name, 'path', str(exc), self.path) from None
        tagged = [image for image in images if self.image in image.tags]
        if not tagged and len(images) != 1:
            names = ', '.join(tag for image in images for tag in image.tags) or 'none'
            raise opt.invalid(self.name, 'name', f'one of the images of {self.path} ({names})',
                              self.image)
        self.archived = (tagged or images)[0]
        # Known before anything runs: later parts may reference it, and a new file is a change.
        self.options['image-id'] = self.archived.image_id
        identities.will_make_image(self.directory, self.image, self.archived.image_id, self.name)

    def decide(self, fresh: bool) -> list[Change]:
        change = self._decision()
        if change.action != 'none':
            identities.will_change_image(self.image, f'loaded by {self.name} from {self.path}')
        return [change]

    def _decision(self) -> Change:
        """Load unless the tag already names the file's image."""
        now = self.engine.image_id(self.image)
        if now == self.archived.image_id:
            return Change('image', self.image, 'none', [], now)
        return Change('image', self.image, 'create' if now is None else 'recreate', [
            Reason('image-id', now, self.archived.image_id) if now else
            state(f'it is loaded from {self.path}')], now)

    def apply(self, fresh: bool) -> list[str]:
        wanted = self.archived.image_id
        if self._decision().action == 'none':
            self.log.debug('%s is already loaded', self.image)
            return []
        self.log.info('loading %s (%s) from %s', self.image, wanted[:19], self.path)
        with engine_errors(self.name, self.engine_config, f'loading {self.path}'):
            with open(self.path, 'rb') as data:
                for message in self.engine.api.load_image(data):
                    if message.get('error'):
                        raise zc.buildout.UserError(f'{self.name}: loading {self.path} failed: '
                                                    f'{message["error"]}')
            self.engine.forget('images')
            if self.engine.image_id(self.image) != wanted:
                repository, tag = self.image.rsplit(':', 1)
                self.engine.api.tag(wanted, repository, tag, force=True)
                self.engine.forget('images')
        return []

    @classmethod
    def teardown(cls, engine: Engine, directory: str, part: str,
                 options: Mapping[str, str], log: logging.Logger) -> None:
        reference, loaded = options.get('image'), options.get('image-id')
        if not reference or opt.saved_flag(options, 'keep', False):
            return
        current = engine.inspect('images', reference)
        if current is None:
            return
        if current['Id'] != loaded:
            log.info('leaving %s: it is no longer the image this part loaded', reference)
            return
        remove_image(engine, reference, log)


uninstall = uninstaller(LoadRecipe)

__all__ = ['LoadRecipe', 'uninstall']
