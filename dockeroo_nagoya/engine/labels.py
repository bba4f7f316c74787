"""The labels that make an engine object ours, and which configuration made it.

Every object this package makes carries the labels named here; the driver lists
what a run owns by them (:meth:`.driver.Engine.owned`), so they are the engine
layer's vocabulary, read the same way by every layer above.

Which configuration made an object is the one test every path that owns asks.

A buildout directory can hold more than one configuration (``[buildout]
installed = .installed-a.cfg`` and ``.installed-b.cfg``), and two machines
can run buildouts at the same path against one engine (two CI runners).
The directory alone does not tell them apart, so an object this package
makes is labelled with the directory, the configuration's record of
installed parts (``installed``, relative to the directory when it is in it)
and the machine (its host name). One configuration's run adopts, removes
and sweeps only what it made: :meth:`Owner.claims` is that test, and
:meth:`Owner.sweeps` the orphan sweep's.

Objects made before the configuration was labelled carry the directory
alone. Their part adopts them by name, as before (no recreate just because a
label was added: labels are not part of any identity), and their part's
removal removes them. Whose orphans they are cannot be told from them: the
default configuration's (``.installed.cfg``), on whichever machine runs it,
which is what nearly every buildout has; any other configuration leaves
them alone. They get the new labels when they are next made anew.

A run works for one configuration: its :class:`~.runstate.Run` holds the
:class:`Owner` its ``[buildout]`` options say (:func:`.ownership.owner_in`), and
gives it to whatever asks by directory (:meth:`~.runstate.Run.owner_of`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import socket
from typing import Any, Mapping

LABEL = 'io.dockeroo-nagoya'
LABEL_BUILDOUT = f'{LABEL}.buildout'
LABEL_INSTALLED = f'{LABEL}.installed'
LABEL_HOST = f'{LABEL}.host'
LABEL_PART = f'{LABEL}.part'
LABEL_IDENTITY = f'{LABEL}.identity'
LABEL_RECIPE = f'{LABEL}.recipe'
LABEL_HELPER = f'{LABEL}.helper'
#: A short hash per input of a made image or container, so a remake can say what changed.
LABEL_INPUTS = f'{LABEL}.inputs'

#: buildout's own default record of installed parts.
DEFAULT_INSTALLED = '.installed.cfg'


def this_host() -> str:
    """The machine's name, as two machines running the same path are told apart."""
    return socket.gethostname()


@dataclasses.dataclass(frozen=True)
class Owner:
    """One configuration of a buildout directory on one machine."""

    directory: str
    installed: str = DEFAULT_INSTALLED
    host: str = dataclasses.field(default_factory=this_host)

    @property
    def default(self) -> bool:
        """Whether this is buildout's default record (the owner of unlabelled objects)."""
        return self.installed == DEFAULT_INSTALLED

    @property
    def record(self) -> str:
        """The path of the configuration's record of installed parts."""
        return os.path.join(self.directory, self.installed)

    def labels(self) -> dict[str, str]:
        """The labels that say an object is this configuration's."""
        return {LABEL_BUILDOUT: self.directory, LABEL_INSTALLED: self.installed,
                LABEL_HOST: self.host}

    def claims(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with these labels is this configuration's to adopt, change and
        remove: made by it, or made in its directory before configurations were labelled."""
        if labels.get(LABEL_BUILDOUT) != self.directory:
            return False
        if unlabelled(labels):
            return True
        return labels.get(LABEL_INSTALLED) == self.installed and \
            labels.get(LABEL_HOST) == self.host

    def sweeps(self, labels: Mapping[str, str]) -> bool:
        """Whether the orphan sweep may take such an object when no part accounts for it:
        one this configuration claims, and of the unlabelled ones only the default
        configuration's (see the module)."""
        return self.claims(labels) and (self.default or not unlabelled(labels))

    def describe(self) -> str:
        """The configuration in a user's words, for messages."""
        return f'the buildout in {self.directory} ({self.installed}, host {self.host})'

    def filters(self, part: str) -> str:
        """``--filter`` options of the docker CLI that list one part's objects."""
        return ' '.join(f'--filter label={key}={value}'
                        for key, value in {**self.labels(), LABEL_PART: part}.items())

    def record_name(self, name: str) -> str:
        """The name of a file the directory keeps for this configuration (``name`` for the
        default one, as before configurations were told apart)."""
        if self.default:
            return name
        stem, dot, suffix = name.rpartition('.')
        plain = re.sub(r'[^A-Za-z0-9._-]', '_', self.installed).lstrip('.')
        if plain != self.installed.lstrip('.') or not plain:
            plain = hashlib.sha256(self.installed.encode()).hexdigest()[:12]
        return f'{stem}.{plain}{dot}{suffix}' if dot else f'{name}.{plain}'


def unlabelled(labels: Mapping[str, str]) -> bool:
    """Whether an object's labels predate configurations (the directory only)."""
    return LABEL_INSTALLED not in labels


def owner_labels(owner: Owner, part: str, identity: str, recipe: str) -> dict[str, str]:
    """The labels that make an object ours: the configuration that made it (buildout
    directory, record of installed parts, machine: :class:`Owner`), part, identity hash."""
    return {
        **owner.labels(),
        LABEL_PART: part,
        LABEL_IDENTITY: identity,
        LABEL_RECIPE: recipe,
    }


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    """Labels of a listed or inspected object, whatever its kind."""
    labels = obj.get('Labels')
    if labels is None:
        labels = (obj.get('Config') or {}).get('Labels')
    return labels or {}


def owner_of(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    """(buildout directory, part) an object is labelled with."""
    labels = labels_of(obj)
    return labels.get(LABEL_BUILDOUT), labels.get(LABEL_PART)


__all__ = ['Owner', 'unlabelled', 'this_host', 'owner_labels', 'labels_of', 'owner_of',
           'LABEL', 'LABEL_BUILDOUT', 'LABEL_INSTALLED', 'LABEL_HOST', 'LABEL_PART',
           'LABEL_IDENTITY', 'LABEL_RECIPE', 'LABEL_HELPER', 'LABEL_INPUTS',
           'DEFAULT_INSTALLED']
