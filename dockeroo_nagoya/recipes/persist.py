"""``docker.persist`` (nagoya's persist): a container saved as an image, its volumes included.

``docker commit`` leaves a container's volumes out; a persist puts their
content into the new image at the volume paths, owners and modes kept, so
a new container from the image starts with that data (at a ``VOLUME`` path
the new container's volume is initialised from it). Because that content
is read while the part acts, the persist is redone also when a volume's
content changed (a digest read on every run), and a plan cannot tell in
advance. Options (``docker.commit``'s, plus ``paths``): docs/recipes/persist.rst.
"""
from __future__ import annotations

import contextlib
from typing import Any

from ..model import options as opt
from ..mechanisms import snapshots
from ..model.decisions import Change, Decision, Reason
from ..engine.driver import WriteRefused
from .base import uninstaller
from ..mechanisms.throwaway import container_paths
from .commit import COMMIT_TABLE, CommitRecipe


class PersistRecipe(CommitRecipe):
    """An image of a container and of the content of its volumes."""

    recipe = 'docker.persist'
    table = COMMIT_TABLE + (opt.Option('paths', container_paths, default='',
                                       doc=('Which volumes to include (default: every volume, not '
                                            'bind mounts; name a bind mount to include it).')),)

    def decide(self, fresh: bool) -> Decision:
        """Its identity holds its volumes' content, read through a throwaway container:
        the run reads it, a plan (which makes no container) says ``unknown``, as for a
        container its part has not made yet."""
        container = self.engine.inspect('containers', self.values['container'])
        if container is not None:
            self.mounts = snapshots.volume_mounts(self.name, container,
                                                  list(self.values['paths']))
            with contextlib.suppress(WriteRefused):
                identity, labels = self.image_identity(
                    container=self.container_term,
                    volumes=snapshots.volumes_digest(self.engine, self.mounts))
                decision = self.decide_image(identity, labels, fresh)
                decision.found['container'] = container
                return decision
        return Decision([Change('image', self.image, 'unknown', [Reason(
            'recipe', note=f'{self.recipe} reads the content of the volumes as it acts')])],
            found={'current': None, 'labels': self.image_labels}, fresh=fresh)

    def build(self, container: dict[str, Any], labels: dict[str, str]) -> str:
        committed = super().build(container, labels)
        if not self.mounts:
            self.log.warning('container %s has no volumes: its image is a plain commit',
                             container['Name'].lstrip('/'))
        return snapshots.with_volumes(self.engine, self.name, committed, container['Id'],
                                      self.mounts, labels, self.log)


uninstall = uninstaller(PersistRecipe)

__all__ = ['PersistRecipe', 'uninstall']
