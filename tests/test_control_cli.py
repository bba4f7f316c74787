"""The control script as a compose user types it: options anywhere, logs by time, ports."""
from __future__ import annotations

import queue
import subprocess
import threading
import time

import pytest

from conftest import free_port
from helpers import buildout_config, control, member_part, system_part, write_volume_file

pytestmark = pytest.mark.slow


def cli_cfg(b, busybox: str, port: int) -> str:
    # a and b write one line each in turn, so their logs interleave by time.
    return buildout_config(
        ['sys'], system_part(['a', 'b']),
        member_part(b, 'a', busybox, init='true', stop_timeout='1',
                    volumes=f'{b.prefix}-data:/data', ports=f'127.0.0.1:{port}:80',
                    command="sh -c 'echo a1; sleep 0.6; echo a2; sleep 0.6; echo a3; "
                            "exec httpd -f -p 80 -h /data'"),
        member_part(b, 'b', busybox, init='true', stop_timeout='1',
                    command="sh -c 'sleep 0.3; echo b1; sleep 0.6; echo b2; exec sleep 3600'"))


@pytest.fixture
def system(buildout, busybox, client):
    b = buildout
    port = free_port()
    b.write(cli_cfg(b, busybox, port))
    b.run('-N')
    # Every line written (a's last after 1.2 s, b's after 0.9 s): waited for, not slept.
    deadline = time.monotonic() + 60
    while not (b'a3' in client.containers.get(f'{b.prefix}-a').logs()
               and b'b2' in client.containers.get(f'{b.prefix}-b').logs()):
        assert time.monotonic() < deadline, 'the members did not write their lines'
        time.sleep(0.1)
    b.port = port
    return b


def test_options_after_the_command_logs_by_time_and_status_ports(system, client):
    b = system
    p = b.prefix
    out = control(b, 'logs')
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f'{p}-a | a1', f'{p}-b | b1', f'{p}-a | a2',
                                       f'{p}-b | b2', f'{p}-a | a3'], out.stdout
    assert control(b, 'logs', '--tail', '1').stdout.splitlines() == [f'{p}-b | b2', f'{p}-a | a3']
    assert control(b, 'logs', '--since', '1h').stdout.count('\n') == 5
    assert control(b, 'logs', '--since', '2099-01-01T00:00:00').stdout == ''
    usage = control(b, 'logs', '--since', 'yesterday')
    assert usage.returncode == 2 and 'a duration such as 10m' in usage.stderr

    # --follow with no NAME: every member, by time, until interrupted.
    # Its lines are read as they come: the late line is written once the first two are out
    # (the follow is on), and the follow is ended once a third line came.
    follow = subprocess.Popen([str(b.directory / 'bin' / 'sys'), 'logs', '--follow', '-n', '1'],
                              stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line.rstrip('\n'))
                                              for line in follow.stdout or ()], daemon=True)
    reader.start()
    followed = []
    try:
        followed += [lines.get(timeout=60) for _ in range(2)]
        client.containers.get(f'{p}-b').exec_run('sh -c "echo late > /proc/1/fd/1"')
        followed.append(lines.get(timeout=60))
    finally:
        follow.terminate()
        follow.wait(10)
        reader.join(10)
    while not lines.empty():
        followed.append(lines.get())
    assert followed == [f'{p}-b | b2', f'{p}-a | a3', f'{p}-b | late'], followed

    status = control(b, 'status')
    assert status.returncode == 0
    header, *rows = status.stdout.splitlines()
    assert header.split()[-1] == 'PORTS'
    assert any(row.startswith(f'{p}-a') and row.endswith(f'127.0.0.1:{b.port}->80/tcp')
               for row in rows), status.stdout

    # -q after the command, as before it.
    for args in (('stop', '-q'), ('-q', 'start'), ('start', '--quiet')):
        result = control(b, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout == '', (args, result.stdout)
    assert control(b, 'status').returncode == 0


def test_backup_says_one_volume_and_restore_force_leaves_extra_files(system, client):
    b = system
    data = f'{b.prefix}-data'
    write_volume_file(client, data, 'kept.txt', b'in the backup\n')
    backup = control(b, 'backup', str(b.directory / 'bk'))
    assert backup.returncode == 0, backup.stderr
    assert f'backup of 1 volume in {b.directory / "bk"}' in backup.stdout
    write_volume_file(client, data, 'extra.txt', b'not in the backup\n')
    write_volume_file(client, data, 'kept.txt', b'changed since\n')
    refused = control(b, 'restore', str(b.directory / 'bk'))
    assert refused.returncode == 1 and 'restore --force' in refused.stderr
    forced = control(b, 'restore', '--force', str(b.directory / 'bk'))
    assert forced.returncode == 0, forced.stderr
    assert 'checked 1 archive' in forced.stdout and 'restored 1 volume from' in forced.stdout
    assert 'files not in the backup stay' in forced.stdout
    a = client.containers.get(f'{b.prefix}-a')
    assert a.status == 'running'
    assert a.exec_run('cat /data/kept.txt /data/extra.txt').output == \
        b'in the backup\nnot in the backup\n'
