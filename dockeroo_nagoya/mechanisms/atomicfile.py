"""One way to write a file on the host: whole or not at all, never through a link.

A file is written to a temporary name in its own directory, made with
``O_CREAT | O_EXCL | O_NOFOLLOW`` (a file or link another user planted under
any name is never opened, let alone written), synced, then renamed over the
target with ``os.replace``: a rename replaces a link at the target itself and
never follows it. The directory is synced after the rename, so a crash leaves
the old file or the new one. The directory itself is reached step by step
without following a link that another local user made
(:func:`open_trusted_directory`): one who may rename what is in a directory
on the way cannot put a link there and have the file written where it leads. Every archive, backup, checksum, manifest and
copied file goes through here.
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from typing import IO, Iterator

from ..engine.driver import HostRefused

#: How a temporary file is opened: only ever a new file of ours, never through a link.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)

#: How a directory on the way is opened: never through a link.
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)


class UntrustedLink(HostRefused):
    """A link on the way to a host path that another user made (the message says which);
    the one engine-error mapping (:func:`.driver.engine_errors`) makes it the part's one line."""


#: How many links :func:`open_trusted_directory` follows (the kernel's own limit).
_MAX_LINKS = 40


def open_trusted_directory(path: str, make: bool = False) -> int:
    """A descriptor of the directory ``path``, each step opened without following a link,
    a link followed only when root or the buildout user owns it.

    The configuration names the path, links and all (``out -> /mnt/disk``); but a
    link another local user puts on the way (a directory writable to them, its
    subdirectory renamed and a link left in its place between runs) would make the
    buildout user write where that user chose, as the kernel's ``protected_symlinks``
    prevents only in sticky directories. Walking with descriptors leaves no moment to
    swap a step after it is checked. Missing directories are made with ``make``.
    """
    trusted = {0, os.geteuid()}
    pending = [part for part in os.path.abspath(path).split('/') if part]
    fd = os.open('/', DIRECTORY_FLAGS)
    done = '/'
    links = 0
    try:
        while pending:
            part = pending.pop(0)
            try:
                step = os.open(part, DIRECTORY_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not make:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
                pending.insert(0, part)
                continue
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                info = os.lstat(part, dir_fd=fd)
                if not stat.S_ISLNK(info.st_mode):
                    raise
                target = os.readlink(part, dir_fd=fd)
                if info.st_uid not in trusted:
                    raise UntrustedLink(errno.EACCES, f'{os.path.join(done, part)} is a link (to '
                                        f'{target}) that user {info.st_uid} made: only links of '
                                        f'root or of the buildout user are followed')
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, f'{path}: too many levels of links')
                pending[:0] = [item for item in target.split('/') if item]
                if target.startswith('/'):
                    os.close(fd)
                    fd, done = os.open('/', DIRECTORY_FLAGS), '/'
                continue
            os.close(fd)
            fd, done = step, os.path.join(done, part)
        return fd
    except BaseException:
        os.close(fd)
        raise


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
    if dir_fd is None:   # its directory reached as every host write reaches one
        directory = open_trusted_directory(os.path.dirname(os.path.abspath(path)))
        try:
            with atomic_file(os.path.basename(path), mode, dir_fd=directory,
                             durable=durable) as out:
                yield out
        finally:
            os.close(directory)
        return
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


def write_text_if_changed(path: str, text: str, mode: int = 0o644) -> bool:
    """:func:`write_text`, unless ``path`` already is that text: a file of ours (a regular
    file, not a link, owned by this user, with ``mode``) with those bytes.

    Files that every run writes anew (a system's control script and description)
    then cost a no-op rerun one read instead of two syncs to disk. Returns whether
    it wrote.
    """
    data = text.encode('utf-8')
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        fd = None
    if fd is not None:
        try:
            found = os.fstat(fd)
            if stat.S_ISREG(found.st_mode) and found.st_uid == os.geteuid() and \
                    stat.S_IMODE(found.st_mode) == mode and found.st_size == len(data) and \
                    os.read(fd, len(data) + 1) == data:
                return False
        finally:
            os.close(fd)
    write_bytes(path, data, mode)
    return True


__all__ = ['atomic_file', 'write_bytes', 'write_text', 'write_text_if_changed', 'new_file', 'temporary_name',
           'open_trusted_directory', 'UntrustedLink']
