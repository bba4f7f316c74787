"""docker.push and docker.pull through a registry that wants a password."""
from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from pathlib import Path

import docker.errors
import pytest

from conftest import REGISTRY_PASSWORD, REGISTRY_USER
from helpers import run_output, actions, buildout_config, context_build_part, ids, section

pytestmark = pytest.mark.slow


def push_config(b, registry: str, parts: str, version: str = 'one') -> str:
    """The app built, pushed with a password from the environment and pulled with one from
    a file: the ``parts`` named."""
    return buildout_config(
        parts.split(),
        context_build_part(b, build_args=f'VERSION={version}'),
        section('publish', 'docker.push', image='${app:image}', registry=registry,
                tags=f'{b.prefix}/app:{version}\n{b.prefix}/app:latest', username=REGISTRY_USER,
                password_env='DN_TEST_REGISTRY_PASSWORD'),
        section('fetch', 'docker.pull', image=f'{registry}/{b.prefix}/app:{version}',
                username=REGISTRY_USER,
                password_file='${buildout:directory}/registry-password', keep='false'))


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
        b.write(push_config(b, auth_registry, 'app publish'))
        out = b.run('-N', '-vvv', env=env)
        log = out.stdout + out.stderr
        assert log.count('pushing') == 2
        again = b.run('-N', env=env)
        assert 'pushing' not in again.stdout, 'the same image is not pushed again'
        log += again.stdout + again.stderr

        # Pull it back through the registry, with the password from a file.
        for ref in pushed_refs[:2]:
            client.images.remove(ref)
        b.write(push_config(b, auth_registry, 'app publish fetch'))
        out = b.run('-vvv', env=env)
        log += out.stdout + out.stderr
        assert f'pulling {auth_registry}/{b.prefix}/app:one' in out.stdout
        assert run_output(client, f'{auth_registry}/{b.prefix}/app:one', 'cat /version') == b'one\n'

        # A changed image is pushed again.
        b.write(push_config(b, auth_registry, 'app publish', version='two'))
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
    b.write(push_config(b, auth_registry, 'app publish'))
    out = b.fail('-N', env={'DN_TEST_REGISTRY_PASSWORD': ''} and {})
    assert 'publish: option password-env: the environment variable DN_TEST_REGISTRY_PASSWORD is not set' in out
    assert 'Traceback' not in out


def test_removing_a_push_part_removes_the_local_tags_it_made(buildout, client, busybox, registry):
    """The tags made to push go with the part; the source image's own tag stays, and so does
    a tag that names another image by then."""
    b, p = buildout, buildout.prefix
    repository = f'{registry}/{p}/app'
    (b.directory / 'app').mkdir()
    (b.directory / 'app' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo one > /version\n')

    def config(parts: list[str], tags: str) -> str:
        return buildout_config(
            parts, section('app', 'docker.build', name=repository,
                           source='${buildout:directory}/app'),
            section('publish', 'docker.push', image='${app:image}', tags=tags))

    def local_tags() -> set[str]:
        return {tag for image in client.images.list(name=repository) for tag in image.tags
                if tag.startswith(f'{repository}:')}

    b.write(config(['app', 'publish'], f'{repository}:latest\n{repository}:v1'))
    first = b.run('-N')
    assert actions(first.stdout) == ['Installing app.', 'Installing publish.']
    assert first.stdout.count('pushing') == 2
    assert local_tags() == {f'{repository}:latest', f'{repository}:v1'}
    before = ids(client, b)
    for _ in range(2):
        again = b.run('-N')
        assert actions(again.stdout) == [] and 'pushing' not in again.stdout, again.stdout
        assert ids(client, b) == before
    # Another tag: pushed, and the rerun after it does nothing.
    b.write(config(['app', 'publish'], f'{repository}:latest\n{repository}:v1\n{repository}:v2'))
    changed = b.run('-N')
    assert 'Installing publish.' in changed.stdout
    assert local_tags() == {f'{repository}:latest', f'{repository}:v1', f'{repository}:v2'}
    assert actions(b.run('-N').stdout) == []
    # v2 is moved to another image by hand: it is no longer the part's to remove.
    client.images.get(busybox).tag(repository, 'v2')
    try:
        b.write(config(['app'], ''))
        removed = b.run('-N')
        assert actions(removed.stdout) == ['Uninstalling publish.'], removed.stdout
        assert f'removed image {repository}:v1' in removed.stdout + removed.stderr
        assert f'keeping tag {repository}:v2 (it names another image than this part pushed)' \
            in removed.stdout + removed.stderr
        assert local_tags() == {f'{repository}:latest', f'{repository}:v2'}
        assert client.images.get(f'{repository}:v2').id == client.images.get(busybox).id
        # The registry keeps what it received.
        with urllib.request.urlopen(f'http://{registry}/v2/{p}/app/tags/list') as answer:
            assert set(json.load(answer)['tags']) == {'latest', 'v1', 'v2'}
        assert actions(b.run('-N').stdout) == []
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(f'{repository}:v2')
