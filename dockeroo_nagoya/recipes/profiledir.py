"""``profile-directory``: the directory of the configuration file that defines the part.

``${buildout:directory}`` is the directory of the buildout being run, not of
a file it extends, and zc.buildout 6 has no variable for the latter. A
profile that ships files beside itself (the Koji profile's ``koji/``) names
them through a part of this recipe instead, so a buildout anywhere can
``extends = /path/to/profiles/koji.cfg`` and use them where they are::

    [koji-files]
    recipe = dockeroo_nagoya:profile-directory
    path = koji

``${koji-files:directory}`` is the absolute directory of the file whose
section first set this part's ``recipe`` (the profile, even when the
extending buildout overrides other options of the section), and
``${koji-files:location}`` is ``path`` under it. Nothing is installed.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, MutableMapping

import zc.buildout

from ..model import options as opt


class ProfileDirectoryRecipe:
    """Computes ``directory`` and ``location`` from where the section was written."""

    table = (
        opt.Option('path', default='', identity=False,
                   doc='A directory relative to the file that defines the section; '
                       '``${part:location}``.'),
    )

    def __init__(self, buildout: Any, name: str, options: MutableMapping[str, str]) -> None:
        source = defining_file(buildout, name)
        directory = os.path.dirname(os.path.abspath(source))
        path = opt.parse_options(name, options, self.table)['path']
        location = os.path.normpath(os.path.join(directory, path))
        if not os.path.isdir(location):
            raise zc.buildout.UserError(
                f'{name}: option path: a directory beside {source}, not '
                f'{path or "."} ({location} does not exist)')
        options['directory'] = directory
        options['location'] = location

    def install(self) -> tuple[str, ...]:
        return ()

    update = install


def defining_file(buildout: Any, name: str) -> str:
    """The file that first set ``[name] recipe``, from buildout's own annotations."""
    try:
        history = buildout._annotated[name]['recipe'].history
        source = next(item.source for item in history if item.operation == 'SET')
    except (AttributeError, KeyError, TypeError, StopIteration):
        raise zc.buildout.UserError(
            f'{name}: cannot tell which file defines [{name}] (this zc.buildout keeps no '
            f'annotations): set the options that use it to absolute paths') from None
    if '://' in source or not os.path.isfile(source):
        raise zc.buildout.UserError(
            f'{name}: [{name}] comes from {source}, not a local file: extend a local copy of it')
    return source


def uninstall(name: str, options: Mapping[str, str]) -> None:
    """Nothing was installed."""


__all__ = ['ProfileDirectoryRecipe', 'defining_file', 'uninstall']
