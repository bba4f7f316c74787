"""One way to write a file on the host: whole or not at all, never through a link.

A file is written to a temporary name in its own directory, made with
``O_CREAT | O_EXCL | O_NOFOLLOW`` (a file or link another user planted under
any name is never opened, let alone written), synced, then renamed over the
target with ``os.replace``: a rename replaces a link at the target itself and
never follows it. The directory is synced after the rename, so a crash leaves
the old file or the new one. Every archive, backup, checksum, manifest and
copied file goes through here.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from typing import IO, Iterator

#: How a temporary file is opened: only ever a new file of ours, never through a link.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)


def temporary_name() -> str:
    """A fresh temporary name (hidden, short: a target's own name may be 255 bytes)."""
    return f'.dn-{secrets.token_hex(8)}.part'


def new_file(name: str, mode: int, dir_fd: int | None = None) -> tuple[int, str]:
    """A new file (fd, name) next to ``name``, created with ``O_EXCL | O_NOFOLLOW``."""
    directory = os.path.dirname(name) if dir_fd is None else ''
    for _ in range(100):
        temporary = os.path.join(directory, temporary_name())
        try:
            return os.open(temporary, _NEW_FILE, mode, dir_fd=dir_fd), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f'no free temporary name next to {name}')


def sync_directory(path: str = '.', dir_fd: int | None = None) -> None:
    """fsync a directory (``dir_fd`` itself when given), so that a rename in it survives
    a crash."""
    if dir_fd is not None:
        os.fsync(dir_fd)
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str, mode: int = 0o600, *, dir_fd: int | None = None,
                durable: bool = True) -> Iterator[IO[bytes]]:
    """A binary file object whose content replaces ``path`` when the block ends without error.

    ``path`` is a name in ``dir_fd`` when that is given (the host writer of
    :mod:`.members` walks directories without following links). ``mode`` is
    the file's mode from the start: nobody can open it meanwhile. With
    ``durable`` false the syncs are left out (many files of an unpacked
    archive, whose directory is renamed into place afterwards).
    """
    fd, temporary = new_file(path, mode, dir_fd)
    try:
        with os.fdopen(fd, 'wb') as out:
            os.fchmod(out.fileno(), mode)   # the umask does not apply to what was asked
            yield out
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(temporary, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise
    if durable:
        sync_directory(os.path.dirname(path) or '.', dir_fd)


def write_bytes(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` as the whole of ``path`` (see :func:`atomic_file`)."""
    with atomic_file(path, mode) as out:
        out.write(data)


def write_text(path: str, text: str, mode: int = 0o644) -> None:
    """Write ``text`` (UTF-8) as the whole of ``path`` (see :func:`atomic_file`)."""
    write_bytes(path, text.encode('utf-8'), mode)


__all__ = ['atomic_file', 'write_bytes', 'write_text', 'new_file', 'temporary_name']
