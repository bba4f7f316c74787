"""``docker.save`` (dockeroo's): an image to a tar file, rewritten only when the image changed.

Images reach engines that have no registry: the file carries the tag, so
``docker load`` (or a ``docker.load`` part on another engine) restores it
under the same name. Whether the file already holds the image is read from
the file (its manifest names the image's id), so nothing else is recorded.

What the file will hold is known before anything acts: the image as the
parts of this buildout see it on the part's engine (the identity of the part
that makes it, else its registry digest, else its local id; for an image of
a part whose identity is only known as it acts, such as docker.temporary,
that part: :func:`~dockeroo_nagoya.run.identities.carried_term`). A
``docker.load`` part of the same buildout whose ``path`` is this part's
(``path = ${save:path}``) takes that as its ``image-id``, so it needs no file
yet on the first run. Options: docs/recipes/save.rst.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import zc.buildout

from ..run import identities
from ..model import options as opt
from ..model.decisions import Change, Decision, Reason, state
from ..engine.driver import Engine, engine_errors
from ..mechanisms.imagefiles import image_in_archive, write_atomically
from .base import ImageRecipe, Recipe, remove_file, uninstaller

class SaveRecipe(Recipe):
    """An image written to a file with the engine's ``docker save``."""

    recipe = 'docker.save'
    kind = 'images'
    owns = ()
    keep_default = False
    kept_kinds = ('file',)
    table = (
        opt.Option('name', opt.text, identity=False,
                   doc="The image to save (default: the part's name)."),
        opt.Option('tag', opt.text, identity=False, doc="The image's tag (default ``latest``)."),
        opt.Option('path', opt.path, identity=False,
                   doc='The file (default ``parts/PART/IMAGE.tar``); ``${part:path}``.'),
        opt.Option('keep', opt.boolean, default='false', identity=False,
                   doc='Keep the file when the part is removed.'),
    )

    def configure(self) -> None:
        # It names an image another part makes: that part stays its maker (identities).
        self.image = ImageRecipe.image_named_by_options(self)  # type: ignore[arg-type]
        path = self.values['path']
        if path is None:
            parts = self.buildout['buildout'].get('parts-directory') or os.path.join(
                self.directory, 'parts')
            path = os.path.join(parts, self.name, self.image.replace('/', '_').replace(':', '_')
                                + '.tar')
        if os.path.isdir(path) or path.endswith(os.sep):
            raise opt.invalid(self.name, 'path', 'the path of a file to write, not a directory',
                              self.options.get('path'))
        self.path = self.options['path'] = path
        # What the file will hold, for a docker.load of it in this run (on any engine).
        with engine_errors(self.name, self.engine_config, 'looking up the image'):
            term = identities.carried_term(self.engine, self.directory, self.image)
        identities.will_write_archive(self.run, path, identities.Carried(
            self.name, self.engine_config, self.image, term))

    def act(self, decision: Decision) -> list[str]:
        written, image = decision.changes[0], decision.found['image']
        if written.action == 'none':
            self.log.debug('%s already holds %s', self.path, self.image)
        elif written.action in ('create', 'update'):
            if image is None:  # the part before that makes it failed to
                raise self._missing()
            self.log.info('saving %s (%s) to %s: %s', self.image, image['Id'][:19], self.path,
                          self._why_saved(image) or ', '.join(r.text() for r in written.reasons))
            with engine_errors(self.name, self.engine_config, f'saving {self.image}'):
                write_atomically(self.path, self.engine.api.get_image(self.image))
        for change in decision.changes[1:]:
            if change.action == 'remove':
                remove_file(change.object, self.log)
        return []

    def _missing(self) -> zc.buildout.UserError:
        return zc.buildout.UserError(
            f'{self.name}: option name: there is no image {self.image} to save: make it with '
            f'an earlier part (docker.build, docker.pull, ...) and name it as ${{part:image}}')

    def _why_saved(self, image: Mapping[str, Any]) -> str | None:
        """Why the file is written again (``None``: it holds this image under this tag)."""
        held = image_in_archive(self.path, self.image) if os.path.isfile(self.path) else None
        if held is not None and held.image_id == image['Id'] and self.image in held.tags:
            return None
        return ('the file was missing' if not os.path.isfile(self.path) else
                'the image changed' if held is not None else 'the file held no such image')

    def decide(self, fresh: bool) -> Decision:
        """Write the file when it does not hold the image under its tag (or a part before
        this one makes the image anew); remove the file of the part's old ``path``."""
        remade = identities.planned_change(self.run, self.engine_config, self.image)
        image = self.engine.inspect('images', self.image)
        if remade is not None:
            change = Change('file', self.path, 'update' if os.path.isfile(self.path) else 'create',
                            [Reason(f'image {self.image}', follows=remade)])
        else:
            if image is None:
                raise self._missing()
            why = self._why_saved(image)
            change = Change('file', self.path, 'none' if why is None else 'create'
                            if why == 'the file was missing' else 'update',
                            [state(why)] if why else [])
        found = [change]
        previous = (self.run.previous.get(self.name) or {}).get('path')
        if previous and previous != self.path:
            found.append(Change('file', previous, 'none' if self.values['keep'] else 'remove',
                                [state(f'the part\'s old path ({self.path} now)')]))
        return Decision(found, found={'image': image}, fresh=fresh)

    @classmethod
    def removal_objects(cls, engine: Engine, directory: str, part: str,
                        options: Mapping[str, str]) -> list[Change]:
        """The file the part wrote (the image is another part's)."""
        path = options.get('path')
        if not path or not os.path.isfile(path):
            return []
        return [Change('file', path, 'remove', [state('its part was removed')])]


uninstall = uninstaller(SaveRecipe)

__all__ = ['SaveRecipe', 'uninstall']
