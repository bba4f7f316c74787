"""``docker.run``: one container, recreated exactly when its identity changes.

A container is disposable and its identity says when it must be made anew:
a hash of the options that need a new container, the id of its image and
the content of its ``env-file`` and ``layout``. Everything else (a restart
policy, a start, the gates) is done to the container in place, so a rerun
that changes nothing touches nothing. The options, what the part exposes and
what a removal does: docs/recipes/run.rst (the table comes from
:data:`dockeroo_nagoya.mechanisms.containerspec.TABLE`). How the container is planned and
brought up is in :mod:`dockeroo_nagoya.mechanisms.runner`; the removal runs in the
background, after the removed parts that depend on it (:mod:`..removals`).
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Mapping, MutableMapping

from ..mechanisms import containers, containerspec
from ..model import dependencies
from ..run import identities
from ..mechanisms.runner import Runner
from ..model import options as opt
from ..model.decisions import Change, Decision, Reason
from ..engine.driver import Engine, engine_errors
from .base import Defer, Recipe, uninstaller


class RunRecipe(Recipe):
    """A container (a service, or a job that runs once to completion)."""

    recipe = 'docker.run'
    kind = 'containers'
    #: ``keep = true`` leaves the containers: the plan says so, the listings stay valid.
    keep_default = False
    kept_kinds = ('container',)
    owns = ('containers',)
    table = containerspec.TABLE + (
        opt.Option('replicas', opt.integer(1, opt.MAX_REPLICAS), identity=False,
                   doc=('Containers ``NAME-1`` ... ``NAME-N`` from one part; ``{index}`` is each '
                        "one's number; ``${part:names}`` lists them.")),
        # Names of parts this one comes after: a reference is all buildout needs to order them.
        opt.Option('depends', opt.words, default='', identity=False,
                   doc=('Lines such as ``${other:name}``: the reference orders the parts, nothing '
                        'else.')),
    )

    #: toji's spellings, read by take_toji_aliases.
    extra_options = (*containerspec.TOJI_ALIASES, 'detach')

    def __init__(self, buildout: Mapping[str, Mapping[str, str]], name: str,
                 options: MutableMapping[str, str]) -> None:
        containerspec.take_toji_aliases(options, name)
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
            self.specs = [containerspec.ContainerSpec.from_values(
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
            self.specs.append(containerspec.ContainerSpec.from_values(
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
                                          functools.partial(spec.configured_identity, self.engine))

    def decide(self, fresh: bool) -> Decision:
        """Each container's decision (:meth:`.runner.Runner.decide`), then the containers
        of the part no spec names any more."""
        runners = [Runner(self, spec) for spec in self.specs]
        steps = [runner.decide(fresh, self.was_installed(runner.spec, fresh),
                               restart_unchanged=self.restart_unchanged(fresh))
                 for runner in runners]
        found = [runner.change(step) for runner, step in zip(runners, steps)]
        for stale, why in self.stale(fresh):
            found.append(Change('container', stale['Names'][0].lstrip('/'), 'remove',
                                [Reason('state', note=why)], stale['Id']))
        return Decision(found, found={'runners': runners, 'steps': steps}, fresh=fresh)

    def was_installed(self, spec: containerspec.ContainerSpec, fresh: bool) -> bool:
        """Whether an earlier run installed this container (a replica added by raising
        replicas was not: it is new, not removed)."""
        names = (self.run.previous.get(self.name) or {}).get('names')
        if fresh and names is not None:
            return spec.name in names.split()
        return self.installed_before(fresh)

    def restart_unchanged(self, fresh: bool) -> bool:
        """Whether the part is installed again with the ``restart`` the last successful
        install left its containers with (see :meth:`.Runner.decide`)."""
        previous = self.run.previous.get(self.name)
        return fresh and previous is not None and \
            previous.get('restart') == self.options.get('restart')

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

    def act(self, decision: Decision) -> list[str]:
        runners, steps = decision.found['runners'], decision.found['steps']
        for runner, step, change in zip(runners, steps, decision.changes):
            runner.act(step, change, decision.fresh)
        for change in decision.changes[len(runners):]:
            if change.action == 'remove':
                assert change.id is not None
                self.log.info('removing %s: %s', change.object,
                              ', '.join(r.text() for r in change.reasons))
                runners[0].remove(change.id)
        return []

    @classmethod
    def remove_containers(cls, engine: Engine, directory: str, part: str,
                          options: Mapping[str, str], going: list[Change], log: logging.Logger,
                          defer: Defer | None = None) -> None:
        """Stopped within ``stop-timeout``, with the part's callbacks."""
        containers.teardown(engine, directory, part, options, log,
                            [(str(change.id), change.object) for change in going], defer)

    @classmethod
    def removal_order(cls, options: Mapping[str, str]
                      ) -> tuple[frozenset[str], frozenset[str]] | None:
        """Removed in the background, after the removed parts that come after it; a kept
        part stops nothing and is recorded as kept before the hook returns."""
        if cls.keeps_all(options):
            return None
        names = (options.get('names') or options.get('name') or '').split()
        return frozenset(names), dependencies.recorded(options)


uninstall = uninstaller(RunRecipe)

__all__ = ['RunRecipe', 'uninstall']
