"""``docker.run``: one container, recreated exactly when its identity changes.

Options (dockeroo's names; nagoya's jobs, gates and callbacks):

- ``name`` (the part name), ``image`` (required: a local image; use a
  ``docker.build`` or ``docker.pull`` part to make it), ``command`` and
  ``entrypoint`` (split as a shell would), ``env`` (``KEY=VALUE`` lines),
  ``env-file`` (read at each run; only its hash is kept), ``user``,
  ``working-dir``, ``hostname``, ``tty``, ``init``, ``privileged``,
  ``cap-add``, ``cap-drop``, ``labels``.
- ``ports``: ``[IP:][HOST:]CONTAINER[/udp]`` lines. ``volumes``:
  ``SOURCE:/PATH[:ro]`` lines, SOURCE a volume name or a host path (``/``,
  ``./``, ``~/``), or ``/PATH`` alone for an anonymous volume.
  ``volumes-from``: ``CONTAINER[:ro|rw]`` lines. ``links``:
  ``CONTAINER[:ALIAS]`` lines. ``networks`` (the first one at creation) and
  ``network-aliases`` (on each user-defined network).
- ``healthcheck`` (a shell command, or ``none``) with ``healthcheck-interval``
  (1s, so ``wait-for = healthy`` is quick), ``-timeout``, ``-retries``,
  ``-start-period``.
- ``layout``: a host directory laid over ``/`` before the first start (owned
  by root, modes kept). ``script``, ``script-shell`` (``/bin/sh``),
  ``script-user``: run once in each new container, after its gates passed.
- ``job = true``: run to completion; a failure shows the exit code and log.
- ``wait-for`` and ``wait-timeout`` (120s): readiness gates, see
  :mod:`dockeroo_nagoya.probes`.
- Without a new container: ``restart`` (changed in place), ``start``
  (``false`` only creates), ``stop-timeout`` (10s), ``callbacks``
  (``EVENT = module:function`` lines), ``keep`` (leave it when the part goes).

nagoya's toji spellings ``working_dir``, ``volumes_from``, ``envs``,
``add_capabilities`` and ``drop_capabilities`` are read too. How the
container is planned and brought up is in :mod:`dockeroo_nagoya.containers`.
``${part:name}`` is the container's name, for parts that link to it or
reach it on a network.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, MutableMapping

from .. import containers
from ..engine import Engine
from ..recipe import Recipe, uninstaller


class RunRecipe(Recipe):
    """A container (a service, or a job that runs once to completion)."""

    recipe = 'docker.run'
    kind = 'containers'
    table = containers.TABLE

    def __init__(self, buildout: Mapping[str, Mapping[str, str]], name: str,
                 options: MutableMapping[str, str]) -> None:
        containers.take_toji_aliases(options)
        super().__init__(buildout, name, options)

    def configure(self) -> None:
        self.spec = containers.ContainerSpec.from_values(
            self.name, self.name_from_part(), self.values, self.directory)

    def apply(self, fresh: bool) -> list[str]:
        runner = containers.Runner(self, self.spec)
        runner.converge(fresh)
        if fresh:
            runner.remove_stale()
        return []

    @classmethod
    def teardown(cls, engine: Engine, directory: str, part: str,
                 options: Mapping[str, Any], log: logging.Logger) -> None:
        containers.teardown(engine, directory, part, options, log)


uninstall = uninstaller(RunRecipe)

__all__ = ['RunRecipe', 'uninstall']
