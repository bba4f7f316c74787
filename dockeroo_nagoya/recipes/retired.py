"""dockeroo's recipes that have no counterpart here: one line saying what to use instead.

dockeroo drove docker-machine, which Docker retired in 2021. A buildout that
still names ``machine.create`` stops before anything is done, with a line
naming the part and the replacement, instead of buildout's traceback about
an entry point it cannot find.
"""
from __future__ import annotations

from typing import Mapping, MutableMapping

import zc.buildout

#: dockeroo's entry point -> what to use instead.
REPLACEMENTS = {
    'machine.create': (
        'dockeroo:machine.create made docker-machine hosts, and docker-machine is retired: make '
        'the host yourself, then point the parts at its engine with docker-host (with '
        'docker-tls-verify and docker-cert-path), or create a Docker context for it (docker '
        'context create NAME --docker host=...) and name it in machine-name'),
}


class RetiredRecipe:
    """Stops buildout with the replacement (set by the subclass)."""

    entry_point = ''

    def __init__(self, buildout: Mapping[str, Mapping[str, str]], name: str,
                 options: MutableMapping[str, str]) -> None:
        raise zc.buildout.UserError(f'{name}: recipe {self.entry_point} is not supported: '
                                    f'{REPLACEMENTS[self.entry_point]}')


class MachineCreateRecipe(RetiredRecipe):
    entry_point = 'machine.create'


def uninstall(name: str, options: Mapping[str, str]) -> None:
    """Nothing was ever installed by these entry points."""


__all__ = ['MachineCreateRecipe', 'uninstall']
