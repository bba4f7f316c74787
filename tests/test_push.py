"""docker.push and docker.pull through a registry that wants a password."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import docker.errors
import pytest

from conftest import REGISTRY_PASSWORD, REGISTRY_USER

pytestmark = pytest.mark.slow


def cfg(b, registry: str, parts: str, version: str = 'one') -> str:
    return f'''
        [buildout]
        parts = {parts}

        [app]
        recipe = dockeroo_nagoya:docker.build
        name = {b.prefix}/app
        source = ${{buildout:directory}}/app
        build-args = VERSION={version}

        [publish]
        recipe = dockeroo_nagoya:docker.push
        image = ${{app:image}}
        registry = {registry}
        tags =
            {b.prefix}/app:{version}
            {b.prefix}/app:latest
        username = {REGISTRY_USER}
        password-env = DN_TEST_REGISTRY_PASSWORD

        [fetch]
        recipe = dockeroo_nagoya:docker.pull
        image = {registry}/{b.prefix}/app:{version}
        username = {REGISTRY_USER}
        password-file = ${{buildout:directory}}/registry-password
        keep = false
        '''


def test_push_and_pull_with_a_password_that_is_never_written(buildout, client, busybox,
                                                              auth_registry, tmp_path):
    b = buildout
    env = {'DN_TEST_REGISTRY_PASSWORD': REGISTRY_PASSWORD, 'DOCKER_CONFIG': str(tmp_path / 'dc')}
    (b.directory / 'app').mkdir()
    (b.directory / 'app' / 'Dockerfile').write_text(
        f'FROM {busybox}\nARG VERSION\nRUN echo $VERSION > /version\n')
    (b.directory / 'registry-password').write_text(REGISTRY_PASSWORD + '\n')
    os.chmod(b.directory / 'registry-password', 0o600)
    pushed_refs = [f'{auth_registry}/{b.prefix}/app:{t}' for t in ('one', 'latest', 'two')]
    try:
        b.write(cfg(b, auth_registry, 'app publish'))
        out = b.run('-N', '-vvv', env=env)
        log = out.stdout + out.stderr
        assert log.count('pushing') == 2
        again = b.run('-N', env=env)
        assert 'pushing' not in again.stdout, 'the same image is not pushed again'
        log += again.stdout + again.stderr

        # Pull it back through the registry, with the password from a file.
        for ref in pushed_refs[:2]:
            client.images.remove(ref)
        b.write(cfg(b, auth_registry, 'app publish fetch'))
        out = b.run('-vvv', env=env)
        log += out.stdout + out.stderr
        assert f'pulling {auth_registry}/{b.prefix}/app:one' in out.stdout
        assert client.containers.run(f'{auth_registry}/{b.prefix}/app:one', 'cat /version',
                                     remove=True) == b'one\n'

        # A changed image is pushed again.
        b.write(cfg(b, auth_registry, 'app publish', version='two'))
        out = b.run('-N', env=env)
        log += out.stdout + out.stderr
        assert out.stdout.count('pushing') == 2

        # The password is nowhere: buildout's files and output, the engine's metadata.
        assert REGISTRY_PASSWORD not in log
        for path in Path(b.directory).rglob('*'):
            if path.is_file() and path.name != 'registry-password':
                assert REGISTRY_PASSWORD.encode() not in path.read_bytes(), path
        for image in client.images.list():
            assert REGISTRY_PASSWORD not in str(image.attrs)
            assert REGISTRY_PASSWORD not in str(client.api.history(image.id))
        assert not (tmp_path / 'dc').exists(), 'no docker config was written'
    finally:
        for ref in pushed_refs:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(ref, force=True)


def test_push_without_the_password_variable_is_one_clear_line(buildout, auth_registry):
    b = buildout
    (b.directory / 'app').mkdir()
    (b.directory / 'app' / 'Dockerfile').write_text('FROM scratch\n')
    b.write(cfg(b, auth_registry, 'app publish'))
    out = b.fail('-N', env={'DN_TEST_REGISTRY_PASSWORD': ''} and {})
    assert 'publish: option password-env: the environment variable DN_TEST_REGISTRY_PASSWORD is not set' in out
    assert 'Traceback' not in out
