"""docker.assemble: small images from what a builder container installs into a separate root."""
from __future__ import annotations

import io
import tarfile

import docker.errors
import pytest

from helpers import run_output, assert_one_error_at_end, buildout_config, image_id, image_part, leftovers


def files_in(client, image: str, path: str) -> dict[str, str]:
    """Regular files under ``path`` in an image, read without running it."""
    container = client.containers.create(image, command=['none'])
    try:
        chunks, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b''.join(chunks))) as tar:
            return {m.name: tar.extractfile(m).read().decode() for m in tar if m.isfile()}
    finally:
        container.remove(force=True)


@pytest.mark.slow
def test_apt_packages_make_a_small_image_that_runs(buildout, client, debian):
    b = buildout
    layout = b.directory / 'layout'
    (layout / 'etc').mkdir(parents=True)
    (layout / 'etc' / 'motd').write_text('assembled\n')
    (layout / 'srv').mkdir()
    b.write(f'''
        [buildout]
        parts = small

        [small]
        recipe = dockeroo_nagoya:docker.assemble
        name = {b.prefix}/small
        build-image = {debian}
        packages = busybox
        build-env = MARK=built
        post-build-script =
            chroot "$BUILD_ROOT" /bin/busybox --install -s /bin
            echo "$MARK" > "$BUILD_ROOT/mark"
        copy = /etc/debian_version
        layout = ${{buildout:directory}}/layout
        layout-uid = 4321
        script = /bin/busybox mkdir -p /tmp && /bin/busybox chmod 1777 /tmp
        command = /bin/sh -c "cat /etc/motd /mark && /bin/busybox stat -c %u /srv"
        env = LANG=C.UTF-8
        expose = 8080
        labels = org.example.role=small
        working-dir = /srv
        volumes = /data
        ''')
    b.run('-N')
    image = client.images.get(f'{b.prefix}/small')
    builder = client.images.get(debian)
    # The image holds busybox and its libraries, not the builder's 200 MB.
    assert image.attrs['Size'] < builder.attrs['Size'] / 8, (image.attrs['Size'], builder.attrs['Size'])
    assert run_output(client, image.id) == b'assembled\nbuilt\n4321\n'
    assert run_output(client, image.id, ['cat', '/etc/debian_version']).startswith(b'12')
    config = image.attrs['Config']
    assert 'LANG=C.UTF-8' in config['Env']
    assert config['ExposedPorts'] == {'8080/tcp': {}}
    assert config['Labels']['org.example.role'] == 'small'
    assert config['WorkingDir'] == '/srv' and config['Volumes'] == {'/data': {}}
    assert not config.get('Entrypoint')
    with pytest.raises(docker.errors.NotFound):  # the builder's tools stayed there
        files_in(client, image.id, '/usr/bin/apt-get')

    # A rerun does nothing; another package list makes the image again.
    result = b.run('-N')
    assert image_id(client, f'{b.prefix}/small') == image.id
    assert 'building' not in result.stdout + result.stderr
    b.write((b.directory / 'buildout.cfg').read_text().replace('packages = busybox',
                                                               'packages = busybox netbase'))
    result = b.run('-N')
    assert 'packages changed' in result.stdout + result.stderr
    assert run_output(client, f'{b.prefix}/small', ['cat', '/etc/protocols'])
    assert leftovers(client, b) == []


def test_gentoo_options_write_the_builders_portage_files(buildout, client, busybox):
    b = buildout
    b.write(buildout_config(['gentoo'], image_part(
        b, 'gentoo', 'docker.gentoo-build', build_image=busybox, base_image=busybox,
        use='dev-lang/python sqlite -tk\nsys-apps/busybox static',
        accept_keywords='app-misc/foo ~amd64', mask='>=dev-libs/openssl-3.2',
        unmask='dev-libs/bar', build_script='cp -r /etc/portage "$BUILD_ROOT/portage-seen"',
        assemble_script='test -d /portage-seen')))
    b.run('-N')
    found = files_in(client, f'{b.prefix}/gentoo', '/portage-seen')
    assert found == {
        'portage-seen/package.use/dockeroo-nagoya': 'dev-lang/python sqlite -tk\nsys-apps/busybox static\n',
        'portage-seen/package.accept_keywords/dockeroo-nagoya': 'app-misc/foo ~amd64\n',
        'portage-seen/package.mask/dockeroo-nagoya': '>=dev-libs/openssl-3.2\n',
        'portage-seen/package.unmask/dockeroo-nagoya': 'dev-libs/bar\n',
    }
    assert leftovers(client, b) == []


def test_portage_options_append_to_an_existing_file(buildout, client, busybox):
    b = buildout
    layout = b.directory / 'build-layout'
    (layout / 'etc' / 'portage').mkdir(parents=True)
    (layout / 'etc' / 'portage' / 'package.use').write_text('sys-libs/zlib minizip\n')
    b.write(buildout_config(['gentoo'], image_part(
        b, 'gentoo', 'docker.assemble', build_image=busybox,
        build_layout='${buildout:directory}/build-layout', use='app-editors/vim -X',
        build_script='cp /etc/portage/package.use "$BUILD_ROOT/package.use"')))
    b.run('-N')
    assert files_in(client, f'{b.prefix}/gentoo', '/package.use') == {
        'package.use': 'sys-libs/zlib minizip\napp-editors/vim -X\n'}


def test_a_copy_path_missing_in_the_builder_is_an_error_and_leaves_nothing(buildout, client, busybox):
    b = buildout
    b.write(buildout_config(['small'], image_part(
        b, 'small', 'docker.assemble', build_image=busybox,
        copy='/etc/passwd\n/nowhere/to/be/found')))
    line = assert_one_error_at_end(
        b.fail('-N'), 'small: option copy: /nowhere/to/be/found does not exist')
    assert 'builder' in line
    assert client.images.list(filters={'label': b.label}) == []
    assert leftovers(client, b) == []


def test_a_failing_build_script_is_an_error_and_leaves_nothing(buildout, client, busybox):
    b = buildout
    b.write(buildout_config(['small'], image_part(
        b, 'small', 'docker.assemble', build_image=busybox,
        build_script='echo compiling\nfalse\necho never')))
    line = assert_one_error_at_end(
        b.fail('-N'), 'small: build-script exited with code 1 in the builder')
    assert line.endswith('compiling')
    assert client.images.list(filters={'label': b.label}) == [] and leftovers(client, b) == []


def test_a_missing_build_image_is_named(buildout):
    b = buildout
    b.write(buildout_config(['small'], image_part(b, 'small', 'docker.assemble',
                                                  build_image=f'{b.prefix}/not-made-yet')))
    assert_one_error_at_end(
        b.fail('-N'), f'small: option build-image: image {b.prefix}/not-made-yet does not exist')


def test_portage_options_with_apt_are_refused(buildout):
    b = buildout
    b.write('''
        [buildout]
        parts = small

        [small]
        recipe = dockeroo_nagoya:docker.assemble
        build-image = debian
        package-manager = apt
        use = dev-lang/python sqlite
        ''')
    assert_one_error_at_end(
        b.fail('-N'), 'small: option use: expected nothing with package-manager = apt')


def test_a_throwaway_container_goes_away_even_on_keyboard_interrupt(client, busybox):
    import os

    from dockeroo_nagoya.engine.driver import EngineConfig
    from dockeroo_nagoya.run.ownership import Owner
    from dockeroo_nagoya.run.runstate import Run
    from dockeroo_nagoya.mechanisms.throwaway import PREFIX, Throwaway

    engine = Run(Owner(os.getcwd())).engine(EngineConfig(), 'test')
    labels = {'io.dockeroo-nagoya.test': 'throwaway'}
    with pytest.raises(KeyboardInterrupt):
        with Throwaway(engine, busybox, 'a part/with odd name', labels) as box:
            assert box.name.startswith(PREFIX + 'a_part_with_odd_name-')
            box.run('sleepy script', 'echo started')
            raise KeyboardInterrupt
    assert client.containers.list(all=True, filters={'name': box.name}) == []
