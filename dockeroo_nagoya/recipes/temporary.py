"""``docker.temporary`` (nagoya moromi's container systems): throwaway containers, saved as images.

One part brings up a short-lived system, runs its commands in it and
saves the containers it chooses as images. Say a database image and a
setup step that loads a schema into it: the database's state is saved as
an image of its own, and nothing keeps running. The containers are named
``dockeroo-nagoya-tmp-PART-RANDOM`` and labelled as the part's, so they
never clash with a container somebody runs, and are removed whether the
part succeeded or not; the images are made untagged and tagged together at
the end, so a failed step leaves the previous run's images as they were.
Options: docs/recipes/temporary.rst.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from typing import Any

from ..model import options as opt
from ..mechanisms import resources, snapshots
from ..model.decisions import Change, Decision, ImageChanges, Promise, state
from ..engine.errors import NotFound
from ..engine.driver import identity_hash
from ..engine.references import with_tag
from ..run import identities
from .base import ImageRecipe, references_of, remove_image, uninstaller
from ..mechanisms.throwaway import (ImageConfig, Throwaway, command_line, image_config, ports,
                                    script_text)

SAVE_RE = re.compile(
    r'^(?P<image>\S+)(?:\s+alias\s+(?P<alias>\S+))?\s+(?:then\s+)?'
    r'(?:(?P<discard>discard)|(?P<action>commit|persist)\s+to\s+(?P<target>\S+))$')
LINK_EXPECTED = ('IMAGE alias HOST [then] discard, IMAGE alias HOST [then] commit to IMAGE '
                 'or IMAGE alias HOST [then] persist to IMAGE lines')
VOLUME_EXPECTED = ('IMAGE [then] discard, IMAGE [then] persist to IMAGE or IMAGE [then] '
                   'commit to IMAGE lines')


@dataclasses.dataclass(frozen=True)
class Member:
    """One throwaway container besides the root: its image, alias and what becomes of it."""

    image: str
    alias: str | None
    action: str          # 'discard', 'commit' or 'persist'
    target: str | None   # NAME:TAG of the image it is saved as


def tagged(reference: str) -> str:
    """An image name to tag, with ``:latest`` when it has no tag."""
    reference = opt.image_reference(reference)
    if '@' in reference:
        raise opt.Invalid('image names to tag, not digests')
    return with_tag(reference)


def members(linked: bool) -> opt.Parser:
    """Parser of ``links`` (``linked``: an alias is needed) or ``volumes-from`` lines."""
    expected = LINK_EXPECTED if linked else VOLUME_EXPECTED

    def parse(raw: str) -> list[Member]:
        found = []
        for line in opt.lines(raw):
            match = SAVE_RE.match(line)
            if not match or bool(match.group('alias')) != linked:
                raise opt.Invalid(expected)
            try:
                image = opt.image_reference(match.group('image'))
                target = tagged(match.group('target')) if match.group('target') else None
            except opt.Invalid as exc:
                raise opt.Invalid(f'{expected} ({exc}, in {line!r})') from None
            found.append(Member(image, match.group('alias'),
                                match.group('action') or 'discard', target))
        return found
    return parse


class TemporaryRecipe(ImageRecipe):
    """Throwaway containers that run commands and are saved as images (moromi's systems)."""

    recipe = 'docker.temporary'
    table = (
        opt.Option('from', opt.image_reference, required=True, doc="The root container's image."),
        opt.Option('name', opt.text, identity=False,
                   doc="The root's image when ``commit = true`` (default: the part's name)."),
        opt.Option('tag', opt.text, identity=False, doc="The image's tag (default ``latest``)."),
        opt.Option('libs', opt.text, default='', identity=False,
                   doc='Resource lines copied into the root.'),
        opt.Option('entrypoint', opt.text, default='', identity=False,
                   doc='One resource line, run in the root.'),
        opt.Option('script', script_text, doc='Shell script run in the root.'),
        opt.Option('script-shell', opt.text, default='/bin/sh',
                   doc='The shell that runs ``script``.'),
        opt.Option('links', members(linked=True), default='',
                   doc=('``IMAGE alias HOST [then] discard|commit to IMAGE2|persist to IMAGE2`` '
                        'lines.')),
        opt.Option('volumes-from', members(linked=False), default='', aliases=('volumes_from',),
                   doc='``IMAGE [then] discard|persist to IMAGE2|commit to IMAGE2`` lines.'),
        opt.Option('commit', opt.boolean, default='false',
                   doc='Save the root as ``name``/``tag``.'),
        opt.Option('command', command_line, doc="The committed image's CMD."),
        opt.Option('env', opt.key_values, default='', aliases=('envs',),
                   doc="The root's environment (moromi's ``envs``)."),
        opt.Option('expose', ports, default='', doc="The committed image's EXPOSE."),
        opt.Option('labels', opt.key_values, default='', doc="The committed image's labels."),
        opt.Option('user', opt.text, doc="The committed image's USER."),
        opt.Option('working-dir', opt.text, doc="The committed image's WORKDIR."),
        opt.Option('stop-timeout', opt.duration, default='10s', identity=False,
                   doc="Time a linked container's stop waits."),
        opt.Option('keep', opt.boolean, default='false', identity=False,
                   doc='Keep the images when the part is removed.'),
    )

    def configure(self) -> None:
        values = self.values
        for option in ('libs', 'entrypoint'):
            raw = values[option]
            try:
                values[option] = resources.parse(self.directory, single=option == 'entrypoint')(raw)
            except opt.Invalid as exc:
                raise opt.invalid(self.name, option, str(exc), raw) from None
        if not values['entrypoint'] and not values['script']:
            raise opt.invalid(self.name, 'script', 'the commands to run in the root container '
                              '(script, or an entrypoint resource line)')
        self.members = [*values['volumes-from'], *values['links']]
        outputs = [m.target for m in self.members if m.target]
        if values['commit']:
            outputs.insert(0, self.image_from_options())
        if len(set(outputs)) != len(outputs):
            raise opt.invalid(self.name, 'links', 'a different image for each container saved',
                              ' '.join(outputs))
        self.outputs = outputs
        for output in outputs:
            identities.will_make_image(self.run, self.engine_config, output, None, self.name)
        self.resource_digests = {option: [[r.target, resources.digest(r)] for r in values[option]]
                                 for option in ('libs', 'entrypoint')}
        # In the options, so that buildout reinstalls the part when a file changes.
        self.options['input-digest'] = identity_hash(self.resource_digests)
        self.options['images'] = ' '.join(outputs)

    # -- deciding -------------------------------------------------------------------
    def _decision(self) -> tuple[str, dict[str, str], dict[str, dict[str, Any] | None],
                                 list[Change]]:
        """(identity, labels, each output image now, whether the system runs again: every
        output is saved anew unless all of them have this identity)."""
        used = {'from': self.values['from'], **{f'member {i}': m.image
                                                for i, m in enumerate(self.members)}}
        ids = {}
        for what, reference in used.items():
            ids[what] = self.local_image_id(
                'from' if what == 'from' else 'links or volumes-from', reference)
        identity, labels = self.image_identity(resources=self.resource_digests, images=ids)
        current = {ref: self.engine.inspect('images', ref) for ref in self.outputs}
        for reference, image in current.items():
            if image is not None:
                self.check_ours(image, 'image', reference)
        again = not all(image and self.identity_of(image) == identity for image in current.values())
        return identity, labels, current, [
            Change('image', ref, 'build' if again else 'none',
                   [state('its temporary system runs again: its inputs changed')] if again and image
                   else [state('there is no such image yet')] if again else [],
                   image['Id'] if image else None) for ref, image in current.items()]

    def decide(self, fresh: bool) -> Decision:
        """The throwaway containers a killed run left are removed; the system runs again
        unless every output image has this identity, and its saving them anew is promised
        to the parts that start from them."""
        found = [Change('container', c['Names'][0].lstrip('/'), 'remove', [state(
            'a leftover of a killed run')], c['Id'])
            for c in self.engine.part_objects('containers', self.directory, self.name)]
        identity, labels, current, changes = self._decision()
        promises: list[Promise] = [ImageChanges(self.engine_config, change.object,
                                                f'saved by {self.name}')
                                   for change in changes if change.action != 'none']
        return Decision(found + changes, promises, {'labels': labels, 'current': current}, fresh)

    def act(self, decision: Decision) -> list[str]:
        self.remove_leftovers([c for c in decision.changes
                               if c.kind == 'container' and c.action == 'remove'])
        labels, current = decision.found['labels'], decision.found['current']
        if all(c.action == 'none' for c in decision.changes if c.kind == 'image'):
            if decision.fresh:
                self.remove_stale_outputs({image['Id'] for image in current.values() if image})
            return []
        self.log.info('running the temporary system of %s', self.name)
        made: dict[str, str] = {}
        try:
            self.run_system(labels, made)
        except BaseException:
            for image_id in reversed(list(made.values())):
                remove_image(self.engine, image_id, self.log, quiet=True)
            self.engine.forget()
            self._remove_unfinished()
            raise
        for reference, image_id in made.items():
            repository, tag = reference.rsplit(':', 1)
            self.engine.api.tag(image_id, repository, tag, force=True)
            self.log.info('saved %s (%s)', reference, image_id[:19])
        for reference, image in current.items():
            if image is not None and image['Id'] != made.get(reference):
                remove_image(self.engine, image['Id'], self.log, quiet=True)
        self.engine.forget()
        if decision.fresh:
            self.remove_stale_outputs(set(made.values()))
        return []

    def remove_leftovers(self, leftovers: list[Change]) -> None:
        """Throwaway containers of this part that a killed run left behind."""
        for container in leftovers:
            assert container.id is not None
            with contextlib.suppress(NotFound):
                self.engine.api.remove_container(container.id, force=True, v=True)
                self.log.info('removed the leftover container %s', container.object)
        self.engine.forget('containers')

    def remove_stale_outputs(self, keep: set[str]) -> None:
        """Images this part saved before under names it no longer saves."""
        if self.values['keep']:
            return
        for image in self.engine.part_objects('images', self.directory, self.name):
            if image['Id'] not in keep:
                for reference in references_of(image):
                    remove_image(self.engine, reference, self.log)

    # -- acting -----------------------------------------------------------------------
    def run_system(self, labels: dict[str, str], made: dict[str, str]) -> None:
        """Bring the containers up, run the root's commands, save; remove every container."""
        values = self.values
        with contextlib.ExitStack() as stack:
            volume_boxes = []
            for member in values['volumes-from']:
                box = stack.enter_context(self.throwaway(member, labels))
                config = (self.engine.inspect('images', member.image) or {}).get('Config') or {}
                if config.get('Cmd') or config.get('Entrypoint'):
                    box.wait()
                volume_boxes.append((member, box))
            link_boxes = []
            for member in values['links']:
                box = stack.enter_context(self.throwaway(member, labels))
                self.log.info('starting the linked container %s (%s) as %s', member.alias,
                              member.image, box.name)
                box.start()
                link_boxes.append((member, box))
            root = stack.enter_context(Throwaway(
                self.engine, values['from'], self.name, labels, what='root container',
                shell=values['script-shell'], env=values['env'],
                links=[(box.name, member.alias or '') for member, box in link_boxes],
                volumes_from=[f'{box.name}:rw' for _, box in volume_boxes], log=self.log))
            if values['libs']:
                root.put('/', resources.container_tar(values['libs']))
            if values['entrypoint']:
                root.put('/', resources.container_tar(values['entrypoint'], executable=True))
            for resource in values['entrypoint']:
                root.run('entrypoint', command=[resource.target],
                         workdir=resource.target.rsplit('/', 1)[0] or '/')
            if values['script']:
                root.run('script', values['script'])
            timeout = int(math.ceil(values['stop-timeout']))
            for _, box in link_boxes:
                box.stop(timeout)
            if values['commit']:
                self.log.info('committing the root container to %s', self.image)
                made[self.image] = root.commit(self.root_config(), labels)
            for member, box in [*volume_boxes, *link_boxes]:
                if member.target:
                    made[member.target] = self.save(member, box, labels)

    def throwaway(self, member: Member, labels: dict[str, str]) -> Throwaway:
        what = f'linked container {member.alias}' if member.alias else 'volume container'
        return Throwaway(self.engine, member.image, self.name, labels, what=what,
                         own_command=True, log=self.log)

    def save(self, member: Member, box: Throwaway, labels: dict[str, str]) -> str:
        """Commit or persist one container; an untagged image."""
        self.log.info('%s the %s (%s) to %s', 'persisting' if member.action == 'persist'
                      else 'committing', box.what, member.image, member.target)
        container = self.engine.inspect('containers', box.id or '')
        assert container is not None
        image_id = snapshots.commit(self.engine, self.name, container, ImageConfig(), labels,
                                    self.log, pause=False)
        if member.action == 'persist':
            mounts = snapshots.volume_mounts(self.name, container, None)
            image_id = snapshots.with_volumes(self.engine, self.name, image_id, container['Id'],
                                              mounts, labels, self.log)
        return image_id

    def root_config(self) -> ImageConfig:
        """The root's image configuration: its base image's, changed by the options."""
        return image_config({**self.values, 'entrypoint': None, 'volumes': ()})


uninstall = uninstaller(TemporaryRecipe)

__all__ = ['TemporaryRecipe', 'uninstall']
