"""docker.service on a single-node Swarm made by the test (and left again)."""
from __future__ import annotations

import contextlib

import docker.errors
import pytest

from conftest import shared_lock

pytestmark = pytest.mark.slow

SECRET = 'swarm-secret-d8e7c6b5a4'


def service_cfg(b, image: str, replicas: int, secret_file) -> str:
    return f'''
        [buildout]
        parts = web

        [web]
        recipe = dockeroo_nagoya:docker.service
        name = {b.prefix}-web
        image = {image}
        command = sleep 3600
        replicas = {replicas}
        env = ROLE=web
        update-parallelism = 2
        update-delay = 100ms
        secrets = token = {secret_file}
        wait-timeout = 60
        stop-timeout = 1
        '''


def running_tasks(client, name: str) -> dict[str, str]:
    service = client.services.get(name)
    return {t['ID']: t['Status']['ContainerStatus']['ContainerID']
            for t in service.tasks(filters={'desired-state': 'running'})
            if t['Status']['State'] == 'running'}


def test_replicas_scale_roll_and_go(buildout, client, busybox, swarm, tmp_path):
    b = buildout
    secret_file = tmp_path / 'token'
    secret_file.write_text(SECRET)
    b.write(service_cfg(b, busybox, 3, secret_file))
    out = b.run('-N').stdout
    name = f'{b.prefix}-web'
    try:
        three = running_tasks(client, name)
        assert len(three) == 3
        container = client.containers.get(next(iter(three.values())))
        assert container.exec_run('cat /run/secrets/token').output.decode() == SECRET

        # Scaling up leaves the running tasks alone; scaling down keeps the rest running.
        b.write(service_cfg(b, busybox, 5, secret_file))
        assert 'scaling service' in b.run('-N').stdout
        five = running_tasks(client, name)
        assert len(five) == 5 and set(three.items()) <= set(five.items())
        b.write(service_cfg(b, busybox, 2, secret_file))
        b.run('-N')
        two = running_tasks(client, name)
        assert len(two) == 2 and set(two.items()) <= set(five.items())
        b.run('-N')
        assert running_tasks(client, name) == two, 'a no-op rerun touches nothing'

        # A new image rolls the update onto every task.
        (tmp_path / 'v2').mkdir()
        (tmp_path / 'v2' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo 2 > /version\n')
        client.images.build(path=str(tmp_path / 'v2'), tag=f'{b.prefix}-v2:latest', rm=True)
        b.write(service_cfg(b, f'{b.prefix}-v2:latest', 2, secret_file))
        out += b.run('-N').stdout
        rolled = running_tasks(client, name)
        assert len(rolled) == 2 and not set(rolled) & set(two)
        for container_id in rolled.values():
            assert client.containers.get(container_id).exec_run('cat /version').output == b'2\n'

        # The secret is in the Swarm only.
        assert SECRET not in out
        assert SECRET not in (b.directory / '.installed.cfg').read_text()
        assert SECRET not in str(client.services.get(name).attrs)

        b.write(service_cfg(b, busybox, 2, secret_file).replace('parts = web', 'parts ='))
        b.run('-N')
        assert not client.services.list(filters={'name': name})
        assert not [s for s in client.secrets.list() if s.name.startswith(name)]
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.services.get(name).remove()
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(f'{b.prefix}-v2:latest', force=True)


def test_service_without_a_swarm_is_one_clear_line(buildout, busybox, client, tmp_path):
    b = buildout
    (tmp_path / 'token').write_text('x')
    b.write(service_cfg(b, busybox, 1, tmp_path / 'token'))
    with shared_lock('swarm'):  # no other test process makes a Swarm meanwhile
        if client.info()['Swarm']['LocalNodeState'] == 'active':
            pytest.skip('the engine is in a Swarm already')
        out = b.fail('-N')
    assert 'web: the engine at' in out and 'is not a Swarm manager' in out
    assert 'Traceback' not in out
