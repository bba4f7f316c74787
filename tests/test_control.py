"""``bin/<part>`` of a ``docker.system``: commands a shell script can rely on.

The system: ``db`` (a service with a healthcheck that writes to the data
volume), ``load`` (a job that fetches from db into the logs volume) and
``app`` (an image this buildout builds; it reads the data volume and comes
up after the job). Every command runs the generated script as a user would,
with no terminal.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from helpers import run_output, control, container_state, status_table, volume_digest, write_volume_file


def config(b, busybox: str) -> str:
    return f'''
        [buildout]
        parts = app-image sys

        [app-image]
        recipe = dockeroo_nagoya:docker.build
        name = {b.prefix}/app
        source = ${{buildout:directory}}/app
        build-args = BASE={busybox}

        [sys]
        recipe = dockeroo_nagoya:docker.system
        containers = db load app

        [db]
        name = {b.prefix}-db
        image = {busybox}
        init = true
        stop-timeout = 1
        volumes = {b.prefix}-data:/data
        command = sh -c '[ -e /data/db ] || echo rows > /data/db; echo db ready; exec httpd -f -p 80 -h /data'
        healthcheck = test -e /data/db
        healthcheck-interval = 100ms
        wait-for =
            tcp:80
            healthy

        [load]
        name = {b.prefix}-load
        image = {busybox}
        job = true
        links = db
        volumes = {b.prefix}-logs:/logs
        command = sh -c 'wget -q -O /logs/loaded http://db/db'

        [app]
        name = {b.prefix}-app
        image = ${{app-image:image}}
        init = true
        stop-timeout = 1
        links = db
        depends = load
        volumes = {b.prefix}-data:/www:ro
        command = httpd -f -p 8080 -h /www
        wait-for = http://:8080/db 200 rows
        '''


@pytest.fixture
def system(buildout, busybox):
    b = buildout
    (b.directory / 'app').mkdir()
    (b.directory / 'app' / 'Dockerfile').write_text('ARG BASE\nFROM $BASE\nCOPY app.txt /app.txt\n')
    (b.directory / 'app' / 'app.txt').write_text('the app\n')
    b.write(config(b, busybox))
    b.run('-N')
    return b


def one_error(result: subprocess.CompletedProcess[str], code: int, *expected: str) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('sys: error: '), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.mark.slow
def test_status_stop_start_restart_in_dependency_order(system, client):
    b, p = system, system.prefix
    result = control(b, 'status')
    assert result.returncode == 0, result.stdout + result.stderr
    rows = status_table(result)
    assert rows[f'{p}-db'][:3] == ['running', 'healthy', 'dn-test/busybox:latest']
    assert rows[f'{p}-load'][:2] == ['exited (0)', '-']        # a job that ran is fine
    assert rows[f'{p}-app'][:3] == ['running', '-', f'{p}/app:latest']
    assert rows[f'{p}-app'][3].endswith('s')                    # uptime
    ids = {name: client.api.inspect_container(name)['Id'] for name in rows}

    result = control(b, 'stop')
    assert result.returncode == 0, result.stderr
    assert result.stdout.index(f'stopped {p}-app') < result.stdout.index(f'stopped {p}-db')
    assert not container_state(client, f'{p}-db')['Running']
    result = control(b, 'status')
    assert result.returncode == 3
    assert status_table(result)[f'{p}-db'][0].startswith('exited')

    result = control(b, 'start')
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index(f'started {p}-db') < out.index('healthy passed') < \
        out.index(f'started {p}-app') < out.index('200 rows passed'), out
    assert f'started {p}-load' not in out                      # jobs are not run again
    assert control(b, 'status').returncode == 0

    result = control(b, 'restart')
    assert result.returncode == 0, result.stderr
    assert result.stdout.index(f'stopped {p}-app') < result.stdout.index(f'started {p}-db')
    assert {name: client.api.inspect_container(name)['Id'] for name in rows} == ids
    assert container_state(client, f'{p}-app')['Running']

    client.api.pause(f'{p}-app')
    assert control(b, 'status').returncode == 3
    client.api.unpause(f'{p}-app')


@pytest.mark.slow
def test_exec_logs_help_and_usage_errors(system, client):
    b, p = system, system.prefix
    result = control(b, 'exec', 'db', 'sh', '-c', 'echo to-out; echo to-err >&2; exit 5')
    assert (result.returncode, result.stdout, result.stderr) == (5, 'to-out\n', 'to-err\n')
    result = control(b, 'exec', f'{p}-app', 'cat', '/app.txt')
    assert (result.returncode, result.stdout) == (0, 'the app\n')

    result = control(b, 'logs', 'db')
    assert result.returncode == 0 and result.stdout == 'db ready\n', result
    result = control(b, 'logs', '--tail', '1')
    assert f'{p}-db | db ready\n' in result.stdout

    for command in ('start', 'stop', 'restart', 'status', 'logs', 'exec', 'backup', 'restore',
                    'remove', 'purge'):
        result = control(b, command, '--help')
        assert result.returncode == 0 and result.stdout.startswith(f'usage: sys {command}'), command
    assert control(b, '--help').returncode == 0

    one_error(control(b, 'exec', 'nobody', 'true'), 2, 'no member nobody', f'{p}-db')
    one_error(control(b, 'logs', 'nobody'), 2, 'no member nobody')
    assert control(b, 'frobnicate').returncode == 2
    assert control(b).returncode == 2
    assert control(b, 'logs', '--tail', 'many').returncode == 2
    one_error(control(b, 'exec', 'load', 'true'), 1, f'container {p}-load is not running')


@pytest.mark.slow
def test_backup_wipe_restore_gives_the_same_data_and_services_back(system, client, busybox,
                                                                   tmp_path):
    b, p = system, system.prefix
    data, logs = f'{p}-data', f'{p}-logs'
    write_volume_file(client, data, 'owned-by-1234.bin', os.urandom(200_000), uid=1234, mode=0o600)
    before = {data: volume_digest(client, data), logs: volume_digest(client, logs)}

    target = tmp_path / 'backup'
    result = control(b, 'backup', str(target))
    assert result.returncode == 0, result.stderr
    # db writes to the data volume: it is paused for the copy; app only reads it.
    assert f'paused {p}-db while archiving volume {data}' in result.stdout
    assert f'resumed {p}-db' in result.stdout
    assert f'paused {p}-app' not in result.stdout
    manifest = json.loads((target / 'manifest.json').read_text())
    assert [entry['volume'] for entry in manifest['volumes']] == [data, logs]
    for entry in manifest['volumes']:
        archive = target / entry['archive']
        assert entry['size'] == archive.stat().st_size
        assert len(entry['sha256']) == 64 and len(entry['content']) == 64 and entry['time']
        assert archive.stat().st_mode & 0o777 == 0o600
    assert container_state(client, f'{p}-db')['Running'] and not container_state(client, f'{p}-db')['Paused']

    # Over data that is there, a restore refuses, and says how to insist.
    one_error(control(b, 'restore', str(target)), 1, f'volume {data}, {logs} is not empty',
              '--force')

    run_output(client, busybox, ['find', '/d', '/l', '-mindepth', '1', '-maxdepth', '1',
                                    '-exec', 'rm', '-rf', '{}', '+'],
                          volumes={data: {'bind': '/d', 'mode': 'rw'},
                                   logs: {'bind': '/l', 'mode': 'rw'}})
    assert volume_digest(client, data) != before[data]

    # A damaged archive is found before anything is touched.
    damaged = tmp_path / 'damaged'
    shutil.copytree(target, damaged)
    archive = damaged / f'{data}.tar'
    blob = bytearray(archive.read_bytes())
    blob[2000] ^= 0xFF
    archive.write_bytes(bytes(blob))
    one_error(control(b, 'restore', str(damaged)), 1, 'does not match its checksum',
              'nothing was restored')
    assert container_state(client, f'{p}-db')['Running']

    result = control(b, 'restore', str(target))
    assert result.returncode == 0, result.stdout + result.stderr
    assert {data: volume_digest(client, data), logs: volume_digest(client, logs)} == before
    out = result.stdout
    assert out.index(f'stopped {p}-app') < out.index(f'stopped {p}-db') < \
        out.index(f'restored volume {data}') < out.index(f'started {p}-db') < \
        out.index(f'started {p}-app'), out
    assert control(b, 'status').returncode == 0

    # --force writes over what is there; the default is the newest backup of the part.
    result = control(b, 'backup')
    assert result.returncode == 0, result.stderr
    assert (b.directory / 'var' / 'backups' / 'sys').is_dir()
    result = control(b, 'restore', '--force')
    assert result.returncode == 0, result.stderr
    assert {data: volume_digest(client, data), logs: volume_digest(client, logs)} == before


@pytest.mark.slow
def test_remove_keeps_volumes_and_purge_asks_first(system, client, busybox):
    b, p = system, system.prefix
    one_error(control(b, 'purge'), 2, 'with no terminal to ask on, give --yes', f'{p}-data')
    assert container_state(client, f'{p}-db')['Running']

    result = control(b, 'remove')
    assert result.returncode == 0, result.stderr
    assert not b.owned('containers')
    assert client.volumes.get(f'{p}-data')
    result = b.run('-N')
    out = result.stdout + result.stderr
    assert f'creating {p}-db again: it was removed' in out, out
    assert control(b, 'status').returncode == 0

    result = control(b, 'purge', '--yes')
    assert result.returncode == 0, result.stderr
    assert not b.owned('containers')
    assert not client.volumes.list(filters={'name': p})
    assert not client.images.list(name=f'{p}/app')
    assert client.images.list(name=busybox.split(':')[0])     # not built here: kept
    result = control(b, 'status')
    assert result.returncode == 3 and 'missing' in result.stdout
