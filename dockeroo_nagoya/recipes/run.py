"""``docker.run``: one container, recreated exactly when its identity changes.

A container is disposable and its identity says when it must be made anew:
a hash of the options that need a new container, the id of its image and
the content of its ``env-file`` and ``layout``. Everything else (a restart
policy, a start, the gates) is done to the container in place, so a rerun
that changes nothing touches nothing. The options, what the part exposes and
what a removal does: docs/recipes/run.rst (the table comes from
:data:`dockeroo_nagoya.containers.TABLE`). How the container is planned and
brought up is in :mod:`dockeroo_nagoya.containers`; the removal runs in the
background, after the removed parts that depend on it (:mod:`..removals`).
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, MutableMapping

from .. import containers, identities
from .. import options as opt
from ..decisions import Change, Reason
from ..engine import Engine, engine_errors
from ..recipe import Recipe, uninstaller


class RunRecipe(Recipe):
    """A container (a service, or a job that runs once to completion)."""

    recipe = 'docker.run'
    kind = 'containers'
    #: ``keep = true`` leaves the containers: the plan says so, the listings stay valid.
    keep_default = False
    owns = ('containers',)
    table = containers.TABLE + (
        opt.Option('replicas', opt.integer(1, opt.MAX_REPLICAS), identity=False,
                   doc=('Containers ``NAME-1`` ... ``NAME-N`` from one part; ``{index}`` is each '
                        "one's number; ``${part:names}`` lists them.")),
        # Names of parts this one comes after: a reference is all buildout needs to order them.
        opt.Option('depends', opt.words, default='', identity=False,
                   doc=('Lines such as ``${other:name}``: the reference orders the parts, nothing '
                        'else.')),
    )

    #: toji's spellings, read by take_toji_aliases.
    extra_options = (*containers.TOJI_ALIASES, 'detach')

    def __init__(self, buildout: Mapping[str, Mapping[str, str]], name: str,
                 options: MutableMapping[str, str]) -> None:
        containers.take_toji_aliases(options, name)
        super().__init__(buildout, name, options)

    def parse_values(self, options: Mapping[str, str]) -> dict[str, Any]:
        """With ``replicas``, ``{index}`` may stand in any option, names included (a
        volume of each replica's own: ``NAME-{index}:/PATH``): the part's options are read
        with the first replica's number there, and each replica's with its own in
        :meth:`configure`, so a bad line is still said here, before anything acts."""
        if not (options.get('replicas') or '').strip():
            return super().parse_values(options)
        return super().parse_values({key: value.replace('{index}', '1')
                                     for key, value in options.items()})

    def configure(self) -> None:
        name = self.name_from_part()
        replicas = self.values['replicas']
        if replicas is None:
            self.specs = [containers.ContainerSpec.from_values(
                self.name, name, self.values, self.directory, self.run)]
            self.options['names'] = name
            self.configured()
            return
        self.specs = []
        for index in range(1, replicas + 1):
            # Each replica's options with {index} replaced, parsed like the part's own.
            raw = {o.name: self.options[o.name].replace('{index}', str(index))
                   for o in self.table if o.name in self.options}
            values = opt.parse_options(self.name, raw, self.table)
            self.specs.append(containers.ContainerSpec.from_values(
                self.name, f'{name}-{index}', values, self.directory, self.run))
        self.options['names'] = ' '.join(spec.name for spec in self.specs)
        self.configured()

    def configured(self) -> None:
        """Each container's image checked, and its configured identity registered for a
        part that saves it as an image."""
        with engine_errors(self.name, self.engine_config, 'looking up the image'):
            self.specs[0].check_image(self.engine)
            for spec in self.specs:
                spec.check_links(self.engine)
        for spec in self.specs:
            identities.will_run_container(self.run, self.engine_config, spec.name,
                                          lambda spec=spec: spec.configured_identity(self.engine))

    def decide(self, fresh: bool) -> list[Change]:
        runners = [containers.Runner(self, spec) for spec in self.specs]
        found = [runner.change(runner.decide(fresh, self.was_installed(runner.spec, fresh)))
                 for runner in runners]
        for stale, why in self.stale(fresh):
            found.append(Change('container', stale['Names'][0].lstrip('/'), 'remove',
                                [Reason('state', note=why)], stale['Id']))
        return found

    def was_installed(self, spec: containers.ContainerSpec, fresh: bool) -> bool:
        """Whether an earlier run installed this container (a replica added by raising
        replicas was not: it is new, not removed)."""
        names = (self.run.previous.get(self.name) or {}).get('names')
        if fresh and names is not None:
            return spec.name in names.split()
        return self.installed_before(fresh)

    def stale(self, fresh: bool) -> list[tuple[dict[str, Any], str]]:
        """Containers of this part no spec names any more (an install removes them), and why."""
        if not fresh:
            return []
        if self.values['replicas'] is None:
            name = self.specs[0].name
            return [(c, f'the part now names its container {name}')
                    for c in self.engine.part_objects('containers', self.directory, self.name)
                    if f'/{name}' not in (c.get('Names') or [])]
        wanted = {f'/{spec.name}' for spec in self.specs}
        return [(c, f'replicas is now {len(self.specs)}')
                for c in self.engine.part_objects('containers', self.directory, self.name)
                if not wanted & set(c.get('Names') or [])]

    def apply(self, fresh: bool) -> list[str]:
        runners = [containers.Runner(self, spec) for spec in self.specs]
        for runner in runners:
            runner.converge(fresh, self.was_installed(runner.spec, fresh))
        for stale, why in self.stale(fresh):
            self.log.info('removing %s: %s', stale['Names'][0].lstrip('/'), why)
            runners[0].remove(stale['Id'])
        return []

    @classmethod
    def teardown(cls, engine: Engine, directory: str, part: str,
                 options: Mapping[str, Any], log: logging.Logger,
                 defer: Callable[[Callable[[], None]], None] | None = None) -> None:
        containers.teardown(engine, directory, part, options, log, defer)

    @classmethod
    def removal_order(cls, options: Mapping[str, str]
                      ) -> tuple[frozenset[str], frozenset[str]] | None:
        """Removed in the background, after the removed parts that come after it; a kept
        part stops nothing and is recorded as kept before the hook returns."""
        if opt.saved_flag(options, 'keep', False):
            return None
        names = (options.get('names') or options.get('name') or '').split()
        return frozenset(names), containers.comes_after(options)


uninstall = uninstaller(RunRecipe)

__all__ = ['RunRecipe', 'uninstall']
