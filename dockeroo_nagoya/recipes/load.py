"""``docker.load`` (dockeroo's): a tar file into the engine, loaded again only when it changed.

``${part:image-id}`` must be known when buildout starts, before anything
acts (buildout initialises every part before it installs any, so on the
first run a file a ``docker.save`` part writes does not exist yet): for such
a file it is what that part says the file will hold
(:func:`dockeroo_nagoya.run.identities.carried_term`), which changes exactly
when the saved image is made again; for any other file, the image's id from
its manifest, read when buildout starts. Either way the part registers the
image as made by it on its own engine, so that the containers and builds of
that engine may name ``${part:image}``. Options: docs/recipes/load.rst.
"""
from __future__ import annotations

import os
from typing import Mapping

import zc.buildout

from ..run import identities
from ..model import options as opt
from ..model.decisions import Change, Decision, ImageChanges, Promise, Reason, state
from ..engine.driver import Engine, engine_errors
from ..mechanisms.imagefiles import ArchivedImage, NotAnImageArchive, archived_images
from .base import ImageRecipe, Recipe, kept, reference_removal, retire_untagged, uninstaller


class LoadRecipe(Recipe):
    """An image loaded from a file with the engine's ``docker load``."""

    recipe = 'docker.load'
    kind = 'images'
    owns = ()
    keep_default = False
    kept_kinds = ('image', 'tag')
    table = (
        opt.Option('name', opt.text, identity=False,
                   doc=("The image the part exposes (default: the part's name), tagged so after the"
                        ' load.')),
        opt.Option('tag', opt.text, identity=False, doc="The image's tag (default ``latest``)."),
        # An existing file unless a docker.save part of this run writes it (configure).
        opt.Option('path', opt.path, required=True, identity=False,
                   doc='A file from ``docker save``, plain or compressed.'),
        opt.Option('keep', opt.boolean, default='false', identity=False,
                   doc='Keep the tag when the part is removed.'),
    )

    def configure(self) -> None:
        self.image = ImageRecipe.image_named_by_options(self)  # type: ignore[arg-type]
        given = self.options['path']
        self.path = self.options['path'] = self.values['path']
        #: The docker.save part that writes the file in this run (None: a file from elsewhere).
        self.writer = identities.archive_writer(self.run, self.path)
        if self.writer is None:
            try:
                opt.existing_file(self.path)
            except opt.Invalid as exc:
                raise opt.invalid(self.name, 'path', str(exc), given) from None
            self.archived: ArchivedImage | None = self._archived()
            identity = self.archived.image_id
        else:
            self.archived = None   # read as the part acts, once the save part wrote it
            identity = self.writer.term
        # Another part makes this image on this very engine (a save's file loaded back where
        # it was saved): the load would stand in for it, and its removal take the image away.
        maker = identities.maker_of(self.run, self.engine_config, self.image)
        if maker is not None and maker != self.name:
            raise opt.invalid(self.name, 'name', f'an image no other part makes on this engine '
                              f'({self.image} is made by part {maker} here: load it on another '
                              f'engine, or leave this part out)', self.image)
        # Known before anything runs: later parts may reference it, and a new image is a change.
        self.options['image-id'] = identity
        identities.will_make_image(self.run, self.engine_config, self.image, identity,
                                   self.name)

    def _archived(self) -> ArchivedImage:
        """The image of the file that ``name`` exposes, from its manifest as it is now."""
        try:
            images = archived_images(self.path)
        except NotAnImageArchive as exc:
            raise opt.invalid(self.name, 'path', str(exc), self.path) from None
        tagged = [image for image in images if self.image in image.tags]
        if not tagged and len(images) != 1:
            names = ', '.join(tag for image in images for tag in image.tags) or 'none'
            raise opt.invalid(self.name, 'name', f'one of the images of {self.path} ({names})',
                              self.image)
        return (tagged or images)[0]

    def decide(self, fresh: bool) -> Decision:
        """Load unless the tag already names the image the file holds; a load is promised
        to the parts that start from the image."""
        change = self._decision(*self._expected())
        promises: list[Promise] = []
        if change.action != 'none':
            promises.append(ImageChanges(self.engine_config, self.image,
                                         f'loaded by {self.name} from {self.path}'))
        return Decision([change], promises, fresh=fresh)

    def _expected(self) -> tuple[str | None, str | None]:
        """(the id of the image the file holds when this part acts, ``None`` if it is not
        known before; then what makes it anew).

        A file from elsewhere holds what it holds now. A file a docker.save part
        writes holds, once that part acted, the image it saves as its engine has it
        then: made anew when a part before says so, else the engine's image now.
        """
        if self.writer is None:
            assert self.archived is not None
            return self.archived.image_id, None
        writer = self.writer
        remade = identities.planned_change(self.run, writer.engine, writer.reference)
        if remade is not None:
            return None, f'{remade}; saved by {writer.part}'
        with engine_errors(self.name, writer.engine, f'looking up {writer.reference}'):
            saved = self.run.engine(writer.engine, self.name).image_id(writer.reference)
        if saved is None and os.path.isfile(self.path):  # the save part stops the run first
            saved = self._archived().image_id
        return saved, None if saved else f'saved by {writer.part}'

    def _decision(self, wanted: str | None, follows: str | None = None) -> Change:
        """Load unless the tag already names the file's image (``wanted``; ``None``: the
        file is written anew before, by what ``follows`` says)."""
        now = self.engine.image_id(self.image)
        if wanted is not None and now == wanted:
            return Change('image', self.image, 'none', [], now)
        if wanted is None:
            reasons = [Reason(f'file {self.path}', follows=follows)]
        elif now is not None:
            reasons = [Reason('image-id', now, wanted)]
        else:
            reasons = [state(f'it is loaded from {self.path}')]
        return Change('image', self.image, 'create' if now is None else 'recreate', reasons, now)

    def act(self, decision: Decision) -> list[str]:
        change = decision.changes[0]
        if change.action not in ('create', 'recreate'):
            self.log.debug('%s is already loaded', self.image)
            return []
        # What the file holds, read as it is loaded (a save part before may just have
        # written it).
        archived = self.archived if self.writer is None else self._saved_archive()
        assert archived is not None
        wanted = archived.image_id
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
            if change.id is not None and change.id != wanted:
                retire_untagged(self.engine, self.log, change.id)
        return []

    def _saved_archive(self) -> ArchivedImage:
        """The image of the file the save part wrote, read now (it acted before this part)."""
        assert self.writer is not None
        if not os.path.isfile(self.path):
            raise zc.buildout.UserError(
                f'{self.name}: option path: no file {self.path} yet: part {self.writer.part} '
                f'writes it and is not installed: run bin/buildout (or bin/buildout install '
                f'{self.writer.part} {self.name})')
        return self._archived()

    @classmethod
    def removal_objects(cls, engine: Engine, directory: str, part: str,
                        options: Mapping[str, str]) -> list[Change]:
        """The name the part loaded the image under, while it names the image loaded."""
        reference = options.get('image')
        if not reference:
            return []
        found = reference_removal(engine, reference, 'its part was removed')
        if found and found[0].id not in _loaded(options):
            return [kept(found[0], 'it is no longer the image this part loaded')]
        return found


def _loaded(options: Mapping[str, str]) -> set[str]:
    """The ids of the images a removed part loaded: its ``image-id``; for a file a
    docker.save part wrote (``image-id`` is then what the save part said, no id), the
    images the file holds (buildout uninstalls the load before the save it follows, so
    the file is still the one last loaded)."""
    recorded = options.get('image-id') or ''
    if recorded.startswith('sha256:'):
        return {recorded}
    try:
        return {image.image_id for image in archived_images(options.get('path') or '')}
    except NotAnImageArchive:
        return set()


uninstall = uninstaller(LoadRecipe)

__all__ = ['LoadRecipe', 'uninstall']
