"""The configuration one buildout run works for, as its ``[buildout]`` options say.

What an owner is and the labels it is told by are the engine's vocabulary
(:mod:`.labels`, where the driver lists what a run owns); this module
reads a run's own configuration into one (:func:`owner_in`), and names the
labels for the layers above as they always imported them.
"""
from __future__ import annotations

import os

from ..engine.labels import (DEFAULT_INSTALLED, LABEL, LABEL_BUILDOUT, LABEL_HOST, LABEL_INSTALLED,
                             LABEL_PART, Owner, this_host, unlabelled)


def owner_in(directory: str, installed: str | None) -> Owner:
    """The configuration whose record is ``installed`` (buildout's option: a path, or a
    name in the directory; empty: buildout's default)."""
    path = os.path.realpath(os.path.join(directory, installed or DEFAULT_INSTALLED))
    relative = os.path.relpath(path, directory)
    return Owner(directory, path if relative.startswith(os.pardir) else relative)


__all__ = ['Owner', 'owner_in', 'unlabelled', 'this_host',
           'LABEL', 'LABEL_BUILDOUT', 'LABEL_INSTALLED', 'LABEL_HOST', 'LABEL_PART',
           'DEFAULT_INSTALLED']
