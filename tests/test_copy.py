"""``docker.copy``: host to container, container to container, container to host.

Owners and modes arrive as they left; a copy is redone only when its
source's content changed or its target container is a new one.
"""
from __future__ import annotations

import io
import os
import tarfile
import textwrap

import pytest

from helpers import force_reinstall


def archive(client, container: str, path: str) -> dict[str, tuple[int, int, int, bytes]]:
    """name -> (uid, gid, mode, bytes) of a path in a container."""
    chunks, _ = client.api.get_archive(container, path)
    found = {}
    with tarfile.open(fileobj=io.BytesIO(b''.join(chunks))) as tar:
        for member in tar:
            body = tar.extractfile(member).read() if member.isfile() else b''
            found[member.name] = (member.uid, member.gid, member.mode & 0o7777, body)
    return found


def config(b, busybox: str, copy: str, source_env: str = 'A=1', target_env: str = 'B=1') -> str:
    head = f'''
        [buildout]
        parts = source target copy

        [source]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-source
        image = {busybox}
        env = {source_env}
        init = true
        command = sh -c 'mkdir -p /out/sub && echo "$A" > /out/data.txt && echo deep > /out/sub/deep.txt &&
            chown -R 1234:2345 /out && chmod 600 /out/data.txt && ln -s data.txt /out/link &&
            touch /out/ready && exec httpd -f -p 80'
        wait-for = exec:test -f /out/ready

        [target]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-target
        image = {busybox}
        env = {target_env}
        init = true
        command = httpd -f -p 80

        [copy]
        recipe = dockeroo_nagoya:docker.copy
        '''
    return textwrap.dedent(head).lstrip() + textwrap.dedent(copy).lstrip('\n')


def output(result) -> str:
    return result.stdout + result.stderr


def test_host_to_container_keeps_owners_and_modes_and_redoes_only_changes(buildout, busybox, client):
    b = buildout
    conf = b.directory / 'conf'
    (conf / 'nested').mkdir(parents=True)
    (conf / 'app.conf').write_text('colour = blue\n')
    (conf / 'app.conf').chmod(0o640)
    (conf / 'nested' / 'x.txt').write_text('x\n')
    os.chown(conf / 'app.conf', 1234, 2345)
    b.write(config(b, busybox, '''
        container-to = ${target:name}
        paths =
            conf/ /etc/app/
            conf/app.conf /srv/
        '''))
    out = output(b.run('-N'))
    assert out.count('copying ') == 2, out
    found = archive(client, f'{b.prefix}-target', '/etc/app')
    assert found['app/app.conf'] == (1234, 2345, 0o640, b'colour = blue\n')
    assert found['app/nested/x.txt'][3] == b'x\n'
    assert archive(client, f'{b.prefix}-target', '/srv/app.conf')['app.conf'][3] == b'colour = blue\n'

    os.utime(conf / 'app.conf', (0, 0))  # a touch is not a change
    assert 'copying' not in output(b.run('-N'))
    force_reinstall(b)  # as a package upgrade does: still nothing to copy
    assert 'copying' not in output(b.run('-N'))

    (conf / 'nested' / 'x.txt').write_text('y\n')
    out = output(b.run('-N'))
    assert 'copying ' + str(conf) + ' to /etc/app (its source changed)' in out
    assert out.count('copying ') == 1, out
    assert archive(client, f'{b.prefix}-target', '/etc/app/nested/x.txt')['x.txt'][3] == b'y\n'


@pytest.mark.slow
def test_container_to_container_renames_and_follows_a_recreated_target(buildout, busybox, client):
    b = buildout
    copy = '''
        container-from = ${source:name}
        container-to = ${target:name}
        paths =
            /out/ /in/
            /out/data.txt /renamed/copy.txt
            /out/sub/
        '''
    b.write(config(b, busybox, copy))
    b.run('-N')
    found = archive(client, f'{b.prefix}-target', '/in')
    assert found['in/data.txt'] == (1234, 2345, 0o600, b'1\n')
    assert found['in/sub/deep.txt'][:2] == (1234, 2345)
    assert 'in/link' in found
    assert archive(client, f'{b.prefix}-target', '/renamed/copy.txt')['copy.txt'][3] == b'1\n'
    assert archive(client, f'{b.prefix}-target', '/out/sub/deep.txt')['deep.txt'][3] == b'deep\n'
    assert 'copying' not in output(b.run('-N'))

    # A new target container gets the copies again, though the source is the same.
    b.write(config(b, busybox, copy, target_env='B=2'))
    out = output(b.run('-N'))
    assert out.count('(the target is new)') == 3, out
    assert archive(client, f'{b.prefix}-target', '/in/data.txt')['data.txt'][3] == b'1\n'

    # A changed source content is copied again.
    b.write(config(b, busybox, copy, source_env='A=2', target_env='B=2'))
    out = output(b.run('-N'))
    assert '/out to /in (its source changed)' in out
    assert '/out/sub to /out/sub' not in out
    assert archive(client, f'{b.prefix}-target', '/in/data.txt')['data.txt'][3] == b'2\n'


def test_container_to_host_keeps_modes_and_owners(buildout, busybox, client):
    b = buildout
    b.write(config(b, busybox, '''
        container-from = ${source:name}
        paths =
            /out/ var/out/
            /out/data.txt var/single/
        '''))
    b.run('-N')
    data = b.directory / 'var' / 'out' / 'data.txt'
    assert data.read_text() == '1\n'
    info = data.stat()
    assert (info.st_mode & 0o777) == 0o600
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (1234, 2345)
    assert os.readlink(b.directory / 'var' / 'out' / 'link') == 'data.txt'
    assert (b.directory / 'var' / 'out' / 'sub' / 'deep.txt').read_text() == 'deep\n'
    assert (b.directory / 'var' / 'single' / 'data.txt').read_text() == '1\n'
    assert 'copying' not in output(b.run('-N'))
    b.write('[buildout]\nparts =\n')
    b.run('-N')
    assert data.read_text() == '1\n'  # removing the part leaves the copies
    assert not (b.directory / 'parts' / 'copy').exists()


@pytest.mark.parametrize('copy, expected', [
    ('paths = /etc/x /etc/y\n', 'copy: option container-from: expected container-from, container-to or both'),
    ('container-to = ${target:name}\npaths = conf/\n', 'copy: option paths: expected SOURCE TARGET lines when one side is the host'),
    ('container-from = ${source:name}\ncontainer-to = ${target:name}\npaths = etc/x\n', 'copy: option paths: expected absolute container paths'),
    ('container-from = ${source:name}\ncontainer-to = ${target:name}\npaths = /out\n', 'copy: option paths: /out is a directory: end it with / to copy it'),
    ('container-from = ${source:name}\ncontainer-to = ${target:name}\npaths = /out/data.txt/\n', 'copy: option paths: /out/data.txt is not a directory'),
    ('container-from = ${source:name}\ncontainer-to = ${target:name}\npaths = /nothing/here\n', 'copy: option paths: /nothing/here does not exist in the container'),
    ('container-from = nobody-here-xyz\ncontainer-to = ${target:name}\npaths = /a /b\n', 'copy: option container-from: no container nobody-here-xyz'),
])
def test_bad_copy_gives_one_clear_error(buildout, busybox, copy, expected):
    b = buildout
    b.write(config(b, busybox, copy))
    out = b.fail('-N')
    assert 'Traceback' not in out, out
    errors = [line for line in out.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and expected in errors[0], out
