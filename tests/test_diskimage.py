"""docker.diskimage, and the whole way from a Debian mirror to an ext4 disk image.

The disk images are read back on the host with e2fsprogs' ``debugfs``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import docker.errors
import pytest

from helpers import (run_output, MKE2FS, assert_one_error_at_end, buildout_config, busybox_tarball, disk_part,
                     image_id, image_part, leftovers)

pytestmark = pytest.mark.skipif(not shutil.which('debugfs'), reason='needs debugfs (e2fsprogs)')


def debugfs(image: Path, request: str) -> str:
    """One debugfs request against a file system image, read only."""
    return subprocess.run(['debugfs', '-R', request, str(image)], check=True,
                          capture_output=True, text=True).stdout


def stamp(path: Path) -> tuple[int, int]:
    """What changes when a file is written again."""
    info = path.stat()
    return info.st_ino, info.st_mtime_ns


@pytest.mark.slow
def test_an_ext4_image_of_an_image_is_made_again_only_when_an_input_changes(
        buildout, client, debian):
    b = buildout
    busybox_tarball(b.directory / 'root.tar', {'etc/release': 'one\n'})
    b.write(buildout_config(
        ['base', 'disk'], image_part(b, 'base', 'docker.bootstrap', archives='root.tar'),
        disk_part(debian, '${base:image}', image_file='/out/disk.ext4',
                  prepare_script='mkdir -p /out', build_script=MKE2FS)))
    b.run('-N')
    disk = b.directory / 'parts' / 'disk' / 'disk.ext4'
    assert debugfs(disk, 'cat /etc/release') == 'one\n'
    assert 'busybox' in debugfs(disk, 'ls -l /bin')
    assert '.dockerenv' not in debugfs(disk, 'ls /')
    before = stamp(disk)

    # A rerun leaves the file alone.
    result = b.run('-N')
    assert stamp(disk) == before
    assert 'making' not in result.stdout + result.stderr

    # A new base image makes the disk again.
    busybox_tarball(b.directory / 'root.tar', {'etc/release': 'two\n'})
    result = b.run('-N')
    assert 'base-image changed' in result.stdout + result.stderr
    assert debugfs(disk, 'cat /etc/release') == 'two\n'
    before = stamp(disk)

    # So does a new script.
    b.write((b.directory / 'buildout.cfg').read_text().replace('-t ext4', '-t ext4 -L dnroot'))
    b.run('-N')
    assert stamp(disk) != before
    assert 'dnroot' in debugfs(disk, 'stats')
    assert leftovers(client, b) == []

    # Removing the part removes the file.
    b.write((b.directory / 'buildout.cfg').read_text().replace('parts = base disk', 'parts = base'))
    b.run('-N')
    assert not disk.exists()


def test_a_missing_image_file_is_an_error_and_leaves_nothing(buildout, client, busybox):
    b = buildout
    b.write(buildout_config(['disk'], disk_part(busybox, busybox, image_file='/disk.img',
                                                build_script='echo "forgot to make it"')))
    assert_one_error_at_end(
        b.fail('-N'), 'disk: option image-file: the scripts did not make /disk.img in the builder')
    assert leftovers(client, b) == []
    assert not (b.directory / 'parts' / 'disk' / 'disk.img').exists()


def privileged_allowed(client, image: str) -> bool:
    """Whether this engine may run privileged containers (not in every nested setup)."""
    container = client.containers.create(image, ['true'], privileged=True)
    try:
        container.start()
        return True
    except docker.errors.APIError:
        return False
    finally:
        container.remove(force=True)


@pytest.mark.parametrize('privileged', [False, True])
def test_privileged_gives_the_builder_what_loop_devices_need(buildout, client, busybox, privileged):
    if privileged and not privileged_allowed(client, busybox):
        pytest.skip('this engine refuses privileged containers')
    b = buildout
    b.write(buildout_config(['disk'], disk_part(
        busybox, busybox, image_file='/caps',
        build_script='grep CapEff /proc/self/status > "$IMAGE_FILE"',
        privileged=str(privileged).lower())))
    b.run('-N')
    capabilities = int((b.directory / 'parts' / 'disk' / 'caps').read_text().split()[1], 16)
    sys_admin = 1 << 21
    assert bool(capabilities & sys_admin) == privileged


@pytest.mark.slow
def test_from_debootstrap_to_an_assembled_image_to_an_ext4_disk(buildout, client):
    """The issue's "done when": every step skipped on a rerun, redone when its own input changes."""
    if not shutil.which('debootstrap'):
        pytest.skip('debootstrap is not installed (apt-get install debootstrap)')
    b = buildout
    mirror = os.environ.get('DN_DEBIAN_MIRROR', 'http://deb.debian.org/debian')
    for name, text in (('debian-layout/etc/dn-stage', 'debian-1\n'),
                       ('small-layout/etc/dn-release', 'small-1\n')):
        (b.directory / name).parent.mkdir(parents=True, exist_ok=True)
        (b.directory / name).write_text(text)
    b.write(f'''
        [buildout]
        parts = debian small disk

        [debian]
        recipe = dockeroo_nagoya:docker.bootstrap
        name = {b.prefix}/debian
        tag = bookworm
        rootfs-command = debootstrap --variant=minbase bookworm {{rootfs}} {mirror}
        layout = ${{buildout:directory}}/debian-layout
        command = /bin/bash

        [small]
        recipe = dockeroo_nagoya:docker.assemble
        name = {b.prefix}/small
        build-image = ${{debian:image}}
        packages = busybox
        post-build-script = chroot "$BUILD_ROOT" /bin/busybox --install -s /bin
        copy = /etc/dn-stage
        layout = ${{buildout:directory}}/small-layout
        command = /bin/sh -c "cat /etc/dn-stage /etc/dn-release"

        [disk]
        recipe = dockeroo_nagoya:docker.diskimage
        build-image = ${{debian:image}}
        base-image = ${{small:image}}
        build-root = /mnt/root
        image-file = /out/disk.ext4
        prepare-script = mkdir -p /out
        build-script = {MKE2FS}
        ''')
    b.run('-N')
    debian, small = f'{b.prefix}/debian:bookworm', f'{b.prefix}/small'
    disk = b.directory / 'parts' / 'disk' / 'disk.ext4'
    assert run_output(client, debian, ['cat', '/etc/debian_version']).startswith(b'12')
    assert run_output(client, small) == b'debian-1\nsmall-1\n'
    assert client.images.get(small).attrs['Size'] < client.images.get(debian).attrs['Size'] / 8
    assert debugfs(disk, 'cat /etc/dn-release') == 'small-1\n'
    assert 'busybox' in debugfs(disk, 'ls /usr/bin')  # /bin -> usr/bin, merged as in the builder

    def state() -> tuple[str, str, tuple[int, int]]:
        return image_id(client, debian), image_id(client, small), stamp(disk)

    # A rerun changes nothing.
    first = state()
    result = b.run('-N')
    assert state() == first
    assert not {'building', 'rebuilding', 'making', 'downloading'} & set(
        (result.stdout + result.stderr).split())

    # The assembled image's own input: it and the disk are made again, not the Debian image.
    (b.directory / 'small-layout' / 'etc' / 'dn-release').write_text('small-2\n')
    b.run('-N')
    second = state()
    assert second[0] == first[0] and second[1] != first[1] and second[2] != first[2]
    assert debugfs(disk, 'cat /etc/dn-release') == 'small-2\n'

    # The disk's own input: only the disk.
    b.write((b.directory / 'buildout.cfg').read_text().replace('-t ext4', '-t ext4 -L dnroot'))
    b.run('-N')
    third = state()
    assert third[:2] == second[:2] and third[2] != second[2]
    assert 'dnroot' in debugfs(disk, 'stats')

    # The Debian image's own input: everything after it too.
    (b.directory / 'debian-layout' / 'etc' / 'dn-stage').write_text('debian-2\n')
    b.run('-N')
    fourth = state()
    assert all(now != then for now, then in zip(fourth, third))
    assert run_output(client, small) == b'debian-2\nsmall-2\n'
    assert debugfs(disk, 'cat /etc/dn-stage') == 'debian-2\n'
    assert leftovers(client, b) == []
