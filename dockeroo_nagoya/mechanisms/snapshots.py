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

import dataclasses
import io
import logging
import posixpath
import tarfile
import tempfile
from typing import IO, Any, Mapping

import zc.buildout

from . import archives, secrets, volumedata
from ..engine.driver import Engine
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


def commit(engine: Engine, part: str, container: Mapping[str, Any], config: ImageConfig,
           labels: Mapping[str, str], log: logging.Logger, *, message: str | None = None,
           author: str | None = None, pause: bool = True) -> str:
    """An untagged image of the inspected container's filesystem and config, with
    ``config`` applied.

    The container's own labels stay (as ``docker commit`` keeps them) except
    the ownership labels, which ``labels`` replaces. The variables the container
    got from a secret reference (``env-file``, :func:`.secrets.secret_env`) are
    reset to the container's image's values (empty where it has none: a commit
    cannot drop a variable), unless ``config`` sets them. The engine also keeps
    the container's whole configuration, secrets included, as the committed
    image's ``ContainerConfig``: then the image returned is a child of the commit
    that has only the reset configuration (:func:`_child`), so neither ``docker
    inspect`` nor a push or save of it carries a secret.
    """
    secret = secrets.secret_env(engine, container)
    if secret:
        image = engine.inspect('images', str(container.get('Image') or '')) or {}
        own = dict(entry.partition('=')[::2]
                   for entry in (image.get('Config') or {}).get('Env') or [])
        given = {key for key, _ in config.env}
        resets = tuple((name, own.get(name, '')) for name in sorted(secret) if name not in given)
        config = dataclasses.replace(config, env=resets + config.env)
        labels = {**labels, secrets.LABEL_SECRET_ENV: ''}
    result = engine.api.commit(container['Id'], message=message, author=author, pause=pause,
                               changes=config.changes(labels))
    if not secret:
        return result['Id']
    log.info('leaving the configuration of container %s (its secrets) out of the image',
             str(container.get('Name') or container['Id'][:12]).lstrip('/'))
    return _child(engine, part, result['Id'], {}, labels, log)


def _child(engine: Engine, part: str, base: str, files: Mapping[str, IO[bytes]],
           labels: Mapping[str, str], log: logging.Logger, instructions: str = '') -> str:
    """An untagged image built ``FROM base`` with ``files`` in its context (each a file at
    its end: its size is where it is), ``instructions`` and ``labels``."""
    dockerfile = f'FROM {base}\n{instructions}'.encode()
    with tempfile.TemporaryFile() as context:
        with tarfile.open(fileobj=context, mode='w') as tar:
            info = tarfile.TarInfo('Dockerfile')
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size = content.tell()
                content.seek(0)
                tar.addfile(info, content)
        context.seek(0)
        stream = engine.api.build(fileobj=context, custom_context=True, labels=dict(labels),
                                  rm=True, forcerm=True, pull=False, decode=True)
        image_id = follow_build(part, stream, log)
    if image_id is None:
        raise zc.buildout.UserError(f'{part}: the engine did not say which image it made '
                                    f'from {base[:19]}')
    return image_id


def with_volumes(engine: Engine, part: str, base: str, container: str,
                 mounts: list[dict[str, Any]], labels: Mapping[str, str],
                 log: logging.Logger) -> str:
    """An untagged child of ``base`` holding the content of the container's ``mounts``."""
    if not mounts:
        return base
    with tempfile.TemporaryFile() as content:
        with tarfile.open(fileobj=content, mode='w', format=tarfile.PAX_FORMAT) as tar:
            for mount in mounts:
                path = mount['Destination']
                log.info('adding the content of %s to the image', path)
                chunks, _ = engine.api.get_archive(container, path)
                try:
                    archives.add_stream(tar, chunks, prefix=path, strip=posixpath.basename(path))
                except archives.ArchiveError as exc:
                    raise zc.buildout.UserError(f'{part}: the volume at {path}: {exc}') from None
        return _child(engine, part, base, {VOLUMES_TAR: content}, labels, log,
                      f'ADD {VOLUMES_TAR} /\n')


__all__ = ['volume_mounts', 'volumes_digest', 'commit', 'with_volumes']
