"""nagoya's resource lines: host files put into an image or a container at a chosen place.

moromi's ``libs``, ``runs`` and ``entrypoint`` take one resource a line:

- ``HOSTPATH in CONTAINERDIR``: copied to ``CONTAINERDIR/basename(HOSTPATH)``;
- ``HOSTPATH at CONTAINERPATH``: copied to exactly ``CONTAINERPATH``.

HOSTPATH is a file or a directory (relative to the buildout directory); a
directory's content lands at the target. What a resource contributes to an
image's identity is :func:`digest`: its names, types, modes, links and
bytes (never times or the host owner, which a copy into an image drops), so
buildout redoes a part exactly when a resource's content changes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import posixpath
import re
import stat
import tarfile
from typing import Callable

from ..model import options as opt
from .context import file_sha256

LINE_RE = re.compile(r'^(?P<source>.+?)\s+(?:in\s+(?P<dir>\S.*)|at\s+(?P<path>\S.*))$')
EXPECTED = 'HOSTPATH in /CONTAINER/DIR or HOSTPATH at /CONTAINER/PATH lines'


@dataclasses.dataclass(frozen=True)
class Resource:
    """One resource line: an absolute host path and the absolute path it gets in the container."""

    source: str
    target: str
    text: str

    @property
    def is_directory(self) -> bool:
        return os.path.isdir(self.source)


def parse(base: str, single: bool = False) -> Callable[[str], list[Resource]]:
    """Parser of resource lines, host paths made absolute against ``base``."""
    def parse_lines(raw: str) -> list[Resource]:
        found = []
        for line in opt.lines(raw):
            match = LINE_RE.match(line)
            if not match:
                raise opt.Invalid(EXPECTED)
            where = (match.group('dir') or match.group('path')).strip()
            if not where.startswith('/'):
                raise opt.Invalid(f'{EXPECTED} (the container side is absolute, in {line!r})')
            source = os.path.normpath(os.path.join(base, os.path.expanduser(
                match.group('source').strip())))
            if not os.path.lexists(source):
                raise opt.Invalid(f'{EXPECTED} whose HOSTPATH exists ({source} does not)')
            if not os.access(source, os.R_OK):
                raise opt.Invalid(f'{EXPECTED} whose HOSTPATH this user can read ({source})')
            target = posixpath.normpath(where)
            if match.group('dir'):
                target = posixpath.join(target, os.path.basename(source))
            if target == '/':
                raise opt.Invalid(f'{EXPECTED} with a target below / (in {line!r})')
            found.append(Resource(source, target, line))
        if single and len(found) > 1:
            raise opt.Invalid('one resource line (HOSTPATH in DIR or HOSTPATH at PATH)')
        return found
    return parse_lines


def digest(resource: Resource) -> str:
    """sha256 of what copying the resource writes (names, types, modes, links, bytes)."""
    sha = hashlib.sha256(resource.target.encode())
    for path, name in _entries(resource.source):
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            body = 'L' + os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            body = 'F' + file_sha256(path)
        else:
            body = 'D'
        sha.update(f'{name}\0{stat.S_IMODE(info.st_mode):o} {body}\n'.encode(
            'utf-8', 'surrogateescape'))
    return sha.hexdigest()


def add(tar: tarfile.TarFile, resource: Resource, arcname: str, executable: bool = False) -> None:
    """Add the resource to ``tar`` as ``arcname``, owned by root (``executable`` adds the x bits)."""
    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = 'root'
        if executable and info.isreg():
            info.mode |= 0o755
        return info

    tar.add(resource.source, arcname=arcname, recursive=True, filter=as_root)


def container_tar(resources: list[Resource], executable: bool = False) -> bytes:
    """A tar of the resources at their targets, for ``put_archive`` at ``/``.

    A directory resource's parents are created as they are unpacked.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for resource in resources:
            add(tar, resource, resource.target.lstrip('/'), executable)
    return buf.getvalue()


def _entries(source: str) -> list[tuple[str, str]]:
    """(host path, name relative to the resource) of the resource and everything below it."""
    found = [(source, '.')]
    if os.path.isdir(source) and not os.path.islink(source):
        for parent, dirs, files in os.walk(source):
            dirs.sort()
            for name in sorted(dirs + files):
                path = os.path.join(parent, name)
                found.append((path, os.path.relpath(path, source)))
    return found




__all__ = ['Resource', 'parse', 'digest', 'add', 'container_tar', 'EXPECTED']
