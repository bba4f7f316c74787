"""``docker.build``: an image built from a Dockerfile, exactly when its inputs change.

The inputs are the build context (as ``.dockerignore`` lets it through), the
Dockerfile, the build args, the target, the labels, the platform and the ids
of the base images. Their digest goes into the part's options (so buildout
sees a changed file) and into the image's identity label (so a reinstall
adopts an image that is already right).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import docker.errors

from .. import options as opt
from ..context import base_images, context_digest
from ..engine import Engine, engine_errors, labels_of, LABEL_PART
from ..progress import follow_build
from ..recipe import Recipe, uninstaller


def image_name(part: str, option: str, raw: str) -> str:
    """An image name with its tag (``latest`` when none is given)."""
    try:
        reference = opt.image_reference(raw)
    except opt.Invalid as exc:
        raise opt.invalid(part, option, str(exc), raw) from None
    if ':' not in reference.rsplit('/', 1)[-1] and '@' not in reference:
        reference += ':latest'
    return reference


class BuildRecipe(Recipe):
    """An image built with the engine from a directory."""

    recipe = 'docker.build'
    kind = 'images'
    table = (
        opt.Option('name', opt.text),
        opt.Option('source', opt.existing_directory, required=True),
        opt.Option('dockerfile', opt.text, default='Dockerfile'),
        opt.Option('build-args', opt.key_values, default=''),
        opt.Option('target', opt.text),
        opt.Option('labels', opt.key_values, default=''),
        opt.Option('platform', opt.text),
        opt.Option('no-cache', opt.boolean, default='false', identity=False),
        opt.Option('keep', opt.boolean, default='false', identity=False),
    )

    def configure(self) -> None:
        self.image = image_name(self.name, 'name', self.values['name'] or self.name)
        self.options['name'] = self.options['image'] = self.image
        source = self.values['source']
        dockerfile = os.path.join(source, self.values['dockerfile'])
        try:
            with open(dockerfile, encoding='utf-8') as handle:
                self.dockerfile_text = handle.read()
        except OSError as exc:
            raise opt.invalid(self.name, 'dockerfile', f'a readable Dockerfile ({exc.strerror})',
                              dockerfile) from None
        try:
            self.digest = context_digest(source, self.values['dockerfile'])
        except OSError as exc:
            raise opt.invalid(self.name, 'source', f'a build context this user can read all of '
                              f'({exc.strerror}: {exc.filename})', source) from None
        # In the options, so that buildout reinstalls the part when a file changes.
        self.options['context-digest'] = self.digest
        self.bases = base_images(self.dockerfile_text, self.values['build-args'])
        with engine_errors(self.name, self.engine_config, 'looking up the image'):
            current = self.engine.inspect('images', self.image)
        self.options['image-id'] = current['Id'] if current and self.is_ours(current) else ''

    def identity_values(self) -> dict[str, Any]:
        values = super().identity_values()
        values.pop('name')
        values['source'] = None  # where the context lives is not what it is
        return values

    def full_identity(self) -> str:
        """Identity with the base images' ids, looked up now (they may have just been built)."""
        bases = {base: self.engine.image_id(base) or 'absent' for base in self.bases}
        return self.identity(context=self.digest, dockerfile=self.values['dockerfile'],
                             bases=bases)

    def apply(self, fresh: bool) -> list[str]:
        identity = self.full_identity()
        current = self.engine.inspect('images', self.image)
        if current is not None:
            self.check_ours(current, 'image', self.image)
            if self.identity_of(current) == identity:
                if fresh:
                    self._remove_stale(current['Id'])
                return []
            self.log.info('rebuilding %s: %s', self.image, self._why(current))
        else:
            self.log.info('building %s', self.image)
        image_id = self._build(identity)
        # Saved with the part, so the next run's __init__ finds the same value.
        self.options['image-id'] = image_id
        if current is not None and current['Id'] != image_id:
            self._remove_unused(current['Id'])
        if fresh:
            self._remove_stale(image_id)
        self.engine.forget('images')
        return []

    def _why(self, current: Mapping[str, Any]) -> str:
        return 'its inputs changed' if labels_of(dict(current)).get(LABEL_PART) == self.name \
            else 'it was made by another part'

    def _build(self, identity: str) -> str:
        values = self.values
        stream = self.engine.api.build(
            path=values['source'], dockerfile=values['dockerfile'], tag=self.image,
            buildargs=values['build-args'] or None, target=values['target'],
            labels=self.labels(identity, values['labels']), platform=values['platform'],
            nocache=values['no-cache'], rm=True, forcerm=True, decode=True)
        follow_build(self.name, stream, self.log)
        image_id = self.engine.image_id(self.image)
        if image_id is None:
            raise opt.invalid(self.name, 'source', 'a build that produces an image')
        self.log.info('built %s (%s)', self.image, image_id[:19])
        return image_id

    def _remove_unused(self, image_id: str) -> None:
        """The image this part built before, if nothing uses or names it any more."""
        try:
            self.engine.api.remove_image(image_id)
            self.log.info('removed the previous image %s', image_id[:19])
        except docker.errors.APIError as exc:
            self.log.debug('previous image %s kept: %s', image_id[:19], exc)

    def _remove_stale(self, keep_id: str) -> None:
        """Images this part made under an earlier name."""
        for image in self.engine.part_objects('images', self.directory, self.name):
            if image['Id'] != keep_id and not self.values['keep']:
                for tag in image.get('RepoTags') or [image['Id']]:
                    _untag(self.engine, tag, self.log)

    @classmethod
    def teardown(cls, engine: Engine, directory: str, part: str,
                 options: Mapping[str, str], log: logging.Logger) -> None:
        try:
            keep = opt.boolean(options.get('keep', 'false'))
        except opt.Invalid:
            keep = False
        if keep:
            log.info('keeping image %s (keep = true)', options.get('name'))
            return
        for image in engine.part_objects('images', directory, part):
            for tag in image.get('RepoTags') or [image['Id']]:
                _untag(engine, tag, log)


def _untag(engine: Engine, reference: str, log: logging.Logger) -> None:
    try:
        engine.api.remove_image(reference)
        log.info('removed image %s', reference)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        log.warning('image %s not removed: %s', reference, exc.explanation or exc)


uninstall = uninstaller(BuildRecipe)
