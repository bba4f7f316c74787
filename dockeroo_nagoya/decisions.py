"""A recipe's decision as plain data: what it will do to each object it owns, and why.

A run decides, then acts (STYLE.md, "Decide, then act"): each recipe's
``decide()`` says, for every engine object its part owns, an action
(:data:`ACTIONS`) with the reasons (the option or input, before and after,
and what it follows from), and its ``apply()`` acts on that same decision.
``dockeroo-plan`` (:mod:`.plan`) only calls ``decide()``.

Values of options that hold or point at secrets are never kept in a reason:
only that they changed (:func:`is_secret`).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import re
from typing import Any

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


def moving_removal(decision: list[Change]) -> list[Change]:
    """A removal decision for a part that moves to another engine: buildout installs
    it again, so the files it installed are not said to go."""
    return [c for c in decision if c.how != BY_BUILDOUT]


__all__ = ['ACTIONS', 'BY_BUILDOUT', 'moving_removal', 'Change', 'Reason', 'is_secret', 'state']
