"""Moving the content of volumes in and out, with no image to pull.

The engine's archive API reads and writes a volume through a container that
mounts it, and that container never has to run: so a helper image with
nothing in it (imported from an in-memory tarball) is enough, and no
registry is needed. Archives keep owners, modes and links; their members are
relative to the volume's root, placed by :mod:`.members` (a volume's own
content keeps its links as they are; an archive a user gives is held to
:data:`.members.IN_TARGET`). Archives are written by :mod:`.atomicfile`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import io
import os
import tarfile
from typing import IO, Any, Iterable, Iterator

from . import atomicfile
from .archives import ChunkReader
from .context import file_sha256
from ..engine.errors import NotFound
from ..engine.driver import Engine
from ..engine.labels import LABEL_HELPER
from .members import KEPT, Placement
from .throwaway import empty_image

HELPER_IMAGE = 'dockeroo-nagoya/helper:empty'
MOUNT = '/volume'


def helper_image(engine: Engine) -> str:
    """An empty image for never-started helper containers (made once per engine; its
    label marks their containers for the orphan sweep)."""
    return empty_image(engine, HELPER_IMAGE, [f'LABEL {LABEL_HELPER}=1', 'CMD ["/none"]'])


@contextlib.contextmanager
def mounted(engine: Engine, volume: str, read_only: bool = False) -> Iterator[str]:
    """A stopped helper container with ``volume`` at :data:`MOUNT`; removed after."""
    image = helper_image(engine)
    host_config = engine.api.create_host_config(
        binds={volume: {'bind': MOUNT, 'mode': 'ro' if read_only else 'rw'}})
    container = engine.api.create_container(
        image, command=['/none'], host_config=host_config,
        labels={LABEL_HELPER: '1'})['Id']
    try:
        yield container
    finally:
        with contextlib.suppress(NotFound):
            engine.api.remove_container(container, force=True)


class _HashingWriter(io.RawIOBase):
    """Writes to a file and hashes what passes."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        self._target.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


class _HashingReader(io.RawIOBase):
    """Reads a member's data and hashes what passes (for the content digest)."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.sha256.update(data)
        return data


class _ContentDigest:
    """The order-free checksum of a volume's files that :func:`content_digest` returns."""

    def __init__(self) -> None:
        self._entries: list[tuple[str, bytes]] = []

    def add(self, member: tarfile.TarInfo, body: str) -> None:
        line = (f'{member.type!r} {member.uid}:{member.gid} {member.mode:o} '
                f'{member.linkname} {body}')
        self._entries.append((member.name, line.encode()))

    def hexdigest(self) -> str:
        digest = hashlib.sha256()
        for name, line in sorted(self._entries):
            digest.update(name.encode() + b'\0' + line + b'\n')
        return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class Archived:
    """What :func:`archive_to` wrote: the archive's size and sha256, the volume's content digest."""

    path: str
    size: int
    sha256: str
    content: str
    members: int


def _relative_members(chunks: Iterable[bytes]) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """Members of an archive of ``/volume``, placed relative to the volume's root."""
    placement = Placement(strip=os.path.basename(MOUNT), links=KEPT)
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks)), mode='r|') as tar:
        for member in tar:
            member = placement.place(member)
            yield member, tar.extractfile(member) if member.isfile() else None


def write_archive(engine: Engine, volume: str, target: IO[bytes]) -> tuple[int, str, int]:
    """Write the content of ``volume`` as a tar to ``target``: (bytes, sha256, members)."""
    writer = _HashingWriter(target)
    count = 0
    with mounted(engine, volume, read_only=True) as container:
        chunks, _ = engine.api.get_archive(container, MOUNT)
        with tarfile.open(fileobj=writer, mode='w|', format=tarfile.PAX_FORMAT) as out:
            for member, data in _relative_members(chunks):
                out.addfile(member, data)
                count += 1
    return writer.size, writer.sha256.hexdigest(), count


def archive_to(engine: Engine, volume: str, path: str) -> Archived:
    """Archive a volume to ``path`` (mode 0600, written whole or not at all) in one pass.

    The content digest is the one :func:`content_digest` computes, so a
    restore can be checked against it without reading the archive again.
    """
    content = _ContentDigest()
    count = 0
    with atomicfile.atomic_file(path, 0o600) as target:
        writer = _HashingWriter(target)
        with mounted(engine, volume, read_only=True) as container:
            chunks, _ = engine.api.get_archive(container, MOUNT)
            with tarfile.open(fileobj=writer, mode='w|', format=tarfile.PAX_FORMAT) as out:
                for member, data in _relative_members(chunks):
                    reader = _HashingReader(data) if data is not None else None
                    out.addfile(member, reader)
                    content.add(member, reader.sha256.hexdigest() if reader else '')
                    count += 1
    return Archived(path, writer.size, writer.sha256.hexdigest(), content.hexdigest(), count)


def backup(engine: Engine, volume: str, directory: str) -> tuple[str, str]:
    """Archive a volume into ``directory`` (mode 0600): (path, sha256)."""
    os.makedirs(directory, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')
    path = os.path.join(directory, f'{volume}-{stamp}.tar')
    with atomicfile.atomic_file(path, 0o600) as target:
        _, digest, _ = write_archive(engine, volume, target)
    atomicfile.write_text(path + '.sha256', f'{digest}  {os.path.basename(path)}\n', 0o644)
    return path, digest


def restore(engine: Engine, volume: str, archive: str, links: str = KEPT) -> None:
    """Unpack an archive made by :func:`backup` into ``volume`` (one a user gives:
    ``links`` :data:`.members.IN_TARGET`)."""
    expected = _recorded_digest(archive)
    if expected is not None and file_digest(archive) != expected:
        raise ValueError(f'{archive} does not match its recorded sha256 checksum')
    with mounted(engine, volume) as container, open(archive, 'rb') as data, \
            _under_mount(data, links) as renamed:
        # Unpacked into / with the mount's name: the engine sets the owner and mode of an
        # existing directory an archive names, but not of the directory it unpacks into,
        # so the volume's root (a database's 0700) comes back only this way.
        engine.api.put_archive(container, '/', renamed)


@contextlib.contextmanager
def _under_mount(data: IO[bytes], links: str) -> Iterator[IO[bytes]]:
    """A copy of an archive of a volume's root with its members placed under the mount."""
    import tempfile
    placement = Placement(os.path.basename(MOUNT), links=links)
    with tempfile.TemporaryFile() as out:
        with tarfile.open(fileobj=data, mode='r|') as tar, \
                tarfile.open(fileobj=out, mode='w|', format=tarfile.PAX_FORMAT) as renamed:
            for member in tar:
                member = placement.place(member)
                renamed.addfile(member, tar.extractfile(member) if member.isfile() else None)
        out.seek(0)
        yield out


def copy_volume(engine: Engine, source: str, target: str) -> None:
    """Copy every file of one volume into another, owners and modes kept."""
    buf = io.BytesIO()
    write_archive(engine, source, buf)
    buf.seek(0)
    with mounted(engine, target) as container:
        engine.api.put_archive(container, MOUNT, buf)


def is_empty(engine: Engine, volume: str) -> bool:
    """True when the volume holds nothing but its root directory."""
    with mounted(engine, volume, read_only=True) as container:
        chunks, _ = engine.api.get_archive(container, MOUNT)
        for member, _ in _relative_members(chunks):
            if member.name != '.':
                return False
    return True


def content_digest(engine: Engine, volume: str) -> str:
    """A checksum of a volume's files: names, types, owners, modes, links, bytes."""
    content = _ContentDigest()
    with mounted(engine, volume, read_only=True) as container:
        chunks, _ = engine.api.get_archive(container, MOUNT)
        for member, data in _relative_members(chunks):
            content.add(member, hashlib.sha256(data.read()).hexdigest() if data else '')
    return content.hexdigest()


file_digest = file_sha256


def _recorded_digest(archive: str) -> str | None:
    try:
        with open(archive + '.sha256', encoding='ascii') as sums:
            return sums.read().split()[0]
    except (OSError, IndexError):
        return None
