"""``docker.control`` over parts on two engines: each container acted on where it runs.

A sleeper on the buildout's own engine and a replicated ``docker.run`` part
whose ``docker-host`` is a second engine (a builder machine's), one control
script over both, its ``parts`` partly from a ``${...}`` reference naming
several parts. ``status`` says each container's engine; ``stop`` and
``start`` act on both engines; with the second engine down, ``status`` still
lists the first one's container and says in one line which engine does not
answer and whose containers it holds, and ``start`` or ``stop`` fail in one
line before touching anything.
"""
from __future__ import annotations

import json
import os
import subprocess

import docker
import pytest
from helpers import (buildout_config, container_state, section, sleeping_part, status_table,
                     volume_digest, write_volume_file)

pytestmark = pytest.mark.slow


def config(b, busybox: str, remote_host: str, builders: str = 'remote',
           extra: str = '') -> str:
    return buildout_config(
        ['here', '${builders:parts}', 'ctl'],
        section('builders', '', parts=builders),
        sleeping_part(b, 'here', busybox, volumes=f'{b.prefix}-data:/data'),
        sleeping_part(b, 'remote', busybox, docker_host=remote_host, replicas='2',
                      volumes=f'{b.prefix}-data:/data', depends='${here:name}'),
        section('ctl', 'docker.control', parts='here ${builders:parts}', script_name='ctl')
        + (extra + '\n' if extra else ''))


def ctl(b, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(b.directory / 'bin' / 'ctl'), *args], check=False,
                            capture_output=True, text=True, timeout=180)
    assert not check or result.returncode == 0, result.stdout + result.stderr
    return result


def running(client: docker.DockerClient, name: str) -> bool:
    return bool(container_state(client, name)['Running'])


def test_status_stop_and_start_over_two_engines(buildout, busybox, client, remote):
    b = buildout
    here, one, two = f'{b.prefix}-here', f'{b.prefix}-remote-1', f'{b.prefix}-remote-2'
    b.write(config(b, busybox, remote.host))
    b.run('-N')
    assert running(client, here) and running(remote.client, one) and running(remote.client, two)
    assert not client.containers.list(all=True, filters={'name': f'{b.prefix}-remote'})

    result = ctl(b, 'status')
    rows = status_table(result, engines=True)
    assert set(rows) == {here, one, two}, result.stdout
    assert rows[here][:2] == ['default', 'running']
    assert rows[one][:2] == rows[two][:2] == [remote.host, 'running']
    description = json.loads((b.directory / 'parts' / 'ctl' / 'control.json').read_text())
    assert description['levels'] == [['here'], [one, two]]

    # stop: the remote replicas (dependents) first, each on its engine; start: here first.
    lines = ctl(b, 'stop').stdout.splitlines()
    assert lines.index(f'stopped {here}') > max(lines.index(f'stopped {one}'),
                                                lines.index(f'stopped {two}')), lines
    assert not any(running(c, n) for c, n in ((client, here), (remote.client, one),
                                              (remote.client, two)))
    assert ctl(b, 'status', check=False).returncode == 3
    lines = ctl(b, 'start').stdout.splitlines()
    assert lines[0] == f'started {here}', lines
    assert running(client, here) and running(remote.client, one) and running(remote.client, two)
    assert ctl(b, 'status').returncode == 0

    # The second engine down: the local container is still listed, and one line says which
    # engine does not answer and which containers it holds.
    remote.stop()
    result = ctl(b, 'status', check=False)
    assert result.returncode == 3, result.stdout + result.stderr
    rows = status_table(result, engines=True)
    assert list(rows) == [here] and rows[here][:2] == ['default', 'running'], result.stdout
    problems = result.stderr.splitlines()
    assert len(problems) == 1, result.stderr
    assert remote.host in problems[0] and f'{one}, {two}' in problems[0], problems

    # stop and start need every engine: each fails in one line and touches nothing here.
    for command, was_running in (('stop', True), ('start', False)):
        if not was_running:
            client.containers.get(here).stop(timeout=1)
        result = ctl(b, command, check=False)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert result.stdout == '', (command, result.stdout)
        assert len(result.stderr.splitlines()) == 1 and remote.host in result.stderr, \
            (command, result.stderr)
        assert running(client, here) is was_running, command

    remote.start()   # the daemon comes back with its containers stopped
    ctl(b, 'start')
    assert running(client, here) and running(remote.client, one) and running(remote.client, two)
    assert ctl(b, 'status').returncode == 0


def test_a_part_added_later_shows_with_its_engine_and_order(buildout, busybox, client, remote):
    b = buildout
    more = '\n' + sleeping_part(b, 'more', busybox, docker_host=remote.host, replicas='2',
                                 depends='${remote:names}')
    b.write(config(b, busybox, remote.host))
    b.run('-N')
    assert len(status_table(ctl(b, 'status'), engines=True)) == 3

    # One more builder part in the list one ${builders:parts} reference brings.
    b.write(config(b, busybox, remote.host, builders='remote more') + more)
    b.run('-N')
    rows = status_table(ctl(b, 'status'), engines=True)
    assert set(rows) == {f'{b.prefix}-here', f'{b.prefix}-remote-1', f'{b.prefix}-remote-2',
                         f'{b.prefix}-more-1', f'{b.prefix}-more-2'}, rows
    assert rows[f'{b.prefix}-more-1'][:2] == [remote.host, 'running']
    assert rows[f'{b.prefix}-more-2'][:2] == [remote.host, 'running']
    assert rows[f'{b.prefix}-here'][0] == 'default'
    description = json.loads((b.directory / 'parts' / 'ctl' / 'control.json').read_text())
    assert description['levels'] == [['here'], [f'{b.prefix}-remote-1', f'{b.prefix}-remote-2'],
                                      [f'{b.prefix}-more-1', f'{b.prefix}-more-2']]
    lines = ctl(b, 'stop').stdout.splitlines()   # the new builders first, on their engine
    assert max(lines.index(f'stopped {b.prefix}-more-{i}') for i in (1, 2)) < \
        min(lines.index(f'stopped {b.prefix}-remote-{i}') for i in (1, 2)), lines
    assert not running(remote.client, f'{b.prefix}-more-1')


def test_backup_and_restore_of_one_volume_name_on_two_engines(buildout, busybox, client,
                                                              remote, tmp_path):
    """``{prefix}-data`` on each engine is two volumes: both are backed up, and each goes
    back to its own engine."""
    b = buildout
    volume = f'{b.prefix}-data'
    b.write(config(b, busybox, remote.host))
    b.run('-N')
    write_volume_file(client, volume, 'rows', b'here\n')
    write_volume_file(remote.client, volume, 'rows', b'remote\n')
    before = volume_digest(client, volume), volume_digest(remote.client, volume)
    assert before[0] != before[1]

    out = ctl(b, 'backup', str(tmp_path / 'backup')).stdout
    assert f'backed up volume {volume} (' in out and \
        f'backed up volume {volume} (on {remote.host})' in out, out
    manifest = json.loads((tmp_path / 'backup' / 'manifest.json').read_text())
    assert sorted(e['archive'] for e in manifest['volumes']) == [f'{volume}.2.tar',
                                                                 f'{volume}.tar']
    # The engine as engine options say it (engine_options.record), as a part records it.
    assert [e.get('engine', {}).get('docker-host') for e in manifest['volumes']] == \
        [None, remote.host]

    ctl(b, 'purge', '--yes')
    assert not client.volumes.list(filters={'name': volume})
    assert not remote.client.volumes.list(filters={'name': volume})
    assert not remote.client.containers.list(all=True, filters={'label': b.label})
    ctl(b, 'restore', str(tmp_path / 'backup'))
    assert (volume_digest(client, volume), volume_digest(remote.client, volume)) == before


def test_members_on_one_daemon_in_other_words_are_one_engine(buildout, busybox, client,
                                                             tmp_path):
    """Three parts on the buildout's own daemon: one leaves the engine to ``[buildout]``,
    one spells its socket out, one has a timeout of its own. They are one engine
    (:meth:`EngineConfig.key`): ENGINE ``default`` for each, and the volume they share
    is backed up once, with all three writers paused for it, not once per spelling."""
    b = buildout
    volume = f'{b.prefix}-data'
    socket = os.environ.get('DOCKER_HOST') or 'unix:///var/run/docker.sock'

    def member(part: str, **engine: str) -> str:
        return section(part, 'docker.run', name=f'{b.prefix}-{part}', image=busybox,
                       init='true', stop_timeout='1', volumes=f'{volume}:/data',
                       command='sleep 3600', **engine)

    b.write(buildout_config(
        ['plain', 'spelt', 'patient', 'ctl'],
        member('plain'), member('spelt', docker_host=socket), member('patient', timeout='30'),
        section('ctl', 'docker.control', parts='plain spelt patient', script_name='ctl')))
    b.run('-N')
    write_volume_file(client, volume, 'rows', b'one\n')
    before = volume_digest(client, volume)

    rows = status_table(ctl(b, 'status'), engines=True)
    assert {name: cells[:2] for name, cells in rows.items()} == {
        f'{b.prefix}-{part}': ['default', 'running'] for part in ('plain', 'spelt', 'patient')}

    out = ctl(b, 'backup', str(tmp_path / 'backup')).stdout
    assert out.count('backed up volume') == 1 and f'backed up volume {volume} (' in out, out
    assert out.count('paused ') == 3 and out.count('resumed ') == 3, out
    manifest = json.loads((tmp_path / 'backup' / 'manifest.json').read_text())
    assert [e['archive'] for e in manifest['volumes']] == [f'{volume}.tar'], manifest
    assert 'engine' not in manifest['volumes'][0], manifest   # the system's own engine
    assert sorted(p.name for p in (tmp_path / 'backup').iterdir()) == [f'{volume}.tar',
                                                                       'manifest.json']

    lines = ctl(b, 'stop').stdout.splitlines()
    assert sorted(lines) == sorted(f'stopped {b.prefix}-{part}'
                                   for part in ('plain', 'spelt', 'patient')), lines
    ctl(b, 'purge', '--yes')
    assert not client.volumes.list(filters={'name': volume})
    out = ctl(b, 'restore', str(tmp_path / 'backup')).stdout
    assert out.count('restored volume') == 1, out
    assert volume_digest(client, volume) == before
