"""Reading files: the text files a configuration names, and the state files parts keep.

Both are read in one place so that each way a file can be wrong ends in one
line: a file that cannot be opened, text that is not UTF-8 (an ``env-file``
saved as Latin-1, a ``.dockerignore`` from another system), a state file a
crash or a hand left half written. Otherwise the run ends in a traceback of
``UnicodeDecodeError`` or ``JSONDecodeError`` that names no part. Writing
state files is :mod:`.archives`'s job (atomically); reading them is here.
"""
from __future__ import annotations

import json
from typing import Any

import zc.buildout

from ..model import options as opt


class Unreadable(Exception):
    """A file that is there and cannot be read as what it should be; the message says why."""


def text_of(path: str) -> str:
    """A UTF-8 text file's content; :class:`Unreadable` saying why not (``FileNotFoundError``
    passes, for the callers to whom a missing file means something)."""
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except FileNotFoundError:
        raise
    except UnicodeDecodeError as exc:
        raise Unreadable(f'it is not UTF-8 text: byte {exc.start} is {exc.object[exc.start]:#04x}'
                         ) from None
    except OSError as exc:
        raise Unreadable(exc.strerror or str(exc)) from None


def read_text(part: str, option: str, path: str, expected: str = 'a readable file') -> str:
    """The text of the file ``option`` names, or one ``UserError`` line naming the part, the
    option and what was wrong (never the content: it may be a secret)."""
    try:
        return text_of(path)
    except FileNotFoundError:
        raise opt.invalid(part, option, f'{expected} (there is no such file)', path) from None
    except Unreadable as exc:
        raise opt.invalid(part, option, f'{expected} of UTF-8 text ({exc})', path) from None


def read_json(path: str) -> Any:
    """A JSON state file's content, ``None`` when there is none yet; :class:`Unreadable`
    when it is there and is not JSON (a run killed while writing, a hand's edit)."""
    try:
        text = text_of(path)
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise Unreadable(f'it is not JSON: {exc}') from None


def read_record(path: str) -> dict[str, Any]:
    """A state file holding a JSON object: ``{}`` when there is none yet; :class:`Unreadable`
    when it is there and holds none."""
    found = read_json(path)
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise Unreadable('it holds no JSON object')
    return found


def read_state(part: str, path: str, consequence: str) -> dict[str, Any]:
    """A part's JSON object of state (``{}`` when there is none yet), or one ``UserError``
    line naming the part, the file and what removing it means (``consequence``)."""
    try:
        return read_record(path)
    except Unreadable as exc:
        raise zc.buildout.UserError(
            f'{part}: its state file {path} cannot be read ({exc}): remove it and run again '
            f'({consequence})') from None


__all__ = ['Unreadable', 'text_of', 'read_text', 'read_json', 'read_record', 'read_state']
