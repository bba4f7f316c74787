"""Image archives as ``docker save`` writes them and ``docker load`` reads them.

An archive's ``manifest.json`` names each image's config blob, whose digest is
the image's id: so whether a file holds the image the engine has is read from
the file itself, with no record kept beside it. Shared by ``docker.save`` and
``docker.load``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tarfile
from typing import Iterable

from .atomicfile import atomic_file


class NotAnImageArchive(ValueError):
    """The file is no archive ``docker save`` made; the message says why."""


@dataclasses.dataclass(frozen=True)
class ArchivedImage:
    """One image of an archive: its id and the tags it is loaded under."""

    image_id: str
    tags: tuple[str, ...]


def archived_images(path: str) -> list[ArchivedImage]:
    """The images of an archive (plain, gzip, bzip2 or xz), from its ``manifest.json``."""
    try:
        with tarfile.open(path, 'r:*') as tar:
            try:
                member = tar.getmember('manifest.json')
            except KeyError:
                raise NotAnImageArchive('a tar file from docker save (it has no manifest.json)') from None
            handle = tar.extractfile(member)
            manifest = json.loads(handle.read() if handle else b'')
    except tarfile.ReadError:
        # tarfile's own message lists every compression it tried, one line each.
        raise NotAnImageArchive('a tar file from docker save (it does not read as a tar '
                                'archive, plain or compressed)') from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotAnImageArchive(f'a tar file from docker save ({reason})') from None
    except ValueError:
        raise NotAnImageArchive('a tar file from docker save (its manifest.json is no JSON)') from None
    if not isinstance(manifest, list):
        raise NotAnImageArchive('a tar file from docker save (its manifest.json is no list)')
    found = []
    for entry in manifest:
        config = os.path.basename(str(entry.get('Config') or '')) if isinstance(entry, dict) else ''
        digest = config[:-5] if config.endswith('.json') else config
        if len(digest) != 64:
            raise NotAnImageArchive('a tar file from docker save (an image without its config)')
        found.append(ArchivedImage(f'sha256:{digest}', tuple(entry.get('RepoTags') or ())))
    return found


def image_in_archive(path: str, reference: str) -> ArchivedImage | None:
    """The image of the archive tagged ``reference``, else its only image; ``None`` if unreadable."""
    try:
        images = archived_images(path)
    except NotAnImageArchive:
        return None
    tagged = [image for image in images if reference in image.tags]
    if tagged:
        return tagged[0]
    return images[0] if len(images) == 1 else None


def write_atomically(path: str, chunks: Iterable[bytes]) -> None:
    """Write the file whole or not at all (:mod:`.atomicfile`), so a failed write leaves the
    old one; its directory is made when missing."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with atomic_file(path, 0o644) as out:
        for chunk in chunks:
            out.write(chunk)


__all__ = ['ArchivedImage', 'NotAnImageArchive', 'archived_images', 'image_in_archive',
           'write_atomically']
