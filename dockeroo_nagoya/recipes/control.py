"""``docker.control``: ``bin/NAME``, one control command for containers of separate parts.

A ``docker.system`` part writes a control script for its members; this
recipe writes the same script (:mod:`dockeroo_nagoya.mechanisms.controlscript`, one
implementation) for containers that come from separate ``docker.run``
parts, such as the Koji profile's ``bin/kojictl``. Their order is the one
buildout follows, and each part's containers are on that part's engine, so
the command reaches builders on other machines. The part owns no engine
object: removing it removes the script only. Options and commands:
docs/recipes/control.rst and docs/control.rst.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import zc.buildout

from ..mechanisms import controlscript
from ..model import dependencies
from ..run import identities
from ..model import options as opt
from ..model.decisions import Decision
from ..engine.driver import EngineConfig
from .base import Recipe, uninstaller
from .run import RunRecipe


class ControlRecipe(Recipe):
    """The control command of a set of docker.run parts."""

    recipe = 'docker.control'
    kind = 'containers'
    owns = ()
    table = (
        opt.Option('parts', opt.words, required=True,
                   doc=('The ``docker.run`` parts whose containers the script controls (any order; '
                        'a replicated part brings each of its containers).')),
        opt.Option('script-name', opt.name,
                   doc="The script's name in ``bin`` (default: the part's name)."),
        opt.Option('backup-directory', opt.path, identity=False,
                   doc='Where ``backup`` writes (default ``var/backups/PART``).'),
    )

    def configure(self) -> None:
        # part -> (section, spec) of each of its containers: the part's name for a single
        # container, the container's name for each of a replicated part's.
        found: dict[str, list[tuple[str, Any]]] = {}
        # part -> its engine, as the part itself reaches it (its options, then [buildout]'s).
        engines: dict[str, EngineConfig] = {}
        for part in self.values['parts']:
            if part in found:
                raise opt.invalid(self.name, 'parts', 'each part once', f'{part} twice')
            try:
                part_options = self.buildout[part]
            except KeyError as exc:
                if exc.args and exc.args[0] != part:
                    raise
                raise opt.invalid(self.name, 'parts', 'names of docker.run parts of this '
                                  'buildout', f'{part} (there is no [{part}])') from None
            recipe = getattr(part_options, 'recipe', None)
            if not isinstance(recipe, RunRecipe):
                raise opt.invalid(self.name, 'parts', 'names of docker.run parts',
                                  f'{part} (recipe {part_options.get("recipe") or "none"})')
            single = recipe.values['replicas'] is None
            found[part] = [(part if single else spec.name, spec) for spec in recipe.specs]
            engines[part] = recipe.engine_config
        # A reference to a part, or to one of its containers by name, means those members.
        by_reference: dict[str, list[str]] = {}
        for part, members_of_part in found.items():
            for member, spec in members_of_part:
                by_reference.setdefault(part, []).append(member)
                by_reference.setdefault(spec.name, []).append(member)
        specs = {member: (part, spec) for part, members_of_part in found.items()
                 for member, spec in members_of_part}

        def unknown(member: str, reference: str) -> zc.buildout.UserError | None:
            """A container another part of this buildout runs, left out of ``parts``: the
            script would start this one without it (any other reference, a path or a
            volume, only orders buildout's parts)."""
            part, _ = specs[member]
            if not identities.will_have_container(self.run, engines[part], reference):
                return None
            return opt.invalid(f'{self.name}: member {member}', 'depends',
                               f'containers of the parts in parts (add the part that runs '
                               f'{reference} to parts)', reference)

        needs = dependencies.resolve({member: spec.values for member, (_, spec) in specs.items()},
                                     lambda reference: by_reference.get(reference, []), unknown)
        members = []
        for member, (part, spec) in specs.items():
            after, linked = needs[member].after - {member}, needs[member].linked
            members.append(controlscript.describe_member(member, spec, after, linked,
                                                         engines[part]))
        graph = {m['section']: set(m['after']) for m in members}
        dependencies.check_acyclic(graph, self.name, 'parts', 'depends, links and volumes-from')
        order = dependencies.order(graph)
        by_section = {m['section']: m for m in members}
        self.members = [by_section[s] for s in order]
        self.script = self.values['script-name'] or self.name
        self.backups = self.values['backup-directory'] or os.path.join(
            self.directory, 'var', 'backups', self.name)
        # Written into the part so buildout sees what the script acts on.
        self.options['containers'] = ' '.join(m['container'] for m in self.members)

    def decide(self, fresh: bool) -> Decision:
        """A script and its description, files of the buildout (written on every run): no
        engine object."""
        return Decision([], fresh=fresh)

    def act(self, decision: Decision) -> list[str]:
        description = controlscript.describe(self.name, self.owner, self.engine_config,
                                             self.backups, self.members)
        return controlscript.write_control(self.buildout['buildout']['bin-directory'],
                                           self.buildout['buildout']['parts-directory'],
                                           self.name, self.recipe, description, self.script)

    @classmethod
    def uninstall(cls, name: str, options: Mapping[str, str]) -> None:
        """Nothing to do on the engine, so no connection either."""


uninstall = uninstaller(ControlRecipe)

__all__ = ['ControlRecipe', 'uninstall']
