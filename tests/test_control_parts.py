"""``docker.control``: docker.system's control script for containers of separate parts.

Three ``docker.run`` parts (a database with a volume, a replicated web tier
after it, a job) and one ``docker.control`` part over them: the script
acts in the parts' own dependency order and backs up and restores their
volumes as a system's script does (one implementation).
"""
from __future__ import annotations

import json
import subprocess

from helpers import (buildout_config, container_part, section, sleeping_part, volume_digest,
                     write_volume_file)


def config(b, busybox: str, extra: str = '') -> str:
    return buildout_config(
        ['web', 'db', 'ctl'],
        container_part(b, 'db', busybox, init='true', stop_timeout='1',
                       volumes=f'{b.prefix}-data:/data',
                       command="sh -c 'echo db up; exec sleep 3600'"),
        sleeping_part(b, 'web', busybox, replicas='2', depends='${db:name}'),
        section('ctl', 'docker.control', parts='web db', script_name='labctl')
        + (extra + '\n' if extra else ''))


def ctl(b, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(b.directory / 'bin' / 'labctl'), *args], capture_output=True,
                            text=True, timeout=120)
    assert not check or result.returncode == 0, result.stdout + result.stderr
    return result


def test_control_of_separate_parts_in_their_dependency_order(buildout, busybox, client, tmp_path):
    b = buildout
    b.write(config(b, busybox))
    b.run('-N')
    db, web1, web2 = f'{b.prefix}-db', f'{b.prefix}-web-1', f'{b.prefix}-web-2'

    status = ctl(b, 'status').stdout
    assert all(name in status for name in (db, web1, web2)), status
    description = json.loads((b.directory / 'parts' / 'ctl' / 'control.json').read_text())
    assert description['levels'] == [['db'], [web1, web2]]
    assert description['volumes'] == [f'{b.prefix}-data']

    # stop: dependents first; start: the database first.
    lines = ctl(b, 'stop').stdout.splitlines()
    assert lines.index(f'stopped {db}') > max(lines.index(f'stopped {web1}'),
                                              lines.index(f'stopped {web2}'))
    assert ctl(b, 'status', check=False).returncode == 3
    lines = ctl(b, 'start').stdout.splitlines()
    assert lines[0] == f'started {db}', lines
    assert ctl(b, 'status').returncode == 0

    # backup and restore of the volumes the parts mount, into a removed installation.
    write_volume_file(client, f'{b.prefix}-data', 'rows', b'42\n')
    before = volume_digest(client, f'{b.prefix}-data')
    ctl(b, 'backup', str(tmp_path / 'backup'))
    ctl(b, 'purge', '--yes')
    assert not b.owned('containers') and not client.volumes.list(filters={'name': f'{b.prefix}-data'})
    ctl(b, 'restore', str(tmp_path / 'backup'))
    assert volume_digest(client, f'{b.prefix}-data') == before
    out = b.run('-N')   # the volume part adopts the restored volume (its labels came back)
    assert 'already exists' not in out.stdout + out.stderr
    assert ctl(b, 'status').returncode == 0


def test_control_names_only_docker_run_parts(buildout, busybox):
    b = buildout
    b.write(config(b, busybox).replace('parts = web db\n', 'parts = web db nothing\n')
            + '\n' + section('nothing', 'docker.network'))
    out = b.fail('-N')
    assert 'ctl: option parts' in out and 'docker.run' in out, out
