"""``docker.copy``: files between containers, or between a container and the host.

dockeroo's options: ``container-from``, ``container-to`` and ``paths`` (see
:mod:`dockeroo_nagoya.copying` for their syntax). Leaving out one of the two
containers makes that side the host. Owners and modes are kept. A copy is
redone only when its source's content changed (or its target container is a
new one). What was copied is recorded in ``location`` (dockeroo's option,
``parts/PART`` by default); the record outlives a reinstall (a package
upgrade reinstalls every part, and must not copy everything again) and goes
when the part is removed. Removing the part copies nothing back; the copies
on the host stay, unless ``keep = false``: then they are the part's installed
files, which buildout removes with the part (and before a reinstall, after
which they are copied again), so a copied private key does not outlive it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any, Mapping

import zc.buildout

from .. import copying, identities
from .. import options as opt
from ..decisions import Change, state
from ..engine import Engine
from ..recipe import Recipe, uninstaller

RECORD = 'copied.json'


class CopyRecipe(Recipe):
    """Copies of paths, done again when their source changes."""

    recipe = 'docker.copy'
    kind = 'containers'
    table = (
        opt.Option('container-from', opt.name),
        opt.Option('container-to', opt.name),
        opt.Option('paths', opt.text, required=True),
        opt.Option('keep', opt.boolean, default='true', identity=False),
    )

    def configure(self) -> None:
        source, target = self.values['container-from'], self.values['container-to']
        if not source and not target:
            raise opt.invalid(self.name, 'container-from', 'container-from, container-to or both '
                              '(a side without a container is the host)')
        try:
            self.copies = copying.parse_paths(self.values['paths'], host_source=not source,
                                              host_target=not target, base=self.directory)
        except opt.Invalid as exc:
            raise opt.invalid(self.name, 'paths', str(exc), self.values['paths']) from None
        self.location = os.path.join(self.directory, self.options.get('location') or os.path.join(
            self.buildout['buildout']['parts-directory'], self.name))
        self.options['location'] = self.location

    def _done(self) -> dict[str, Any]:
        """What the last run copied (per line: content digest and where it went)."""
        record_path = os.path.join(self.location, RECORD)
        if os.path.exists(record_path):
            with open(record_path, encoding='utf-8') as handle:
                return json.load(handle)
        return {}

    def decide(self, fresh: bool) -> list[Change]:
        """Each line copied again when its content or target changed (read now); a
        container a part of this run makes first means every line is copied."""
        later = [self.values[o] for o in ('container-from', 'container-to') if self.values[o]
                 and self.engine.inspect('containers', self.values[o]) is None
                 and identities.will_have_container(self.directory, self.values[o])]
        if later:
            return [Change('copy', copy.text, 'create', [state(f'{later[0]} is made first')])
                    for copy in self.copies]
        made = copying.copies_to_make(self.engine, self.copies, self._container('container-from'),
                                      self._container('container-to'), self._done())
        return [Change('copy', copy.text, 'none' if why is None else 'create'
                       if why == 'first copy' else 'update', [state(why)] if why else [])
                for copy, _, _, why in made]

    def apply(self, fresh: bool) -> list[str]:
        record_path = os.path.join(self.location, RECORD)
        done = self._done()
        source = self._container('container-from')
        target = self._container('container-to')
        try:
            record = copying.copy_paths(self.engine, self.copies, source, target, done, self.log)
        except copying.CopyError as exc:
            raise zc.buildout.UserError(f'{self.name}: option paths: {exc}') from None
        os.makedirs(self.location, exist_ok=True)
        with open(record_path, 'w', encoding='utf-8') as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
        if self.values['keep'] or target:
            return []
        return [copy.target for copy in self.copies]

    def _container(self, option: str) -> str | None:
        name = self.values[option]
        if not name:
            return None
        found = self.engine.inspect('containers', name)
        if found is None:
            raise zc.buildout.UserError(f'{self.name}: option {option}: no container {name} '
                                        f'on the Docker engine')
        return found['Id']

    @classmethod
    def teardown(cls, engine: Engine, directory: str, part: str,
                 options: Mapping[str, str], log: logging.Logger) -> None:
        location = options.get('location')
        if location:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(location, RECORD))
            with contextlib.suppress(OSError):
                os.rmdir(location)  # only when nothing else is in it
        log.debug('%s: the copies stay where they went', part)


uninstall = uninstaller(CopyRecipe)

__all__ = ['CopyRecipe', 'uninstall']
