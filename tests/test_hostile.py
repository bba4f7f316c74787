"""Hostile content: archives that climb out, symlinks out of a layout, a job that floods its log.

Nothing lands outside its target (on the host or in a volume), no host file
is read through a link, and a failure with a monstrous log line is still
one readable, bounded error, in bounded time.
"""
from __future__ import annotations

import os
import tarfile
import time

import pytest

from faults.harness import helpers_on, inventory
from helpers import (run_output, assert_one_error, buildout_config, busybox_tarball, container_part,
                     copy_to_host_config, image_part, tar_of, volume_part)

HOST_SECRET = 'host-only-3f9a1c'


def hostile_tar(path, members: list[tuple[str, dict]]) -> None:
    """A tarball with the given members (``name``, TarInfo fields); files hold a marker."""
    tar_of(path, [(name, fields, b'planted by a hostile archive\n') for name, fields in members])


HOSTILE = [
    ('absolute', [('ok.txt', {}), ('/tmp/dn-hostile-absolute', {})], 'absolute path'),
    ('dotdot', [('ok.txt', {}), ('../../../tmp/dn-hostile-dotdot', {})], 'climbs out'),
    ('inner-dotdot', [('ok.txt', {}), ('a/../../dn-hostile-inner', {})], 'climbs out'),
    ('hard-link-out', [('ok.txt', {}), ('hard', {'type': tarfile.LNKTYPE,
                                                  'linkname': '../../etc/passwd'})], 'hard link'),
    ('symlink-then-write', [('escape', {'type': tarfile.SYMTYPE, 'linkname': '../../../../tmp'}),
                            ('escape/dn-hostile-through', {})], 'leads out of the root'),
]


def nothing_planted() -> None:
    for name in ('dn-hostile-absolute', 'dn-hostile-dotdot', 'dn-hostile-inner',
                 'dn-hostile-through'):
        assert not os.path.exists(f'/tmp/{name}'), f'/tmp/{name} was written on the host'


@pytest.mark.parametrize('members, said', [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_volume_restore_from_a_hostile_archive_is_refused(buildout, client, members, said):
    b = buildout
    hostile_tar(b.directory / 'hostile.tar', members)
    b.write(buildout_config(['data'], volume_part(b, restore_from='hostile.tar')))
    line = assert_one_error(b.fail('-N'))
    assert line.startswith('Error: data: option restore-from:') and said in line, line
    nothing_planted()
    assert inventory(client, b) == set(), 'no volume is made from a refused archive'
    assert not helpers_on(client, [f'{b.prefix}-data'])


@pytest.mark.parametrize('members, said', [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_bootstrap_archive_that_climbs_out_is_refused(buildout, client, members, said):
    b = buildout
    busybox_tarball(b.directory / 'root.tar')
    hostile_tar(b.directory / 'hostile.tar', members)
    b.write(buildout_config(['base'], image_part(b, 'base', 'docker.bootstrap',
                                                 archives='root.tar\nhostile.tar')))
    line = assert_one_error(b.fail('-N'))
    assert line.startswith('Error: base: option archives:') and said in line, line
    nothing_planted()
    assert inventory(client, b) == set()
    assert not client.api.containers(all=True, filters={'label': b.label})


def outside_layout(b):
    """A layout whose links lead out of it: to a host file, a host directory, above its root."""
    outside = b.directory / 'outside'
    outside.mkdir()
    (outside / 'secret.txt').write_text(HOST_SECRET + '\n')
    layout = b.directory / 'layout'
    (layout / 'etc' / 'app').mkdir(parents=True)
    (layout / 'etc' / 'app' / 'app.conf').write_text('colour = blue\n')
    os.symlink(outside / 'secret.txt', layout / 'etc' / 'app' / 'absolute-link')
    os.symlink('../../../outside/secret.txt', layout / 'etc' / 'app' / 'relative-link')
    os.symlink(outside, layout / 'etc' / 'app' / 'dir-link')
    return layout


def read_all(container) -> bytes:
    """Every file of a container's /etc/app, links followed inside the container."""
    result = container.exec_run(['sh', '-c', 'cat /etc/app/* /etc/app/dir-link/* 2>&1; '
                                 'ls -la /etc/app'])
    return result.output


def test_run_layout_links_out_of_the_layout_read_nothing_of_the_host(buildout, client, busybox):
    b = buildout
    outside_layout(b)
    b.write(buildout_config(['web'], container_part(
        b, 'web', busybox, init='true', stop_timeout='1', command='httpd -f -p 80',
        layout='${buildout:directory}/layout')))
    b.run('-N')
    container = client.containers.get(f'{b.prefix}-web')
    seen = read_all(container)
    assert b'colour = blue' in seen
    assert HOST_SECRET.encode() not in seen, 'a host file was read through a link'
    chunks, _ = container.get_archive('/etc/app')
    assert HOST_SECRET.encode() not in b''.join(chunks)


def test_bootstrap_layout_links_out_of_the_layout_read_nothing_of_the_host(buildout, client):
    b = buildout
    busybox_tarball(b.directory / 'root.tar')
    outside_layout(b)
    b.write(buildout_config(['base'], image_part(b, 'base', 'docker.bootstrap', archives='root.tar',
                                                 layout='${buildout:directory}/layout')))
    b.run('-N')
    image = f'{b.prefix}/base'
    seen = run_output(client, image, ['/bin/busybox', 'sh', '-c',
                                         'busybox cat /etc/app/* /etc/app/dir-link/* 2>&1; true'])
    assert b'colour = blue' in seen
    assert HOST_SECRET.encode() not in seen
    saved = b''.join(client.images.get(image).save())
    assert HOST_SECRET.encode() not in saved


def test_copy_to_the_host_never_writes_through_a_link_out_of_its_target(buildout, client, busybox):
    """Links from the container arrive as links (one leading out of the target is refused:
    tests/test_hostile_archives.py); a link on the host is never written through."""
    b = buildout
    victim = b.directory / 'victim.txt'
    victim.write_text('untouched\n')
    outside = b.directory / 'outside'
    outside.mkdir()
    (b.directory / 'copied').mkdir()
    os.symlink('../outside', b.directory / 'copied' / 'sub')
    b.write(copy_to_host_config(b, busybox, 'mkdir -p /out/sub && ln -s data.txt /out/link && '
                                'echo data > /out/data.txt && echo planted > /out/sub/evil.txt',
                                '/out/ copied/'))
    line = assert_one_error(b.fail('-N'))
    assert line.startswith('Error: out: option paths:') and 'outside' in line, line
    assert list(outside.iterdir()) == [], 'nothing was written through the link'
    assert victim.read_text() == 'untouched\n'
    # Without the planted link the copy is made, and the container's link stays a link.
    os.unlink(b.directory / 'copied' / 'sub')
    b.run('-N')
    assert (b.directory / 'copied' / 'data.txt').read_text() == 'data\n'
    assert (b.directory / 'copied' / 'link').is_symlink()
    # Copied again (the source changed) over the links of the first copy.
    client.containers.get(f'{b.prefix}-source').exec_run(['sh', '-c', 'echo more > /out/data.txt'])
    b.run('-N')
    assert (b.directory / 'copied' / 'data.txt').read_text() == 'more\n'
    assert (b.directory / 'copied' / 'link').is_symlink()
    assert victim.read_text() == 'untouched\n'
    assert list(outside.iterdir()) == []


# -- a flood of output -------------------------------------------------------------------
FLOOD = "sh -c 'echo starting; head -c 5000000 /dev/zero | tr \"\\\\0\" x; echo; echo the end; exit 1'"


@pytest.mark.parametrize('where', ['job', 'script', 'gate', 'bootstrap-script'])
def test_huge_log_line_of_a_failure_is_one_bounded_error(buildout, busybox, where):
    b = buildout
    if where == 'job':
        body = f'job = true\ncommand = {FLOOD}'
    elif where == 'script':
        body = ('command = httpd -f -p 80\nscript = echo starting; head -c 5000000 /dev/zero | '
                'tr "\\0" x; echo; echo the end; exit 1')
    elif where == 'gate':
        body = (f'command = {FLOOD.replace("exit 1", "exec sleep 60")}\n'
                'wait-for = log:never-said\nwait-timeout = 3s')
    if where == 'bootstrap-script':
        busybox_tarball(b.directory / 'root.tar')
        b.write(buildout_config(['base'], image_part(
            b, 'base', 'docker.bootstrap', archives='root.tar',
            script='echo starting; busybox head -c 5000000 /dev/zero | busybox tr "\\0" x; echo; '
                   'echo the end; exit 1')))
    else:
        b.write(buildout_config(['web'], container_part(b, 'web', busybox, init='true',
                                                        stop_timeout='1')) + body + '\n')
    started = time.monotonic()
    out = b.fail('-N')
    took = time.monotonic() - started
    assert took < 60, f'took {took:.0f}s'
    line = assert_one_error(out)
    assert len(out) < 20_000, f'{len(out)} characters of output'
    assert len(line) < 2_000, line[:300]
    assert 'the end' in out and 'xxxxxxxx' in out, out[:3000]
