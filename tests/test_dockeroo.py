"""dockeroo's documented examples, with the egg renamed, on local images.

Each buildout is dockeroo's own example (its docstrings), with ``dockeroo``
replaced by ``dockeroo_nagoya`` and, where it names a Docker Hub image or a
remote URL, a local one; names carry the test's prefix so that tests running
at the same time never meet.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import subprocess
import tarfile
import threading
import uuid

import docker
import docker.errors
import pytest

from conftest import REGISTRY_PASSWORD, REGISTRY_USER
from helpers import run_output, git, ids

pytestmark = pytest.mark.slow


def quiet_reruns(b, times: int = 2, env: dict[str, str] | None = None) -> None:
    """Unchanged reruns: nothing installed or uninstalled, the same objects."""
    before = ids(b.client, b)
    for _ in range(times):
        out = b.run('-N', env=env).stdout
        assert 'Installing' not in out and 'Uninstalling' not in out, out
        assert ids(b.client, b) == before


def local_image(client, tag: str, dockerfile: str, tmp_path) -> str:
    context = tmp_path / f'ctx-{uuid.uuid4().hex[:6]}'
    context.mkdir()
    (context / 'Dockerfile').write_text(dockerfile)
    image, _ = client.images.build(path=str(context), tag=tag, rm=True,
                                   labels={'io.dockeroo-nagoya.test': '1'})
    return image.id


@pytest.fixture
def nginx(client, busybox, tmp_path):
    """A local stand-in for Docker Hub's nginx: a busybox httpd that keeps running."""
    tag = f'dnt-{uuid.uuid4().hex[:8]}/nginx:latest'
    local_image(client, tag, f'FROM {busybox}\nCMD ["httpd", "-f", "-p", "80"]\n', tmp_path)
    yield tag
    with contextlib.suppress(docker.errors.APIError):
        client.images.remove(tag, force=True)


def test_run_example_container_names_the_container(buildout, client, nginx):
    b = buildout
    config = '''
        [buildout]
        parts = nginx

        [nginx]
        recipe = dockeroo_nagoya:docker.run
        container = {name}
        image = {image}
        {extra}
        '''
    b.write(config.format(name=f'{b.prefix}-nginx', image=nginx, extra=''))
    b.run('-N')
    container = client.containers.get(f'{b.prefix}-nginx')
    assert container.status == 'running'
    assert not client.containers.list(all=True, filters={'name': '^/nginx$', 'label': b.label})
    quiet_reruns(b)
    b.write(config.format(name=f'{b.prefix}-nginx', image=nginx, extra='env = A=1'))
    b.run('-N')
    assert client.containers.get(f'{b.prefix}-nginx').id != container.id
    quiet_reruns(b)
    b.write(config.format(name=f'{b.prefix}-nginx', image=nginx, extra=f'name = {b.prefix}-x'))
    assert 'nginx: option container is the old name of name: give only one' in b.fail('-N')


def test_docker_machine_name_is_the_default_machine_name(buildout, client, tmp_path):
    b = buildout
    config_dir = tmp_path / 'docker-config'
    config_dir.mkdir()
    (config_dir / 'config.json').write_text('{}')
    context = f'dnt-{uuid.uuid4().hex[:8]}'
    env = {'DOCKER_CONFIG': str(config_dir), 'DOCKER_MACHINE_NAME': context}
    b.write(f'''
        [buildout]
        parts = distfiles_volume

        [distfiles_volume]
        recipe = dockeroo_nagoya:docker.volume
        name = {b.prefix}-distfiles
        keep = true
        ''')
    # No such context and no DOCKER_HOST: one line naming the variable.
    out = b.fail('-N', env=env)
    assert (f"distfiles_volume: option machine-name: its default, DOCKER_MACHINE_NAME='{context}', "
            f"names no Docker context") in out
    assert 'Traceback' not in out
    subprocess.run(['docker', 'context', 'create', context, '--docker',
                    'host=unix:///var/run/docker.sock'], check=True, capture_output=True,
                   env={'DOCKER_CONFIG': str(config_dir), 'PATH': '/usr/local/bin:/usr/bin:/bin'})
    b.run('-N', env=env)
    assert client.volumes.get(f'{b.prefix}-distfiles')
    assert f'machine-name = {context}' in (b.directory / '.installed.cfg').read_text()
    quiet_reruns(b, env=env)


def test_build_example_source_is_a_git_repository(buildout, client, busybox, tmp_path):
    b = buildout
    repo = tmp_path / 'ubuntu'
    (repo / 'docker').mkdir(parents=True)
    git('init', '-q', '-b', 'main', cwd=repo)
    (repo / 'docker' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo one > /version\n')
    git('add', '.', cwd=repo)
    git('commit', '-q', '-m', 'one', cwd=repo)
    config = '''
        [buildout]
        parts = ubuntu

        [ubuntu]
        recipe = dockeroo_nagoya:docker.build
        name = {prefix}/ubuntu
        source = {source}
        '''
    b.write(config.format(prefix=b.prefix, source=f'git+file://{repo}#main:docker'))
    out = b.run().stdout
    image = f'{b.prefix}/ubuntu:latest'
    assert run_output(client, image, 'cat /version') == b'one\n'
    commit = git('rev-parse', 'HEAD', cwd=repo).strip()
    assert f'source-revision = git:{commit}' in (b.directory / '.installed.cfg').read_text()
    first = client.images.get(image).id
    for args in ((), ('-N',)):   # newest mode asks the repository; -N does not
        out = b.run(*args).stdout
        assert 'Installing' not in out and 'building' not in out, out
        assert client.images.get(image).id == first

    # A new commit: built again, once.
    (repo / 'docker' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo two > /version\n')
    git('commit', '-q', '-am', 'two', cwd=repo)
    assert 'building' not in b.run('-N').stdout, '-N keeps the fetched commit'
    assert client.images.get(image).id == first, '-N does not ask the repository'
    b.run()
    assert run_output(client, image, 'cat /version') == b'two\n'
    second = client.images.get(image).id
    out = b.run().stdout
    assert 'building' not in out and client.images.get(image).id == second

    # A ref that does not exist: one line from git.
    b.write(config.format(prefix=b.prefix, source=f'git+file://{repo}#nosuchbranch'))
    out = b.fail()
    assert 'ubuntu: option source: git fetch of' in out and 'Traceback' not in out


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_build_source_is_a_tarball_url(buildout, client, busybox, tmp_path):
    b = buildout
    served = tmp_path / 'served'
    served.mkdir()
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{server.server_address[1]}/context.tar.gz'

    def publish(version: str) -> None:
        (tmp_path / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo {version} > /version\n')
        with tarfile.open(served / 'context.tar.gz', 'w:gz') as tar:
            tar.add(tmp_path / 'Dockerfile', 'Dockerfile')

    try:
        publish('one')
        b.write(f'''
            [buildout]
            parts = app

            [app]
            recipe = dockeroo_nagoya:docker.build
            name = {b.prefix}/app
            source = {url}
            ''')
        b.run()
        image = f'{b.prefix}/app:latest'
        assert run_output(client, image, 'cat /version') == b'one\n'
        first = client.images.get(image).id
        for args in ((), ('-N',)):
            out = b.run(*args).stdout
            assert 'Installing' not in out and 'building' not in out, out
        assert client.images.get(image).id == first
        publish('two')
        b.run()
        assert run_output(client, image, 'cat /version') == b'two\n'
        assert 'building' not in b.run().stdout
    finally:
        server.shutdown()
        server.server_close()


def test_gentoo_bootstrap_example_image_names_the_image_it_makes(buildout, client, busybox, tmp_path):
    b = buildout
    # The stage3 tarball's stand-in: busybox's root filesystem.
    container = client.containers.create(busybox, 'true')
    try:
        with open(tmp_path / 'stage3.tar', 'wb') as out:
            for chunk in container.export():
                out.write(chunk)
    finally:
        container.remove()
    (b.directory / 'containers' / 'builder_x86_64' / 'etc').mkdir(parents=True)
    (b.directory / 'containers' / 'builder_x86_64' / 'etc' / 'locale.gen').write_text('C.UTF-8\n')
    config = f'''
        [buildout]
        parts = distfiles crossdev_builder.img
        containers-directory = ${{buildout:directory}}/containers

        [distfiles]
        recipe = dockeroo_nagoya:docker.run
        container = {b.prefix}-distfiles
        image = {busybox}
        command = sleep 3600
        volumes = /usr/portage/distfiles

        [crossdev_builder.img]
        crossdev-arch = x86_64
        crossdev-platform = x86_64
        recipe = dockeroo_nagoya:docker.gentoo-bootstrap
        image = {b.prefix}/builder_${{:crossdev-arch}}:latest
        container = {b.prefix}_builder_${{:crossdev-arch}}
        volumes-from = ${{distfiles:container}}
        archives =
            {tmp_path}/stage3.tar
        commit = true
        keep = true
        layout = ${{buildout:containers-directory}}/builder_${{:crossdev-arch}}
        build-script =
            test -f /etc/locale.gen
            ls /usr/portage/distfiles > /distfiles-seen
            echo {{version}} > /built
        '''
    b.write(config.replace('{version}', 'one'))
    b.run('-N')
    image = f'{b.prefix}/builder_x86_64:latest'
    assert run_output(client, image, 'cat /built /etc/locale.gen') == b'one\nC.UTF-8\n'
    assert not client.images.list(name='crossdev_builder.img')
    quiet_reruns(b)
    b.write(config.replace('{version}', 'two'))
    b.run('-N')
    assert run_output(client, image, 'cat /built') == b'two\n'
    quiet_reruns(b)


def test_copy_network_and_volume_examples(buildout, client, busybox, tmp_path):
    b = buildout
    base = f'{b.prefix}/src:latest'
    local_image(client, base, f'FROM {busybox}\nRUN mkdir -p /lib && echo libc > /lib/libc.so\n',
                tmp_path)
    net = b.subnet_base
    b.write(f'''
        [buildout]
        parts = distfiles_volume internal_network src dst copy_part

        [distfiles_volume]
        recipe = dockeroo_nagoya:docker.volume
        name = {b.prefix}-distfiles
        keep = true

        [internal_network]
        recipe = dockeroo_nagoya:docker.network
        name = {b.prefix}-internal
        subnet = {net}.0/24
        gateway = {net}.1
        ip-range = {net}.128/25
        keep = true

        [src]
        recipe = dockeroo_nagoya:docker.run
        container = {b.prefix}-src
        image = {base}
        command = sleep 3600

        [dst]
        recipe = dockeroo_nagoya:docker.run
        container = {b.prefix}-dst
        image = {busybox}
        command = sleep 3600
        networks = ${{internal_network:name}}
        volumes = ${{distfiles_volume:name}}:/distfiles

        [copy_part]
        recipe = dockeroo_nagoya:docker.copy
        container-from = ${{src:name}}
        container-to = ${{dst:name}}
        paths =
            /lib/
            /bin/sh
            /bin/sh /bin/bash
        ''')
    try:
        b.run('-N')
        dst = client.containers.get(f'{b.prefix}-dst')
        assert dst.exec_run('cat /lib/libc.so').output == b'libc\n'
        # busybox's /bin/sh is a link to busybox: /bin/bash is the same link.
        assert dst.exec_run('readlink /bin/bash').output == dst.exec_run('readlink /bin/sh').output
        network = client.networks.get(f'{b.prefix}-internal')
        assert network.attrs['IPAM']['Config'][0]['IPRange'] == f'{net}.128/25'
        quiet_reruns(b)
        # keep = true: removing the parts leaves the volume and the network.
        b.write('[buildout]\nparts =\n')
        b.run('-N')
        assert client.volumes.get(f'{b.prefix}-distfiles')
        assert client.networks.get(f'{b.prefix}-internal')
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(base, force=True)


def test_push_and_pull_examples(buildout, client, busybox, auth_registry, tmp_path):
    b = buildout
    my_image = f'{b.prefix}/my_image:latest'
    local_image(client, my_image, f'FROM {busybox}\nRUN echo pushed > /what\n', tmp_path)
    remote = f'{auth_registry}/{b.prefix}/my_image'
    env = {'DN_TEST_REGISTRY_PASSWORD': REGISTRY_PASSWORD, 'DOCKER_CONFIG': str(tmp_path / 'dc')}
    config = f'''
        [buildout]
        parts = {{parts}}

        [my_image_push]
        recipe = dockeroo_nagoya:docker.push
        image = {my_image}
        tags = {remote}:latest
        username = {REGISTRY_USER}
        password-env = DN_TEST_REGISTRY_PASSWORD

        [ubuntu]
        recipe = dockeroo_nagoya:docker.pull
        image = {remote}
        username = {REGISTRY_USER}
        password-env = DN_TEST_REGISTRY_PASSWORD
        '''
    try:
        b.write(config.format(parts='my_image_push'))
        assert 'pushing' in b.run('-N', env=env).stdout
        client.images.remove(f'{remote}:latest')
        b.write(config.format(parts='my_image_push ubuntu'))
        b.run(env=env)
        assert run_output(client, f'{remote}:latest', 'cat /what') == b'pushed\n'
        for _ in range(2):
            out = b.run(env=env).stdout
            assert 'pushing' not in out and 'pulling' not in out and 'Installing' not in out, out
    finally:
        for ref in (my_image, f'{remote}:latest'):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(ref, force=True)
