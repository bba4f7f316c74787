"""One buildout run per directory at a time.

Buildout reads ``.installed.cfg`` before any recipe is made, so a second run
that waited for the first would act on a stale record of what is installed.
It stops instead, with a message saying who holds the directory.
"""
from __future__ import annotations

import fcntl
import os
from typing import TYPE_CHECKING

import zc.buildout

if TYPE_CHECKING:
    from .runstate import Run

LOCK_NAME = '.dockeroo-nagoya.lock'


def hold(run: Run, part: str) -> None:
    """Take the run's directory's lock for the rest of this process, or stop; a plan
    (``run.planning``) writes nothing, so it neither takes nor keeps the lock."""
    if run.planning or run.lock is not None:
        return
    directory = run.directory
    path = os.path.join(directory, LOCK_NAME)
    try:
        # Never through a link: the pid written below would truncate what it points at.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise zc.buildout.UserError(
            f'{part}: cannot take the lock {path} ({exc.strerror}); a link there is '
            f'refused: remove it') from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode('ascii', 'replace').strip() or 'unknown'
        os.close(fd)
        raise zc.buildout.UserError(
            f'{part}: another buildout run (pid {holder}) is working in {directory}; '
            f'run again when it has finished') from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    run.lock = fd


def held(run: Run) -> bool:
    """Whether the run holds its directory's lock (what is done there is its own)."""
    return run.lock is not None
