"""No test secret anywhere it should not be, at any verbosity; files that hold one are 0600.

The buildouts use every option that takes a secret: ``password-env`` and
``password-file`` of docker.push and docker.pull (a registry with a
password), docker.run's ``env-file``, docker.service's ``secrets``; and data
that is secret in a volume (archived when the volume goes) and in a client
key copied out of a container. Then the search: every file of the buildout
directory but the secret files themselves, buildout's output at ``-vvv``,
``docker inspect`` of everything labelled with the buildout, ``docker
history`` of its images. An env-file's values are the container's
environment by design, so ``docker inspect`` shows them in that container's
``Config.Env`` and nowhere else: that one place is left out of the search.
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

import docker.errors
import pytest

from conftest import REGISTRY_PASSWORD, REGISTRY_USER
from faults.harness import tally
from helpers import cfg, write_volume_file

pytestmark = pytest.mark.slow

ENV_SECRET = 'envfile-secret-5b2d8e91c4'
VOLUME_SECRET = 'volume-secret-a7f3b1c9e2'
KEY_SECRET = 'client-key-secret-9e4d2a7b'
SWARM_SECRET = 'swarm-secret-for-search-31c8f5'


def searched(found: list[str], where: str, text: str | bytes, secrets: list[str]) -> None:
    """Record ``where`` as searched; name it in ``found`` when it holds a secret."""
    data = text if isinstance(text, bytes) else text.encode('utf-8', 'surrogateescape')
    for secret in secrets:
        if secret.encode() in data:
            found.append(f'{secret} in {where}')


def labelled_inspections(client, b) -> list[tuple[str, dict]]:
    flt = {'label': b.label}
    found = [(f'container {c["Id"][:12]}', client.api.inspect_container(c['Id']))
             for c in client.api.containers(all=True, filters=flt)]
    found += [(f'image {i["Id"][:19]}', client.api.inspect_image(i['Id']))
              for i in client.api.images(filters=flt)]
    found += [(f'volume {v["Name"]}', client.api.inspect_volume(v['Name']))
              for v in client.api.volumes(filters=flt).get('Volumes') or []]
    found += [(f'network {n["Name"]}', client.api.inspect_network(n['Id']))
              for n in client.api.networks(filters=flt)]
    return found


def search_buildout(client, b, outputs: list[str], secrets: list[str],
                    secret_files: set[Path]) -> tuple[list[str], int]:
    """Search every place of the module docstring: (where a secret was found, places searched)."""
    found: list[str] = []
    places = 0
    for path in sorted(b.directory.rglob('*')):
        if path.is_file() and not path.is_symlink() and path not in secret_files:
            searched(found, str(path.relative_to(b.directory)), path.read_bytes(), secrets)
            places += 1
    for number, output in enumerate(outputs):
        searched(found, f'the output of run {number}', output, secrets)
        places += 1
    for what, details in labelled_inspections(client, b):
        if what.startswith('container'):
            env = details.get('Config', {}).get('Env') or []
            searched(found, f'{what} Config.Env', json.dumps(env),
                     [s for s in secrets if s != ENV_SECRET])
            details = {**details, 'Config': {**details['Config'], 'Env': None}}
        searched(found, what, json.dumps(details), secrets)
        places += 1
        if what.startswith('image'):
            searched(found, f'{what} history', json.dumps(client.api.history(details['Id'])),
                     secrets)
            places += 1
    return found, places


def test_no_secret_leaks_from_registry_env_file_volume_and_copied_key(
        buildout, client, busybox, auth_registry, tmp_path, request):
    b = buildout
    counter = tally(request.config)
    secrets = [REGISTRY_PASSWORD, ENV_SECRET, VOLUME_SECRET, KEY_SECRET]
    env = {'DN_TEST_REGISTRY_PASSWORD': REGISTRY_PASSWORD, 'DOCKER_CONFIG': str(tmp_path / 'dc')}
    (b.directory / 'app').mkdir()
    (b.directory / 'app' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo app > /app\n')
    password_file = b.directory / 'registry-password'
    password_file.write_text(REGISTRY_PASSWORD + '\n')
    password_file.chmod(0o600)
    env_file = b.directory / 'secret.env'
    env_file.write_text(f'# credentials\nDB_PASSWORD={ENV_SECRET}\n')
    env_file.chmod(0o600)
    pushed = f'{auth_registry}/{b.prefix}/app:one'
    layout_key = b.directory / 'layout' / 'keys' / 'client.key'
    layout_key.parent.mkdir(parents=True)
    layout_key.write_text(KEY_SECRET + '\n')
    layout_key.chmod(0o600)

    def config(parts: str) -> str:
        return cfg(f'''
            [buildout]
            parts = {parts}

            [app]
            recipe = dockeroo_nagoya:docker.build
            name = {b.prefix}/app
            source = ${{buildout:directory}}/app

            [publish]
            recipe = dockeroo_nagoya:docker.push
            image = ${{app:image}}
            registry = {auth_registry}
            tags = {b.prefix}/app:one
            username = {REGISTRY_USER}
            password-env = DN_TEST_REGISTRY_PASSWORD

            [fetch]
            recipe = dockeroo_nagoya:docker.pull
            image = {pushed}
            username = {REGISTRY_USER}
            password-file = ${{buildout:directory}}/registry-password
            keep = false

            [data]
            recipe = dockeroo_nagoya:docker.volume
            name = {b.prefix}-data
            keep = false

            [web]
            recipe = dockeroo_nagoya:docker.run
            name = {b.prefix}-web
            image = ${{app:image}}
            init = true
            stop-timeout = 1
            env-file = secret.env
            env = PLAIN=1
            command = httpd -f -p 80
            layout = ${{buildout:directory}}/layout

            [keys]
            recipe = dockeroo_nagoya:docker.copy
            container-from = ${{web:name}}
            paths = /keys/ keys/
            ''')

    outputs = []
    try:
        b.write(config('app publish data web keys'))
        result = b.run('-N', '-vvv', env=env)
        outputs.append(result.stdout + result.stderr)
        write_volume_file(client, f'{b.prefix}-data', 'db/password', VOLUME_SECRET.encode(),
                          mode=0o600)
        client.images.remove(pushed)
        b.write(config('app publish web keys fetch'))  # pulls back; removes the volume (keep = false)
        result = b.run('-vvv', env=env)
        outputs.append(result.stdout + result.stderr)
        assert client.images.get(pushed)

        key = b.directory / 'keys' / 'client.key'
        backups = list((b.directory / 'var' / 'backups').glob(f'{b.prefix}-data-*.tar'))
        assert key.read_text().strip() == KEY_SECRET and len(backups) == 1
        assert VOLUME_SECRET.encode() in backups[0].read_bytes()
        for path in (key, *backups):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, f'{path} is not 0600'
        assert not (tmp_path / 'dc').exists(), 'no docker config was written'

        found, places = search_buildout(client, b, outputs, secrets,
                                        {password_file, env_file, layout_key, key, *backups})
        for reference in (pushed, f'{b.prefix}/app:latest'):
            searched(found, f'history of {reference}',
                     json.dumps(client.api.history(reference)), secrets)
        assert not found, found
        counter.add('secrets searched', places + 2)
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(pushed, force=True)


def test_swarm_secret_reaches_the_task_and_nothing_else(buildout, client, busybox, swarm,
                                                       tmp_path, request):
    b = buildout
    counter = tally(request.config)
    secret_file = tmp_path / 'token'
    secret_file.write_text(SWARM_SECRET)
    secret_file.chmod(0o600)
    name = f'{b.prefix}-svc'
    b.write(cfg(f'''
        [buildout]
        parts = svc

        [svc]
        recipe = dockeroo_nagoya:docker.service
        name = {name}
        image = {busybox}
        command = sleep 3600
        replicas = 1
        secrets = token = {secret_file}
        wait-timeout = 60
        stop-timeout = 1
        '''))
    try:
        result = b.run('-N', '-vvv')
        tasks = client.services.get(name).tasks(filters={'desired-state': 'running'})
        container = client.containers.get(tasks[0]['Status']['ContainerStatus']['ContainerID'])
        assert container.exec_run('cat /run/secrets/token').output.decode() == SWARM_SECRET
        found, places = search_buildout(client, b, [result.stdout + result.stderr],
                                        [SWARM_SECRET], set())
        searched(found, 'the service', json.dumps(client.api.inspect_service(name)),
                 [SWARM_SECRET])
        searched(found, 'the task container', json.dumps(client.api.inspect_container(
            container.id)), [SWARM_SECRET])
        for secret in client.api.secrets(filters={'label': b.label}):
            searched(found, f'secret {secret["Spec"]["Name"]}', json.dumps(secret),
                     [SWARM_SECRET])
            places += 1
        assert not found, found
        counter.add('secrets searched', places + 2)
        b.write('[buildout]\nparts =\n')
        b.run('-N')
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.services.get(name).remove()


def test_secret_files_keep_their_mode_and_are_never_copied_in_the_clear(buildout, client):
    """secrets.write_private writes 0600 and atomically (the helper recipes use for secrets)."""
    from dockeroo_nagoya.mechanisms import secrets
    target = buildout.directory / 'token'
    secrets.write_private(str(target), b'x')
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert [p.name for p in buildout.directory.iterdir()] == ['token']
