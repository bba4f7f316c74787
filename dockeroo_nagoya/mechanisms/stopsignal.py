"""Whether a container's stop signal can reach its main process at all.

``docker stop`` sends the stop signal (SIGTERM unless the image says otherwise)
to the container's PID 1 only, then waits out ``stop-timeout`` before SIGKILL.
PID 1 of a PID namespace gets no default action from the kernel: a process that
neither catches nor blocks nor waits for the signal (a shell or ``sleep`` run as
the command, many scripts) never sees it, and the whole grace period is spent
waiting for nothing. compose pays that grace period once per dependency level.

When the engine runs on this host, the kernel says so in ``/proc``; then such a
container is stopped at once, which ends it exactly as the grace period would
have, only sooner. Anything uncertain (a remote engine, another PID namespace,
an unreadable ``wchan``, a thread inside ``sigtimedwait`` as docker's own init
waits) answers *no*, and the stop takes its full ``stop-timeout`` as usual.
"""
from __future__ import annotations

import os
import select
import signal
from typing import Any, Mapping

PROC = '/proc'


def signal_number(name: str) -> int | None:
    """``SIGTERM``, ``TERM`` or ``15`` -> 15; ``None`` for what this host does not know."""
    text = name.strip().upper()
    if text.isdigit():
        return int(text)
    if not text.startswith('SIG'):
        text = f'SIG{text}'
    try:
        return int(signal.Signals[text])
    except KeyError:
        return None


def _status(path: str) -> dict[str, str]:
    with open(path, encoding='ascii', errors='replace') as handle:
        return dict(line.rstrip('\n').split(':\t', 1) for line in handle if ':\t' in line)


def _mask(status: Mapping[str, str], key: str) -> int:
    return int(status.get(key, '0'), 16)


def _own_status(details: Mapping[str, Any]) -> dict[str, str] | None:
    """``/proc/PID/status`` of a running container's PID 1, when that process is on this
    host and is that container's (its cgroup names the container); else ``None``."""
    state = details.get('State') or {}
    pid = state.get('Pid')
    if not pid or not state.get('Running'):
        return None
    base = os.path.join(PROC, str(pid))
    try:
        with open(os.path.join(base, 'cgroup'), encoding='ascii', errors='replace') as handle:
            if details.get('Id', '') not in handle.read():
                return None  # not this host's engine, or not that container's process
        return _status(os.path.join(base, 'status'))
    except (OSError, ValueError):
        return None


def _namespaced_init(status: Mapping[str, str]) -> bool:
    """PID 1 of its own PID namespace (when it ends, the kernel ends the rest)."""
    return status.get('NSpid', '').split()[-1:] == ['1']


def ignored(details: Mapping[str, Any]) -> str | None:
    """The stop signal's name when an inspected, running container's PID 1 will never see it."""
    name = ((details.get('Config') or {}).get('StopSignal') or 'SIGTERM')
    number = signal_number(name)
    status = _own_status(details)
    if status is None or number is None or not 0 < number < 64:
        return None
    bit = 1 << (number - 1)
    if _mask(status, 'SigCgt') & bit:
        return None
    base = os.path.join(PROC, str(details['State']['Pid']))
    try:
        for task in os.listdir(os.path.join(base, 'task')):
            task_dir = os.path.join(base, 'task', task)
            with open(os.path.join(task_dir, 'wchan'), encoding='ascii', errors='replace') as handle:
                wchan = handle.read().strip()
            if not wchan or wchan == '0' or 'sigtimedwait' in wchan:
                return None  # unknown, or waiting for signals it has unblocked for the wait
            if _mask(_status(os.path.join(task_dir, 'status')), 'SigBlk') & bit:
                return None  # held for later (signalfd, sigwait)
    except (OSError, ValueError):
        return None
    if not (_mask(status, 'SigIgn') & bit or _namespaced_init(status)):
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return name


def watch(details: Mapping[str, Any]) -> int | None:
    """A pidfd of a running container's PID 1 on this host, or ``None``.

    The fd pins the process, so the process is checked after opening it: a PID
    the kernel reused for something else is never watched. Only a PID
    namespace's init is watched: its end is the end of every process in it.
    Readable when the process has exited (:func:`exited`).
    """
    pid = (details.get('State') or {}).get('Pid')
    if not pid or not hasattr(os, 'pidfd_open'):
        return None
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    status = _own_status(details)
    if status is not None and _namespaced_init(status):
        return fd
    os.close(fd)
    return None


def exited(fd: int, timeout: float) -> bool:
    """Whether the watched process ended within ``timeout`` seconds."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


__all__ = ['ignored', 'signal_number', 'watch', 'exited']
