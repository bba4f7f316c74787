"""Engine connection options and one run per buildout directory."""
from __future__ import annotations

import subprocess
import time
import uuid

import docker
import pytest

from conftest import BUILDOUT
from helpers import buildout_config, context_build_part, volume_part


def test_machine_name_names_a_docker_context(buildout, client, tmp_path, monkeypatch):
    b = buildout
    context = f'dnt-{uuid.uuid4().hex[:8]}'
    # The SDK finds contexts beside the docker config; use a config of the test's own.
    (tmp_path / 'docker-config').mkdir()
    (tmp_path / 'docker-config' / 'config.json').write_text('{}')
    monkeypatch.setenv('DOCKER_CONFIG', str(tmp_path / 'docker-config'))
    docker.ContextAPI.create_context(context, host='unix:///var/run/docker.sock')
    try:
        b.write(buildout_config(['data'], volume_part(b, machine_name=context)))
        b.run('-N', env={'DOCKER_CONFIG': str(tmp_path / 'docker-config')})
        assert client.volumes.get(f'{b.prefix}-data')
        installed = (b.directory / '.installed.cfg').read_text()
        assert f'machine-name = {context}' in installed
    finally:
        docker.ContextAPI.remove_context(context)


def test_unknown_context_is_one_clear_line(buildout):
    b = buildout
    b.write('''
        [buildout]
        parts = data

        [data]
        recipe = dockeroo_nagoya:docker.volume
        machine-name = no-such-context
        ''')
    out = b.fail('-N')
    assert "data: option machine-name: no Docker context named 'no-such-context'" in out
    assert 'Traceback' not in out


def test_dockeroo_engine_url_is_accepted(buildout, client):
    b = buildout
    b.write(buildout_config(['data'], volume_part(b, engine_url='unix:///var/run/docker.sock')))
    b.run('-N')
    assert client.volumes.get(f'{b.prefix}-data')


@pytest.mark.slow
def test_second_run_in_the_same_directory_stops_with_a_clear_message(buildout, busybox):
    b = buildout
    (b.directory / 'slow').mkdir()
    (b.directory / 'slow' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN sleep 4\n')
    b.write(buildout_config(['slow'], context_build_part(b, 'slow', no_cache='true')))
    first = subprocess.Popen([str(BUILDOUT), '-N'], cwd=b.directory, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    lock = b.directory / '.dockeroo-nagoya.lock'
    try:
        deadline = time.monotonic() + 30
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        out = b.fail('-N')
        assert f'another buildout run (pid {first.pid})' in out and 'Traceback' not in out
    finally:
        assert first.wait(120) == 0, first.stdout.read()
    b.run('-N')
