"""Copies between containers and the host, as tar archives that keep owners and modes.

A copy is read into memory as a list of tar members renamed to where they
go, so the same members can be hashed (to redo a copy only when the source
changed) and then written (into a container with the engine's archive API,
or onto the host with ``tarfile``). The digest covers names, types, numeric
owners, modes, link targets and bytes, never times, so touching a file
changes nothing.

Path syntax (``paths`` of ``docker.copy``, dockeroo's): one copy per line,
``SOURCE [TARGET]``; a SOURCE ending in ``/`` copies a directory (TARGET is
then the directory it becomes), otherwise a file (a TARGET ending in ``/``
is the directory it goes into). Without TARGET the path is the same on both
sides; that is only allowed between two containers (so ``/etc/`` never
lands on the host's ``/etc``). Container paths are absolute; host paths may
be relative to the buildout directory.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import posixpath
import shlex
import stat
import tarfile
from typing import Iterable

import docker.errors

from .engine import Engine
from .options import Invalid, lines

#: Go's os.ModeDir, as the engine reports it in an archive's stat header.
GO_MODE_DIR = 1 << 31

Member = tuple[tarfile.TarInfo, bytes | None]


@dataclasses.dataclass(frozen=True)
class CopyPath:
    """One line of ``paths``: absolute source and target, and whether it is a directory."""

    source: str
    target: str
    directory: bool
    text: str


#: A copy as decided: its line, its members (read), its record now, why it is made (or None).
CopyToMake = tuple[CopyPath, list[Member], dict[str, str], str | None]


class CopyError(Exception):
    """A copy that cannot be done; the message says which path and why."""


def parse_paths(raw: str, host_source: bool, host_target: bool, base: str) -> list[CopyPath]:
    """The ``paths`` option; host paths are made absolute against ``base``."""
    found: list[CopyPath] = []
    for line in lines(raw):
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise Invalid(f'SOURCE [TARGET] lines with balanced quotes ({exc})') from None
        if len(words) not in (1, 2):
            raise Invalid(f'SOURCE [TARGET] lines (one or two paths, in {line!r})')
        if len(words) == 1 and (host_source or host_target):
            raise Invalid(f'SOURCE TARGET lines when one side is the host (in {line!r})')
        source = words[0]
        directory = source.endswith('/')
        target = words[1] if len(words) == 2 else source
        source = _absolute(source, host_source, base, line)
        if not directory and target.endswith('/'):
            target = target + posixpath.basename(source)
        target = _absolute(target, host_target, base, line)
        found.append(CopyPath(source, target, directory, line))
    if not found:
        raise Invalid('at least one SOURCE [TARGET] line')
    return found


def _absolute(path: str, on_host: bool, base: str, line: str) -> str:
    if on_host:
        path = os.path.normpath(os.path.join(base, os.path.expanduser(path)))
    else:
        if not path.startswith('/'):
            raise Invalid(f'absolute container paths (in {line!r})')
        path = posixpath.normpath(path)
    if path in ('/', '//'):
        raise Invalid(f'paths below / (copying / itself is not supported, in {line!r})')
    return path


# -- reading ------------------------------------------------------------------
def read_container(engine: Engine, container: str, copy: CopyPath) -> list[Member]:
    """The members of ``copy.source`` in a container, renamed to ``copy.target``."""
    try:
        chunks, info = engine.api.get_archive(container, copy.source)
    except docker.errors.NotFound:
        raise CopyError(f'{copy.source} does not exist in the container') from None
    is_dir = bool(info.get('mode', 0) & GO_MODE_DIR)
    _check_kind(copy, is_dir)
    data = b''.join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data), mode='r:') as tar:
        members = [(member, _body(tar, member)) for member in tar]
    return _renamed(members, info.get('name') or posixpath.basename(copy.source), copy)


def read_host(copy: CopyPath) -> list[Member]:
    """The members of ``copy.source`` on the host, renamed to ``copy.target``."""
    try:
        is_dir = stat.S_ISDIR(os.stat(copy.source).st_mode)
    except OSError as exc:
        raise CopyError(f'{copy.source}: {exc.strerror}') from None
    _check_kind(copy, is_dir)
    buf = io.BytesIO()
    name = os.path.basename(copy.source)
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as tar:
        try:
            tar.add(copy.source, arcname=name, recursive=True)
        except OSError as exc:
            raise CopyError(f'{exc.filename}: {exc.strerror}') from None
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode='r:') as tar:
        members = [(member, _body(tar, member)) for member in tar]
    return _renamed(members, name, copy)


def _check_kind(copy: CopyPath, is_dir: bool) -> None:
    if is_dir and not copy.directory:
        raise CopyError(f'{copy.source} is a directory: end it with / to copy it')
    if copy.directory and not is_dir:
        raise CopyError(f'{copy.source} is not a directory: leave out the trailing /')


def _body(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes | None:
    if not member.isfile():
        return None
    handle = tar.extractfile(member)
    return handle.read() if handle else b''


def _renamed(members: list[Member], prefix: str, copy: CopyPath) -> list[Member]:
    """Members named from the root (no leading ``/``) at the target; escapes refused."""
    target = copy.target.lstrip('/')
    renamed: list[Member] = []
    for member, body in members:
        name = posixpath.normpath(member.name)
        if name != prefix and not name.startswith(prefix + '/'):
            raise CopyError(f'{copy.source}: the archive holds {member.name!r}, outside of it')
        member.name = target + name[len(prefix):]
        renamed.append((member, body))
    return renamed


# -- hashing and writing ------------------------------------------------------
def digest(members: Iterable[Member]) -> str:
    """sha256 of what a copy writes: names, types, numeric owners, modes, links, bytes."""
    sha = hashlib.sha256()
    for member, body in sorted(members, key=lambda item: item[0].name):
        body_sum = hashlib.sha256(body).hexdigest() if body is not None else ''
        line = (f'{member.name}\0{member.type!r} {member.uid}:{member.gid} {member.mode:o} '
                f'{member.linkname} {body_sum}\n')
        sha.update(line.encode('utf-8', 'surrogateescape'))
    return sha.hexdigest()


def pack(members: Iterable[Member]) -> bytes:
    """A tar of the members (for the engine's archive API)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for member, body in members:
            tar.addfile(member, io.BytesIO(body) if body is not None else None)
    return buf.getvalue()


def write_container(engine: Engine, container: str, members: list[Member]) -> None:
    """Unpack the members at ``/`` of a container (missing parents are made)."""
    engine.api.put_archive(container, '/', pack(members))


def write_host(members: list[Member], target: str) -> None:
    """Unpack the members on the host; owners are kept when running as root."""
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    relative = target.lstrip('/')
    base = os.path.basename(target)
    with tarfile.open(fileobj=io.BytesIO(pack(members)), mode='r:') as tar:
        extracted = []
        for member in tar.getmembers():
            member.name = base + member.name[len(relative):]
            extracted.append(member)
        try:
            tar.extractall(parent, members=extracted, numeric_owner=True, filter=_within(target))
        except (tarfile.TarError, OSError) as exc:
            raise CopyError(f'{target}: {exc}') from None


def _within(target: str):
    """A tarfile filter that writes nothing outside ``target``, modes kept (but set-id bits).

    tarfile's own ``tar`` filter would only keep members inside the directory
    extracted into (the target's parent), and it resolves a link that is
    already there even for a member that replaces that link. Here a member is
    refused when what it writes resolves, through links on the host, outside
    the target; a link member replaces a link and is checked by its directory.
    """
    root = os.path.realpath(target)

    def inside(path: str) -> bool:
        return path == root or path.startswith(root + os.sep)

    def check(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo:
        name = member.name
        if name.startswith('/') or '..' in name.split('/'):
            raise tarfile.AbsolutePathError(member)
        full = os.path.join(destination, name)
        if member.issym() or member.islnk():
            where = os.path.join(os.path.realpath(os.path.dirname(full)), os.path.basename(full))
        else:
            where = os.path.realpath(full)
        if not inside(where):
            raise tarfile.OutsideDestinationError(member, where)
        if member.islnk() and not inside(os.path.realpath(os.path.join(destination, member.linkname))):
            raise tarfile.LinkOutsideDestinationError(member, member.linkname)
        return member.replace(mode=member.mode & 0o1777, deep=False)

    return check


def layout_members(directory: str) -> list[Member]:
    """A host directory to lay over a container's root, owned by root (as dockeroo does)."""
    buf = io.BytesIO()

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = 'root'
        return info

    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(directory)):
            tar.add(os.path.join(directory, entry), arcname=entry, filter=as_root)
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode='r:') as tar:
        return [(member, _body(tar, member)) for member in tar]


# -- a set of copies, redone only when their source changed ----------------------
def copies_to_make(engine: Engine, copies: list[CopyPath], source: str | None,
                   target: str | None, done: dict[str, dict[str, str]]) -> list[CopyToMake]:
    """Each copy with its members (read now), its record, and why it is made again
    (``None``: its content and target are what ``done`` records and the target is there).

    ``engine`` is the source's (only the source is read here; ``target`` is a
    container id on the engine :func:`make_copies` writes to, or ``None``, the host).
    This is the decision: the plan shows it and the run acts on it as it is.
    """
    found = []
    for copy in copies:
        members = read_container(engine, source, copy) if source else read_host(copy)
        now = {'digest': digest(members), 'target': target or copy.target}
        before = done.get(copy.text)
        present = target is not None or os.path.lexists(copy.target)
        why = None
        if before != now or not present:
            why = ('its source changed' if before and before['digest'] != now['digest']
                   else 'the target is new' if before else 'first copy')
        found.append((copy, members, now, why))
    return found


def make_copies(engine: Engine, made: list[CopyToMake], target: str | None,
                log: logging.Logger) -> dict[str, dict[str, str]]:
    """Write each copy :func:`copies_to_make` found a reason for; the others are left.

    ``engine`` is the target's and ``target`` its container id (``None``: the
    host). The members were read into memory from the source's engine, which
    may be another one: a copy between engines passes through this process,
    never through a file on its disk. Returns the new record (per line:
    content digest and where it went), for the next run.
    """
    record: dict[str, dict[str, str]] = {}
    for copy, members, now, why in made:
        if why is None:
            log.debug('%s: unchanged', copy.text)
        else:
            log.info('copying %s to %s (%s)', copy.source, copy.target, why)
            if target:
                write_container(engine, target, members)
            else:
                write_host(members, copy.target)
        record[copy.text] = now
    return record
