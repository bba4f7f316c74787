"""``docker.run``: systems that come up in order, reruns that change exactly what changed.

The three-tier system: a volume, a database-like service (httpd on 5432)
gated with ``wait-for``, a loader job that reads from it and writes into the
volume, and an app that serves the volume and is ready only once the data is
there. Nothing sleeps: each part waits for what the next one needs.
"""
from __future__ import annotations

import re
import textwrap
import time

import pytest

from helpers import (run_output, actions, assert_one_error, buildout_config, container_ids_by_name,
                     container_part, container_state, force_reinstall, ids, output, volume_part)


def system(b, busybox: str, *, app_env: str = 'MODE=one', app_image: str | None = None,
           parts: str = 'data net db load app', before: str = '') -> str:
    image = app_image or busybox
    return f'''
        [buildout]
        parts = {parts}

        {before}
        [data]
        recipe = dockeroo_nagoya:docker.volume
        name = {b.prefix}-data

        [net]
        recipe = dockeroo_nagoya:docker.network
        name = {b.prefix}-net

        [db]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-db
        image = {busybox}
        init = true
        networks = ${{net:name}}
        command = sh -c 'mkdir -p /www && echo rows-from-db > /www/index.html && exec httpd -f -p 5432 -h /www'
        wait-for =
            tcp:5432
            http://:5432/ 200 rows-from-db

        [load]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-load
        image = {busybox}
        job = true
        networks = ${{net:name}}
        volumes = ${{data:name}}:/data
        env = DB_HOST=${{db:name}}
        command = sh -c 'wget -q -O /data/index.html http://$DB_HOST:5432/ && echo loaded >> /data/runs'

        [app]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-app
        image = {image}
        init = true
        networks = ${{net:name}}
        volumes = ${{data:name}}:/www:ro
        env =
            ${{:app-env}}
            DB_HOST=${{db:name}}
            LOADED_BY=${{load:name}}
        app-env = {app_env}
        command = httpd -f -p 8080 -h /www
        wait-for = http://:8080/index.html 200 rows-from-db
        '''


def volume_file(client, busybox: str, volume: str, path: str) -> str:
    return run_output(client, busybox, ['cat', f'/v/{path}'],
                                 volumes={volume: {'bind': '/v', 'mode': 'ro'}}).decode()


@pytest.mark.slow
def test_system_comes_up_in_order_and_a_rerun_changes_nothing(buildout, busybox, client):
    b = buildout
    b.write(system(b, busybox))
    out = output(b.run('-N'))
    order = [out.index(line) for line in (
        'Installing data.', 'Installing net.', 'Installing db.', 'tcp:5432 passed',
        '200 rows-from-db passed', 'Installing load.', f'job {b.prefix}-load done',
        'Installing app.', 'index.html 200 rows-from-db passed')]
    assert order == sorted(order), out
    assert volume_file(client, busybox, f'{b.prefix}-data', 'runs') == 'loaded\n'
    first = container_ids_by_name(client, b)
    assert set(first) == {'db', 'load', 'app'}
    assert container_state(client, f'{b.prefix}-db')['Running'] and container_state(client, f'{b.prefix}-app')['Running']
    assert container_state(client, f'{b.prefix}-load')['ExitCode'] == 0

    out = output(b.run('-N'))
    assert container_ids_by_name(client, b) == first
    assert not re.search(r'creating|recreating|starting|running job', out), out
    assert volume_file(client, busybox, f'{b.prefix}-data', 'runs') == 'loaded\n'

    # A reinstall of every part (as after a package upgrade) adopts every container.
    force_reinstall(b)
    out = output(b.run('-N'))
    assert 'Installing app.' in out
    assert container_ids_by_name(client, b) == first
    assert not re.search(r'creating|recreating|starting|running job', out), out


@pytest.mark.slow
def test_changing_one_env_recreates_only_that_container(buildout, busybox, client):
    b = buildout
    b.write(system(b, busybox))
    b.run('-N')
    first = container_ids_by_name(client, b)
    b.write(system(b, busybox, app_env='MODE=two'))
    out = output(b.run('-N'))
    after = container_ids_by_name(client, b)
    assert after['app'] != first['app']
    assert {k: v for k, v in after.items() if k != 'app'} == \
        {k: v for k, v in first.items() if k != 'app'}
    assert f'recreating {b.prefix}-app: env changed' in out
    assert 'MODE=two' in client.api.inspect_container(after['app'])['Config']['Env']


@pytest.mark.slow
def test_rebuilt_image_recreates_its_containers(buildout, busybox, client):
    b = buildout
    context = b.directory / 'app'
    context.mkdir()
    (context / 'Dockerfile').write_text('ARG BASE\nFROM $BASE\nCOPY version.txt /version.txt\n')
    (context / 'version.txt').write_text('one\n')
    build = f'''
        [app-image]
        recipe = dockeroo_nagoya:docker.build
        name = {b.prefix}/app
        source = ${{buildout:directory}}/app
        build-args = BASE={busybox}
        '''
    config = system(b, busybox, app_image='${app-image:image}',
                    parts='app-image data net db load app', before=build)
    b.write(config)
    b.run('-N')
    first = container_ids_by_name(client, b)
    assert b.run('-N') and container_ids_by_name(client, b) == first

    (context / 'version.txt').write_text('two\n')
    out = output(b.run('-N'))
    after = container_ids_by_name(client, b)
    assert after['app'] != first['app']
    assert after['db'] == first['db'] and after['load'] == first['load']
    assert f'recreating {b.prefix}-app: its image changed' in out
    assert client.api.inspect_container(after['app'])['Image'] == \
        client.api.inspect_image(f'{b.prefix}/app:latest')['Id']


@pytest.mark.slow
def test_container_stopped_or_removed_by_hand_is_repaired(buildout, busybox, client):
    b = buildout
    b.write(system(b, busybox))
    b.run('-N')
    first = container_ids_by_name(client, b)
    client.api.stop(f'{b.prefix}-db', timeout=5)
    client.api.remove_container(f'{b.prefix}-app', force=True)
    out = output(b.run('-N'))
    after = container_ids_by_name(client, b)
    assert after['db'] == first['db'] and container_state(client, f'{b.prefix}-db')['Running']
    assert re.search(rf'starting {b.prefix}-db: it was stopped \(exited with \d+\)', out), out
    assert after['app'] != first['app'] and container_state(client, f'{b.prefix}-app')['Running']
    assert f'creating {b.prefix}-app again: it was removed' in out
    assert after['load'] == first['load']
    assert 'running job' not in out


@pytest.mark.slow
def test_removing_parts_removes_containers_and_keeps_volume_data(buildout, busybox, client):
    b = buildout
    b.write(system(b, busybox))
    b.run('-N')
    b.write(system(b, busybox, parts='data'))
    out = output(b.run('-N'))
    assert container_ids_by_name(client, b) == {}
    assert f'removed container {b.prefix}-app' in out
    assert volume_file(client, busybox, f'{b.prefix}-data', 'index.html') == 'rows-from-db\n'


@pytest.mark.slow
def test_job_runs_once_and_again_when_its_inputs_change(buildout, busybox, client):
    b = buildout

    def config(round_: str) -> str:
        return buildout_config(['data', 'job'], volume_part(b), container_part(
            b, 'job', busybox, job='true', volumes='${data:name}:/data', env=f'ROUND={round_}',
            command='sh -c \'echo "round $ROUND" >> /data/runs\''))

    b.write(config('1'))
    b.run('-N')
    out = output(b.run('-N'))
    assert 'running job' not in out
    assert volume_file(client, busybox, f'{b.prefix}-data', 'runs') == 'round 1\n'
    b.write(config('2'))
    out = output(b.run('-N'))
    assert f'recreating {b.prefix}-job: env changed' in out
    assert volume_file(client, busybox, f'{b.prefix}-data', 'runs') == 'round 1\nround 2\n'


# -- one clear error line per bad input ---------------------------------------------------
def single_part(b, busybox: str, body: str, part: str = 'web') -> str:
    head = f'''
        [buildout]
        parts = {part}

        [{part}]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-{part}
        image = {busybox}
        init = true
        stop-timeout = 1
        '''
    return textwrap.dedent(head).lstrip() + textwrap.dedent(body).lstrip('\n')


@pytest.mark.parametrize('body, expected', [
    ('wait-for = udp:53\n', ['web: option wait-for', "(not 'udp')"]),
    ('wait-for = tcp:70000\n', ['web: option wait-for', 'port number from 1 to 65535']),
    ('ports = 70000:80\n', ['web: option ports', 'ports from 1 to 65535', "'70000:80'"]),
    ('volumes = data:relative/path\n', ['web: option volumes', 'SOURCE:/CONTAINER/PATH']),
    ('volumes = a:/b:c:d\n', ['web: option volumes', "'a:/b:c:d'"]),
    ('restart = sometimes\n', ['web: option restart', 'on-failure']),
    ('callbacks = after-party = hooks:go\n', ['web: option callbacks', 'EVENT = module:function']),
    ('job = true\nwait-for = tcp:80\n', ['web: option wait-for', 'nothing for a job']),
    ('wait-for = http://:80/ maybe\n', ['web: option wait-for', 'STATUS such as 200 or 2xx']),
])
def test_bad_input_gives_one_clear_error(buildout, busybox, body, expected):
    b = buildout
    b.write(single_part(b, busybox, body))
    assert_one_error(b.fail('-N'), *expected)


def test_image_that_does_not_exist_is_named(buildout, busybox):
    b = buildout
    b.write(single_part(b, f'{b.prefix}/nothing:here', ''))
    line = assert_one_error(b.fail('-N'), 'web: option image: expected an image on the Docker engine',
                            f'{b.prefix}/nothing:here')
    assert 'docker.pull' in line


def test_job_that_exits_3_fails_with_its_code_and_log(buildout, busybox, client):
    b = buildout
    b.write(single_part(b, busybox, '''
        job = true
        command = sh -c 'echo loading table users; echo disk full >&2; exit 3'
        '''))
    out = b.fail('-N')
    assert_one_error(out, f'web: job {b.prefix}-web exited with code 3', 'loading table users',
                     'disk full')
    # The failed run's container goes (buildout forgets the part: nothing would remove it
    # later); its whole log is kept, for the owner only, and the next buildout runs it again.
    assert container_ids_by_name(client, b) == {}
    log = b.directory / 'var' / 'log' / f'{b.prefix}-web.log'
    assert 'loading table users' in log.read_text() and 'disk full' in log.read_text()
    assert log.stat().st_mode & 0o777 == 0o600
    assert f'removed job {b.prefix}-web: its run failed; its whole log is in ' \
           f'var/log/{b.prefix}-web.log' in out
    out = b.fail('-N')
    assert f'creating {b.prefix}-web' in out and 'exited with code 3' in out
    assert container_ids_by_name(client, b) == {}


def test_a_failed_job_leaves_nothing_when_every_part_is_removed(buildout, busybox, client):
    """With the failed job the only part, no part is left to run anything once it goes."""
    b = buildout
    failing = single_part(b, busybox, '''
        job = true
        command = sh -c 'echo half done; exit 3'
        ''')
    b.write(failing)
    for _ in range(2):
        assert_one_error(b.fail('-N'), f'web: job {b.prefix}-web exited with code 3')
        assert container_ids_by_name(client, b) == {}
    b.write('[buildout]\nparts =\n')
    assert actions(b.run('-N').stdout) == []
    assert container_ids_by_name(client, b) == {}
    # Fixed: it runs once, two reruns do nothing, a change runs it again, removal removes it.
    fixed = failing.replace('exit 3', 'exit 0')
    b.write(fixed)
    assert actions(b.run('-N').stdout) == ['Installing web.']
    before = ids(client, b)
    for _ in range(2):
        assert actions(b.run('-N').stdout) == []
        assert ids(client, b) == before
    b.write(failing)
    assert_one_error(b.fail('-N'), f'web: job {b.prefix}-web exited with code 3')
    assert container_ids_by_name(client, b) == {}
    b.write('[buildout]\nparts =\n')
    assert actions(b.run('-N').stdout) == []
    assert container_ids_by_name(client, b) == {}
    b.write(fixed)
    assert actions(b.run('-N').stdout) == ['Installing web.']
    b.write('[buildout]\nparts =\n')
    assert actions(b.run('-N').stdout) == ['Uninstalling web.']
    assert container_ids_by_name(client, b) == {}


def test_gate_that_never_passes_fails_naming_it_with_the_log(buildout, busybox):
    b = buildout
    b.write(single_part(b, busybox, '''
        command = sh -c 'echo listening on 8080 only; exec httpd -f -p 8080'
        wait-for = tcp:8080
            tcp:9999
        wait-timeout = 0.5s
        '''))
    started = time.monotonic()
    out = b.fail('-N')
    assert time.monotonic() - started < 20
    assert_one_error(out, 'web: option wait-for: tcp:9999 did not pass within 0.5s',
                     'Connection refused', 'listening on 8080 only')


def test_container_that_exits_while_waiting_fails_at_once(buildout, busybox):
    b = buildout
    b.write(single_part(b, busybox, '''
        command = sh -c 'echo cannot open config; exit 4'
        wait-for = tcp:80
        wait-timeout = 5m
        '''))
    started = time.monotonic()
    out = b.fail('-N')
    assert time.monotonic() - started < 20
    assert_one_error(out, f'web: container {b.prefix}-web exited with code 4 while waiting for '
                     'tcp:80', 'cannot open config')


def test_exec_log_and_healthy_gates_pass_in_order(buildout, busybox, client):
    b = buildout
    b.write(single_part(b, busybox, '''
        command = sh -c 'echo warming up; touch /tmp/ready; echo accepting connections; exec httpd -f -p 80'
        healthcheck = test -e /tmp/ready
        healthcheck-interval = 100ms
        wait-for =
            exec:test -e /tmp/ready
            log:accepting conn\\w+
            healthy
        '''))
    out = output(b.run('-N'))
    assert 'exec:test -e /tmp/ready passed' in out
    assert r'log:accepting conn\w+ passed' in out
    assert 'healthy passed' in out
    assert container_state(client, f'{b.prefix}-web')['Health']['Status'] == 'healthy'


def test_healthy_gate_without_healthcheck_fails_at_once(buildout, busybox):
    b = buildout
    b.write(single_part(b, busybox, 'command = httpd -f -p 80\nwait-for = healthy\n'))
    assert_one_error(b.fail('-N'), 'web: option wait-for: healthy: the container has no '
                     'healthcheck')


# -- callbacks, layout, script ----------------------------------------------------------
HOOKS = '''
import os

def record(container):
    with open(os.path.join(os.path.dirname(__file__), 'events.txt'), 'a') as out:
        out.write(f'{container.name} {container.status if container.id else "planned"}\\n')

def boom(container):
    raise RuntimeError('the credentials are not there')
'''


def test_callbacks_get_the_container_in_order(buildout, busybox, client):
    b = buildout
    (b.directory / 'hooks.py').write_text(HOOKS)
    events = '\n'.join(f'    {event} = hooks:record' for event in (
        'pre-create', 'post-create', 'pre-start', 'post-start',
        'pre-stop', 'post-stop', 'pre-remove', 'post-remove'))
    b.write(single_part(b, busybox, f'command = httpd -f -p 80\ncallbacks =\n{events}\n'))
    b.run('-N')
    name = f'{b.prefix}-web'
    assert (b.directory / 'events.txt').read_text().splitlines() == [
        f'{name} planned', f'{name} created', f'{name} created', f'{name} running']
    b.write('[buildout]\nparts =\n')
    b.run('-N')
    assert (b.directory / 'events.txt').read_text().splitlines()[4:] == [
        f'{name} running', f'{name} exited', f'{name} exited', f'{name} exited']
    assert container_ids_by_name(client, b) == {}


def test_failing_callback_is_named_and_its_container_removed(buildout, busybox, client):
    b = buildout
    (b.directory / 'hooks.py').write_text(HOOKS)
    b.write(single_part(b, busybox, 'command = httpd -f -p 80\ncallbacks = post_start:hooks.boom\n'))
    out = b.fail('-N')
    assert_one_error(out, f'web: callback post-start = hooks:boom failed on {b.prefix}-web: '
                     'RuntimeError: the credentials are not there')
    assert container_ids_by_name(client, b) == {}


def test_layout_is_laid_over_the_root_and_the_script_runs_once(buildout, busybox, client):
    b = buildout
    layout = b.directory / 'layout' / 'etc' / 'app'
    layout.mkdir(parents=True)
    (layout / 'app.conf').write_text('colour = blue\n')
    (layout / 'app.conf').chmod(0o640)
    b.write(single_part(b, busybox, '''
        layout = ${buildout:directory}/layout
        command = httpd -f -p 80
        script =
            test -f /etc/app/app.conf
            echo "scripted by $(id -u)" >> /tmp/script.log
        '''))
    b.run('-N')
    name = f'{b.prefix}-web'
    listing = client.containers.get(name).exec_run(['ls', '-ln', '/etc/app/app.conf']).output.decode()
    assert listing.startswith('-rw-r-----') and ' 0 ' in listing, listing
    first = container_ids_by_name(client, b)
    b.run('-N')
    assert container_ids_by_name(client, b) == first
    assert client.containers.get(name).exec_run(['cat', '/tmp/script.log']).output == b'scripted by 0\n'

    # A changed layout file makes a new container.
    (layout / 'app.conf').write_text('colour = green\n')
    out = output(b.run('-N'))
    assert f'recreating {name}: layout changed' in out
    assert client.containers.get(name).exec_run(['cat', '/etc/app/app.conf']).output == \
        b'colour = green\n'


def test_failing_script_fails_with_its_output(buildout, busybox, client):
    b = buildout
    b.write(single_part(b, busybox, '''
        command = httpd -f -p 80
        script = echo migrating; echo no database >&2; exit 2
        '''))
    out = b.fail('-N')
    assert_one_error(out, f'web: option script: exited with code 2 in {b.prefix}-web',
                     'migrating', 'no database')
    assert container_ids_by_name(client, b) == {}


# -- options that reach the engine, in place or not -----------------------------------------
def test_options_reach_the_engine(buildout, busybox, client):
    b = buildout
    (b.directory / 'shared').mkdir()
    (b.directory / 'shared' / 'hello.txt').write_text('hello from the host\n')
    b.write(single_part(b, busybox, f'''
        command = httpd -f -p 80
        ports = 127.0.0.1::80
        volumes = ./shared:/shared:ro
        working_dir = /shared
        hostname = webhost
        tty = true
        cap-add = NET_ADMIN
        labels = com.example.tier=front
        networks = ${{net:name}}
        network-aliases = www
        wait-for = http://:80/ 404
        restart = on-failure:2

        [net]
        recipe = dockeroo_nagoya:docker.network
        name = {b.prefix}-net
        '''))
    b.run('-N')
    details = client.api.inspect_container(f'{b.prefix}-web')
    config, host = details['Config'], details['HostConfig']
    assert config['WorkingDir'] == '/shared' and config['Hostname'] == 'webhost' and config['Tty']
    assert config['Labels']['com.example.tier'] == 'front'
    assert host['CapAdd'] == ['NET_ADMIN']
    assert host['RestartPolicy'] == {'Name': 'on-failure', 'MaximumRetryCount': 2}
    binding = details['NetworkSettings']['Ports']['80/tcp'][0]
    assert binding['HostIp'] == '127.0.0.1' and int(binding['HostPort']) > 0
    assert 'www' in details['NetworkSettings']['Networks'][f'{b.prefix}-net']['Aliases']
    assert client.containers.get(f'{b.prefix}-web').exec_run(['cat', 'hello.txt']).output == \
        b'hello from the host\n'


def test_restart_policy_changes_in_place(buildout, busybox, client):
    b = buildout
    b.write(single_part(b, busybox, 'command = httpd -f -p 80\nrestart = no\n'))
    b.run('-N')
    first = container_ids_by_name(client, b)
    b.write(single_part(b, busybox, 'command = httpd -f -p 80\nrestart = unless-stopped\n'))
    out = output(b.run('-N'))
    assert container_ids_by_name(client, b) == first
    assert f'updating {b.prefix}-web in place: restart changed' in out
    assert client.api.inspect_container(first['web'])['HostConfig']['RestartPolicy']['Name'] == \
        'unless-stopped'


def test_env_file_is_hashed_never_stored(buildout, busybox, client):
    b = buildout
    env_file = b.directory / 'secret.env'
    env_file.write_text('# credentials\nDB_PASSWORD=hunter2\n')
    b.write(single_part(b, busybox, 'command = httpd -f -p 80\nenv-file = secret.env\n'
                        'env = PLAIN=1\n'))
    b.run('-N')
    first = container_ids_by_name(client, b)
    details = client.api.inspect_container(first['web'])
    assert 'DB_PASSWORD=hunter2' in details['Config']['Env']
    assert 'hunter2' not in str(details['Config']['Labels'])
    assert 'hunter2' not in (b.directory / '.installed.cfg').read_text()
    b.run('-N')
    assert container_ids_by_name(client, b) == first
    env_file.write_text('DB_PASSWORD=correct-horse\n')
    out = output(b.run('-N'))
    assert f'recreating {b.prefix}-web: env-file changed' in out
    assert 'hunter2' not in out and 'correct-horse' not in out


def test_start_false_only_creates(buildout, busybox, client):
    b = buildout
    b.write(single_part(b, busybox, 'command = httpd -f -p 80\nstart = false\n'))
    b.run('-N')
    assert container_state(client, f'{b.prefix}-web')['Status'] == 'created'
    first = container_ids_by_name(client, b)
    b.run('-N')
    assert container_ids_by_name(client, b) == first and container_state(client, f'{b.prefix}-web')['Status'] == 'created'
