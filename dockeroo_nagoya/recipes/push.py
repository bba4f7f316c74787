"""``docker.push``: push an image under one or more tags, again only when it changed.

Credentials are taken by reference and handed to the SDK in memory for the
push alone: no docker config file is written at all (stricter than a
temporary one), so no password reaches a file, the log, a label or the
engine's history. What was pushed is recorded per reference (image id) in
the part's directory, so a rerun with the same image pushes nothing.

What each reference will hold is known before anything acts: the image as
the parts of this buildout see it on the part's engine
(:func:`~dockeroo_nagoya.run.identities.carried_term`, as for ``docker.save``). A
``docker.pull`` of a pushed reference in the same buildout (``image =
${push:name}``, or one of ``${push:pushed}``), typically on another engine
(a builder machine's), takes that as its ``image-id``, so it needs nothing in
the registry before the first run and is not reinstalled once the push
happened; it pulls whenever its engine's image is not the one pushed.
"""
from __future__ import annotations

import json
import os
from typing import Mapping

import zc.buildout

from ..mechanisms import atomicfile
from ..model import options as opt
from ..run import identities
from ..mechanisms import readfiles
from ..model.decisions import Change, Decision, Promise, PushedAnew, Reason, state
from ..engine.driver import Engine, engine_errors
from ..mechanisms.progress import follow_layers
from .base import Recipe, kept, uninstaller
from ..mechanisms.secrets import CREDENTIAL_OPTIONS, registry_auth
from ..engine.references import split_reference


def target_lines(raw: str) -> list[str]:
    references: list[str] = []
    for line in opt.lines(raw):
        references.extend(opt.image_reference(word) for word in line.split())
    if not references:
        raise opt.Invalid('one or more image references')
    return references


def names_registry(reference: str) -> bool:
    """Whether a reference names its registry (the engine sends one that does not to
    Docker Hub): a first component with a dot or a port, or ``localhost``."""
    first, sep, _ = reference.partition('/')
    return bool(sep) and ('.' in first or ':' in first or first == 'localhost')


class PushRecipe(Recipe):
    """An image pushed to a registry."""

    recipe = 'docker.push'
    kind = 'images'
    table = (
        opt.Option('image', opt.image_reference, doc='The local image to push.'),
        opt.Option('name', opt.image_reference, identity=False,
                   doc="dockeroo's name: the reference the image is pushed as."),
        opt.Option('tags', target_lines,
                   doc="``NAME:TAG`` references to push as (default: the image's own name)."),
        opt.Option('registry', opt.text,
                   doc='Prefixed to each reference that does not start with it.'),
        *CREDENTIAL_OPTIONS,
    )

    def configure(self) -> None:
        source = self.values['image'] or self.values['name']
        if source is None:
            raise opt.invalid(self.name, 'image', 'the local image to push')
        self.source = source
        if self.values['image'] and self.values['name'] and self.values['tags']:
            raise opt.invalid(self.name, 'tags', 'either name (dockeroo: the reference pushed) or '
                              'tags, not both', ' '.join(self.values['tags']))
        if self.values['image'] and self.values['name']:
            targets = [self.values['name']]  # dockeroo: image is pushed as name
        else:
            targets = self.values['tags'] or [source]
        registry = (self.values['registry'] or '').rstrip('/')
        self.targets = [f'{registry}/{t}' if registry and not t.startswith(registry + '/') else t
                        for t in targets]
        self.auth = registry_auth(self.name, self.options)
        for target in self.targets:
            if not names_registry(target):
                raise opt.invalid(
                    self.name, 'registry', f'the registry to push {target} to (set registry, or '
                    f'write it in the reference: HOST[:PORT]/NAME:TAG; docker.io/NAME for Docker '
                    f'Hub): an image goes only where the configuration says')
        self.state = os.path.join(self.buildout['buildout']['parts-directory'], self.name,
                                  'pushed.json')
        self.options['pushed'] = ' '.join(self.targets)
        # What each reference will hold, for a docker.pull of it in this run (on any engine).
        with engine_errors(self.name, self.engine_config, 'looking up the image'):
            term = identities.carried_term(self.engine, self.directory, self.source)
        carried = identities.Carried(self.name, self.engine_config, self.source, term)
        for target in self.targets:
            identities.will_push(self.run, target, carried)

    def decide(self, fresh: bool) -> Decision:
        """Each target pushed unless the record says this image went there; an image a part
        before this one makes anew is pushed after it. A push is promised to a pull of the
        target."""
        image = self.engine.inspect('images', self.source)
        remade = identities.planned_change(self.run, self.engine_config, self.source)
        if image is None and remade is None:
            raise zc.buildout.UserError(f'{self.name}: option image: no local image {self.source!r}')
        pushed = self._read_state()
        found = []
        for target in self.targets:
            if remade is not None or image is None:  # (image is None only when remade)
                found.append(Change('pushed', target, 'push', [Reason('image', follows=remade)]))
            elif pushed.get(target) == image['Id']:
                found.append(Change('pushed', target, 'none', [], image['Id']))
            else:
                found.append(Change('pushed', target, 'push', [Reason(
                    'image', pushed.get(target), image['Id'])] if pushed.get(target) else
                    [Reason('state', note='it was never pushed there')]))
        promises: list[Promise] = [
            PushedAnew(change.object, f'pushed by {self.name}: '
                       + ', '.join(r.text() for r in change.reasons))
            for change in found if change.action == 'push']
        return Decision(found, promises, {'image': image, 'pushed': pushed}, fresh)

    def act(self, decision: Decision) -> list[str]:
        image, pushed = decision.found['image'], decision.found['pushed']
        for change in decision.changes:
            if change.action != 'push':
                continue
            if image is None:  # the part before that makes it failed to
                raise zc.buildout.UserError(
                    f'{self.name}: option image: no local image {self.source!r}')
            target = change.object
            repository, tag = split_reference(target)
            self.engine.api.tag(image['Id'], repository, tag)
            self.log.info('pushing %s (%s)', target, image['Id'][:19])
            stream = self.engine.api.push(repository, tag=tag, stream=True, decode=True,
                                          auth_config=self.auth)
            follow_layers(self.name, f'push of {target}', stream, self.log)
            pushed[target] = image['Id']
            self._write_state(pushed)
            self.engine.forget('images')  # the image has the pushed digest now
        return [os.path.dirname(self.state)]

    def _read_state(self) -> dict[str, str]:
        """What was pushed; an unreadable record only means pushing again."""
        try:
            return readfiles.read_record(self.state)
        except readfiles.Unreadable:
            return {}

    def _write_state(self, pushed: dict[str, str]) -> None:
        os.makedirs(os.path.dirname(self.state), exist_ok=True)
        atomicfile.write_text(self.state, json.dumps(pushed, indent=1, sort_keys=True))

    @classmethod
    def removal_objects(cls, engine: Engine, directory: str, part: str,
                        options: Mapping[str, str]) -> list[Change]:
        """A push is not undone (the registry keeps what it received), but the local tags
        the part made to push are removed: each target that is not the source image's
        own name, while it names the image the part pushed there (or the source's image,
        for a push that failed after the tag) and is not that image's only name."""
        source = (options.get('image') or options.get('name') or '').strip()
        recorded = _recorded(part, options)
        now = engine.inspect('images', source) if source else None
        ours = {recorded.get(target) for target in recorded} | {now['Id'] if now else None}
        found = []
        for target in made_tags(source, (options.get('pushed') or '').split()):
            current = engine.inspect('images', target)
            if current is None or target not in (current.get('RepoTags') or []):
                continue
            change = Change('tag', target, 'remove', [state('its part was removed; the '
                                                            'registry keeps what it received')],
                            current['Id'])
            if current['Id'] not in ours - {None}:
                change = kept(change, 'it names another image than this part pushed')
            elif len(current['RepoTags']) == 1:
                change = kept(change, 'it is the only name of its image')
            found.append(change)
        return found


def made_tags(source: str, targets: list[str]) -> list[str]:
    """The local tags a push makes (with ``api.tag``): every target but the source's own."""
    own = identities.normalised(source) if source else None
    return [identities.normalised(t) for t in targets if identities.normalised(t) != own]


def _recorded(part: str, options: Mapping[str, str]) -> dict[str, str]:
    """What the part recorded as pushed (target -> image id), from the directory buildout
    lists as the part's (the uninstall hook runs before buildout removes it)."""
    for path in (options.get('__buildout_installed__') or '').split():
        if os.path.basename(path.rstrip(os.sep)) == part:
            try:
                return readfiles.read_record(os.path.join(path, 'pushed.json'))
            except readfiles.Unreadable:
                return {}
    return {}


uninstall = uninstaller(PushRecipe)
