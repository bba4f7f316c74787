"""docker.pull against a real local registry: newest mode and digests."""
from __future__ import annotations

import contextlib

import docker.errors
import pytest

from helpers import publish

pytestmark = pytest.mark.slow


def pull_cfg(reference: str, extra: str = '') -> str:
    return f'''
        [buildout]
        parts = base

        [base]
        recipe = dockeroo_nagoya:docker.pull
        image = {reference}
        keep = false
        {extra}
        '''


def test_pull_fetches_only_when_the_registry_digest_changed(buildout, client, busybox, registry, tmp_path):
    b = buildout
    repository = f'{registry}/{b.prefix}/base'
    publish(client, busybox, repository)
    b.write(pull_cfg(f'{repository}:v1'))
    try:
        out = b.run('-N').stdout
        assert f'pulling {repository}:v1' in out
        first = client.images.get(f'{repository}:v1').id

        # -N: present means done; newest: same digest means done.
        assert 'pulling' not in b.run('-N').stdout
        assert 'pulling' not in b.run().stdout

        # A new image under the same tag: -N keeps the old one, newest mode fetches it.
        (tmp_path / 'ctx').mkdir()
        (tmp_path / 'ctx' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo two > /two\n')
        second, _ = client.images.build(path=str(tmp_path / 'ctx'), tag=f'{b.prefix}-two:latest', rm=True)
        second.tag(repository, 'v1')
        for line in client.images.push(repository, 'v1', stream=True, decode=True):
            assert 'error' not in line, line
        client.images.remove(f'{repository}:v1')
        client.images.get(first).tag(repository, 'v1')
        assert 'pulling' not in b.run('-N').stdout
        assert client.images.get(f'{repository}:v1').id == first
        out = b.run().stdout
        assert 'the registry has a new digest' in out
        assert client.images.get(f'{repository}:v1').id == second.id

        # Removing the part with keep = false removes the reference.
        b.write(pull_cfg(f'{repository}:v1').replace('parts = base', 'parts ='))
        b.run('-N')
        assert not any(f'{repository}:v1' in image.tags for image in client.images.list())
    finally:
        for reference in (f'{repository}:v1', f'{b.prefix}-two:latest'):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(reference, force=True)


def test_pull_of_a_missing_image_is_one_clear_error(buildout, registry):
    b = buildout
    b.write(pull_cfg(f'{registry}/{b.prefix}/nothing:v9'))
    out = b.fail('-N')
    assert f'base: Docker engine error (pulling {registry}/{b.prefix}/nothing:v9)' in out
    assert 'not found' in out
    assert 'Traceback' not in out
