"""Hostile archives, and what a container or another local user plants: one way to place
an archive's members (dockeroo_nagoya.mechanisms.members) for every path that writes one.

Source tarballs change nothing outside var/sources and keep no set-id or world-writable
mode; a copy to the host never writes through a link at its target; names with non-ASCII
characters or over 100 characters (PAX headers) come back at their own path through a
volume recreate, bin/CTL backup/restore, a container-to-container copy and persist; a
backup never opens what another user planted in its directory.
"""
from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from dockeroo_nagoya.mechanisms import archives
from helpers import (run_output, DOCKERFILE, as_nobody, assert_one_error, build_config, buildout_config, cfg,
                     container_part, control, copy_to_host_config, image_part, member_part,
                     section, sleeping_part, system_part, tar_of, volume_part, volume_tar,
                     write_volume_file)

CAFE = 'café.txt'
LONG = 'l' * 116 + '.txt'     # 120 characters: a PAX path header
NAMES = {CAFE: b'coffee\n', LONG: b'long\n'}


def names_in_volume(client, volume: str) -> dict[str, bytes]:
    """Path (relative to the volume's root) -> bytes of each file in a volume."""
    found = {}
    with tarfile.open(fileobj=io.BytesIO(volume_tar(client, volume))) as tar:
        for member in tar:
            if member.isfile():
                found[member.name.removeprefix('v/')] = tar.extractfile(member).read()
    return found


def put_files(client, container: str, directory: str, files: dict[str, bytes]) -> None:
    """Files into a container's directory, as the engine's archive API takes them (PAX)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(body), 0o600
            tar.addfile(info, io.BytesIO(body))
    client.api.put_archive(container, directory, buf.getvalue())


# -- source tarballs (docker.build source = file:///...) -----------------------------------
@pytest.fixture
def host_directory(tmp_path):
    """A root-owned 0700 directory and 0600 file of the host, outside the buildout."""
    directory = tmp_path / 'host-only'
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o700)
    (directory / 'secret').write_text('host only\n')
    os.chmod(directory / 'secret', 0o600)
    return directory


def unchanged(path, mode: int) -> None:
    info = os.lstat(path)
    assert stat.S_IMODE(info.st_mode) == mode, f'{path} is now {stat.S_IMODE(info.st_mode):o}'
    assert (info.st_uid, info.st_gid) == (os.geteuid(), os.getegid()), f'{path} changed owner'


def test_source_tarball_link_then_directory_changes_no_host_directory(buildout, busybox,
                                                                      host_directory):
    b = buildout
    tarball = b.directory / 'ctx.tar'
    tar_of(tarball, [('Dockerfile', {'mode': 0o644}, DOCKERFILE),
                     ('d', {'type': tarfile.SYMTYPE, 'linkname': str(host_directory)}, b''),
                     ('d', {'type': tarfile.DIRTYPE, 'mode': 0o777, 'uid': 4242, 'gid': 4242},
                      b'')])
    b.write(build_config(b, busybox, tarball))
    result = b.run('-N', check=False)
    unchanged(host_directory, 0o700)
    unchanged(host_directory / 'secret', 0o600)
    line = assert_one_error(result.stdout + result.stderr)
    assert line.startswith('Error: image: option source:') and 'absolute' in line, line


def test_source_tarball_hard_link_to_a_symlink_changes_no_host_file(buildout, busybox,
                                                                    host_directory):
    b = buildout
    secret = host_directory / 'secret'
    tarball = b.directory / 'ctx.tar'
    tar_of(tarball, [('Dockerfile', {'mode': 0o644}, DOCKERFILE),
                     ('s', {'type': tarfile.SYMTYPE, 'linkname': str(secret)}, b''),
                     ('h', {'type': tarfile.LNKTYPE, 'linkname': 's', 'mode': 0o777,
                            'uid': 4242, 'gid': 4242}, b'')])
    b.write(build_config(b, busybox, tarball))
    result = b.run('-N', check=False)
    unchanged(secret, 0o600)
    assert secret.read_text() == 'host only\n'
    assert_one_error(result.stdout + result.stderr)
    # A hard link to a link inside the archive is refused as such.
    inside = b.directory / 'inside.tar'
    tar_of(inside, [('Dockerfile', {'mode': 0o644}, DOCKERFILE),
                    ('s', {'type': tarfile.SYMTYPE, 'linkname': 'Dockerfile'}, b''),
                    ('h', {'type': tarfile.LNKTYPE, 'linkname': 's'}, b'')])
    target = b.directory / 'unpacked'
    target.mkdir()
    with pytest.raises(archives.ArchiveError, match='points at a symbolic link'):
        archives.extract(str(inside), str(target))


def test_source_tarball_keeps_no_setuid_nor_world_writable_mode(buildout, busybox, client):
    b = buildout
    tarball = b.directory / 'ctx.tar'
    tar_of(tarball, [('Dockerfile', {'mode': 0o644}, DOCKERFILE),
                     ('tool', {'mode': 0o6755, 'uid': 0}, b'#!/bin/sh\n'),
                     ('open', {'type': tarfile.DIRTYPE, 'mode': 0o777}, b''),
                     ('open/f', {'mode': 0o666, 'uid': 4242, 'gid': 4242}, b'data\n')])
    b.write(build_config(b, busybox, tarball))
    b.run('-N')
    exports = [p for p in (b.directory / 'var' / 'sources').iterdir() if p.is_dir()]
    assert len(exports) == 1, exports
    context = exports[0]
    modes = {name: stat.S_IMODE(os.lstat(context / name).st_mode) for name in ('tool', 'open', 'open/f')}
    assert modes == {'tool': 0o755, 'open': 0o755, 'open/f': 0o644}, {k: oct(v) for k, v in modes.items()}
    assert os.lstat(context / 'open' / 'f').st_uid == os.geteuid(), 'the archive chose no owner'
    assert client.images.get(f'{b.prefix}/ctx')


# -- a copy to the host ------------------------------------------------------------------
def test_copy_to_a_host_file_never_writes_through_a_link_at_its_target(buildout, busybox, client,
                                                                        tmp_path):
    b = buildout
    victim = tmp_path / 'victim.txt'
    victim.write_text('untouched\n')
    os.chmod(victim, 0o600)
    b.write(copy_to_host_config(b, busybox, f'ln -s {victim} /x', '/x out/x'))
    first = b.run('-N', check=False)
    copied = b.directory / 'out' / 'x'
    planted = os.path.lexists(copied)   # an older version copied the link itself
    if not planted:   # as such a version left it
        (b.directory / 'out').mkdir(exist_ok=True)
        os.symlink(victim, copied)
    # The container now has a regular file there.
    source = client.containers.get(f'{b.prefix}-source')
    assert source.exec_run(['sh', '-c', 'rm /x && echo from the container > /x && chmod 0666 /x'])\
        .exit_code == 0
    b.run('-N')
    assert victim.read_text() == 'untouched\n', 'the copy wrote through the link at its target'
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    # The link leading out of the target was not copied to the host in the first place.
    line = assert_one_error(first.stdout + first.stderr)
    assert line.startswith('Error: out: option paths:') and 'absolute' in line, line
    assert not planted
    assert not copied.is_symlink() and copied.read_text() == 'from the container\n'
    assert stat.S_IMODE(copied.stat().st_mode) == 0o644, 'no world-writable file on the host'


def test_failed_keep_false_copy_leaves_no_key_and_says_one_line(buildout, busybox):
    b = buildout
    (b.directory / 'blocker').write_text('a file where a directory is wanted\n')
    b.write(copy_to_host_config(b, busybox, 'echo private > /key && echo other > /other',
                                '/key keys/key.pem\n/other blocker/other', keep='false'))
    line = assert_one_error(b.fail('-N'))
    assert line.startswith('Error: out: option paths:') and 'blocker' in line, line
    assert not (b.directory / 'keys' / 'key.pem').exists(), 'the copied key stayed on the host'


# -- names in PAX headers ----------------------------------------------------------------
def test_long_and_non_ascii_names_survive_a_volume_recreate(buildout, client):
    b = buildout
    volume = f'{b.prefix}-data'
    config = '''
        [buildout]
        parts = data

        [data]
        recipe = dockeroo_nagoya:docker.volume
        name = {volume}
        labels = colour={colour}
        '''
    b.write(cfg(config.format(volume=volume, colour='blue')))
    b.run('-N')
    for name, body in NAMES.items():
        write_volume_file(client, volume, name, body)
    b.write(cfg(config.format(volume=volume, colour='green')))
    out = b.run('-N')
    assert 'recreating volume' in out.stdout + out.stderr
    assert names_in_volume(client, volume) == NAMES


def test_long_and_non_ascii_names_survive_a_control_backup_and_restore(buildout, busybox, client,
                                                                        tmp_path):
    b = buildout
    volume = f'{b.prefix}-data'
    b.write(system_config(b, busybox))
    b.run('-N')
    for name, body in NAMES.items():
        write_volume_file(client, volume, name, body)
    target = tmp_path / 'backup'
    result = control(b, 'backup', str(target))
    assert result.returncode == 0, result.stderr
    with tarfile.open(target / f'{volume}.tar') as tar:
        assert {CAFE, LONG} <= set(tar.getnames()), tar.getnames()
    run_output(client, busybox, ['sh', '-c', 'rm -rf /v/*'],
                          volumes={volume: {'bind': '/v', 'mode': 'rw'}})
    result = control(b, 'restore', str(target))
    assert result.returncode == 0, result.stdout + result.stderr
    assert names_in_volume(client, volume) == {**NAMES, 'db': b'rows\n'}


#: Where the test's files are in a container, wherever they went.
FIND = (f"find / -path /proc -prune -o -path /sys -prune -o -type f \\( -name '{CAFE}' "
        f"-o -name 'clé.pem' -o -name '{LONG}' \\) -print")


def test_long_and_non_ascii_names_survive_a_container_to_container_copy(buildout, busybox, client):
    b = buildout
    containers = (container_part(b, 'source', busybox, init='true', stop_timeout='1',
                                 command="sh -c 'mkdir -p /src && exec sleep 3600'"),
                  sleeping_part(b, 'target', busybox))
    b.write(buildout_config(['source', 'target'], *containers))
    b.run('-N')
    put_files(client, f'{b.prefix}-source', '/src', {'clé.pem': b'key\n', LONG: b'long\n'})
    b.write(buildout_config(['source', 'target', 'copy'], *containers, section(
        'copy', 'docker.copy', container_from='${source:name}', container_to='${target:name}',
        paths='/src/ /dst/')))
    b.run('-N')
    found = client.containers.get(f'{b.prefix}-target').exec_run(['sh', '-c', FIND]).output
    assert sorted(found.decode().split()) == sorted([f'/dst/{LONG}', '/dst/clé.pem']), found


def test_long_and_non_ascii_names_survive_persist(buildout, busybox, client):
    b = buildout
    volume = f'{b.prefix}-data'
    app = sleeping_part(b, 'app', busybox, volumes=f'{volume}:/srv/data')
    b.write(buildout_config(['app'], app))
    b.run('-N')
    for name, body in NAMES.items():
        write_volume_file(client, volume, name, body)
    b.write(buildout_config(['app', 'persisted'], app, image_part(
        b, 'persisted', 'docker.persist', container='${app:name}')))
    b.run('-N')
    found = run_output(client, f'{b.prefix}/persisted', ['sh', '-c', FIND])
    assert sorted(found.decode().split()) == sorted([f'/srv/data/{CAFE}', f'/srv/data/{LONG}']), found


# -- a backup directory another user can write to ----------------------------------------------
def system_config(b, busybox: str) -> str:
    return buildout_config(['sys'], system_part(['db']), member_part(
        b, 'db', busybox, init='true', stop_timeout='1', volumes=f'{b.prefix}-data:/data',
        command="sh -c 'echo rows > /data/db; exec sleep 3600'"))


@pytest.mark.skipif(os.geteuid() != 0, reason='planting files as another user needs root')
def test_backup_never_opens_a_part_file_or_link_another_user_planted(buildout, busybox, client,
                                                                     shared_directory):
    b = buildout
    volume = f'{b.prefix}-data'
    b.write(system_config(b, busybox))
    b.run('-N')
    write_volume_file(client, volume, 'secret.pem', b'0600 secret\n', uid=0, mode=0o600)
    victim = os.path.join(shared_directory, 'root-owned.conf')
    with open(victim, 'w', encoding='utf-8') as out:
        out.write('root only\n')
    os.chmod(victim, 0o644)
    planted_file, planted_link = (os.path.join(shared_directory, name) for name in ('file', 'link'))
    os.mkdir(planted_file, 0o1777)
    os.mkdir(planted_link, 0o1777)
    os.chmod(planted_file, 0o1777)
    os.chmod(planted_link, 0o1777)
    as_nobody(f'umask 000; echo mine > {planted_file}/{volume}.tar.part; '
              f'ln -s {victim} {planted_link}/{volume}.tar.part')

    for directory in (planted_file, planted_link):
        result = control(b, 'backup', directory)
        assert result.returncode == 0, result.stdout + result.stderr
        archive = os.path.join(directory, f'{volume}.tar')
        info = os.lstat(archive)
        assert stat.S_ISREG(info.st_mode), f'{archive} is no regular file'
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600), (info.st_uid, oct(info.st_mode))
        with tarfile.open(archive) as tar:
            assert 'secret.pem' in tar.getnames()
    planted = os.path.join(planted_file, f'{volume}.tar.part')
    with open(planted, encoding='utf-8') as handle:
        assert handle.read() == 'mine\n', 'the planted file received the backup'
    assert os.lstat(planted).st_uid == 65534
    with open(victim, encoding='utf-8') as handle:
        assert handle.read() == 'root only\n', 'a root-owned file was written through the link'
    assert os.path.islink(os.path.join(planted_link, f'{volume}.tar.part'))


# -- restore-from ---------------------------------------------------------------------------
def test_restore_from_an_archive_with_an_absolute_symlink_is_refused(buildout, client):
    b = buildout
    tar_of(b.directory / 'seed.tar', [('ok.txt', {}, b'fine\n'),
                                      ('etc', {'type': tarfile.SYMTYPE, 'linkname': '/etc'}, b'')])
    b.write(buildout_config(['data'], volume_part(b, restore_from='seed.tar')))
    line = assert_one_error(b.fail('-N'))
    assert line.startswith('Error: data: option restore-from:') and 'absolute' in line, line
    assert not client.volumes.list(filters={'name': f'{b.prefix}-data'}), \
        'a volume was made from a refused archive'
