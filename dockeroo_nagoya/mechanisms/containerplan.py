"""What to do with one container, and why: its identity's per-option hashes compared with
the labels of the container found (keep, create, recreate, start or wait)."""
from __future__ import annotations

import dataclasses
import json
import re
from typing import TYPE_CHECKING, Any, Mapping

from ..engine.driver import identity_hash
from ..engine.labels import LABEL_IDENTITY, LABEL_INPUTS, labels_of

if TYPE_CHECKING:
    from .containerspec import ContainerSpec


EXITED_RE = re.compile(r'^Exited \((-?\d+)\)')


# -- identity and plan ---------------------------------------------------------------
def option_hashes(values: Mapping[str, Any]) -> dict[str, str]:
    """A short hash per identity option, to say later which one changed."""
    return {key: identity_hash(value)[:8] for key, value in sorted(values.items())}


def encode_hashes(hashes: Mapping[str, str]) -> str:
    return json.dumps(dict(hashes), sort_keys=True, separators=(',', ':'))


def decode_hashes(text: str | None) -> dict[str, str] | None:
    try:
        found = json.loads(text or '')
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def changed_inputs(current: Mapping[str, Any], hashes: Mapping[str, str]) -> list[str] | None:
    """The identity options whose per-option hash differs from the container's label
    (``None``: the label cannot say); ``image-id`` only when ``image`` did not change."""
    before = decode_hashes(labels_of(dict(current)).get(LABEL_INPUTS))
    if before is None:
        return None
    changed = sorted(key for key in set(before) | set(hashes) if before.get(key) != hashes.get(key))
    return [key for key in changed if key != 'image-id' or 'image' not in changed]


def what_changed(current: Mapping[str, Any], hashes: Mapping[str, str]) -> str:
    """``env changed``, ``image rebuilt``…, from the per-option label."""
    changed = changed_inputs(current, hashes)
    if changed == ['image-id']:
        return 'its image changed (rebuilt or pulled anew)'
    return ', '.join(f'{key} changed' for key in changed or ()) or 'its identity changed'


def exit_code(current: Mapping[str, Any]) -> int | None:
    """The exit code of a listed container, from its status text."""
    match = EXITED_RE.match(current.get('Status') or '')
    return int(match.group(1)) if match else None


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to do with one container, and why (for the log)."""

    action: str  # keep, create, recreate, start, wait (for a job still running)
    reason: str
    current: Mapping[str, Any] | None = None
    #: The identity and per-option hashes the container is to have (set by Runner.decide).
    identity: str = ''
    hashes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: (before, after) of the restart policy when a kept container changes it in place.
    restart: tuple[str, str] | None = None
    #: The environment a new container gets (env-file read when deciding), and the names in
    #: it that came from env-file (secrets).
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    secret_names: frozenset[str] = frozenset()


def plan(spec: ContainerSpec, current: Mapping[str, Any] | None, identity: str,
         hashes: Mapping[str, str], expected: bool) -> Plan:
    """Decide before acting: ``expected`` says the container was installed before."""
    if current is None:
        return Plan('create', 'it was removed' if expected else '')
    if labels_of(dict(current)).get(LABEL_IDENTITY) != identity:
        return Plan('recreate', what_changed(current, hashes), current)
    state = current.get('State')
    if spec.values['run-once'] and state == 'exited' and not spec.job:
        return Plan('keep', 'it runs once (run-once): it was started before', current)
    if spec.job:
        code = exit_code(current)
        if state == 'exited' and code == 0:
            return Plan('keep', 'the job already ran', current)
        if state == 'exited':
            return Plan('recreate', f'its last run exited with {code}', current)
        if state == 'running':  # an interrupted run started it: wait for it, never run it twice
            return Plan('wait', 'its run is still going', current)
        return Plan('recreate', f'its last run did not finish (it is {state})', current)
    if state == 'created' and spec.values['start']:  # its layout or start was interrupted
        return Plan('recreate', 'its setup did not finish (it was never started)', current)
    if spec.values['script'] and not expected:  # the run that made it did not record it
        return Plan('recreate', 'its script may not have run (the run that made it did not '
                    'finish)', current)
    if state in ('running', 'paused', 'restarting') or not spec.values['start']:
        return Plan('keep', 'it is up to date', current)
    if state == 'exited':
        return Plan('start', f'it was stopped (exited with {exit_code(current)})', current)
    if state == 'created':
        return Plan('start', 'it was created but not started', current)
    return Plan('recreate', f'it is {state}', current)


__all__ = ['Plan', 'plan', 'changed_inputs', 'decode_hashes', 'encode_hashes', 'exit_code',
           'option_hashes', 'what_changed']
