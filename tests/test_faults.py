"""Faults injected into real buildout runs: the next plain run finishes, nothing is orphaned, no byte lost.

Each case runs ``bin/buildout`` with one engine call broken (see
``tests/faults/sitecustomize.py``): an engine error, a connection lost after
the engine acted, the process killed before or after a call, or in the middle
of a streamed one (a build, a push, an archive going in or out). Then a
plain rerun must complete, and afterwards the objects labelled with the
buildout are exactly what the configuration describes: no throwaway or
helper container, no untagged image, nothing of a part ``.installed.cfg``
does not know. Volume content is compared byte for byte, or restored from
the backup archive and compared. The session ends with a line counting the
injected faults.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tarfile
import textwrap
import time
import urllib.error
import urllib.request

import docker.errors
import pytest

from faults.harness import assert_clean, fault_env, inject, installed_parts, tally
from helpers import (run_output, assert_one_error, buildout_config, busybox_tarball, container_part,
                     context_build_part, disk_part, member_part, system_part,
                     force_reinstall, image_part, network_part, put_in_volume, section,
                     volume_digest, volume_part, write_volume_file)

pytestmark = pytest.mark.slow

KILL_MID_STREAM = 2


@pytest.fixture
def counter(request):
    return tally(request.config)


def cycle(b, client, counter, rule: str, expected: set[str], *, args: tuple[str, ...] = ('-N',),
          after: str | None = None, env: dict[str, str] | None = None):
    """Inject ``rule``, rerun plainly (with ``after`` as the configuration), check for orphans."""
    faulted = inject(b, rule, *args, counter=counter, env=env)
    if after is not None:
        b.write(after)
    b.run(*args, env=env)
    assert_clean(client, b, expected)
    counter.add('faults recovered')
    return faulted


# -- docker.volume: install, recreate (new labels), removal with keep = false -------------------
def volume_cfg(b, labels: str = 'tier=one', parts: str = 'data') -> str:
    return buildout_config(parts.split(), volume_part(b, labels=labels, keep='false'))


def fill(client, volume: str) -> str:
    """Some bytes worth keeping: a large file (several archive chunks), a small private one."""
    write_volume_file(client, volume, 'db/large.bin', os.urandom(300_000), uid=999, mode=0o600)
    write_volume_file(client, volume, 'db/small.txt', b'precious\n', uid=33, mode=0o644)
    return volume_digest(client, volume)


def newest_archive(b, volume: str):
    archives = sorted((b.directory / 'var' / 'backups').glob(f'{volume}-*.tar'))
    assert archives, 'no archive was made'
    return archives[-1]


def restored_digest(client, b, archive) -> str:
    """The archive unpacked into a fresh volume, as the user would restore it, and its digest."""
    name = f'{b.prefix}-check'
    client.volumes.create(name)
    try:
        put_in_volume(client, name, archive.read_bytes())
        return volume_digest(client, name)
    finally:
        client.volumes.get(name).remove()


def test_volume_install_killed_after_create(buildout, client, counter):
    b = buildout
    b.write(volume_cfg(b))
    cycle(b, client, counter, 'POST /volumes/create:killafter', {f'volume:{b.prefix}-data'})


@pytest.mark.parametrize('rule', [
    'GET /containers/[^/]+/archive:kill@1',   # in the middle of the backup
    'DELETE /volumes/:killafter',                               # old one gone, new one not made
    f'PUT /containers/[^/]+/archive:kill@up{KILL_MID_STREAM}',   # in the middle of the restore
])
def test_volume_recreate_loses_no_byte(buildout, client, counter, rule):
    b = buildout
    volume = f'{b.prefix}-data'
    b.write(volume_cfg(b))
    b.run('-N')
    before = fill(client, volume)
    b.write(volume_cfg(b, labels='tier=two'))
    cycle(b, client, counter, rule, {f'volume:{volume}'})
    assert client.volumes.get(volume).attrs['Labels']['tier'] == 'two'
    assert volume_digest(client, volume) == before


@pytest.mark.parametrize('rule', [
    'GET /containers/[^/]+/archive:kill@1',   # in the middle of the backup
    'DELETE /volumes/:killafter',
])
def test_volume_removal_with_keep_false_loses_no_byte(buildout, client, counter, rule):
    b = buildout
    volume = f'{b.prefix}-data'
    b.write(volume_cfg(b))
    b.run('-N')
    before = fill(client, volume)
    b.write(volume_cfg(b, parts=''))
    cycle(b, client, counter, rule, set())
    archive = newest_archive(b, volume)
    assert oct(archive.stat().st_mode & 0o777) == '0o600'
    assert restored_digest(client, b, archive) == before


def test_volume_data_survives_reinstalls_and_new_driver_opts(buildout, client):
    """No fault: a reinstall of every part, then driver options that need a new volume."""
    b = buildout
    volume = f'{b.prefix}-data'
    b.write(volume_cfg(b))
    b.run('-N')
    fill(client, volume)
    before = volume_digest(client, volume, root=False)
    force_reinstall(b)
    b.run('-N')
    assert volume_digest(client, volume, root=False) == before
    # Now the data is to live in a directory of the host (the local driver's bind).
    host = b.directory / 'volume-data'
    host.mkdir()
    b.write(volume_cfg(b).replace('keep = false', 'keep = false\ndriver-opts =\n'
                                  f'    type=none\n    o=bind\n    device={host}'))
    out = b.run('-N')
    assert 'driver-opts changed' in out.stdout
    assert client.volumes.get(volume).attrs['Options'] == {
        'type': 'none', 'o': 'bind', 'device': str(host)}
    assert volume_digest(client, volume, root=False) == before
    assert (host / 'db' / 'small.txt').read_bytes() == b'precious\n'


# -- docker.network: install, and a recreate with a container on it ----------------------------
def subnets(b) -> str:
    """A /24 of the fault tests' own (10.231.X), apart from the 10.232/233 ones of other tests."""
    return f'10.231.{int(b.prefix[4:6], 16)}'


def network_cfg(b, busybox: str, subnet: str) -> str:
    return buildout_config(
        ['net', 'web'], network_part(b, subnet=subnet),
        container_part(b, 'web', busybox, init='true', stop_timeout='1', command='httpd -f -p 80',
                       networks='${net:name}', network_aliases='www'))


def test_network_install_whose_answer_is_lost(buildout, client, busybox, counter):
    b = buildout
    b.write(network_cfg(b, busybox, f'{subnets(b)}.0/26'))
    cycle(b, client, counter, 'POST /networks/create:lost',
          {f'network:{b.prefix}-net', f'container:{b.prefix}-web'})


@pytest.mark.parametrize('rule', [
    'DELETE /networks/:killafter',
    'POST /networks/[^/]+/disconnect:killafter',
])
def test_network_recreate_reconnects_its_containers(buildout, client, busybox, counter, rule):
    b = buildout
    b.write(network_cfg(b, busybox, f'{subnets(b)}.0/26'))
    b.run('-N')
    b.write(network_cfg(b, busybox, f'{subnets(b)}.64/26'))
    cycle(b, client, counter, rule, {f'network:{b.prefix}-net', f'container:{b.prefix}-web'})
    networks = client.api.inspect_container(f'{b.prefix}-web')['NetworkSettings']['Networks']
    assert f'{b.prefix}-net' in networks, 'the container is back on its network'
    assert 'www' in networks[f'{b.prefix}-net']['Aliases']
    config = client.api.inspect_network(f'{b.prefix}-net')['IPAM']['Config']
    assert config[0]['Subnet'] == f'{subnets(b)}.64/26'


# -- docker.run: create, layout, start, script, gates, callbacks, jobs ---------------------------
HOOKS = '''
import os

def maybe_boom(container):
    if os.path.exists(os.path.join(os.path.dirname(__file__), 'boom')):
        raise RuntimeError('the credentials are not there yet')
'''


def run_cfg(b, busybox: str, parts: str = 'web', extra: str = '') -> str:
    layout = b.directory / 'layout' / 'www'
    if not layout.exists():
        layout.mkdir(parents=True)
        (layout / 'index.html').write_text('laid out\n')
        (b.directory / 'hooks.py').write_text(HOOKS)
        (b.directory / 'flags').mkdir()
    return buildout_config(parts.split(), container_part(
        b, 'web', busybox, init='true', stop_timeout='1', command='httpd -f -p 80 -h /www',
        layout='${buildout:directory}/layout', script='echo ran >> /tmp/script.log',
        wait_for='exec:test -f /www/index.html',
        callbacks='post-start = hooks:maybe_boom')) + textwrap.dedent(extra)


def assert_web_is_whole(client, b) -> None:
    """Running, laid out, its script run exactly once."""
    container = client.containers.get(f'{b.prefix}-web')
    assert container.status == 'running'
    assert container.exec_run(['cat', '/www/index.html']).output == b'laid out\n'
    assert container.exec_run(['cat', '/tmp/script.log']).output == b'ran\n'


@pytest.mark.parametrize('rule', [
    'POST /containers/create:killafter',          # made, never laid out nor started
    'PUT /containers/[^/]+/archive:kill',         # before the layout
    'POST /containers/[^/]+/start:error',
    'POST /containers/[^/]+/start:killafter',     # started, never gated, script never run
    'POST /exec/[^/]+/start#2:kill',              # the gate passed, the script's exec killed
])
def test_run_install(buildout, client, busybox, counter, rule):
    b = buildout
    b.write(run_cfg(b, busybox))
    cycle(b, client, counter, rule, {f'container:{b.prefix}-web'})
    assert_web_is_whole(client, b)


def test_run_gate_that_times_out_then_passes(buildout, client, busybox, counter):
    b = buildout
    config = run_cfg(b, busybox).replace(
        'wait-for = exec:test -f /www/index.html',
        'wait-for = exec:test -f /flags/ready\nwait-timeout = 1s\nvolumes = ./flags:/flags:ro')
    b.write(config)
    out = b.fail('-N')
    assert 'option wait-for: exec:test -f /flags/ready did not pass within 1s' in assert_one_error(out)
    counter.add('faults injected')
    (b.directory / 'flags' / 'ready').write_text('')
    b.run('-N')
    assert_clean(client, b, {f'container:{b.prefix}-web'})
    assert_web_is_whole(client, b)
    counter.add('faults recovered')


def test_run_callback_that_raises_then_passes(buildout, client, busybox, counter):
    b = buildout
    b.write(run_cfg(b, busybox))
    (b.directory / 'boom').write_text('')
    out = b.fail('-N')
    assert 'callback post-start = hooks:maybe_boom failed' in assert_one_error(out)
    assert_clean(client, b, set())
    counter.add('faults injected')
    (b.directory / 'boom').unlink()
    b.run('-N')
    assert_clean(client, b, {f'container:{b.prefix}-web'})
    assert_web_is_whole(client, b)
    counter.add('faults recovered')


def test_run_update_that_fails_is_repaired(buildout, client, busybox, counter):
    """A failed update makes buildout forget the part; the next install adopts the container."""
    b = buildout
    b.write(run_cfg(b, busybox))
    b.run('-N')
    client.api.stop(f'{b.prefix}-web', timeout=1)
    cycle(b, client, counter, 'POST /containers/[^/]+/start:error', {f'container:{b.prefix}-web'})
    assert client.containers.get(f'{b.prefix}-web').status == 'running'


def test_forgotten_part_removed_from_the_configuration_leaves_no_orphan(
        buildout, client, busybox, counter):
    """The orphan sweep: buildout dropped the part after its failed update, then it was removed."""
    b = buildout
    kept = '\n' + section('data', 'docker.volume', name=f'{b.prefix}-kept')
    b.write(run_cfg(b, busybox, parts='web data', extra=kept))
    b.run('-N')
    client.api.stop(f'{b.prefix}-web', timeout=1)
    faulted = inject(b, 'POST /containers/[^/]+/start:error', counter=counter)
    assert 'web' not in installed_parts(b), faulted.output
    b.write(run_cfg(b, busybox, parts='data', extra=kept))
    out = b.run('-N')
    assert f'removed container {b.prefix}-web: its part web is neither installed nor configured' \
        in out.stdout + out.stderr
    assert_clean(client, b, {f'volume:{b.prefix}-kept'})
    counter.add('faults recovered')


def test_orphan_volume_is_reported_never_removed(buildout, client, counter):
    b = buildout
    b.write(volume_cfg(b))
    inject(b, 'POST /volumes/create:killafter', counter=counter)
    write_volume_file(client, f'{b.prefix}-data', 'kept.txt', b'data is never destroyed silently')
    before = volume_digest(client, f'{b.prefix}-data')
    b.write(volume_cfg(b, parts='other') + '\n' + network_part(b, 'other'))
    out = b.run('-N')
    assert f'volume {b.prefix}-data belongs to part data, which is neither installed nor ' \
        f'configured; its data is kept: remove it with docker volume rm {b.prefix}-data' \
        in out.stdout + out.stderr
    assert volume_digest(client, f'{b.prefix}-data') == before
    counter.add('faults recovered')


def test_what_a_removed_part_kept_on_purpose_is_no_orphan(buildout, client, busybox):
    b = buildout
    volume = '\n' + volume_part(b)
    b.write(run_cfg(b, busybox, parts='web net data', extra='keep = true\n\n'
                    + network_part(b, keep='true') + volume))
    b.run('-N')
    b.write(run_cfg(b, busybox, parts='data', extra=volume))
    assert 'keeping container' in b.run('-N').stdout
    out = b.run('-N')  # the sweep runs, and leaves what keep = true kept
    assert 'removed' not in out.stdout + out.stderr
    assert_clean(client, b, {f'container:{b.prefix}-web', f'network:{b.prefix}-net',
                             f'volume:{b.prefix}-data'}, installed=False)


def test_job_killed_while_it_runs_runs_once(buildout, client, busybox, counter):
    b = buildout
    b.write(buildout_config(['data', 'job'], volume_part(b), container_part(
        b, 'job', busybox, job='true', volumes='${data:name}:/data',
        command="sh -c 'sleep 1; echo once >> /data/runs'")))
    cycle(b, client, counter, 'POST /containers/[^/]+/wait:kill',
          {f'volume:{b.prefix}-data', f'container:{b.prefix}-job'})
    runs = run_output(client, busybox, ['cat', '/data/runs'],
                                 volumes={f'{b.prefix}-data': {'bind': '/data', 'mode': 'ro'}})
    assert runs == b'once\n'


# -- docker.copy -------------------------------------------------------------------------------
def copy_cfg(b, busybox: str) -> str:
    conf = b.directory / 'conf'
    if not conf.exists():
        conf.mkdir()
        (conf / 'large.bin').write_bytes(os.urandom(400_000))
        (conf / 'app.conf').write_text('colour = blue\n')
    return buildout_config(
        ['target', 'in', 'out'],
        container_part(b, 'target', busybox, init='true', stop_timeout='1',
                       command='httpd -f -p 80'),
        section('in', 'docker.copy', container_to='${target:name}', paths='conf/ /etc/app/'),
        section('out', 'docker.copy', container_from='${in:container-to}',
                paths='/etc/app/ copied/'))


@pytest.mark.parametrize('rule', [
    f'PUT /containers/[^/]+/archive:kill@up{KILL_MID_STREAM}',
    'GET /containers/[^/]+/archive:kill@1',
])
def test_copy(buildout, client, busybox, counter, rule):
    b = buildout
    b.write(copy_cfg(b, busybox))
    cycle(b, client, counter, rule, {f'container:{b.prefix}-target'})
    for name in ('large.bin', 'app.conf'):
        assert (b.directory / 'copied' / name).read_bytes() == \
            (b.directory / 'conf' / name).read_bytes()


# -- images: docker.build, docker.bootstrap, docker.assemble, docker.image ---------------------
def build_cfg(b, busybox: str, version: str = 'one') -> str:
    context = b.directory / 'app'
    context.mkdir(exist_ok=True)
    (context / 'Dockerfile').write_text(
        f'FROM {busybox}\nCOPY version.txt /version.txt\nRUN cat /version.txt > /copy\n'
        'RUN echo built > /built\n')
    (context / 'version.txt').write_text(version + '\n')
    return buildout_config(['app'], context_build_part(b))


@pytest.mark.parametrize('rule', [
    'POST /build:kill@3',                  # in the middle of the build
    'POST /build:error@3',
    'POST /images/[^/]+/tag:kill',         # built, never tagged
])
def test_build(buildout, client, busybox, counter, rule):
    b = buildout
    b.write(build_cfg(b, busybox))
    cycle(b, client, counter, rule, {f'image:{b.prefix}/app:latest'})
    assert run_output(client, f'{b.prefix}/app', ['cat', '/copy']) == b'one\n'


def test_rebuild_whose_old_image_cannot_be_removed_leaves_no_orphan(buildout, client, busybox,
                                                                    counter):
    b = buildout
    b.write(build_cfg(b, busybox))
    b.run('-N')
    b.write(build_cfg(b, busybox, version='two'))
    log = b.directory.parent / 'tolerated.log'
    result = b.run('-N', env=fault_env('DELETE /images/:error', log))
    assert log.read_text(), 'the fault fired'
    assert result.returncode == 0, 'an old image that stays is no failure'
    counter.add('faults injected')
    b.run('-N')
    assert_clean(client, b, {f'image:{b.prefix}/app:latest'})
    counter.add('faults recovered')


def bootstrap_cfg(b) -> str:
    busybox_tarball(b.directory / 'root.tar', {'etc/release': 'one\n'})
    return buildout_config(['base'], image_part(b, 'base', 'docker.bootstrap', archives='root.tar',
                                                script='echo scripted > /scripted'))


@pytest.mark.parametrize('rule', [
    'POST /images/create:kill@up2',         # in the middle of the import
    'POST /commit:kill',                    # imported and scripted, never committed
])
def test_bootstrap(buildout, client, counter, rule):
    b = buildout
    b.write(bootstrap_cfg(b))
    cycle(b, client, counter, rule, {f'image:{b.prefix}/base:latest'})
    assert run_output(client, f'{b.prefix}/base', ['busybox', 'cat', '/scripted', '/etc/release']) == b'scripted\none\n'


def assemble_cfg(b, busybox: str) -> str:
    return buildout_config(['small'], image_part(
        b, 'small', 'docker.assemble', build_image=busybox,
        build_script='mkdir -p "$BUILD_ROOT/bin"\ncp /bin/busybox "$BUILD_ROOT/bin/busybox"\n'
                     'ln -s busybox "$BUILD_ROOT/bin/sh"\nln -s busybox "$BUILD_ROOT/bin/cat"',
        script='echo assembled > /mark', script_shell='/bin/sh'))


@pytest.mark.parametrize('rule', [
    'POST /exec/[^/]+/start#2:kill',                        # the builder's script
    f'PUT /containers/[^/]+/archive:kill@up{KILL_MID_STREAM}',  # the root going into the image
])
def test_assemble(buildout, client, busybox, counter, rule):
    b = buildout
    b.write(assemble_cfg(b, busybox))
    cycle(b, client, counter, rule, {f'image:{b.prefix}/small:latest'})
    assert run_output(client, f'{b.prefix}/small', ['cat', '/mark']) == \
        b'assembled\n'


def test_image_from_options_killed_mid_build(buildout, client, busybox, counter):
    b = buildout
    (b.directory / 'setup.sh').write_text('#!/bin/sh\necho moromi > /made\n')
    b.write(buildout_config(['img'], image_part(b, 'img', 'docker.image', **{'from': busybox},
                                                runs='setup.sh in /opt/setup')))
    cycle(b, client, counter, 'POST /build:kill@2', {f'image:{b.prefix}/img:latest'})
    assert run_output(client, f'{b.prefix}/img', ['cat', '/made']) == b'moromi\n'


def test_temporary_killed_after_its_commit(buildout, client, busybox, counter):
    b = buildout
    b.write(buildout_config(['sys'], section('sys', 'docker.temporary', **{'from': busybox},
                                             name=f'{b.prefix}/root', commit='true',
                                             script='echo done > /root-done.txt')))
    cycle(b, client, counter, 'POST /commit:killafter', {f'image:{b.prefix}/root:latest'})
    assert run_output(client, f'{b.prefix}/root', ['cat', '/root-done.txt']) == \
        b'done\n'


# -- docker.diskimage --------------------------------------------------------------------------
@pytest.mark.parametrize('rule', [
    'GET /containers/[^/]+/archive:kill@1',   # the file coming out
])
def test_diskimage(buildout, client, busybox, counter, rule):
    b = buildout
    b.write(buildout_config(['disk'], disk_part(
        busybox, busybox, image_file='/out/disk.tar', prepare_script='mkdir -p /out',
        build_script='tar -cf "$IMAGE_FILE" -C "$BUILD_ROOT" .')))
    cycle(b, client, counter, rule, set())
    disk = b.directory / 'parts' / 'disk' / 'disk.tar'
    with tarfile.open(disk) as tar:
        assert './bin/busybox' in tar.getnames()
    assert [p.name for p in disk.parent.iterdir() if '.part' in p.name] == []


# -- docker.system -----------------------------------------------------------------------------
def system_cfg(b, busybox: str) -> str:
    return buildout_config(
        ['sys'], system_part(['a', 'b', 'c']),
        *(member_part(b, name, busybox, init='true', stop_timeout='1', command='httpd -f -p 80',
                      wait_for='tcp:80', **extra)
          for name, extra in (('a', {}), ('b', {'links': 'a'}), ('c', {'depends': 'b'}))))


@pytest.mark.parametrize('rule', [
    'POST /containers/create#2:killafter',
])
def test_system(buildout, client, busybox, counter, rule):
    b = buildout
    b.write(system_cfg(b, busybox))
    cycle(b, client, counter, rule, {f'container:{b.prefix}-{n}' for n in 'abc'})
    for name in 'abc':
        assert client.containers.get(f'{b.prefix}-{name}').status == 'running'


# -- docker.commit and docker.persist ----------------------------------------------------------
def commit_cfg(b, busybox: str, recipe: str = 'docker.commit') -> str:
    return buildout_config(
        ['data', 'app', 'saved'], volume_part(b),
        container_part(b, 'app', busybox, command='sleep 3600', init='true', stop_timeout='1',
                       volumes='${data:name}:/data',
                       script='echo state > /state.txt; echo volume > /data/v.txt'),
        image_part(b, 'saved', recipe, container='${app:name}'))


@pytest.mark.parametrize('recipe, rule', [
    ('docker.commit', 'POST /commit:killafter'),      # committed, never tagged
    ('docker.persist', 'POST /build:kill@2'),        # the volumes' content going in
])
def test_commit_and_persist(buildout, client, busybox, counter, recipe, rule):
    b = buildout
    b.write(commit_cfg(b, busybox, recipe))
    cycle(b, client, counter, rule, {f'volume:{b.prefix}-data', f'container:{b.prefix}-app',
                                     f'image:{b.prefix}/saved:latest'})
    wanted = b'state\n' + (b'volume\n' if recipe == 'docker.persist' else b'')
    command = ['cat', '/state.txt'] + (['/data/v.txt'] if recipe == 'docker.persist' else [])
    assert run_output(client, f'{b.prefix}/saved', command) == wanted


# -- docker.pull and docker.push through a registry --------------------------------------------
@pytest.fixture
def pushed(client, busybox, registry):
    """busybox in the registry under a name of the test's own; the local copy removed."""
    reference = f'{registry}/dnt-fault/busybox:one'
    client.images.get(busybox).tag(reference)
    client.images.push(reference)
    client.images.remove(reference)
    yield reference
    with contextlib.suppress(docker.errors.APIError):
        client.images.remove(reference, force=True)


@pytest.mark.parametrize('rule', [
    f'POST /images/create:kill@{KILL_MID_STREAM}',
])
def test_pull(buildout, client, counter, pushed, rule):
    b = buildout
    b.write(buildout_config(['base'], section('base', 'docker.pull', image=pushed)))
    cycle(b, client, counter, rule, set(), args=())
    assert client.images.get(pushed)


def manifest_exists(registry: str, repository: str, tag: str) -> bool:
    request = urllib.request.Request(
        f'http://{registry}/v2/{repository}/manifests/{tag}', method='HEAD',
        headers={'Accept': 'application/vnd.docker.distribution.manifest.v2+json'})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status == 200
    except urllib.error.HTTPError:
        return False


@pytest.mark.parametrize('rule', [
    f'POST /images/.+/push:kill@{KILL_MID_STREAM}',
])
def test_push(buildout, client, busybox, counter, registry, rule):
    b = buildout
    b.write(build_cfg(b, busybox).replace('parts = app', 'parts = app publish') + '\n'
            + section('publish', 'docker.push', image='${app:image}', registry=registry))
    b.run('-N', 'install', 'app')
    try:
        cycle(b, client, counter, rule, {f'image:{b.prefix}/app:latest',
                                         f'image:{registry}/{b.prefix}/app:latest'})
        assert manifest_exists(registry, f'{b.prefix}/app', 'latest')
        pushed = json.loads((b.directory / 'parts' / 'publish' / 'pushed.json').read_text())
        assert pushed == {f'{registry}/{b.prefix}/app:latest':
                          client.images.get(f'{b.prefix}/app').id}
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(f'{registry}/{b.prefix}/app:latest')


# -- the engine restarting under a running system ----------------------------------------------
def dockerd_pid() -> int | None:
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                with open(f'/proc/{entry}/comm', encoding='ascii') as comm:
                    if comm.read().strip() == 'dockerd':
                        return int(entry)
    return None


@pytest.mark.engine_restart
@pytest.mark.skipif(os.environ.get('DN_ALLOW_ENGINE_RESTART') != '1',
                    reason='restarts dockerd: set DN_ALLOW_ENGINE_RESTART=1 when no one else uses it')
def test_engine_restart_brings_back_restart_policies_and_a_rerun_repairs_the_rest(
        buildout, client, busybox, counter):
    b = buildout
    b.write(buildout_config(
        ['data', 'always', 'plain'], volume_part(b),
        container_part(b, 'always', busybox, init='true', stop_timeout='1', restart='always',
                       volumes='${data:name}:/data',
                       command="sh -c 'echo up >> /data/starts; exec httpd -f -p 80'",
                       wait_for='tcp:80'),
        container_part(b, 'plain', busybox, init='true', stop_timeout='1',
                       command='httpd -f -p 80', wait_for='tcp:80')))
    b.run('-N')
    pid = dockerd_pid()
    assert pid, 'dockerd runs on this machine'
    command = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\0')[:-1]
    logged_to = None
    with contextlib.suppress(OSError):
        logged_to = os.readlink(f'/proc/{pid}/fd/1')
    os.kill(pid, 15)
    deadline = time.monotonic() + 60
    while os.path.exists(f'/proc/{pid}') and time.monotonic() < deadline:
        time.sleep(0.2)
    # Started again as it was, its output going where it went (its log file, if any).
    log = logged_to if logged_to and os.path.isfile(logged_to) else os.devnull
    with open(log, 'ab') as output:
        subprocess.Popen([c.decode() for c in command], stdin=subprocess.DEVNULL, stdout=output,
                         stderr=output, start_new_session=True)
    counter.add('faults injected')
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(docker.errors.DockerException, OSError):
            if docker.from_env(timeout=5).ping():
                break
        time.sleep(0.5)
    fresh = docker.from_env(timeout=60)
    deadline = time.monotonic() + 30
    while fresh.containers.get(f'{b.prefix}-always').status != 'running' and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert fresh.containers.get(f'{b.prefix}-always').status == 'running', \
        'restart = always brought it back'
    assert fresh.containers.get(f'{b.prefix}-plain').status == 'exited'
    out = b.run('-N')
    assert f'starting {b.prefix}-plain' in out.stdout + out.stderr
    assert fresh.containers.get(f'{b.prefix}-plain').status == 'running'
    assert_clean(fresh, b, {f'volume:{b.prefix}-data', f'container:{b.prefix}-always',
                            f'container:{b.prefix}-plain'})
    starts = fresh.containers.get(f'{b.prefix}-always').exec_run(['cat', '/data/starts']).output
    assert starts == b'up\nup\n'
    counter.add('faults recovered')
