"""One way to place an archive's members, for every path that writes archive content.

Every archive that reaches the host, a container or a volume passes here
member by member: source tarballs (``docker.build``'s ``source``), copies in
both directions (``docker.copy``), volume archives and restores
(``docker.volume``, ``restore-from``, ``bin/CTL backup``/``restore``),
``docker.persist`` and root filesystems (``docker.bootstrap``,
``docker.assemble``). :class:`Placement` renames each member to where it goes
and refuses what could land anywhere else; :class:`HostWriter` writes placed
members onto the host.

The rules, everywhere:

- A member's name is the one the writer will use. tarfile keeps a member's
  PAX ``path``/``linkpath`` headers (written for non-ASCII names and names
  over 100 characters) and writes them back, where they win over the name:
  renaming drops them, or ``café.txt`` comes back at its old place.
- No absolute name, no ``..``; no member below a symbolic link of the same
  archive; no hard link out of the archive, nor to a symbolic link.
- Symbolic links by where the archive goes (``links``): :data:`IN_TARGET`
  (the host, and an archive a user gives a volume) allows no absolute link,
  no relative one climbing out of where the archive is placed, and no ``..``
  after a name (``up/../..``: on disk it climbs from where a link ``up`` leads);
  :data:`IN_ROOT` (root filesystems, persist, copies into a container) keeps
  absolute links, which resolve against the image's or the container's own
  root, but no relative one climbing above it; :data:`KEPT` (a volume's own
  content carried over by a recreate or a backup) keeps links as they are.

On the host, as tarfile's ``data`` filter does: no device or fifo, no
set-id, sticky, group- or world-writable mode, owners are the buildout
user's. tarfile itself cannot be used to write there: its extraction opens a
regular file's target and changes a directory's mode through a link already
at that path. :class:`HostWriter` walks every directory with ``O_NOFOLLOW``
(a link on the way is refused, never followed), replaces a link where a
file goes, and writes each file through :mod:`.atomicfile`.
"""
from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import tarfile
from types import TracebackType
from typing import IO, Callable, NoReturn

from .atomicfile import DIRECTORY_FLAGS, atomic_file, open_trusted_directory, temporary_name

#: Symbolic links kept as they are (a volume's own content, carried over).
KEPT = 'kept'
#: Absolute links kept (they resolve in the image's or container's root); none climbing above it.
IN_ROOT = 'in-root'
#: No absolute link, none climbing out of where the archive is placed (the host, restore-from).
IN_TARGET = 'in-target'

#: The PAX headers that carry a name, dropped when a member is renamed.
NAME_HEADERS = ('path', 'linkpath')

CHUNK = 1 << 20



class ArchiveError(Exception):
    """An archive that cannot be used; the message says which member and why."""


def renamed(member: tarfile.TarInfo, name: str, linkname: str | None = None) -> tarfile.TarInfo:
    """The member under a new name (and link target): its PAX name headers go, so that
    the name written is this one."""
    member.name = name
    if linkname is not None:
        member.linkname = linkname
    if any(key in member.pax_headers for key in NAME_HEADERS):
        member.pax_headers = {key: value for key, value in member.pax_headers.items()
                              if key not in NAME_HEADERS}
    return member


def _join(root: str, name: str) -> str:
    joined = posixpath.normpath(posixpath.join(root, name)) if root else posixpath.normpath(name)
    return joined if joined not in ('', '/') else '.'


def _under(path: str, base: str) -> bool:
    """Whether a normalised relative path is ``base`` or below it (``''``: the root)."""
    if not base or base == '.':
        return path != '..' and not path.startswith('../')
    return path == base or path.startswith(base + '/')


class Placement:
    """Places the members of one archive: ``strip`` (a leading directory, as the engine's
    archive of ``/volume`` names everything ``volume/...``) taken off, ``prefix`` put
    before, every rule of the module checked. One per archive: it remembers the archive's
    symbolic links, so that no later member is placed through one."""

    def __init__(self, prefix: str = '', strip: str = '', links: str = IN_ROOT) -> None:
        self.root = posixpath.normpath(prefix.strip('/')) if prefix.strip('/') else ''
        self.strip = strip.strip('/')
        self.links = links
        self._symlinks: set[str] = set()

    def relative(self, raw: str) -> str:
        """A member name as the archive means it (``strip`` taken off, ``.`` for the
        root); an absolute or climbing name is refused."""
        if raw.startswith('/'):
            raise ArchiveError(f'member {raw!r} has an absolute path')
        if '..' in raw.split('/'):
            raise ArchiveError(f'member {raw!r} climbs out with ".."')
        name = posixpath.normpath(raw) if raw else '.'
        if self.strip:
            if name != self.strip and not name.startswith(self.strip + '/'):
                raise ArchiveError(f'member {raw!r} is outside {self.strip}')
            name = name[len(self.strip):].lstrip('/') or '.'
        return name

    def name(self, raw: str) -> str:
        """Where a member name goes: :meth:`relative`, under ``prefix``."""
        return _join(self.root, self.relative(raw))

    def place(self, member: tarfile.TarInfo) -> tarfile.TarInfo:
        """The member renamed to where it goes; an unsafe one raises :class:`ArchiveError`."""
        raw = member.name
        name = self.name(raw)
        self._not_through_link(raw, name)
        linkname = None
        if member.islnk():
            linkname = self._hard_link_target(raw, member.linkname)
        elif member.issym():
            self._check_symlink(raw, name, member.linkname)
        if member.issym():
            self._symlinks.add(name)
        else:
            self._symlinks.discard(name)
        return renamed(member, name, linkname)

    def _not_through_link(self, raw: str, name: str) -> None:
        if not self._symlinks:
            return
        parent = posixpath.dirname(name)
        while parent not in ('', '.'):
            if parent in self._symlinks:
                raise ArchiveError(f'member {raw!r} is below a symbolic link of the archive '
                                   f'({parent!r}): nothing is written through a link')
            parent = posixpath.dirname(parent)

    def _hard_link_target(self, raw: str, target: str) -> str:
        try:
            placed = self.name(target)
        except ArchiveError:
            raise ArchiveError(f'hard link {raw!r} points outside the archive '
                               f'({target!r})') from None
        if placed in self._symlinks:
            raise ArchiveError(f'hard link {raw!r} points at a symbolic link ({target!r})')
        self._not_through_link(raw, placed)
        return placed

    def _check_symlink(self, raw: str, name: str, target: str) -> None:
        if self.links == KEPT:
            return
        if target.startswith('/'):
            if self.links == IN_ROOT:
                return
            raise ArchiveError(f'symbolic link {raw!r} is absolute ({target!r}): it would lead '
                               f'out of the root')
        if self.links == IN_TARGET and _climbs_after_descending(target):
            raise ArchiveError(f'symbolic link {raw!r} leads out of the root ({target!r}): '
                               f'".." after a name may climb back through a link')
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if not _under(resolved, self.root if self.links == IN_TARGET else ''):
            raise ArchiveError(f'symbolic link {raw!r} leads out of the root ({target!r})')


def _climbs_after_descending(target: str) -> bool:
    """Whether a relative link target has ``..`` after a name (``a/..``, ``up/../..``).

    Normalising such a target takes the name back out, but on disk ``..`` climbs from
    where the name leads: through a link (``up -> ../..``) that is above where the text
    says. Only leading ``..`` is resolved the same on disk and on paper, because the
    link's own parents are real directories (nothing is placed below a link).
    """
    descended = False
    for part in target.split('/'):
        if part == '..':
            if descended:
                return True
        elif part not in ('', '.'):
            descended = True
    return False


def check_links(directory: str) -> None:
    """Hold the links a tool other than :class:`HostWriter` wrote below ``directory`` (a
    git checkout) to the host's rules (:data:`IN_TARGET`); a bad one raises
    :class:`ArchiveError`."""
    placement = Placement(links=IN_TARGET)
    for parent, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(parent, name)
            if os.path.islink(path):
                member = tarfile.TarInfo(os.path.relpath(path, directory))
                member.type, member.linkname = tarfile.SYMTYPE, os.readlink(path)
                placement.place(member)


def host_mode(member: tarfile.TarInfo) -> int:
    """A member's mode on the host: no set-id or sticky bit, no group or other write
    (a directory stays the owner's to manage: a rerun writes into it)."""
    mode = member.mode & 0o755
    return mode | 0o700 if member.isdir() else mode


def remove_host_path(path: str) -> None:
    """Remove ``path`` on the host, a directory with what it holds, a link as a link;
    its directory reached as :func:`open_trusted_directory` does (a link another user put
    on the way makes it refuse, never remove what the link leads to). Gone already: done."""
    try:
        fd = open_trusted_directory(os.path.dirname(os.path.abspath(path)))
    except FileNotFoundError:
        return
    try:
        base = os.path.basename(path)
        try:
            found = os.lstat(base, dir_fd=fd).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISDIR(found):
            shutil.rmtree(base, dir_fd=fd)
        else:
            os.unlink(base, dir_fd=fd)
    finally:
        os.close(fd)


class HostWriter:
    """Writes placed members below one host directory, never through a link.

    ``directory`` itself is opened as the configuration names it, following only
    the links its owner or root made (:func:`open_trusted_directory`; made when
    missing with ``make``); below it,
    every directory is opened with ``O_NOFOLLOW``: a link on the way or where
    a directory goes (an earlier copy's, a planted one) is refused; a link
    where a file or a link goes is replaced. Directory modes are set last (a read-only directory would
    stop what goes into it). Use it as a context manager.
    """

    def __init__(self, directory: str, durable: bool = False, make: bool = False) -> None:
        self.directory = directory
        self.durable = durable
        self._fd = open_trusted_directory(directory, make)
        self._modes: list[tuple[str, int]] = []

    def __enter__(self) -> HostWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        try:
            if kind is None:
                for name, mode in reversed(self._modes):
                    fd = self._open_directory(name, make=False)
                    try:
                        os.fchmod(fd, mode)
                    finally:
                        os.close(fd)
        finally:
            os.close(self._fd)

    def write(self, member: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        """Write one member (placed: a relative name, checked links) and what it holds."""
        name = member.name
        if name in ('', '.'):
            if not member.isdir():
                raise ArchiveError(f'member {name!r} is the target directory and no directory')
            self._modes.append(('.', host_mode(member)))
            return
        parent, base = posixpath.split(name)
        fd = self._open_directory(parent, make=True)
        try:
            if member.isdir():
                self._make_directory(fd, base, name)
                self._modes.append((name, host_mode(member)))
            elif member.isreg():
                with atomic_file(base, host_mode(member), dir_fd=fd,
                                 durable=self.durable) as out:
                    if data is not None:
                        shutil.copyfileobj(data, out, CHUNK)
                    out.flush()
                    os.utime(out.fileno(), (member.mtime, member.mtime))
            elif member.issym():
                self._replace(fd, base, lambda temporary: os.symlink(member.linkname, temporary,
                                                                     dir_fd=fd))
            elif member.islnk():
                self._hard_link(fd, base, member)
            else:
                raise ArchiveError(f'member {name!r} is a device or a fifo: none is written '
                                   f'on the host')
        except OSError as exc:
            raise ArchiveError(f'{os.path.join(self.directory, name)}: '
                               f'{exc.strerror or exc}') from None
        finally:
            os.close(fd)

    def _open_directory(self, name: str, make: bool) -> int:
        """A descriptor of the directory ``name`` (made when missing and ``make``), every
        step opened without following a link."""
        fd = os.dup(self._fd)
        done = ''
        try:
            for part in ([] if name in ('', '.') else name.split('/')):
                done = posixpath.join(done, part)
                try:
                    step = os.open(part, DIRECTORY_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not make:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    step = os.open(part, DIRECTORY_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    self._refuse_in_the_way(fd, part, done)
                os.close(fd)
                fd = step
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _refuse_in_the_way(self, fd: int, part: str, done: str) -> NoReturn:
        shown = os.path.join(self.directory, done)
        if stat.S_ISLNK(os.lstat(part, dir_fd=fd).st_mode):
            raise ArchiveError(f'{shown} is a link (to {os.readlink(part, dir_fd=fd)}), which '
                               f'would lead outside: nothing is written through it')
        raise ArchiveError(f'{shown} is in the way: it is not a directory')

    def _make_directory(self, fd: int, base: str, name: str) -> None:
        """A directory at ``base``: a file there is replaced; a link is refused, never
        followed (nor silently replaced: it may be someone's way to another disk)."""
        try:
            found = os.lstat(base, dir_fd=fd).st_mode
        except FileNotFoundError:
            found = None
        if found is not None and stat.S_ISDIR(found):
            return
        if found is not None and stat.S_ISLNK(found):
            self._refuse_in_the_way(fd, base, name)
        if found is not None:
            os.unlink(base, dir_fd=fd)
        os.mkdir(base, 0o700, dir_fd=fd)

    @staticmethod
    def _replace(fd: int, base: str, make: Callable[[str], None]) -> None:
        """Make an entry under a temporary name, then rename it over ``base`` (a link
        there is replaced, not followed)."""
        temporary = temporary_name()
        make(temporary)
        try:
            os.replace(temporary, base, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            os.unlink(temporary, dir_fd=fd)
            raise

    def _hard_link(self, fd: int, base: str, member: tarfile.TarInfo) -> None:
        parent, target = posixpath.split(member.linkname)
        source = self._open_directory(parent, make=False)
        try:
            if not stat.S_ISREG(os.lstat(target, dir_fd=source).st_mode):
                raise ArchiveError(f'hard link {member.name!r} points at {member.linkname!r}, '
                                   f'which is not a file')
            self._replace(fd, base, lambda temporary: os.link(
                target, temporary, src_dir_fd=source, dst_dir_fd=fd, follow_symlinks=False))
        finally:
            os.close(source)


__all__ = ['ArchiveError', 'Placement', 'HostWriter', 'open_trusted_directory',
           'remove_host_path', 'check_links', 'renamed', 'host_mode',
           'KEPT', 'IN_ROOT', 'IN_TARGET']
