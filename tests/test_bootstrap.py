"""docker.bootstrap: images from tarballs, a rootfs command and a layout, with no registry.

The tarballs are made here from the host's static busybox; URLs are served
by a small HTTP server on 127.0.0.1 that counts what it is asked for.
"""
from __future__ import annotations

import functools
import http.server
import os
import tarfile
import threading
from pathlib import Path
from typing import Iterator

import docker
import docker.errors
import pytest

from dockeroo_nagoya.mechanisms import archives
from helpers import (run_output, BUSYBOX_BINARY, _add_dir, _add_file, assert_one_error_at_end,
                     busybox_tarball, image_id, leftovers)


# -- overlay tarballs ----------------------------------------------------------------
def overlay_tarball(path: Path, files: dict[str, str]) -> str:
    mode = {'.gz': 'w:gz', '.bz2': 'w:bz2', '.xz': 'w:xz'}.get(path.suffix, 'w')
    with tarfile.open(path, mode) as tar:
        for name, text in files.items():
            _add_file(tar, name, text.encode())
    return archives.file_sha256(str(path))


# -- a counting HTTP server ----------------------------------------------------
class Served:
    """Files under ``directory`` at ``url``; ``requests`` counts GETs per path."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.requests: dict[str, int] = {}
        served = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                served.requests[self.path] = served.requests.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        handler = functools.partial(Handler, directory=str(directory))
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}'
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    directory = tmp_path / 'www'
    directory.mkdir()
    server = Served(directory)
    try:
        yield server
    finally:
        server.close()


# -- the safety of tarball members (no engine) ----------------------------------------
def unsafe(tmp_path: Path, name: str, **fields) -> Path:
    path = tmp_path / 'unsafe.tar'
    with tarfile.open(path, 'w') as tar:
        _add_file(tar, 'fine.txt', b'ok')
        _add_file(tar, name, b'bad', **fields)
    return path


@pytest.mark.parametrize(('name', 'fields', 'said'), [
    ('../evil', {}, 'climbs out'),
    ('a/../../evil', {}, 'climbs out'),
    ('/etc/evil', {}, 'absolute path'),
    ('hard', {'type': tarfile.LNKTYPE, 'linkname': '../../etc/passwd'}, 'hard link'),
    ('hard', {'type': tarfile.LNKTYPE, 'linkname': '/etc/passwd'}, 'hard link'),
    ('a/b', {'type': tarfile.SYMTYPE, 'linkname': '../../../etc'}, 'leads out of the root'),
])
def test_unsafe_members_are_refused(tmp_path, name, fields, said):
    with pytest.raises(archives.ArchiveError, match=said):
        archives.check(str(unsafe(tmp_path, name, **fields)))


def test_absolute_and_inner_links_are_kept_as_a_root_filesystem_has_them(tmp_path):
    path = tmp_path / 'links.tar'
    with tarfile.open(path, 'w') as tar:
        _add_file(tar, 'usr/bin/tool', b'x')
        for name, target in (('etc/mtab', '/proc/self/mounts'), ('bin', 'usr/bin'),
                             ('usr/lib/x/up', '../../bin/tool')):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            tar.addfile(link)
    assert sum(archives.check(str(path)).values()) == 4
    # On the host an absolute link would lead out of the target: refused there.
    target = tmp_path / 'out'
    target.mkdir()
    with pytest.raises(archives.ArchiveError, match='is absolute'):
        archives.extract(str(path), str(target))


def test_extracting_on_the_host_never_writes_through_a_link_out_of_the_target(tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    path = tmp_path / 'through.tar'
    with tarfile.open(path, 'w') as tar:
        link = tarfile.TarInfo('escape')
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
        _add_file(tar, 'escape/planted', b'bad')
    target = tmp_path / 'target'
    target.mkdir()
    with pytest.raises(archives.ArchiveError, match='is absolute'):
        archives.extract(str(path), str(target))
    assert not (outside / 'planted').exists()
    # A link inside the target is kept, and still nothing is written through it.
    with tarfile.open(path, 'w') as tar:
        _add_file(tar, 'real/file', b'ok')
        link = tarfile.TarInfo('inner')
        link.type, link.linkname = tarfile.SYMTYPE, 'real'
        tar.addfile(link)
        _add_file(tar, 'inner/planted', b'bad')
    with pytest.raises(archives.ArchiveError, match='below a symbolic link'):
        archives.extract(str(path), str(target))
    assert not (target / 'real' / 'planted').exists()


def test_a_file_that_is_no_tarball_is_said_to_be_one(tmp_path):
    path = tmp_path / 'notes.tar.gz'
    path.write_bytes(b'not a tarball at all')
    with pytest.raises(archives.ArchiveError, match='is not a tar archive'):
        archives.check(str(path))


# -- the recipe -----------------------------------------------------------------------
def config(b, parts: str = 'base', extra: str = '', **options: str) -> str:
    """A buildout with one docker.bootstrap part; option names with ``_`` for ``-``."""
    lines = [f'{key.replace("_", "-")} = {value}' for key, value in options.items()]
    return '\n'.join(['[buildout]', f'parts = {parts}', extra, '', '[base]',
                      'recipe = dockeroo_nagoya:docker.bootstrap', f'name = {b.prefix}/base',
                      *lines]) + '\n'


def test_tarballs_layout_and_script_make_an_image_rebuilt_exactly_when_they_change(
        buildout, client):
    b = buildout
    busybox_tarball(b.directory / 'busybox.tar.gz', {'etc/release': 'one\n'})
    overlay_tarball(b.directory / 'tools.tar.bz2', {'notes.txt': 'bz2\n'})
    overlay_tarball(b.directory / 'more.tar.xz', {'etc/more': 'xz\n'})
    overlay_tarball(b.directory / 'plain.tar', {'etc/plain': 'plain\n'})
    layout = b.directory / 'layout'
    (layout / 'srv').mkdir(parents=True)
    (layout / 'srv' / 'secret').write_text('layout\n')
    os.chown(layout / 'srv' / 'secret', 1234, 1235)
    os.chmod(layout / 'srv' / 'secret', 0o640)
    b.write(config(
        b, archives='busybox.tar.gz\n    tools.tar.bz2 /opt/tools\n    more.tar.xz\n    plain.tar',
        layout='${buildout:directory}/layout',
        script='/bin/busybox mkdir -p /usr/bin /usr/sbin /sbin\n'
               '    /bin/busybox --install -s\n'
               '    echo "$GREETING from the script" > /made',
        env='GREETING=hello',
        command='sh -c "cat /etc/release /opt/tools/notes.txt /etc/more /etc/plain /made"'))
    b.run('-N')
    first = image_id(client, f'{b.prefix}/base')
    out = run_output(client, f'{b.prefix}/base').decode()
    assert out == 'one\nbz2\nxz\nplain\nhello from the script\n'
    owner = run_output(client, f'{b.prefix}/base', ['stat', '-c', '%u:%g %a', '/srv/secret'])
    assert owner == b'1234:1235 640\n'
    config_of = client.images.get(f'{b.prefix}/base').attrs['Config']
    assert 'GREETING=hello' in config_of['Env']
    assert config_of['Cmd'][0] == 'sh'

    # A rerun does nothing; an input that changes makes the image again, and says why.
    result = b.run('-N')
    assert image_id(client, f'{b.prefix}/base') == first
    assert 'building' not in result.stdout + result.stderr
    (layout / 'srv' / 'secret').write_text('changed\n')
    result = b.run('-N')
    second = image_id(client, f'{b.prefix}/base')
    assert second != first
    assert 'rebuilding' in result.stderr + result.stdout
    assert 'layout changed' in result.stderr + result.stdout
    busybox_tarball(b.directory / 'busybox.tar.gz', {'etc/release': 'two\n'})
    result = b.run('-N')
    assert 'archives changed' in result.stderr + result.stdout
    assert run_output(client, f'{b.prefix}/base', ['cat', '/etc/release']) == b'two\n'
    assert not client.images.list(filters={'label': b.label, 'dangling': True})
    assert leftovers(client, b) == []

    # Removing the part removes the image.
    b.write(config(b, parts=''))
    b.run('-N')
    assert client.images.list(filters={'label': b.label}) == []


def test_later_sources_replace_what_earlier_ones_have_at_the_same_path(buildout, client):
    b = buildout
    busybox_tarball(b.directory / 'base.tar', {'etc/release': 'base\n', 'etc/kept': 'kept\n'})
    with tarfile.open(b.directory / 'twice.tar', 'w') as tar:  # a path twice, as tar -r makes it
        _add_dir(tar, 'etc')
        _add_file(tar, 'etc/release', b'overlay\n')
        _add_file(tar, 'etc/x', b'old\n')
        _add_file(tar, 'etc/x', b'new\n')
    (b.directory / 'layout' / 'etc').mkdir(parents=True)
    (b.directory / 'layout' / 'etc' / 'from-layout').write_text('layout\n')
    b.write(config(b, archives='base.tar\n    twice.tar', layout='layout',
                   command='/bin/sh -c "read a < /etc/release; read b < /etc/x; read c < /etc/kept; '
                           'read d < /etc/from-layout; echo $a $b $c $d"'))
    b.run('-N')
    assert run_output(client, f'{b.prefix}/base') == b'overlay new kept layout\n'


def test_dockeroo_names_are_accepted(buildout, client):
    b = buildout
    busybox_tarball(b.directory / 'busybox.tar')
    b.write(f'''
        [buildout]
        parts = old

        [old]
        recipe = dockeroo_nagoya:docker.gentoo-bootstrap
        name = {b.prefix}/old
        tag = v1
        archive = ${{buildout:directory}}/busybox.tar
        build-script = echo dockeroo > /made
        build-shell = /bin/sh
        command = /bin/busybox cat /made
        ''')
    b.run('-N')
    assert run_output(client, f'{b.prefix}/old:v1') == b'dockeroo\n'


def test_a_url_is_downloaded_once_into_the_download_cache(buildout, client, served):
    b = buildout
    digest = busybox_tarball(served.directory / 'root.tar.gz', {'etc/release': 'served\n'})
    overlay_tarball(served.directory / 'extra.tar', {'etc/extra': 'unpinned\n'})
    (b.directory / 'cache').mkdir()
    b.write(config(b, extra='download-cache = cache',
                   archives=f'{served.url}/root.tar.gz sha256:{digest}\n'
                            f'    {served.url}/extra.tar',
                   command='/bin/busybox cat /etc/release /etc/extra'))
    b.run('-N')
    assert served.requests == {'/root.tar.gz': 1, '/extra.tar': 1}
    assert run_output(client, f'{b.prefix}/base') == b'served\nunpinned\n'
    cached = sorted(p.name for p in (b.directory / 'cache' / 'dockeroo-nagoya').iterdir())
    assert sorted(name.split('-', 1)[1] for name in cached) == ['extra.tar', 'root.tar.gz']
    first = image_id(client, f'{b.prefix}/base')

    # A rerun downloads nothing, and neither does a rebuild after the image went away.
    b.run('-N')
    assert image_id(client, f'{b.prefix}/base') == first
    client.images.remove(f'{b.prefix}/base')
    b.run('-N')
    assert served.requests == {'/root.tar.gz': 1, '/extra.tar': 1}
    assert run_output(client, f'{b.prefix}/base') == b'served\nunpinned\n'


def test_without_a_download_cache_downloads_are_kept_under_the_buildout(buildout, client, served):
    b = buildout
    busybox_tarball(served.directory / 'root.tar')
    b.write(config(b, archives=f'{served.url}/root.tar', command='/bin/busybox true'))
    b.run('-N')
    b.run('-N')
    assert served.requests == {'/root.tar': 1}
    assert len(list((b.directory / 'var' / 'downloads').glob('*-root.tar'))) == 1


def test_offline_a_url_that_is_not_cached_is_an_error(buildout, served):
    b = buildout
    busybox_tarball(served.directory / 'root.tar')
    b.write(config(b, archives=f'{served.url}/root.tar'))
    assert_one_error_at_end(b.fail('-N', '-o'),
                            f'base: option archives: {served.url}/root.tar is not in '
                            'the download cache')
    assert served.requests == {}


def test_the_script_sees_volumes_and_commit_false_keeps_only_the_import(buildout, client):
    b = buildout
    busybox_tarball(b.directory / 'root.tar')
    (b.directory / 'shared').mkdir()
    b.write(config(b, archives='root.tar', volumes='./shared:/shared', commit='false',
                   script='echo "from the script" > /shared/out\n    touch /not-committed'))
    b.run('-N')
    assert (b.directory / 'shared' / 'out').read_text() == 'from the script\n'
    with pytest.raises(docker.errors.ContainerError):
        run_output(client, f'{b.prefix}/base', ['/bin/busybox', 'ls', '/not-committed'])
    assert leftovers(client, b) == []


def test_a_wrong_sha256_is_an_error_and_nothing_is_imported(buildout, client, served):
    b = buildout
    busybox_tarball(b.directory / 'root.tar')
    busybox_tarball(served.directory / 'root.tar')
    wrong = 'ab' * 32
    b.write(config(b, archives=f'root.tar sha256:{wrong}'))
    line = assert_one_error_at_end(b.fail('-N'), 'base: option archives: ')
    assert f'expected {wrong}' in line and 'nothing was imported' in line
    b.write(config(b, archives=f'{served.url}/root.tar sha256:{wrong}'))
    line = assert_one_error_at_end(b.fail('-N'), 'base: option archives: ')
    assert f'{served.url}/root.tar has sha256' in line
    assert client.images.list(filters={'label': b.label}) == []
    assert leftovers(client, b) == []
    assert not list((b.directory / 'var' / 'downloads').glob('*root.tar*'))


def test_an_archive_url_that_fails_is_an_error(buildout, client):
    b = buildout
    b.write(config(b, archives='http://127.0.0.1:1/x.tar'))
    line = assert_one_error_at_end(
        b.fail('-N'), 'base: option archives: cannot download http://127.0.0.1:1/x.tar')
    assert 'refused' in line
    assert client.images.list(filters={'label': b.label}) == [] and leftovers(client, b) == []


def test_a_rootfs_command_that_fails_is_an_error_and_leaves_nothing(buildout, client):
    b = buildout
    b.write(config(b, rootfs_command='touch {rootfs}/half; echo "no mirror today" >&2; exit 3'))
    line = assert_one_error_at_end(
        b.fail('-N'), 'base: rootfs-command exited with code 3: no mirror today')
    assert line
    assert client.images.list(filters={'label': b.label}) == [] and leftovers(client, b) == []
    assert not [p for p in (b.directory / 'parts').iterdir() if 'rootfs' in p.name]


def test_a_rootfs_command_fills_the_root(buildout, client):
    b = buildout
    b.write(config(b, rootfs_command=f'mkdir {{rootfs}}/bin && cp {BUSYBOX_BINARY} "$ROOTFS/bin/sh" '
                                     '&& echo filled > {rootfs}/filled',
                   command='/bin/sh -c "cat /filled"'))
    b.run('-N')
    assert run_output(client, f'{b.prefix}/base') == b'filled\n'


def test_a_failing_script_is_an_error_and_leaves_no_image_or_container(buildout, client):
    b = buildout
    busybox_tarball(b.directory / 'root.tar')
    b.write(config(b, archives='root.tar', script='echo "broken on purpose"\n    exit 4'))
    line = assert_one_error_at_end(b.fail('-N'), 'base: script exited with code 4 in the new image')
    assert line.endswith('broken on purpose')
    assert client.images.list(filters={'label': b.label}) == []
    assert leftovers(client, b) == []


def test_an_unsafe_tarball_is_refused_before_the_engine_sees_it(buildout, client):
    b = buildout
    with tarfile.open(b.directory / 'evil.tar', 'w') as tar:
        _add_file(tar, '../../escape', b'x')
    b.write(config(b, archives='evil.tar'))
    assert_one_error_at_end(b.fail('-N'), "base: option archives: member '../../escape' climbs out")
    assert client.images.list(filters={'label': b.label}) == []


def test_without_archives_or_rootfs_command_the_part_says_what_it_needs(buildout):
    b = buildout
    b.write(config(b))
    assert_one_error_at_end(b.fail('-N'), 'base: option archives: expected at least one archive, '
                                          'or a rootfs-command')

