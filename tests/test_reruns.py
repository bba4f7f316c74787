"""Reruns that are really no-ops, and changes the engine refuses that leave the service up.

zc.buildout 6 records a part's options before ``install()``: what a recipe
wrote while acting was lost, so the second run reinstalled every image part
and recreated the containers that referenced ``${img:image-id}``. And a
replacement used to remove the old container before the engine had accepted
the new one.
"""
from __future__ import annotations

import socket

import pytest

from conftest import free_port
from helpers import actions, buildout_config, ids, publish, section, sleeper

pytestmark = pytest.mark.slow


def every_recipe(b, busybox: str, base: str, registry: str) -> str:
    """Images made every way, containers from them, a system, a volume, a network, a push."""
    p = b.prefix
    (b.directory / 'ctx').mkdir(exist_ok=True)
    (b.directory / 'ctx' / 'Dockerfile').write_text(
        f'FROM {base}\nRUN echo built > /built\nCMD ["sleep", "3600"]\n')
    return buildout_config(
        ['data', 'net', 'pulled', 'img', 'moromi', 'web', 'saved', 'persisted', 'sys', 'push'],
        section('data', 'docker.volume', name=f'{p}-data'),
        section('net', 'docker.network', name=f'{p}-net', subnet=f'{b.subnet_base}.0/24'),
        section('pulled', 'docker.pull', image=base),
        section('img', 'docker.build', name=f'{p}/img', source='${buildout:directory}/ctx'),
        section('moromi', 'docker.image', name=f'{p}/moromi', **{'from': '${pulled:image}'},
                command='sleep 3600'),
        sleeper('web', '${img:image}', name=f'{p}-web', env='IMAGE=${img:image-id}',
                volumes='${data:name}:/data', networks='${net:name}'),
        section('saved', 'docker.commit', name=f'{p}/saved', container='${web:name}'),
        section('persisted', 'docker.persist', name=f'{p}/persisted', container='${web:name}'),
        section('sys', 'docker.system', containers='sys-a sys-b'),
        section('sys-a', '', image='${moromi:image}', name=f'{p}-sys-a', env='FROM=${moromi:image-id}'),
        section('sys-b', '', image='${saved:image}', name=f'{p}-sys-b', links='sys-a',
                command='sleep 3600'),
        section('push', 'docker.push', image='${img:image}', name=f'{registry}/{p}/pushed:v1'),
    )


def test_every_recipe_from_nothing_then_two_unchanged_reruns(buildout, client, busybox, registry):
    b = buildout
    base = publish(client, busybox, f'{registry}/{b.prefix}/base')
    assert not client.images.list(name=base)  # only in the registry, as on Docker Hub
    b.write(every_recipe(b, busybox, base, registry))
    first = b.run()
    assert 'pulling' in first.stdout, first.stdout
    made = ids(client, b)
    assert made[f'container:{b.prefix}-web'] and made[f'container:{b.prefix}-sys-b']
    installed = (b.directory / '.installed.cfg').read_text()
    assert 'image-id = \n' not in installed
    for run in (2, 3):
        again = b.run()
        assert actions(again.stdout) == [], f'run {run}:\n{again.stdout}{again.stderr}'
        assert 'recreating' not in again.stdout and 'building' not in again.stdout
        assert ids(client, b) == made, f'run {run} changed objects:\n{again.stdout}{again.stderr}'
    # A change of the context rebuilds the image and recreates what runs it, once.
    (b.directory / 'ctx' / 'extra').write_text('new input\n')
    changed = b.run()
    assert f'rebuilding {b.prefix}/img:latest' in changed.stdout, changed.stdout
    after = ids(client, b)
    assert after[f'container:{b.prefix}-web'] != made[f'container:{b.prefix}-web']
    assert after[f'container:{b.prefix}-sys-a'] == made[f'container:{b.prefix}-sys-a']
    settled = b.run()
    assert actions(settled.stdout) == [], settled.stdout
    assert ids(client, b) == after, changed.stdout + '\n=====\n' + settled.stdout


def single(b, busybox: str, **extra: str) -> str:
    return buildout_config(['web'], sleeper('web', busybox, name=f'{b.prefix}-web', **extra))


@pytest.mark.parametrize('option,value', [
    ('cap-add', 'NET_ADMINN'),
    ('networks', 'no-such-network-{prefix}'),
    ('volumes-from', 'no-such-container-{prefix}'),
    ('user', 'nobody-{prefix}'),
    ('ports', '127.0.0.1:{port}:80'),
])
def test_a_change_the_engine_refuses_leaves_the_old_container_running(
        buildout, client, busybox, option, value):
    b = buildout
    b.write(single(b, busybox))
    b.run('-N')
    before = client.containers.get(f'{b.prefix}-web')
    taken = socket.socket()
    try:
        port = free_port()
        taken.bind(('127.0.0.1', port))
        taken.listen()
        b.write(single(b, busybox, **{option.replace('-', '_'): value.format(
            prefix=b.prefix, port=port)}))
        out = b.fail('-N')
        errors = [line for line in out.splitlines() if line.startswith('Error:')]
        assert len(errors) == 1 and 'Traceback' not in out, out
        assert f'option {option}' in errors[0], out
        assert 'previous container is' in errors[0], out
        now = client.containers.get(f'{b.prefix}-web')
        assert now.id == before.id and now.status == 'running'
        assert [c.name for c in b.owned('containers')] == [f'{b.prefix}-web']
    finally:
        taken.close()
    # Put back, the next run adopts the same container and then changes nothing.
    b.write(single(b, busybox))
    b.run('-N')
    assert client.containers.get(f'{b.prefix}-web').id == before.id
    assert actions(b.run('-N').stdout) == []


def test_a_replacement_that_fails_its_gate_brings_the_old_one_back(buildout, client, busybox):
    b = buildout
    b.write(single(b, busybox))
    b.run('-N')
    before = client.containers.get(f'{b.prefix}-web').id
    b.write(buildout_config(['web'], section(
        'web', 'docker.run', image=busybox, name=f'{b.prefix}-web',
        command='sh -c "echo AH00526: broken config; exit 3"', restart='unless-stopped',
        wait_for='exec:true', wait_timeout='30s')))
    out = b.fail('-N')
    assert 'AH00526: broken config' in out, out  # its own error, said before it was removed
    assert 'exited with code 3' in out, out
    now = client.containers.get(f'{b.prefix}-web')
    assert now.id == before and now.status == 'running'


def test_a_misspelt_option_is_warned_of_on_every_run(buildout, client, busybox):
    b = buildout
    config = buildout_config(
        ['web', 'sys'],
        sleeper('web', busybox, name=f'{b.prefix}-web', my_port='8080'),
        section('sys', 'docker.system', containers='member'),
        section('member', '', image=busybox, name=f'{b.prefix}-member', command='sleep 3600'))
    b.write(config)
    b.run('-N')
    b.write(config.replace('my-port = 8080', 'my-port = 8080\ncomand = sleep 99')
            + 'volums = /x\n')
    for _ in range(2):
        out = b.run('-N').stdout
        assert "web: unknown option 'comand' (did you mean 'command'?)" in out, out
        assert "sys: member member: unknown option 'volums' (did you mean 'volumes'?)" in out, out
        assert 'my-port' not in out.replace("'my-port'", '')  # a ${:variable} far from every name


def test_push_sends_image_as_dockeroo_name_and_only_to_a_named_registry(
        buildout, client, busybox, registry):
    b = buildout
    target = f'{registry}/{b.prefix}/renamed:v2'
    b.write(buildout_config(['push'], section('push', 'docker.push', image=busybox, name=target)))
    b.run('-N')
    assert client.api.inspect_distribution(target)['Descriptor']['digest']
    assert actions(b.run('-N').stdout) == []
    b.write(buildout_config(['push'], section('push', 'docker.push', image=busybox,
                                              name=target, tags=f'{target}-b')))
    assert 'either name' in b.fail('-N')
    b.write(buildout_config(['push'], section('push', 'docker.push', image=busybox,
                                              name=f'{b.prefix}/nowhere:v1')))
    out = b.fail('-N')
    assert 'push: option registry' in out and 'Traceback' not in out, out


def test_install_part_on_a_fresh_directory_names_what_to_install_first(buildout, client, busybox):
    b = buildout
    (b.directory / 'ctx').mkdir()
    (b.directory / 'ctx' / 'Dockerfile').write_text(f'FROM {busybox}\nCMD ["sleep", "3600"]\n')
    b.write(buildout_config(
        ['img', 'web'],
        section('img', 'docker.build', name=f'{b.prefix}/img', source='${buildout:directory}/ctx'),
        sleeper('web', '${img:image}', name=f'{b.prefix}-web')))
    out = b.fail('-N', 'install', 'web')
    errors = [line for line in out.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and 'part img makes it and is not installed' in errors[0], out
    assert 'bin/buildout install img web' in errors[0]
    b.run('-N')
    first = ids(client, b)
    # On an installed buildout, a changed PART is recreated alone.
    b.write((b.directory / 'buildout.cfg').read_text() + 'env = CHANGED=1\n')
    out = b.run('-N', 'install', 'web').stdout
    assert actions(out) == ['Uninstalling web.', 'Installing web.'], out
    after = ids(client, b)
    assert after[f'container:{b.prefix}-web'] != first[f'container:{b.prefix}-web']
    assert after[f'image:{b.prefix}/img:latest'] == first[f'image:{b.prefix}/img:latest']


def test_one_removal_per_container_whatever_spelling_of_the_engine(buildout, client, busybox):
    """The part removed first stops slowly in the background (its PID 1 takes 2 s after
    SIGTERM); the next part names the same engine another way, so its uninstall used to
    sweep with a second key, find the first part's container as an orphan and race the
    teardown: 'removal of container ... is already in progress'."""
    b = buildout
    slow = "sh -c \"trap 'sleep 2; exit 0' TERM; while :; do sleep 0.1; done\""
    b.write(buildout_config(
        ['a', 'b'],
        sleeper('a', busybox, name=f'{b.prefix}-a', docker_host='unix:///var/run/docker.sock'),
        section('b', 'docker.run', image=busybox, name=f'{b.prefix}-b', command=slow,
                init='false', stop_timeout='10')))
    b.run('-N')
    b.write(buildout_config([]))
    out = b.run('-N')
    said = out.stdout + out.stderr
    assert 'already in progress' not in said and 'neither installed nor configured' not in said, said
    assert not b.owned('containers')
    assert actions(b.run('-N').stdout) == []


def test_the_other_recipes_from_nothing_then_two_unchanged_reruns(
        buildout, client, busybox, debian, swarm):
    """bootstrap, assemble, diskimage, temporary, replicas, copy, command, save, a load of
    the saved file (of an image whose identity is only known as its part acts) and a Swarm
    service: installed once, then two runs with no Installing or Uninstalling (a load of a
    file from elsewhere is tested in test_save_load, of a build's in test_cross_engine)."""
    from helpers import MKE2FS, busybox_tarball
    b = buildout
    p = b.prefix
    busybox_tarball(b.directory / 'root.tar', {'etc/release': 'one\n'})
    (b.directory / 'files').mkdir()
    (b.directory / 'files' / 'hello.txt').write_text('hello\n')
    b.write(buildout_config(
        ['base', 'built', 'disk', 'tmp', 'pool', 'box', 'copy', 'tool', 'save', 'load', 'svc'],
        section('base', 'docker.bootstrap', name=f'{p}/base', archives='root.tar'),
        section('built', 'docker.assemble', name=f'{p}/built', build_image=busybox,
                build_script='echo assembled > "$BUILD_ROOT/assembled"'),
        section('disk', 'docker.diskimage', build_image=debian, base_image='${base:image}',
                build_root='/mnt/root', image_file='/out/disk.ext4', prepare_script='mkdir -p /out',
                build_script=MKE2FS),
        section('tmp', 'docker.temporary', **{'from': busybox}, name=f'{p}/tmp', commit='true',
                script='echo made > /made'),
        sleeper('pool', '${tmp:image}', name=f'{p}-pool', replicas='2', env='N={index}'),
        sleeper('box', busybox, name=f'{p}-box'),
        section('copy', 'docker.copy', container_to='${box:name}',
                paths='${buildout:directory}/files/ /srv/files/'),
        section('tool', 'docker.command', container='${box:name}', command='cat /srv/files/hello.txt'),
        section('save', 'docker.save', name='${built:image}', path='${buildout:directory}/built.tar'),
        section('load', 'docker.load', name=f'{p}/loaded', path='${save:path}'),
        section('svc', 'docker.service', name=f'{p}-svc', image=busybox, command='sleep 3600',
                replicas='1')))
    b.run('-N')
    made = ids(client, b)
    assert f'container:{p}-pool-2' in made and (b.directory / 'built.tar').is_file(), made
    assert made[f'image:{p}/loaded:latest'] == made[f'image:{p}/built:latest']
    disk = (b.directory / 'parts' / 'disk' / 'disk.ext4').stat()
    for run in (2, 3):
        again = b.run('-N')
        assert actions(again.stdout) == [], f'run {run}:\n{again.stdout}{again.stderr}'
        assert ids(client, b) == made, f'run {run} changed objects:\n{again.stdout}'
        assert (b.directory / 'parts' / 'disk' / 'disk.ext4').stat().st_mtime_ns == disk.st_mtime_ns
    b.write(buildout_config([]))
    b.run('-N')


def test_a_refused_change_of_a_system_member_leaves_the_system_running(buildout, client, busybox):
    b = buildout

    def config(**extra: str) -> str:
        return buildout_config(
            ['sys'], section('sys', 'docker.system', containers='db web'),
            section('db', '', image=busybox, name=f'{b.prefix}-db', command='sleep 3600'),
            section('web', '', image=busybox, name=f'{b.prefix}-web', command='sleep 3600',
                    links='db', **extra))

    b.write(config())
    b.run('-N')
    before = ids(client, b)
    b.write(config(cap_add='NET_ADMINN'))
    out = b.fail('-N')
    errors = [line for line in out.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and 'option cap-add' in errors[0], out
    assert ids(client, b) == before
    assert all(c.status == 'running' for c in b.owned('containers'))
    b.write(config())
    b.run('-N')
    assert ids(client, b) == before
