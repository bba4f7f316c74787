"""``docker.build``: an image built from a Dockerfile, exactly when its inputs change.

The inputs are the build context (as ``.dockerignore`` lets it through), the
Dockerfile, the build args, the target, the labels, the platform and the ids
of the base images. Their digest goes into the part's options (so buildout
sees a changed file) and into the image's identity label (so a reinstall
adopts an image that is already right). ``test`` makes the new image a
candidate that has to pass its commands before ``name`` moves to it (see
:class:`~dockeroo_nagoya.recipes.base.ImageRecipe`).

``source`` may be a URL (:mod:`..sources`); one behind a login takes it by
reference: ``source-username`` with ``source-password-env`` or
``source-password-file``, or ``source-netrc``.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Mapping

import zc.buildout

from ..run import identities
from ..model import options as opt
from ..mechanisms import readfiles, sources
from ..mechanisms.context import base_images, context_digests
from ..model.decisions import Decision, Reason
from ..engine.driver import engine_errors
from ..engine.labels import LABEL, labels_of
from ..run.identities import normalised
from ..mechanisms.progress import follow_build
from .base import CANDIDATE_OPTIONS, ImageRecipe, uninstaller
from .pull import pull_image

#: A short hash per file of the context, so that a rebuild can say which file changed.
LABEL_CONTEXT_FILES = f'{LABEL}.context-files'

#: Contexts of more files than this say only that the context changed (labels stay small).
CONTEXT_FILES_LABELLED = 200

BUILT_RE = re.compile(r'Successfully built ([0-9a-f]{12,64})')


class BuildRecipe(ImageRecipe):
    """An image built with the engine from a directory."""

    recipe = 'docker.build'
    table = (
        opt.Option('name', opt.text,
                   doc=("The image's name, ``NAME[:TAG]`` (default: the part's name, tag "
                        '``latest``); ``${part:image}``.')),
        opt.Option('tag', opt.text, identity=False, doc="The image's tag (default ``latest``)."),
        opt.Option('source', sources.source_option, required=True,
                   doc=('The build context: a directory, a git URL (``#REF[:SUBDIR]``) or a tarball'
                        ' URL; URLs are fetched into ``var/sources``.')),
        # Credentials for an http(s) source, by reference (see .sources).
        opt.Option('source-username', opt.text, identity=False,
                   doc='The user for an http(s) source that asks for one.'),
        opt.Option('source-password-env', opt.text, identity=False, secret=True,
                   doc="The environment variable holding the source's password."),
        opt.Option('source-password-file', opt.text, identity=False, secret=True,
                   doc="The file holding the source's password."),
        opt.Option('source-netrc', opt.text, identity=False, secret=True,
                   doc='A netrc file with the credentials of the source\'s host.'),
        opt.Option('dockerfile', opt.text, default='Dockerfile',
                   doc='The Dockerfile, relative to ``source``.'),
        opt.Option('build-args', opt.key_values, default='', doc='``KEY=VALUE`` build arguments.'),
        opt.Option('target', opt.text, doc='The stage to build.'),
        opt.Option('labels', opt.key_values, default='', doc='``KEY=VALUE`` labels of the image.'),
        opt.Option('platform', opt.text, doc='The platform to build for, e.g. ``linux/amd64``.'),
        opt.Option('no-cache', opt.boolean, default='false', identity=False,
                   doc="Build without the engine's cache."),
        opt.Option('keep', opt.boolean, default='false', identity=False,
                   doc='Keep the image when the part is removed.'),
        *CANDIDATE_OPTIONS,
    )

    def configure(self) -> None:
        # ${part:name} and ${part:image} are both the tagged image, as they always were.
        self.options['name'] = self.image_from_options()
        # A URL (dockeroo's docker build URL) is fetched now: its content is the context.
        source = self.values['source'] = sources.local_context(
            self.name, self.values['source'], self.buildout['buildout'], self.run, self.options)
        dockerfile = os.path.join(source, self.values['dockerfile'])
        self.dockerfile_text = readfiles.read_text(self.name, 'dockerfile', dockerfile,
                                                   'a readable Dockerfile')
        try:
            self.digest, files = context_digests(source, self.values['dockerfile'])
        except OSError as exc:
            raise opt.invalid(self.name, 'source', f'a build context this user can read all of '
                              f'({exc.strerror}: {exc.filename})', source) from None
        except readfiles.Unreadable as exc:
            raise opt.invalid(self.name, 'source', f'a build context whose .dockerignore is '
                              f'UTF-8 text ({exc})', source) from None
        # In the options, so that buildout reinstalls the part when a file changes.
        self.options['context-digest'] = self.digest
        self.bases = base_images(self.dockerfile_text, self.values['build-args'])
        # What each base stands for, known now and unchanged by pulling it (see .identities):
        # the identity does not depend on whether a base was on the engine before the run.
        with engine_errors(self.name, self.engine_config, 'looking up the base images'):
            self.base_terms = {base: identities.image_term(self.engine, self.directory, base)
                               for base in self.bases}
        self.identity_now, self.image_labels = self.image_identity(
            context=self.digest, dockerfile=self.values['dockerfile'], bases=self.base_terms)
        if len(files) <= CONTEXT_FILES_LABELLED:  # which file changed, for a rebuild to say
            self.image_labels[LABEL_CONTEXT_FILES] = json.dumps(files, sort_keys=True,
                                                                separators=(',', ':'))
        self.expose_identity(self.identity_now)

    def identity_values(self) -> dict[str, Any]:
        values = super().identity_values()
        values.pop('name')
        values['source'] = None  # where the context lives is not what it is
        return values

    def explain_inputs(self, key: str, current: Mapping[str, Any],
                       labels: Mapping[str, str]) -> list[Reason]:
        """``context file hub.conf changed``: the files whose short hash differs."""
        if key != 'context':
            return super().explain_inputs(key, current, labels)
        try:
            before = json.loads(labels_of(dict(current)).get(LABEL_CONTEXT_FILES) or '')
            now = json.loads(labels.get(LABEL_CONTEXT_FILES) or '')
        except ValueError:
            return [Reason('context')]
        changed = sorted(path for path in set(before) | set(now) if before.get(path) != now.get(path))
        found = [Reason(f'context file {path}', note='added' if path not in before else
                        'removed' if path not in now else None) for path in changed[:5]]
        if len(changed) > 5:
            found.append(Reason('context', note=f'{len(changed) - 5} more files'))
        return found or [Reason('context')]

    def act(self, decision: Decision) -> list[str]:
        self.make_image(decision, self.build)
        return []

    def pull_bases(self) -> None:
        """Pull the bases from elsewhere that are not here, before the build (the registry
        gave their digest to the identity already; the build would pull them by tag too)."""
        for base, term in self.base_terms.items():
            if term.startswith('made:') or self.engine.image_id(base) is not None:
                continue
            if term.startswith('absent:'):
                raise zc.buildout.UserError(
                    f'{self.name}: option source: the Dockerfile starts FROM {base}, which is '
                    f'neither on the engine nor made by a part of this buildout, and no registry '
                    f'answers for it')
            self.log.info('pulling %s (FROM of the Dockerfile)', base)
            pull_image(self.engine, self.name, normalised(base), self.log,
                       platform=self.values['platform'])

    def build(self, labels: dict[str, str]) -> str:
        """An untagged image from the context (``make_image`` tags it once it passed)."""
        values = self.values
        self.pull_bases()
        stream = self.engine.api.build(
            path=values['source'], dockerfile=values['dockerfile'],
            buildargs=values['build-args'] or None, target=values['target'],
            labels={**values['labels'], **labels}, platform=values['platform'],
            nocache=values['no-cache'], rm=True, forcerm=True, decode=True)
        tail: list[str] = []
        image_id = follow_build(self.name, _noting(stream, tail), self.log)
        if image_id is None:
            found = BUILT_RE.search('\n'.join(tail))
            image_id = found and self.engine.image_id(found.group(1))
        if not image_id:
            raise zc.buildout.UserError(f'{self.name}: option source: the build produced no image')
        return image_id


def _noting(stream: Any, tail: list[str]) -> Any:
    """Pass the build's messages on, keeping its text lines (for engines without an aux ID)."""
    for message in stream:
        if 'stream' in message:
            tail.append(message['stream'])
        yield message


uninstall = uninstaller(BuildRecipe)

__all__ = ['BuildRecipe', 'uninstall']
