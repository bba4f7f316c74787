"""``docker.pull``: an image from a registry, fetched only when it changed.

With buildout's ``-N`` (newest off) a present image is never fetched again;
otherwise the registry's digest is compared with the local one and the image
pulled only when they differ. Credentials are taken by reference and handed
to the SDK in memory.

A reference a ``docker.push`` part of the same buildout pushes (``image =
${push:name}``, or one of ``${push:pushed}``; the push is then installed
first), typically pulled on another engine (``engine = tcp://builder1:2376``),
is another case, newest mode or not: ``${part:image-id}`` is what the push
part says the reference will hold (known before the push happened, so the
part is not reinstalled once it did), and the image is pulled exactly when
the engine's is not the one pushed (compared with the image on the push
part's engine: its id, or a digest of the pushed repository). With ``-N`` a
present image would otherwise never be fetched again, and a rebuilt image
never reach the other engine; an unchanged run pulls nothing and asks no
registry.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import zc.buildout

from ..run import identities
from ..model import options as opt
from ..engine.references import split_reference
from ..model.decisions import Change, Decision, ImageChanges, Promise, Reason
from ..engine.errors import APIError
from ..engine.driver import Engine, engine_errors, explain
from ..mechanisms.progress import follow_layers
from .base import Recipe, reference_removal, retire_untagged, uninstaller
from ..mechanisms.secrets import CREDENTIAL_OPTIONS, registry_auth


#: The registry was not asked (a pinned digest, or a present image with newest off).
_UNASKED = object()


def pull_image(engine: Engine, part: str, reference: str, log: logging.Logger,
               auth: dict[str, str] | None = None, platform: str | None = None
               ) -> dict[str, Any]:
    """Pull ``reference`` (layers logged once each); the image, inspected."""
    repository, tag = split_reference(reference)
    with engine_errors(part, engine.config, f'pulling {reference}'):
        stream = engine.api.pull(repository, tag=tag, stream=True, decode=True,
                                 auth_config=auth, platform=platform)
        follow_layers(part, f'pull of {reference}', stream, log)
    engine.forget('images')
    image = engine.inspect('images', reference)
    if image is None:
        raise zc.buildout.UserError(f'{part}: the pull of {reference} ended without an image')
    return image


def same_image(local: Mapping[str, Any], sent: Mapping[str, Any], repository: str) -> bool:
    """Whether two engines' images are one: the same id (a push and a pull keep the image's
    configuration, so its id), or a digest of ``repository`` in common (each engine
    records the digest it pushed or pulled)."""
    if local['Id'] == sent['Id']:
        return True

    def digests(image: Mapping[str, Any]) -> set[str]:
        return {d for d in image.get('RepoDigests') or [] if d.split('@', 1)[0] == repository}
    return bool(digests(local) & digests(sent))


class PullRecipe(Recipe):
    """An image pulled from a registry."""

    recipe = 'docker.pull'
    kind = 'images'
    keep_default = True
    kept_kinds = ('image', 'tag')
    table = (
        opt.Option('image', opt.image_reference,
                   doc='The image: ``NAME[:TAG]`` or ``NAME@sha256:DIGEST``.'),
        opt.Option('name', opt.image_reference, identity=False,
                   doc="dockeroo's name for the image (with ``tag`` or ``digest``)."),
        opt.Option('tag', opt.text, doc='The tag, with ``name``.'),
        opt.Option('digest', opt.text, doc='The digest, with ``name``.'),
        opt.Option('registry', opt.text, doc="The registry, prefixed to the image's name."),
        opt.Option('platform', opt.text, doc='The platform to pull, e.g. ``linux/arm64``.'),
        *CREDENTIAL_OPTIONS,
        opt.Option('keep', opt.boolean, default='true', identity=False,
                   doc=('Leave the image when the part is removed (a pulled image is not ours to '
                        'remove).')),
    )

    def configure(self) -> None:
        values = self.values
        # dockeroo names the image with ``name``; ``image`` wins, the part name is the last resort.
        reference = values['image'] or values['name']
        if reference is None:
            try:
                reference = opt.image_reference(self.name)
            except opt.Invalid as exc:
                raise opt.invalid(self.name, 'image', str(exc), self.name) from None
        if values['registry']:
            reference = f"{values['registry'].rstrip('/')}/{reference}"
        if values['tag'] and values['digest']:
            raise opt.invalid(self.name, 'digest', 'either tag or digest, not both', values['digest'])
        if values['tag']:
            reference = f"{reference}:{values['tag']}"
        if values['digest']:
            if not values['digest'].startswith('sha256:') or len(values['digest']) != 71:
                raise opt.invalid(self.name, 'digest', 'sha256: followed by 64 hex digits',
                                  values['digest'])
            reference = f"{reference}@{values['digest']}"
        try:
            opt.image_reference(reference)
        except opt.Invalid as exc:
            raise opt.invalid(self.name, 'image', str(exc), reference) from None
        self.repository, self.tag = split_reference(reference)
        self.reference = reference if ('@' in reference or self.tag != 'latest'
                                       or reference.endswith(':latest')) \
            else f'{reference}:latest'
        self.auth = registry_auth(self.name, self.options)
        self.options['name'] = self.reference
        self.options['image'] = self.reference
        #: The docker.push part that pushes the reference in this run (None: none does).
        self.pusher = identities.pusher_of(self.run, self.reference)
        with engine_errors(self.name, self.engine_config, 'looking up the image'):
            # What the image will be once the part acted, known now (see .identities): what
            # the push part pushes; the registry's digest when the part would pull, else
            # the local image's.
            self.remote = _UNASKED if self.pusher is not None else self._decide_remote()
            local = self.engine.listed_image(self.reference)
            if self.pusher is not None:
                image_id = self.pusher.term
            elif '@' in self.reference:
                image_id = self.reference
            elif self.remote is not None and self.remote is not _UNASKED:
                image_id = f'{self.repository}@{self.remote}'
            elif local is not None:
                image_id = identities.local_term(local, self.reference, self.directory)
            else:
                image_id = f'absent:{self.reference}'
        self.options['image-id'] = image_id
        identities.will_make_image(self.run, self.engine_config, self.reference, image_id,
                                   self.name)

    def _decide_remote(self) -> str | None | object:
        """The registry's digest when the run would ask it (the image is absent, or
        buildout's newest mode is on and the reference is a tag), else ``_UNASKED``."""
        if '@' in self.reference:
            return _UNASKED
        if self.engine.listed_image(self.reference) is not None and not self.newest():
            return _UNASKED
        return self._remote_digest()

    def decide(self, fresh: bool) -> Decision:
        """Pull when the image is not here, or (newest mode, a tag) the registry's digest
        is not the local image's; for a reference a push part pushes, when the image is
        not the pushed one (:meth:`_decision_of_pushed`). A pull is promised to the parts
        that start from the image."""
        if self.pusher is not None:
            change, becomes = self._decision_of_pushed()
        else:
            change, becomes = self._decision(), None
        promises: list[Promise] = []
        if change.action == 'pull':
            promises.append(ImageChanges(self.engine_config, self.reference,
                                         f'pulled by {self.name}: '
                                         + ', '.join(r.text() for r in change.reasons), becomes))
        return Decision([change], promises, fresh=fresh)

    def _decision(self) -> Change:
        """The decision for a reference no push part of this run pushes."""
        local = self.engine.inspect('images', self.reference)
        if local is None:
            return Change('image', self.reference, 'pull', [Reason('state', note='it is not on '
                                                                   'the engine yet')])
        if '@' in self.reference or not self.newest():
            return Change('image', self.reference, 'none', [], local['Id'])
        remote = self.remote
        digests = local.get('RepoDigests') or []
        if remote is None or f'{self.repository}@{remote}' in digests:
            return Change('image', self.reference, 'none', [], local['Id'])
        before = next((d.split('@', 1)[1] for d in digests
                       if d.split('@', 1)[0] == self.repository), None)
        return Change('image', self.reference, 'pull', [Reason('registry digest', before, str(remote))],
                      local['Id'])

    def _decision_of_pushed(self) -> tuple[Change, str | None]:
        """(pull unless the engine's image is the one the push part sends, the id the pull
        brings when it is known before: the pushed image's).

        The push part acts before this one, so the reference holds, once it acted,
        the image it pushes as its engine has it then: made anew when a part before
        says so (planning), else that engine's image now. Newest mode plays no part:
        the registry changes in this run, and only as the push says.
        """
        assert self.pusher is not None
        pusher, local = self.pusher, self.engine.inspect('images', self.reference)
        found = local['Id'] if local is not None else None
        remade = identities.planned_push(self.run, self.reference)
        if remade is not None:
            return Change('image', self.reference, 'pull', [Reason('pushed image', follows=remade)],
                          found), None
        with engine_errors(self.name, pusher.engine, f'looking up {pusher.reference}'):
            sent = self.run.engine(pusher.engine, self.name).inspect('images', pusher.reference)
        if local is not None and sent is not None and same_image(local, sent, self.repository):
            return Change('image', self.reference, 'none', [], found), None
        becomes = sent['Id'] if sent is not None else None
        if local is None:
            reasons = [Reason('state', note='it is not on the engine yet')]
        else:
            reasons = [Reason('image', found, becomes, follows=f'pushed by {pusher.part}')]
        return Change('image', self.reference, 'pull', reasons, found), becomes

    def act(self, decision: Decision) -> list[str]:
        change = decision.changes[0]
        if change.action != 'pull':
            self.log.debug('%s is up to date', self.reference)
            return []
        if self.pusher is not None and change.id is not None:
            self.log.info('pulling %s: part %s pushed another image than this engine has',
                          self.reference, self.pusher.part)
        elif self.pusher is not None:
            self.log.info('pulling %s (pushed by part %s)', self.reference, self.pusher.part)
        elif change.id is not None:
            self.log.info('pulling %s: the registry has a new digest %s', self.reference,
                          self.remote)
        else:
            self.log.info('pulling %s', self.reference)
        pulled = self._pull()
        if self.pusher is not None and change.id is not None and change.id != pulled:
            retire_untagged(self.engine, self.log, change.id)  # its build is on the other engine
        return []

    def _remote_digest(self) -> str | None:
        """The registry's digest for the reference, or ``None`` when it can't be asked."""
        try:
            answer = self.engine.api.inspect_distribution(self.reference, auth_config=self.auth)
        except APIError as exc:
            if self.engine.listed_image(self.reference) is not None:
                self.log.warning('could not ask the registry about %s (%s); keeping the local '
                                 'image', self.reference, explain(exc))
            return None
        return answer['Descriptor']['digest']

    def _pull(self) -> str:
        """Pull the reference; the id of the image it names now."""
        image = pull_image(self.engine, self.name, self.reference, self.log, self.auth,
                           self.values['platform'])
        self.log.info('pulled %s (%s)', self.reference, image['Id'][:19])
        return image['Id']

    @classmethod
    def removal_objects(cls, engine: Engine, directory: str, part: str,
                        options: Mapping[str, str]) -> list[Change]:
        """The pulled reference (``keep = true`` by default: a pull is cheap to keep)."""
        reference = options.get('name')
        return reference_removal(engine, reference, 'its part was removed (keep = false)') \
            if reference else []


uninstall = uninstaller(PullRecipe)
