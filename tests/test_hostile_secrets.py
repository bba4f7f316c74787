"""Secrets a configuration gives by reference stay out of what the buildout makes and says.

An image committed or persisted from a container with an ``env-file`` keeps
none of its values; a ``source`` git ref cannot smuggle options to git; a
source URL never carries credentials (they come by reference:
``source-username`` with ``source-password-env``, or ``source-netrc``), and
those are never printed nor recorded; a failed job's printed log shows
``***`` for the values of its secrets.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from helpers import assert_one_error, git, plan

pytestmark = pytest.mark.slow

PASSWORD = 'hunter2-dn-secret-7f3a'


def commit_config(b, busybox: str, env_file) -> str:
    return f'''
        [buildout]
        parts = app saved persisted

        [app]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-app
        image = {busybox}
        command = sleep 3600
        init = true
        stop-timeout = 1
        env = MODE=one
        env-file = {env_file}
        volumes = {b.prefix}-data:/data
        script = echo "made in $MODE" > /state.txt && echo kept > /data/f

        [saved]
        recipe = dockeroo_nagoya:docker.commit
        container = ${{app:name}}
        name = {b.prefix}/saved

        [persisted]
        recipe = dockeroo_nagoya:docker.persist
        container = ${{app:name}}
        name = {b.prefix}/persisted
        '''


def docker_history(image: str) -> str:
    return subprocess.run(['docker', 'history', '--no-trunc', image], check=True,
                          capture_output=True, text=True).stdout


def test_commit_and_persist_leave_the_env_file_values_out_of_the_image(buildout, busybox, client,
                                                                        tmp_path):
    b = buildout
    env_file = tmp_path / 'app.env'
    env_file.write_text(f'DB_PASSWORD={PASSWORD}\nDB_USER=app\n')
    b.write(commit_config(b, busybox, env_file))
    b.run('-N')
    container = client.api.inspect_container(f'{b.prefix}-app')
    assert f'DB_PASSWORD={PASSWORD}' in container['Config']['Env']  # the container has it
    for image in (f'{b.prefix}/saved:latest', f'{b.prefix}/persisted:latest'):
        attrs = client.api.inspect_image(image)
        env = attrs['Config']['Env']
        # The env-file's variables are reset; the run's own env and the image's stay.
        assert 'DB_PASSWORD=' in env and 'DB_USER=' in env and 'MODE=one' in env, env
        assert PASSWORD not in json.dumps(attrs), image
        assert PASSWORD not in docker_history(image), image
        assert client.containers.run(image, 'cat /state.txt', remove=True) == b'made in one\n'
    assert client.containers.run(f'{b.prefix}/persisted:latest', 'cat /data/f',
                                 remove=True) == b'kept\n'
    # A rerun commits nothing again.
    out = b.run('-N')
    assert 'committing' not in out.stdout + out.stderr
