"""Copies between containers and the host, as tar archives that keep owners and modes
(on the host, by the host's rules of :mod:`.members`).

A copy is read into memory as a list of tar members renamed to where they
go, so the same members can be hashed (to redo a copy only when the source
changed) and then written (into a container with the engine's archive API,
or onto the host with :class:`.members.HostWriter`). The digest covers
names, types, numeric owners, modes, link targets and bytes, never times, so
touching a file changes nothing.

Path syntax (``paths`` of ``docker.copy``, dockeroo's): one copy per line,
``SOURCE [TARGET]``; a SOURCE ending in ``/`` copies a directory (TARGET is
then the directory it becomes), otherwise a file (a TARGET ending in ``/``
is the directory it goes into). Without TARGET the path is the same on both
sides; that is only allowed between two containers (so ``/etc/`` never
lands on the host's ``/etc``). Container paths are absolute; host paths may
be relative to the buildout directory.

A copy only adds and replaces. With sync (``sync = true`` of ``docker.copy``),
a directory line also removes what the target directory holds and the
source no longer has, so that a key taken out of the source leaves the
target too. What goes is found when the line is copied again (the decision,
so a plan names it) and removed before the copy is written. The engine's
archive API cannot remove anything, and the target may be a container that
never runs (a volume's holder), so nothing can be run in it: the removal
runs in a throwaway container of the target's own image on the target's
engine that has the target's volumes (``volumes_from``), as root. Hence a
container's target directory must be in one of its volumes or bind mounts
(refused before anything is removed or written otherwise), and its image
must have ``rm``.
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
from typing import Any, Iterable, Mapping

import zc.buildout

from .archives import ChunkReader
from ..engine.driver import Engine, engine_errors
from ..engine.errors import NotFound
from .members import (IN_ROOT, IN_TARGET, ArchiveError, HostWriter, Placement, remove_host_path,
                      renamed)
from ..model.options import Invalid, lines
from .throwaway import Throwaway

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


@dataclasses.dataclass(frozen=True)
class CopyToMake:
    """A copy as decided (the plan shows it, the run acts on it as it is)."""

    copy: CopyPath
    #: What is written, read from the source.
    members: list[Member]
    #: The line's record once it is done (content digest, where it went, sync).
    record: dict[str, Any]
    #: Why it is made (``None``: it is not, the target has it).
    why: str | None
    #: Absolute paths in the target the source no longer has, removed first (sync).
    stale: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class SyncTarget:
    """Where sync looks for what the source no longer has: the target's engine and
    container (``None``: the host), its name as the user wrote it and the container
    paths its volumes and bind mounts are at (only there can it remove). ``part``
    names the target's engine when it does not answer (the source's may be another)."""

    part: str
    engine: Engine | None
    container: str | None
    name: str = ''
    mounts: tuple[str, ...] = ()


class CopyError(Exception):
    """A copy that cannot be done; the message says which path and why."""


class SyncError(CopyError):
    """A removal sync needs that cannot be done (said under option ``sync``)."""


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
def read_container(engine: Engine, container: str, copy: CopyPath,
                   links: str = IN_ROOT) -> list[Member]:
    """The members of ``copy.source`` in a container, placed at ``copy.target`` by the
    rules of where they go (``links``: :data:`.members.IN_TARGET` for the host)."""
    try:
        chunks, info = engine.api.get_archive(container, copy.source)
    except NotFound:
        raise CopyError(f'{copy.source} does not exist in the container') from None
    is_dir = bool(info.get('mode', 0) & GO_MODE_DIR)
    _check_kind(copy, is_dir)
    data = b''.join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data), mode='r:') as tar:
        members = [(member, _body(tar, member)) for member in tar]
    return _placed(members, info.get('name') or posixpath.basename(copy.source), copy, links)


def read_host(copy: CopyPath) -> list[Member]:
    """The members of ``copy.source`` on the host, placed at ``copy.target`` (a container's)."""
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
    return _placed(members, name, copy, IN_ROOT)


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


def _placed(members: list[Member], prefix: str, copy: CopyPath, links: str) -> list[Member]:
    """Members named from the root (no leading ``/``) at the target (:mod:`.members`)."""
    placement = Placement(copy.target, strip=prefix, links=links)
    try:
        return [(placement.place(member), body) for member, body in members]
    except ArchiveError as exc:
        raise CopyError(f'{copy.source}: {exc}') from None


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
    """Write the members at ``target`` on the host by the host's rules (:mod:`.members`):
    not through a link, a link at ``target`` replaced, no owner of the container's, no
    set-id bit; each file whole or not at all."""
    parent = os.path.dirname(target)
    relative = target.lstrip('/')
    base = os.path.basename(target)
    try:
        with HostWriter(parent, durable=True, make=True) as out:
            for member, body in members:
                placed = renamed(member.replace(deep=False), base + member.name[len(relative):],
                                 base + member.linkname[len(relative):] if member.islnk() else None)
                out.write(placed, io.BytesIO(body) if body is not None else None)
    except ArchiveError as exc:
        raise CopyError(f'{target}: {exc}') from None
    except OSError as exc:
        raise CopyError(f'{target}: {exc.strerror or exc}') from None


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
                   target: str | None, done: dict[str, dict[str, Any]],
                   sync: SyncTarget | None = None) -> list[CopyToMake]:
    """Each copy with its members (read now), its record, and why it is made again
    (``None``: its content and target are what ``done`` records and the target is there).

    ``engine`` is the source's (only the source is read here; ``target`` is a
    container id on the engine :func:`make_copies` writes to, or ``None``, the host).
    With ``sync``, a directory line that is copied again also says what the
    target directory holds that the source no longer has (read from the
    target now), and a line that was copied without sync is copied again once,
    so that turning sync on clears out what an earlier copy left. This is the
    decision: the plan shows it and the run acts on it as it is.
    """
    found = []
    for copy in copies:
        synced = sync is not None and copy.directory
        if sync is not None and copy.directory and sync.container is not None \
                and not _in_mount(copy.target, sync.mounts):
            raise SyncError(f'{copy.target} is in no volume of container-to {sync.name}: sync '
                            f'removes through the container\'s volumes (it may not run): '
                            f'mount a volume at {copy.target} or above it, or leave out sync')
        members = read_container(engine, source, copy, IN_ROOT if target else IN_TARGET) \
            if source else read_host(copy)
        now: dict[str, Any] = {'digest': digest(members), 'target': target or copy.target,
                               **({'sync': True} if synced else {})}
        before = done.get(copy.text)
        present = target is not None or os.path.lexists(copy.target)
        why = None
        if before is None:
            why = 'first copy'
        elif before.get('digest') != now['digest']:
            why = 'its source changed'
        elif before.get('target') != now['target'] or not present:
            why = 'the target is new'
        elif synced and not before.get('sync'):
            why = 'sync was turned on'
        stale: tuple[str, ...] = ()
        if why is not None and synced:
            assert sync is not None
            if sync.engine is not None and sync.container is not None:
                with engine_errors(sync.part, sync.engine.config):
                    there = _names_in_container(sync.engine, sync.container, copy)
            else:
                there = _names_on_host(copy.target)
            stale = _stale(there, members, copy.target.lstrip('/'))
        found.append(CopyToMake(copy, members, now, why, stale))
    return found


def make_copies(engine: Engine, made: list[CopyToMake], target: str | None,
                log: logging.Logger, part: str = '',
                labels: Mapping[str, str] | None = None,
                written: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Write each copy :func:`copies_to_make` found a reason for; the others are left.

    ``engine`` is the target's and ``target`` its container id (``None``: the
    host). The members were read into memory from the source's engine, which
    may be another one: a copy between engines passes through this process,
    never through a file on its disk. What sync found stale goes first, so a
    failed removal writes nothing (and the record is not written: the next
    run does both again). ``part`` and ``labels`` are the owner of the
    throwaway container that removes in a container. ``written`` gets each host path
    as it is written (even partly), for the caller to take back what a failure left.
    Returns the new record
    (per line: content digest, where it went, sync), for the next run.
    """
    record: dict[str, dict[str, Any]] = {}
    for made_one in made:
        copy = made_one.copy
        if made_one.why is None:
            log.debug('%s: unchanged', copy.text)
        else:
            if made_one.stale:
                log.info('removing %s (sync = true: the source no longer has %s)',
                         ', '.join(made_one.stale), 'it' if len(made_one.stale) == 1 else 'them')
                if target:
                    remove_in_container(engine, target, made_one.stale, part, labels or {}, log)
                else:
                    remove_on_host(made_one.stale)
            log.info('copying %s to %s (%s)', copy.source, copy.target, made_one.why)
            if target:
                write_container(engine, target, made_one.members)
            else:
                if written is not None:
                    written.append(copy.target)
                write_host(made_one.members, copy.target)
        record[copy.text] = made_one.record
    return record


# -- sync: what the source no longer has ------------------------------------------------
def _in_mount(path: str, mounts: Iterable[str]) -> bool:
    """Whether a container path is at or below one of its mounts."""
    return any(path == m or path.startswith(m.rstrip('/') + '/') for m in mounts)


def _names_in_container(engine: Engine, container: str, copy: CopyPath) -> set[str]:
    """The names (from the root, no leading ``/``) of what a container's target directory
    holds now; nothing when it is missing or no directory (the copy makes or replaces it).
    Streamed: only the names are kept, not what the files hold."""
    try:
        chunks, info = engine.api.get_archive(container, copy.target)
    except NotFound:
        return set()
    if not info.get('mode', 0) & GO_MODE_DIR:
        return set()
    prefix = info.get('name') or posixpath.basename(copy.target)
    target = copy.target.lstrip('/')
    names = set()
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks)), mode='r|') as tar:
        for member in tar:
            name = posixpath.normpath(member.name)
            if name == prefix or name.startswith(prefix + '/'):
                names.add(target + name[len(prefix):])
    return names


def _names_on_host(directory: str) -> set[str]:
    """The names (from the root, no leading ``/``) of what a host directory holds now
    (links are not followed: a link is a name of its own)."""
    if os.path.islink(directory) or not os.path.isdir(directory):
        return set()
    names: set[str] = set()
    for root, dirs, files in os.walk(directory):
        names.update(os.path.join(root, entry).lstrip('/') for entry in dirs + files)
    return names


def _stale(there: set[str], members: list[Member], root: str) -> tuple[str, ...]:
    """Absolute paths of what is ``there`` but not among the members, each once: a
    directory that goes takes what is in it."""
    wanted = {posixpath.normpath(member.name) for member, _ in members}
    gone = {name for name in there if name not in wanted and name != root}

    def parent_goes(name: str) -> bool:
        parent = posixpath.dirname(name)
        while parent and parent != root:
            if parent in gone:
                return True
            parent = posixpath.dirname(parent)
        return False

    return tuple(sorted('/' + name for name in gone if not parent_goes(name)))


def remove_in_container(engine: Engine, container: str, paths: Iterable[str], part: str,
                        labels: Mapping[str, str], log: logging.Logger) -> None:
    """Remove paths from a container's volumes, whether or not it runs.

    Nothing can be run in a container that never started, and the archive API
    only adds: so ``rm`` runs in a throwaway container of the container's own
    image (on its engine, without any registry) that has the same volumes at
    the same paths (``volumes_from``), as root (the engine wrote the copies as
    their owners), and keeps those volumes when it goes.
    """
    paths = list(paths)
    image = engine.api.inspect_container(container)['Image']
    try:
        with Throwaway(engine, image, part, labels, what='container removing what the '
                       'source no longer has', volumes_from=[container],
                       command=['rm', '-rf', '--', *paths], user='0', keep_volumes=True,
                       log=log) as box:
            box.wait()
    except zc.buildout.UserError as exc:
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
        raise SyncError(f'removing {", ".join(paths)} failed (it runs rm in a container of '
                        f'the image of container-to): {said.removeprefix(part + ": ")}') from None


def remove_on_host(paths: Iterable[str]) -> None:
    """Remove paths on the host; a directory with what it holds, a link as a link."""
    for path in paths:
        try:
            remove_host_path(path)
        except OSError as exc:
            raise SyncError(f'removing {path} failed: {exc.strerror}') from None
