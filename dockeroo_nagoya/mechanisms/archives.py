"""Root filesystems as tar streams: fetched, checked, composed and imported as images.

An image made from a root filesystem is one tar stream sent to the engine's
import API. The stream is composed here from host directories (packed with
their owners and modes) and tarballs (read member by member, compressed or
not), so nothing has to be unpacked on the host and owners survive without
root. Tarballs come from a path or a URL; a download is cached under the
buildout (or in buildout's ``download-cache``), keyed by its URL, so a
rerun downloads nothing, and its ``sha256:`` digest is checked before any of
it reaches the engine.

Members are placed by :mod:`.members` (the rules every archive follows):
a root filesystem keeps its absolute symbolic links (inside an image they
resolve against the image's own root; a root filesystem is full of them),
and :func:`extract` unpacks onto the host with the host's rules.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import json
import logging
import os
import posixpath
import shlex
import stat
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import IO, Any, Callable, Container, Iterable, Iterator, Mapping

from . import atomicfile
from ..engine.driver import Engine
from .members import IN_ROOT, IN_TARGET, ArchiveError, HostWriter, Placement
from ..model.options import Invalid, lines

SHA256_PREFIX = 'sha256:'
URL_SCHEMES = ('http', 'https', 'ftp')
CHUNK = 1 << 20
#: Files the engine adds to every container, not part of anyone's root filesystem.
ENGINE_FILES = frozenset({'.dockerenv'})

log = logging.getLogger('dockeroo_nagoya')


@dataclasses.dataclass(frozen=True)
class Archive:
    """One line of ``archives``: where the tarball is, where it goes, what it must hash to."""

    source: str
    prefix: str = '/'
    sha256: str | None = None

    @property
    def is_url(self) -> bool:
        return urllib.parse.urlparse(self.source).scheme in URL_SCHEMES


def parse_archives(base: str) -> Callable[[str], list[Archive]]:
    """Parser of ``URL-or-path [prefix] [sha256:DIGEST]`` lines; paths relative to ``base``."""
    def parse(raw: str) -> list[Archive]:
        found = []
        for line in lines(raw):
            try:
                words = shlex.split(line)
            except ValueError as exc:
                raise Invalid(f'URL-or-path [/prefix] [sha256:DIGEST] lines ({exc})') from None
            source, prefix, digest = words[0], '/', None
            for word in words[1:]:
                if word.startswith(SHA256_PREFIX) and digest is None:
                    digest = word[len(SHA256_PREFIX):].lower()
                    if len(digest) != 64 or any(c not in '0123456789abcdef' for c in digest):
                        raise Invalid(f'sha256: followed by 64 hex digits (in {line!r})')
                elif word.startswith('/') and prefix == '/':
                    prefix = posixpath.normpath(word)
                else:
                    raise Invalid('URL-or-path [/prefix] [sha256:DIGEST] lines (only sha256 '
                                  f'digests are checked; in {line!r})')
            if prefix.startswith('//'):
                prefix = '/' + prefix.lstrip('/')
            if '..' in prefix.split('/'):
                raise Invalid(f'a prefix without ".." (in {line!r})')
            parsed = urllib.parse.urlparse(source)
            if parsed.scheme == 'file':
                source = urllib.parse.unquote(parsed.path)
            elif parsed.scheme not in URL_SCHEMES:
                source = os.path.normpath(os.path.join(base, os.path.expanduser(source)))
            found.append(Archive(source, prefix, digest))
        return found
    return parse


# -- fetching ----------------------------------------------------------------
class Downloads:
    """Downloads cached by URL: in buildout's ``download-cache`` or under the buildout."""

    NAMESPACE = 'dockeroo-nagoya'

    def __init__(self, buildout: Mapping[str, str], directory: str) -> None:
        configured = (buildout.get('download-cache') or '').strip()
        if configured:
            self.cache = os.path.join(directory, configured, self.NAMESPACE)
        else:
            self.cache = os.path.join(directory, 'var', 'downloads')
        self.offline = any((buildout.get(key) or '').strip() == 'true'
                           for key in ('offline', 'install-from-cache'))

    def cached_path(self, url: str) -> str:
        """Where a URL is kept: a hash of the URL (the key) and its file name (for people)."""
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        name = posixpath.basename(urllib.parse.urlparse(url).path) or 'download'
        return os.path.join(self.cache, f'{key}-{name}')

    def fetch(self, url: str, sha256: str | None = None, again: bool = False,
              authorization: str | None = None) -> str:
        """The cached file of ``url``, downloaded when missing or not matching ``sha256``
        (or always, ``again``: what a URL names may change, and only the download says).

        ``authorization`` is sent as the ``Authorization`` header to ``url`` itself, never
        to where it redirects."""
        path = self.cached_path(url)
        if os.path.exists(path) and (not again or self.offline):
            if sha256 is None or file_sha256(path) == sha256:
                return path
            log.info('cached %s does not match its sha256; downloading it again', url)
        if self.offline:
            raise ArchiveError(f'{url} is not in the download cache {self.cache} '
                               f'and buildout runs offline')
        os.makedirs(self.cache, exist_ok=True)
        log.info('downloading %s', url)
        sha = hashlib.sha256()
        try:
            request = urllib.request.Request(url)
            if authorization:
                request.add_unredirected_header('Authorization', authorization)
            with urllib.request.urlopen(request, timeout=60) as response, \
                    atomicfile.atomic_file(path, 0o644) as out:
                for block in iter(lambda: response.read(CHUNK), b''):
                    sha.update(block)
                    out.write(block)
                if sha256 is not None and sha.hexdigest() != sha256:
                    raise ArchiveError(f'{url} has sha256 {sha.hexdigest()}, expected {sha256}; '
                                       f'nothing was imported')
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, 'reason', None) or exc
            raise ArchiveError(f'cannot download {url}: {reason}') from None
        return path


def local_file(archive: Archive, downloads: Downloads) -> str:
    """The archive as a checked file on the host (downloaded into the cache if need be)."""
    if archive.is_url:
        return downloads.fetch(archive.source, archive.sha256)
    if not os.path.isfile(archive.source):
        raise ArchiveError(f'{archive.source} is not a file')
    if archive.sha256 is not None:
        actual = file_sha256(archive.source)
        if actual != archive.sha256:
            raise ArchiveError(f'{archive.source} has sha256 {actual}, expected {archive.sha256}; '
                               f'nothing was imported')
    return archive.source


def content_digest(archive: Archive, downloads: Downloads) -> str:
    """What the archive's content is known to hash to, downloading only when nobody said."""
    if archive.is_url and archive.sha256:
        return archive.sha256
    path = local_file(archive, downloads)
    return archive.sha256 or file_sha256(path)


def file_sha256(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, 'rb') as data:
        for block in iter(lambda: data.read(CHUNK), b''):
            sha.update(block)
    return sha.hexdigest()


# -- checking members --------------------------------------------------------
def check(path: str, prefix: str = '/', links: str = IN_ROOT) -> collections.Counter[str]:
    """Read a tarball through once, so a bad one fails before the engine sees any of it.

    Returns how often each (placed) path occurs, for :func:`root_filesystem`.
    """
    names: collections.Counter[str] = collections.Counter()
    placement = Placement(prefix, links=links)
    try:
        with tarfile.open(path, mode='r|*') as tar:
            for member in tar:
                names[placement.place(member).name] += 1
    except tarfile.TarError as exc:
        raise ArchiveError(f'{path} is not a tar archive (plain, gzip, bzip2 or xz): '
                           f'{exc}') from None
    except (OSError, EOFError) as exc:
        raise ArchiveError(f'{path} cannot be read: {exc}') from None
    return names


# -- composing tar streams ---------------------------------------------------
@dataclasses.dataclass
class Layer:
    """One source of a root filesystem: a host directory's content or a tarball."""

    path: str
    prefix: str = '/'
    is_directory: bool = False
    uid: int | None = None
    gid: int | None = None
    counts: collections.Counter[str] | None = None

    def names(self) -> collections.Counter[str]:
        """How often each path occurs; for a tarball, read (and checked) once."""
        if self.counts is None:
            if self.is_directory:
                self.counts = collections.Counter(name for _, name in _walk(self.path, self.prefix))
            else:
                self.counts = check(self.path, self.prefix)
        return self.counts


def root_filesystem(layers: list[Layer]) -> Callable[[tarfile.TarFile], None]:
    """A fill function for :func:`tar_stream` that writes ``layers`` in order.

    A later layer replaces what an earlier one has at the same path, as
    unpacking them one after the other would; the engine refuses a layer
    with a path twice, so the replaced entries are left out instead.
    """
    counts = [layer.names() for layer in layers]

    def fill(tar: tarfile.TarFile) -> None:
        for index, layer in enumerate(layers):
            later: set[str] = set().union(*counts[index + 1:])
            if layer.is_directory:
                add_directory(tar, layer.path, layer.prefix, layer.uid, layer.gid, skip=later)
            else:
                add_archive(tar, layer.path, layer.prefix, skip=later, counts=counts[index])
    return fill


def add_archive(tar: tarfile.TarFile, path: str, prefix: str = '/',
                skip: Container[str] = frozenset(),
                counts: collections.Counter[str] | None = None) -> None:
    """Copy a tarball's members into ``tar``, placed under ``prefix``.

    Paths in ``skip`` are left out; with ``counts`` (from :func:`check`) only
    the last of a path the tarball holds more than once is kept.
    """
    seen: collections.Counter[str] = collections.Counter()
    placement = Placement(prefix)
    with tarfile.open(path, mode='r|*') as source:
        for member in source:
            member = placement.place(member)
            seen[member.name] += 1
            if member.name in skip or (counts and seen[member.name] < counts[member.name]):
                continue
            data = source.extractfile(member) if member.isreg() else None
            tar.addfile(member, data)


def add_directory(tar: tarfile.TarFile, directory: str, prefix: str = '',
                  uid: int | None = None, gid: int | None = None,
                  skip: Container[str] = frozenset()) -> None:
    """Add what is in ``directory`` (not the directory itself), owners kept or overridden."""
    for path, name in _walk(directory, prefix):
        if name in skip:
            continue
        info = tar.gettarinfo(path, arcname=name)
        if info is None:
            continue  # a socket: nothing a tar can hold
        if uid is not None:
            info.uid, info.uname = uid, ''
        if gid is not None:
            info.gid, info.gname = gid, ''
        if info.isreg():
            with open(path, 'rb') as data:
                tar.addfile(info, data)
        else:
            tar.addfile(info)


def _walk(directory: str, prefix: str = '') -> Iterator[tuple[str, str]]:
    """(host path, member name) of everything below ``directory``, parents first, sorted."""
    root = prefix.strip('/')
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        name = posixpath.join(root, entry) if root else entry
        yield path, name
        if os.path.isdir(path) and not os.path.islink(path):
            yield from _walk(path, name)


def add_stream(tar: tarfile.TarFile, chunks: Iterable[bytes], prefix: str = '',
               strip: str = '', skip: frozenset[str] = frozenset()) -> None:
    """Copy a tar stream (e.g. the engine's) into ``tar``, ``strip`` replaced by ``prefix``."""
    placement = Placement(prefix or '/', strip=strip)
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks), CHUNK), mode='r|') as source:
        for member in source:
            if placement.relative(member.name) in skip:
                continue
            data = source.extractfile(member) if member.isreg() else None
            tar.addfile(placement.place(member), data)


def tar_stream(fill: Callable[[tarfile.TarFile], None]) -> Iterator[bytes]:
    """The chunks of a tar that ``fill`` writes, produced while they are sent.

    ``fill`` runs in a thread writing into a pipe; what it raises is raised
    here once the pipe is drained (as ``ArchiveError``, so that the HTTP
    layer does not mistake it for a lost connection).
    """
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, 'wb') as pipe:
                with tarfile.open(fileobj=pipe, mode='w|', format=tarfile.PAX_FORMAT,
                                  bufsize=CHUNK) as tar:
                    fill(tar)
        except BrokenPipeError:
            pass  # the reader went away; its own error is the one that counts
        except BaseException as exc:  # noqa: B902 - carried over to the reading thread
            failure.append(exc)

    thread = threading.Thread(target=produce, name='dockeroo-nagoya-tar', daemon=True)
    thread.start()
    with os.fdopen(read_fd, 'rb') as pipe:
        for block in iter(lambda: pipe.read(CHUNK), b''):
            yield block
    thread.join()
    if failure:
        exc = failure[0]
        if isinstance(exc, ArchiveError):
            raise exc
        raise ArchiveError(f'{exc.__class__.__name__}: {exc}') from exc


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (the engine's archive streams)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b''

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


# -- digests of host trees -----------------------------------------------------
def tree_digest(directory: str, uid: int | None = None, gid: int | None = None) -> str:
    """sha256 of a host tree as it would be packed: names, types, owners, modes, links, bytes."""
    sha = hashlib.sha256()
    for parent, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(parent, name)
            info = os.lstat(path)
            relative = os.path.relpath(path, directory)
            owner = f'{info.st_uid if uid is None else uid}:{info.st_gid if gid is None else gid}'
            if stat.S_ISLNK(info.st_mode):
                body = 'L' + os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                body = 'F' + file_sha256(path)
            elif stat.S_ISDIR(info.st_mode):
                body = 'D'
            else:
                body = f'S{info.st_rdev}'
            sha.update(f'{relative}\0{stat.S_IFMT(info.st_mode):o} {stat.S_IMODE(info.st_mode):o} '
                       f'{owner} {body}\n'.encode('utf-8', 'surrogateescape'))
    return sha.hexdigest()


# -- the engine end -------------------------------------------------------------
def import_image(engine: Engine, chunks: Iterable[bytes], changes: list[str]) -> str:
    """Import a root filesystem tar stream as an (untagged) image; return its id."""
    answer = engine.api.import_image_from_data(chunks, changes=changes)
    image_id = None
    for line in str(answer).splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get('error'):
            raise ArchiveError(f'the engine refused the root filesystem: {message["error"]}')
        status = message.get('status') or ''
        if status.startswith('sha256:'):
            image_id = status
    if image_id is None:
        raise ArchiveError(f'the engine did not say which image it imported ({str(answer)[:200]})')
    return image_id


# -- the host end ------------------------------------------------------------------
def extract(path: str, target: str, prefix: str = '/') -> None:
    """Unpack a tarball into an existing host directory by the host's rules (:mod:`.members`).

    Its owners are not kept, nor set-id bits, group or world write, devices
    or links leading out of ``target``; nothing is written through a link.
    """
    placement = Placement(prefix, links=IN_TARGET)
    try:
        with tarfile.open(path, mode='r|*') as tar, HostWriter(target) as out:
            for member in tar:
                out.write(placement.place(member),
                          tar.extractfile(member) if member.isreg() else None)
    except tarfile.TarError as exc:
        raise ArchiveError(f'{path} is not a tar archive (plain, gzip, bzip2 or xz): '
                           f'{exc}') from None
    except (OSError, EOFError) as exc:
        raise ArchiveError(f'{path} cannot be read: {exc}') from None


def extract_file(chunks: Iterable[bytes], destination: str) -> int:
    """Write the one file of an engine archive stream to ``destination`` atomically; its size."""
    size = -1
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks), CHUNK), mode='r|') as tar:
        for member in tar:
            if not member.isreg():
                raise ArchiveError(f'{member.name} is not a regular file')
            source = tar.extractfile(member)
            assert source is not None
            with atomicfile.atomic_file(destination, 0o644) as out:
                _copy(source, out)
            size = member.size
            break
    if size < 0:
        raise ArchiveError('the archive holds no file')
    return size


def _copy(source: IO[bytes], target: IO[bytes]) -> None:
    for block in iter(lambda: source.read(CHUNK), b''):
        target.write(block)
