"""``docker.copy``: host to container, container to container, container to host.

Owners and modes arrive as they left; a copy is redone only when its
source's content changed or its target container is a new one.
"""
from __future__ import annotations

import os
import textwrap

import pytest

from helpers import (archive, buildout_config, empty_helper_image, error_lines, force_reinstall,
                     keys_job, output, section)


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


def test_container_to_host_keeps_modes_not_owners(buildout, busybox, client):
    """On the host a copy belongs to the user running buildout: a container picks no
    owner there (it could hand a file to any local user)."""
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
    assert (info.st_uid, info.st_gid) == (os.geteuid(), os.getegid())
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


# -- sync ----------------------------------------------------------------------------------
def keys_to(b, busybox: str, keys: str, target: str, holder: str = '') -> str:
    """The keys job's directory copied with sync to ``target`` (a host path, or a path
    in ``holder``'s container, a section given whole)."""
    sections = [keys_job(b, busybox, keys)] + ([holder] if holder else [])
    copy = {'container_from': '${credentials:name}', 'paths': f'/out/keys/ {target}',
            'sync': 'true', **({'container_to': '${holder:name}'} if holder else {})}
    return buildout_config(['credentials', *(['holder'] if holder else []), 'copy'], *sections,
                           section('copy', 'docker.copy', **copy))


def test_sync_to_the_host_removes_what_the_source_no_longer_has(buildout, busybox, tmp_path):
    """On the host too, and a link that is there goes as a link: what it points to stays."""
    from helpers import actions
    b = buildout
    keys = b.directory / 'var' / 'keys'
    b.write(keys_to(b, busybox, 'a b old', 'var/keys/'))
    b.run('-N')
    assert sorted(p.name for p in keys.iterdir()) == ['a.pem', 'b.pem', 'ca.crt', 'old']
    precious = tmp_path / 'precious'
    precious.mkdir()
    (precious / 'file').write_text('stays')
    (keys / 'outside').symlink_to(precious)
    assert actions(output(b.run('-N'))) == []

    b.write(keys_to(b, busybox, 'a', 'var/keys/'))
    out = output(b.run('-N'))
    assert f'removing {keys}/b.pem, {keys}/old, {keys}/outside (sync = true' in out, out
    assert sorted(p.name for p in keys.iterdir()) == ['a.pem', 'ca.crt']
    assert (keys / 'a.pem').read_text() == 'a\n' and (keys / 'a.pem').stat().st_mode & 0o777 == 0o600
    assert (precious / 'file').read_text() == 'stays'
    out = output(b.run('-N'))
    assert actions(out) == [] and 'removing' not in out, out


def test_sync_refuses_a_target_directory_in_no_volume_of_the_container(buildout, busybox):
    """A container that never runs can only be changed through its volumes."""
    b = buildout
    holder = section('holder', 'docker.run', name=f'{b.prefix}-holder', image=busybox,
                     start='false', command='true')
    b.write(keys_to(b, busybox, 'a', '/etc/pki/koji/', holder))
    for _ in range(2):
        out = b.fail('-N')
        found = error_lines(out)
        assert len(found) == 1 and found[0].startswith(
            f'Error: copy: option sync: /etc/pki/koji is in no volume of container-to '
            f'{b.prefix}-holder'), out
        assert 'Traceback' not in out and 'copying' not in out, out


def test_sync_says_in_one_line_that_the_target_image_has_no_rm(buildout, busybox, client):
    """The removal runs rm in a container of the target's image; an image without it (a
    holder made of the empty helper image) is one line, and the record is not written:
    the next run tries again."""
    b = buildout
    holder = section('holder', 'docker.run', name=f'{b.prefix}-holder',
                     image=empty_helper_image(client),
                     start='false', command='/none', volumes=f'{b.prefix}-certs:/etc/pki/koji')
    b.write(keys_to(b, busybox, 'a b', '/etc/pki/koji/', holder))
    b.run('-N')
    b.write(keys_to(b, busybox, 'a', '/etc/pki/koji/', holder))
    for _ in range(2):
        out = b.fail('-N')
        found = error_lines(out)
        assert len(found) == 1 and found[0].startswith(
            'Error: copy: option sync: removing /etc/pki/koji/b.pem failed (it runs rm in a '
            'container of the image of container-to): '), out
        assert found[0].endswith('(it needs rm)'), out
        assert 'Traceback' not in out, out
    assert not client.containers.list(all=True, filters={'name': 'dockeroo-nagoya-tmp-copy'})
    assert sorted(archive(client, f'{b.prefix}-holder', '/etc/pki/koji')) == [
        'koji', 'koji/a.pem', 'koji/b.pem', 'koji/ca.crt']
