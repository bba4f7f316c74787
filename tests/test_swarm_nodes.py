"""docker.service on a real three-node Swarm (tests/conftest.py ``swarm_nodes``): a manager and
two workers, each a dockerd in its own network namespace, images through a registry."""
from __future__ import annotations

import contextlib
import json
import textwrap
import threading
import time

import docker.errors
import pytest

from helpers import assert_one_error, error_lines, plan

pytestmark = pytest.mark.slow

SECRET = 'swarm-node-secret-7c1e9a'


def service_cfg(b, nodes, image: str, replicas: int, secret_file=None, extra: str = '',
                parts: str = 'web', **options: str) -> str:
    """A buildout with a docker.service part ``web`` on the Swarm's manager (``options``:
    more of its options, ``_`` for ``-``; ``extra``: more sections)."""
    settings = {'recipe': 'dockeroo_nagoya:docker.service', 'docker-host': nodes.manager.host,
                'name': f'{b.prefix}-web', 'image': image, 'replicas': str(replicas),
                'constraints': 'node.labels.pool == app', 'update-monitor': '2s',
                'stop-timeout': '1', 'wait-timeout': '60',
                **({'secrets': f'token = {secret_file}'} if secret_file else {}),
                **{k.replace('_', '-'): v for k, v in options.items()}}
    web = '\n'.join(f'{k} = {v}' for k, v in settings.items())
    return f'[buildout]\nparts = {parts}\n\n[web]\n{web}\n' + textwrap.dedent(extra)


def tasks(nodes, name: str) -> list[dict]:
    return nodes.client.api.tasks(filters={'service': name})


def running(nodes, name: str) -> dict[str, str]:
    """Task id -> node host name of the tasks that are wanted and running."""
    hosts = {n.id: n.attrs['Description']['Hostname'] for n in nodes.client.nodes.list()}
    return {t['ID']: hosts[t['NodeID']] for t in tasks(nodes, name)
            if t['DesiredState'] == 'running' and t['Status']['State'] == 'running'}


def spec(nodes, name: str) -> dict:
    return nodes.client.api.inspect_service(name)['Spec']


@contextlib.contextmanager
def fewest_running(nodes, name: str):
    """The fewest tasks found running at any poll while the block runs (a list of one)."""
    seen: list[int] = []
    done = threading.Event()

    def poll() -> None:
        with contextlib.closing(docker.DockerClient(base_url=nodes.manager.host)) as client:
            while not done.is_set():
                found = client.api.tasks(filters={'service': name})
                seen.append(sum(1 for t in found if t['Status']['State'] == 'running'))
                time.sleep(0.1)

    thread = threading.Thread(target=poll)
    thread.start()
    fewest = [0]
    try:
        yield fewest
    finally:
        done.set()
        thread.join()
        fewest[0] = min(seen)


@pytest.fixture
def service_gone(swarm_nodes, buildout):
    """The test's service and secrets off the Swarm after it, even when it fails."""
    yield
    client = swarm_nodes.client
    for service in client.services.list(filters={'name': buildout.prefix}):
        with contextlib.suppress(docker.errors.APIError):
            service.remove()
    time.sleep(1)
    for secret in client.secrets.list():
        if secret.name.startswith(buildout.prefix):
            with contextlib.suppress(docker.errors.APIError):
                secret.remove()
    for network in client.networks.list(names=[buildout.prefix]):
        with contextlib.suppress(docker.errors.APIError):
            network.remove()


def test_placed_on_workers_through_the_registry_with_a_secret_rerun_scaled_rolled_and_removed(
        swarm_nodes, buildout, service_gone, tmp_path):
    b, nodes = buildout, swarm_nodes
    name = f'{b.prefix}-web'
    secret_file = tmp_path / 'token'
    secret_file.write_text(SECRET)
    network = f'''
        [net]
        recipe = dockeroo_nagoya:docker.network
        docker-host = {nodes.manager.host}
        name = {b.prefix}
        driver = overlay
        subnet = 10.237.0.192/27
        '''
    cfg = service_cfg(b, nodes, nodes.busybox, 4, secret_file, parts='net web',
                      command='sleep 3600', networks=f'{b.prefix}', env='ROLE=web',
                      extra=network)
    b.write(cfg)
    out = b.run('-N').stdout
    four = running(nodes, name)
    assert len(four) == 4 and set(four.values()) <= {'worker1', 'worker2'}, four
    for worker in nodes.workers:  # the workers had no image: each pulled it from the registry
        assert worker.client.images.get(nodes.busybox)
        for container in worker.client.containers.list():
            assert container.exec_run('cat /run/secrets/token').output.decode() == SECRET

    # Two unchanged reruns touch nothing; the plan says so too.
    for _ in range(2):
        again = b.run('-N').stdout
        assert 'service' not in again.replace(f'service {name}: 4 of 4', ''), again
        assert running(nodes, name) == four
    assert 'No changes.' in plan(b).stdout

    # A service made before the update settings were explicit (the SDK's defaults) gets
    # them set once, in place: no task is replaced; then the run is a no-op again.
    service = nodes.client.api.inspect_service(name)
    nodes.client.api.update_service(
        service['ID'], service['Version']['Index'], task_template=service['Spec']['TaskTemplate'],
        name=name, labels=service['Spec']['Labels'], mode=service['Spec']['Mode'],
        networks=service['Spec'].get('Networks'),
        update_config={'Parallelism': 1, 'FailureAction': 'continue', 'Order': 'stop-first'})
    said = plan(b).stdout
    assert f'update service {name} (new update settings)' in said, said
    assert "update-order 'stop-first' -> 'start-first'" in said, said
    assert 'update-failure-action' in said, said
    assert 'new update settings' in b.run('-N').stdout
    assert running(nodes, name) == four
    assert spec(nodes, name)['UpdateConfig']['FailureAction'] == 'rollback'
    assert 'update service' not in b.run('-N').stdout

    # A scale down keeps the remaining tasks.
    b.write(cfg.replace('replicas = 4', 'replicas = 2'))
    said = plan(b).stdout
    assert f"update service {name} (scale): replicas '4' -> '2'" in said, said
    assert f'scaling service {name} from 4 to 2 replicas' in b.run('-N').stdout
    two = running(nodes, name)
    assert len(two) == 2 and set(two) <= set(four)

    # The plan names every part of a change, secret values hidden; the run rolls it.
    changed = cfg.replace('replicas = 4', 'replicas = 3').replace('ROLE=web', 'ROLE=front')
    b.write(changed)
    said = plan(b).stdout
    assert f'update service {name} (rolling update): env changed' in said, said
    assert "replicas '2' -> '3'" in said and 'front' not in said, said
    [change] = [c for c in json.loads(plan(b, '--json').stdout)['changes'] if c['kind'] == 'service']
    assert change['how'] == 'rolling update', change  # the data says it, not a reason's text
    assert {r['input'] for r in change['reasons']} == {'env', 'replicas'}, change
    out += b.run('-N').stdout
    rolled = running(nodes, name)
    assert len(rolled) == 3 and not set(rolled) & set(two)
    assert 'ROLE=front' in spec(nodes, name)['TaskTemplate']['ContainerSpec']['Env']

    # The secret is in the Swarm only.
    assert SECRET not in out + plan(b).stdout
    assert SECRET not in (b.directory / '.installed.cfg').read_text()
    assert SECRET not in str(nodes.client.api.inspect_service(name))

    # Removal takes the service, its secrets and the overlay network.
    b.write(changed.replace('parts = net web', 'parts ='))
    b.run('-N')
    assert not nodes.client.services.list(filters={'name': name})
    assert not [s for s in nodes.client.secrets.list() if s.name.startswith(name)]
    assert not nodes.client.networks.list(names=[b.prefix])


@pytest.mark.parametrize('bad', ['command', 'image'])
def test_a_bad_update_rolls_back_keeping_replicas_running_and_says_why(
        swarm_nodes, buildout, service_gone, bad):
    """A command that fails, or an image tag the registry lacks: the Swarm rolls back, the
    run fails in one line naming the cause, a replica serves all along."""
    b, nodes = buildout, swarm_nodes
    name = f'{b.prefix}-web'
    good = {'image': nodes.busybox, 'command': 'sleep 3600'}
    # A wait-timeout the failure comes well before, even on a loaded machine (under load the
    # Swarm took 60 s to roll a failing command back; alone, 13 s).
    b.write(service_cfg(b, nodes, good['image'], 2, command=good['command'], wait_timeout='180'))
    b.run('-N')
    before = spec(nodes, name)
    wrong = {**good, **{'command': {'command': 'false'},
                        'image': {'image': f'{nodes.registry}/dn/busybox:nope'}}[bad]}
    b.write(service_cfg(b, nodes, wrong['image'], 2, command=wrong['command'],
                        wait_timeout='180'))
    with fewest_running(nodes, name) as fewest:
        started = time.monotonic()
        out = b.fail('-N')
        took = time.monotonic() - started
    line = assert_one_error(out)
    assert f'the update of service {name} failed and the Swarm rolled it back' in line, out
    cause = 'non-zero exit (1)' if bad == 'command' else 'No such image: ' + wrong['image']
    assert cause in line and '(on worker' in line, line
    assert took < 180, 'the run failed before its wait-timeout'
    assert fewest[0] >= 1, 'no replica was running at some moment of the update'
    after = spec(nodes, name)
    assert after['TaskTemplate']['ContainerSpec'] == before['TaskTemplate']['ContainerSpec']
    serving = running(nodes, name)
    assert len(serving) == 2

    # The part put back as it was: the service is already that; nothing is touched.
    b.write(service_cfg(b, nodes, good['image'], 2, command=good['command']))
    assert 'update service' not in b.run('-N').stdout
    assert running(nodes, name) == serving


def test_waiting_says_what_the_tasks_do_and_stops_on_an_error_that_cannot_heal(
        swarm_nodes, buildout, service_gone):
    b, nodes = buildout, swarm_nodes
    # No node has the label: the task waits to be placed, and every 10 s the run says so.
    b.write(service_cfg(b, nodes, nodes.busybox, 1, command='sleep 3600', wait_timeout='12',
                        constraints='node.labels.tier == nowhere'))
    out = b.fail('-N')
    assert 'replicas running (tasks: 1 pending' in out, out
    line = assert_one_error(out)
    assert 'option wait-timeout' in line and '0 of 1 replicas running after 12 s' in line, out

    # An image the registry lacks: the run stops at once, naming it.
    b.write(service_cfg(b, nodes, f'{nodes.registry}/dn/busybox:absent', 1,
                        command='sleep 3600', wait_timeout='120', name=f'{b.prefix}-absent'))
    started = time.monotonic()
    out = b.fail('-N')
    assert time.monotonic() - started < 60, out
    line = assert_one_error(out)
    assert 'cannot run its tasks' in line and 'busybox:absent' in line, line

    # A command that fails every time: the run stops after a few failures, naming them.
    b.write(service_cfg(b, nodes, nodes.busybox, 1, command='false', wait_timeout='120',
                        name=f'{b.prefix}-false'))
    started = time.monotonic()
    out = b.fail('-N')
    assert time.monotonic() - started < 60, out
    line = assert_one_error(out)
    assert 'cannot run its tasks' in line and 'task: non-zero exit (1) (on worker' in line, line


def test_a_worker_going_down_leaves_the_run_succeeding(swarm_nodes, buildout, service_gone):
    b, nodes = buildout, swarm_nodes
    name = f'{b.prefix}-web'
    b.write(service_cfg(b, nodes, nodes.busybox, 2, command='sleep 3600',
                        constraints='node.role == worker'))
    b.run('-N')
    worker2 = nodes.workers[1]
    worker2.stop()
    try:
        deadline = time.monotonic() + 60
        while nodes.node('worker2').attrs['Status']['State'] != 'down':
            assert time.monotonic() < deadline, 'the manager never saw worker2 go down'
            time.sleep(0.5)
        out = b.run('-N').stdout
        assert not error_lines(out)
        assert set(running(nodes, name).values()) == {'worker1'}
        assert len(running(nodes, name)) == 2
    finally:
        worker2.start()


@pytest.mark.parametrize('option, value, expected', [
    ('update-order', 'random', 'one of start-first, stop-first'),
    ('update-failure-action', 'retry', 'one of rollback, pause, continue'),
    ('rollback-failure-action', 'rollback', 'one of pause, continue'),
    ('update-max-failure-ratio', '1.5', 'a number from 0 to 1'),
    ('rollback-monitor', 'soon', 'a duration'),
    ('update-order', 'start-first', 'stop-first: the service publishes port 8080 in host mode'),
])
def test_update_settings_are_checked_before_anything_runs(buildout, option, value, expected):
    """One line naming the part and the option, from the recipe's __init__ (no engine)."""
    b = buildout
    b.write(f'''
        [buildout]
        parts = web

        [web]
        recipe = dockeroo_nagoya:docker.service
        docker-host = unix:///nonexistent/docker.sock
        image = busybox
        ports = 8080:80:host
        {option} = {value}
        ''')
    line = assert_one_error(b.fail('-N'))
    assert line.startswith(f'Error: web: option {option}') and expected in line, line
