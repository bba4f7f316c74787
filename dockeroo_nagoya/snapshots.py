"""Images from containers: ``docker commit`` with config changes, and nagoya's persist.

``docker commit`` saves a container's filesystem but leaves its volumes out.
A persist adds them: the container is committed, then a child image is
built ``FROM`` that commit with one ``ADD`` of a tar of the volumes' content
at their paths. ``ADD`` unpacks a local tar keeping owners and modes and
writes into the image layer even at a ``VOLUME`` path (a container could
not: its writes there go to the volume), so a new container from the image
starts with the data: a declared ``VOLUME`` is initialised from it.

A persist is redone when the volumes' content changes: :func:`volumes_digest`
is the content digest of each volume (:func:`volumedata.content_digest`).
"""
from __future__ import annotations

import io
import logging
import posixpath
import tarfile
import tempfile
from typing import Any, Mapping

import zc.buildout

from . import archives, volumedata
from .engine import Engine
from .progress import follow_build
from .throwaway import ImageConfig

#: Where the volumes' tar sits in the build context of a persist.
VOLUMES_TAR = 'volumes.tar'


def volume_mounts(part: str, container: Mapping[str, Any], paths: list[str] | None,
                  option: str = 'paths') -> list[dict[str, Any]]:
    """The mounts to persist: the named ones (volumes or binds), else every volume."""
    mounts = list(container.get('Mounts') or [])
    name = str(container.get('Name') or container.get('Id', '')[:12]).lstrip('/')
    if not paths:
        return sorted((m for m in mounts if m.get('Type') == 'volume'),
                      key=lambda m: m['Destination'])
    by_path = {m['Destination']: m for m in mounts}
    chosen = []
    for path in paths:
        wanted = posixpath.normpath(path)
        if wanted not in by_path:
            found = ', '.join(sorted(by_path)) or 'none'
            raise zc.buildout.UserError(
                f'{part}: option {option}: {wanted} is not a volume of container {name} '
                f'(its volumes: {found})')
        chosen.append(by_path[wanted])
    return chosen


def volumes_digest(engine: Engine, mounts: list[dict[str, Any]]) -> dict[str, str]:
    """Container path -> content digest of the volume (or host directory) mounted there."""
    return {mount['Destination']: volumedata.content_digest(
        engine, mount['Name'] if mount.get('Type') == 'volume' else mount['Source'])
        for mount in mounts}


def commit(engine: Engine, container: str, config: ImageConfig, labels: Mapping[str, str], *,
           message: str | None = None, author: str | None = None, pause: bool = True) -> str:
    """An untagged image of the container's filesystem and config, with ``config`` applied.

    The container's own labels stay (as ``docker commit`` keeps them) except
    the ownership labels, which ``labels`` replaces.
    """
    result = engine.api.commit(container, message=message, author=author, pause=pause,
                               changes=config.changes(labels))
    return result['Id']


def with_volumes(engine: Engine, part: str, base: str, container: str,
                 mounts: list[dict[str, Any]], labels: Mapping[str, str],
                 log: logging.Logger) -> str:
    """An untagged child of ``base`` holding the content of the container's ``mounts``."""
    if not mounts:
        return base
    with tempfile.TemporaryFile() as content, tempfile.TemporaryFile() as context:
        with tarfile.open(fileobj=content, mode='w', format=tarfile.PAX_FORMAT) as tar:
            for mount in mounts:
                path = mount['Destination']
                log.info('adding the content of %s to the image', path)
                chunks, _ = engine.api.get_archive(container, path)
                try:
                    archives.add_stream(tar, chunks, prefix=path, strip=posixpath.basename(path))
                except archives.ArchiveError as exc:
                    raise zc.buildout.UserError(f'{part}: the volume at {path}: {exc}') from None
        size = content.tell()
        content.seek(0)
        dockerfile = f'FROM {base}\nADD {VOLUMES_TAR} /\n'.encode()
        with tarfile.open(fileobj=context, mode='w') as tar:
            info = tarfile.TarInfo('Dockerfile')
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
            info = tarfile.TarInfo(VOLUMES_TAR)
            info.size = size
            tar.addfile(info, content)
        context.seek(0)
        stream = engine.api.build(fileobj=context, custom_context=True, labels=dict(labels),
                                  rm=True, forcerm=True, pull=False, decode=True)
        image_id = follow_build(part, stream, log)
    if image_id is None:
        raise zc.buildout.UserError(f'{part}: the engine did not say which image it made '
                                    f'from the volumes')
    return image_id


__all__ = ['volume_mounts', 'volumes_digest', 'commit', 'with_volumes']
