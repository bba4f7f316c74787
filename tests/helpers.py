"""Small helpers the tests share: object ids, volume content, forced reinstalls."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import docker

from conftest import free_port

HELPER = 'dockeroo-nagoya/helper:empty'


def ids(client: docker.DockerClient, b) -> dict[str, str]:
    """kind:name -> id of everything the buildout owns on ``client``'s engine."""
    found = {}
    for container in b.owned('containers', client):
        found[f'container:{container.name}'] = container.id
    for image in b.owned('images', client):
        for tag in image.tags or ['<none>']:
            found[f'image:{tag}'] = image.id
    for network in b.owned('networks', client):
        found[f'network:{network.name}'] = network.id
    for volume in b.owned('volumes', client):
        # Volumes have no id, and the engine's CreatedAt follows the data's mtime:
        # the identity label says whether it is the same volume definition.
        found[f'volume:{volume.name}'] = volume.attrs['Labels'].get('io.dockeroo-nagoya.identity')
    return found


def _mounted(client: docker.DockerClient, volume: str):
    if not client.images.list(name=HELPER):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w') as tar:
            tar.addfile(tarfile.TarInfo('.x'), io.BytesIO(b''))
        client.api.import_image_from_data(buf.getvalue(), repository=HELPER.split(':')[0], tag='empty')
    return client.containers.create(HELPER, command=['/none'], volumes={volume: {'bind': '/v', 'mode': 'rw'}})


def write_volume_file(client: docker.DockerClient, volume: str, name: str, data: bytes,
                      uid: int = 1234, mode: int = 0o640) -> None:
    container = _mounted(client, volume)
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w') as tar:
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid, info.mode = len(data), uid, uid, mode
            tar.addfile(info, io.BytesIO(data))
        container.put_archive('/v', buf.getvalue())
    finally:
        container.remove(force=True)


def volume_digest(client: docker.DockerClient, volume: str) -> str:
    """Names, owners, modes and bytes of every file in the volume."""
    container = _mounted(client, volume)
    try:
        chunks, _ = container.get_archive('/v')
        data = b''.join(chunks)
    finally:
        container.remove(force=True)
    digest = hashlib.sha256()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            body = tar.extractfile(member).read() if member.isfile() else b''
            digest.update(f'{member.name} {member.uid} {member.gid} {member.mode:o} '.encode() + body)
    return digest.hexdigest()


def force_reinstall(b) -> None:
    """Make buildout believe every recipe changed, as a package upgrade does."""
    path = b.directory / '.installed.cfg'
    text = path.read_text()
    path.write_text(re.sub(r'__buildout_signature__ = .*', '__buildout_signature__ = changed', text))


# -- configuration scaffolding --------------------------------------------------------
def section(section_name: str, recipe: str, **options: str) -> str:
    """A buildout section; ``options`` with ``_`` for ``-`` (``wait_for`` -> ``wait-for``),
    multi-line values indented as buildout wants them."""
    lines = [f'[{section_name}]'] + ([f'recipe = dockeroo_nagoya:{recipe}'] if recipe else [])
    for key, value in options.items():
        value = str(value).strip('\n')
        lines.append(f'{key.replace("_", "-")} = ' + value.replace('\n', '\n    '))
    return '\n'.join(lines) + '\n'


def buildout_config(parts: list[str], *sections: str, head: str = '') -> str:
    """A whole buildout.cfg: ``[buildout]`` with ``parts``, then the sections."""
    return '\n'.join([f'[buildout]\nparts = {" ".join(parts)}\n{head}', *sections])


def sleeper(section_name: str, image: str, **options: str) -> str:
    """A docker.run part of a container that sleeps (stops at once: PID 1 ignores SIGTERM)."""
    return section(section_name, 'docker.run', image=image, command='sleep 3600', **options)


def publish(client: docker.DockerClient, image: str, repository: str, tag: str = 'v1') -> str:
    """Push a local image to a test registry as REPOSITORY:TAG and drop the local tag, so
    the first run takes it from the registry, as from Docker Hub."""
    client.images.get(image).tag(repository, tag)
    for line in client.images.push(repository, tag, stream=True, decode=True):
        assert 'error' not in line, line
    client.images.remove(f'{repository}:{tag}')
    return f'{repository}:{tag}'


def unpublish(registry: str, repository: str) -> None:
    """Delete every tag of ``repository`` (``PREFIX/NAME``) from a test registry (its
    manifests: the registry is the session's, its blobs go with it)."""
    base = f'http://{registry}/v2/{repository}'
    try:
        with urllib.request.urlopen(f'{base}/tags/list', timeout=10) as answer:
            tags = json.load(answer).get('tags') or []
    except urllib.error.HTTPError:
        return
    for tag in tags:
        head = urllib.request.Request(f'{base}/manifests/{tag}', method='HEAD', headers={
            'Accept': 'application/vnd.docker.distribution.manifest.v2+json'})
        with urllib.request.urlopen(head, timeout=10) as answer:
            digest = answer.headers['Docker-Content-Digest']
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(urllib.request.Request(f'{base}/manifests/{digest}',
                                                          method='DELETE'), timeout=10).close()


def actions(output: str) -> list[str]:
    """Buildout's ``Installing X.``/``Uninstalling X.`` lines of a run."""
    return [line for line in output.splitlines()
            if line.startswith(('Installing ', 'Uninstalling '))]


# -- the Koji profile ------------------------------------------------------------------
KOJI_PROFILE = Path(__file__).resolve().parent.parent / 'profiles' / 'koji.cfg'


def koji_buildout(b, parts: str | None = None, builders: int = 1, port: int | None = None,
                  extra: str = '') -> None:
    """A buildout in the test's directory extending the profile where it is (nothing copied)."""
    if not hasattr(b, 'port'):
        b.port = port or free_port()
    lines = ['[buildout]', f'extends = {KOJI_PROFILE}',
             *([f'parts = {parts}'] if parts is not None else []), '', '[koji]',
             f'prefix = {b.prefix}', f'hub-port = {b.port}', f'builders = {builders}',
             'stop-timeout = 1', *extra.splitlines()]
    b.write('\n'.join(lines) + '\n')


def container_ids(b) -> dict[str, tuple[str, str]]:
    return {c.name: (c.id, c.attrs['State']['StartedAt']) for c in b.owned('containers')}


def timed(what: str, work, *args, **kwargs):
    """Run ``work`` and print how long it took (the README's figures; run with -s)."""
    started = time.monotonic()
    result = work(*args, **kwargs)
    print(f'\n{what}: {time.monotonic() - started:.1f} s', flush=True)
    return result
