"""A recipe's decision as plain data: what it will do to each object it owns, and why.

A run decides, then acts (STYLE.md, "Decide, then act"): each recipe's
``decide()`` says, for every engine object its part owns, an action
(:data:`ACTIONS`) with the reasons (the option or input, before and after,
and what it follows from), as a :class:`Decision`, and its ``act()``
performs that decision and nothing else. The run and ``dockeroo-plan``
(:mod:`.plan`) call the same ``decide()``; the promises a decision makes to
the parts after it (an image made anew, a container removed first, a
reference pushed anew) are data too, published by the base recipe before it
acts (:meth:`.recipe.Recipe.converge`), in the run as in the plan.

Values of options that hold or point at secrets are never kept in a reason:
only that they changed (:func:`is_secret`).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import re
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from ..engine.driver import EngineConfig

#: What can happen to one object; ``none`` leaves it as it is.
ACTIONS = ('create', 'recreate', 'update', 'start', 'build', 'pull', 'push', 'remove',
           'unknown', 'none')

#: Options whose values are never shown: environments, files' contents, anything taken by
#: reference, and the hashes made of them.
SECRET_PATTERNS = ('env', 'env-file', '*-env', '*-file', 'envs', 'secrets', 'members-signature')


def is_secret(option: str) -> bool:
    """Whether an option's values must not be shown (only that they changed)."""
    return any(fnmatch.fnmatchcase(option, pattern) for pattern in SECRET_PATTERNS)


@dataclasses.dataclass(frozen=True)
class Reason:
    """One input that changed (``before``/``after`` ``None``: not shown, or not known)."""

    input: str
    before: str | None = None
    after: str | None = None
    #: What this follows from: the part and decision that change the input.
    follows: str | None = None
    #: Free text when the input is a state, not an option (``it was stopped``).
    note: str | None = None

    @classmethod
    def of(cls, option: str, before: Any = None, after: Any = None, **kw: Any) -> Reason:
        """A reason for an option, its values dropped when it is a secret."""
        if is_secret(option):
            return cls(option, **kw)
        return cls(option, None if before is None else str(before),
                   None if after is None else str(after), **kw)

    def text(self) -> str:
        if self.note and self.input == 'state':
            said = self.note
        elif self.before is not None and self.after is not None and \
                len(self.before.split()) + len(self.after.split()) > 2:
            said = f'{self.input} ' + _word_changes(self.before, self.after)
        elif self.before is not None or self.after is not None:
            said = f'{self.input} {_short(self.before)} -> {_short(self.after)}'
        else:
            said = f'{self.input} changed' + (f' ({self.note})' if self.note else '')
        return said + (f' ({self.follows})' if self.follows else '')

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def state(note: str) -> Reason:
    """A reason that is the object's state, not an option (``it was stopped by hand``)."""
    return Reason('state', note=note)


def _word_changes(before: str, after: str) -> str:
    """``+new -old`` for lists of words (names, ports); the values otherwise."""
    old, new = before.split(), after.split()
    added = [w for w in new if w not in old]
    gone = [w for w in old if w not in new]
    if not added and not gone or len(added) + len(gone) > 6:
        return f'{_short(before)} -> {_short(after)}'
    return ' '.join([f'+{w}' for w in added] + [f'-{w}' for w in gone])


def _short(value: str | None) -> str:
    if value is None:
        return '(none)'
    text = ' '.join(value.split())
    if re.fullmatch(r'(sha256:)?[0-9a-f]{16,}', text):  # a digest: its start tells them apart
        return text[:text.index(':') + 13 if ':' in text else 12]
    return repr(text if len(text) <= 60 else text[:57] + '...')


#: How a change is made that buildout makes itself after the uninstall hook (the files a
#: part installed): a plan names it, the hook leaves it to buildout.
BY_BUILDOUT = 'by buildout'


@dataclasses.dataclass
class Change:
    """What one object owned by a part will undergo."""

    kind: str            # container, image, volume, network, pushed, service
    object: str          # its name (a reference for images)
    action: str
    reasons: list[Reason] = dataclasses.field(default_factory=list)
    #: The engine's id of the object as it is now (``None``: there is none yet).
    id: str | None = None
    #: How an ``update`` is made, when an object has more than one way (a service's
    #: ``rolling update``, which replaces its tasks, or a ``scale`` or ``new update
    #: settings``, which leave them running): the acting reads it here, not from the reasons.
    how: str | None = None

    def __post_init__(self) -> None:
        assert self.action in ACTIONS, self.action

    @property
    def changes(self) -> bool:
        return self.action != 'none'

    def text(self) -> str:
        why = ', '.join(r.text() for r in self.reasons)
        how = f' ({self.how})' if self.how else ''
        return f'{self.action} {self.kind} {self.object}{how}' + (f': {why}' if why else '')

    def as_dict(self) -> dict[str, Any]:
        found = {'object': self.object, 'kind': self.kind, 'action': self.action, 'id': self.id,
                 'reasons': [r.as_dict() for r in self.reasons]}
        if self.how:
            found['how'] = self.how
        return found


@dataclasses.dataclass(frozen=True)
class ImageChanges:
    """A promise: the part makes or pulls ``reference`` anew on ``engine`` (the parts after it
    that start from the image see it as changed, ``becomes`` when the id is known)."""

    engine: EngineConfig
    reference: str
    why: str
    becomes: str | None = None


@dataclasses.dataclass(frozen=True)
class ContainerRemoved:
    """A promise: the part removes the container ``name`` (``id``) that its own part makes
    again later in the run (a volume made anew removes its users first)."""

    engine: EngineConfig
    name: str
    id: str
    why: str


@dataclasses.dataclass(frozen=True)
class PushedAnew:
    """A promise: the part pushes ``reference`` anew (a pull of it follows)."""

    reference: str
    why: str


#: What a decision tells the parts after it may rely on.
Promise = Union[ImageChanges, ContainerRemoved, PushedAnew]


@dataclasses.dataclass
class Decision:
    """What a part's run does: its changes and promises, and what deciding read.

    ``act()`` performs the ``changes`` (their actions, and ``how``) and branches
    on nothing else; ``found`` holds what deciding read from the engine that
    acting needs as it is (the object now, the identity computed), so acting
    asks the engine no question twice. ``fresh``: an install (first, or after a
    change), whose acting also tidies what the part left under earlier names.
    """

    changes: list[Change]
    promises: list[Promise] = dataclasses.field(default_factory=list)
    found: dict[str, Any] = dataclasses.field(default_factory=dict)
    fresh: bool = False

    def action(self, obj: str | None = None) -> str:
        """The action for the object ``obj`` (the first change's when ``None``; ``none``
        when the decision has no change for it)."""
        change = self.change(obj)
        return change.action if change is not None else 'none'

    def change(self, obj: str | None = None) -> Change | None:
        """The change for the object ``obj`` (the first when ``None``)."""
        if obj is None:
            return self.changes[0] if self.changes else None
        return next((c for c in self.changes if c.object == obj), None)


def moving_removal(decision: list[Change]) -> list[Change]:
    """A removal decision for a part that moves to another engine: buildout installs
    it again, so the files it installed are not said to go."""
    return [c for c in decision if c.how != BY_BUILDOUT]


__all__ = ['ACTIONS', 'BY_BUILDOUT', 'moving_removal', 'Change', 'Reason', 'is_secret', 'state',
           'Decision', 'Promise', 'ImageChanges', 'ContainerRemoved', 'PushedAnew']
