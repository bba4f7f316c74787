"""A toji INI translated section by section into a docker.system behaves as toji did."""
from __future__ import annotations

import pytest

from helpers import run_output, ids

pytestmark = pytest.mark.slow


def toji_cfg(b, image: str, setup_says: str = 'configured') -> str:
    # The sections are toji's, as they were (container names carry the test's prefix).
    p = b.prefix
    return f'''
        [buildout]
        parts = toji

        [toji]
        recipe = dockeroo_nagoya:docker.system
        containers = {p}-data {p}-setup {p}-service

        [{p}-data]
        run_once = yes
        image = {image}
        volumes = /srv/data
        commands = sh -c "echo seeded > /srv/data/seed; exec sleep 3600"

        [{p}-setup]
        detach = no
        image = {image}
        volumes_from = {p}-data:rw
        commands = sh -c "echo {setup_says} >> /srv/data/setup"

        [{p}-service]
        image = {image}
        volumes_from = {p}-data:ro
        links = {p}-data:store
        commands = sh -c "exec sleep 3600"
        '''


def started_at(client, name: str) -> str:
    return client.api.inspect_container(name)['State']['StartedAt']


def test_toji_run_once_and_detach_no_rerun_after_rerun(buildout, client, busybox):
    b = buildout
    data, setup, service = (f'{b.prefix}-{n}' for n in ('data', 'setup', 'service'))
    b.write(toji_cfg(b, busybox))
    b.run('-N')
    assert client.containers.get(setup).attrs['State']['ExitCode'] == 0
    assert client.containers.get(data).status == 'running'
    svc = client.containers.get(service)
    assert svc.status == 'running'
    assert svc.exec_run('cat /srv/data/seed /srv/data/setup').output == b'seeded\nconfigured\n'
    assert b'\tstore ' in svc.exec_run('cat /etc/hosts').output
    data_started, setup_started = started_at(client, data), started_at(client, setup)
    before = ids(client, b)

    def unchanged() -> None:
        for _ in range(2):
            out = b.run('-N').stdout
            assert 'Installing' not in out and 'Uninstalling' not in out, out
            assert ids(client, b) == before
            assert started_at(client, setup) == setup_started, 'detach = no runs once'
            assert started_at(client, data) == data_started, 'run_once starts it once'

    unchanged()
    # run_once: a data container that stopped is not started again by later runs.
    client.containers.get(data).stop(timeout=1)
    unchanged()
    assert client.containers.get(data).status == 'exited'
    assert client.containers.get(service).status == 'running'

    # A changed setup job runs again, once; the others are left as they are.
    b.write(toji_cfg(b, busybox, setup_says='reconfigured'))
    b.run('-N')
    # (the service links to the stopped data container: the engine refuses an exec into it)
    assert run_output(client, busybox, 'cat /srv/data/setup', volumes_from=[data]) == b'configured\nreconfigured\n'
    assert client.containers.get(data).status == 'exited'
    assert client.containers.get(service).id == before[f'container:{service}']
    before = ids(client, b)
    setup_started = started_at(client, setup)
    unchanged()


def test_toji_detach_that_is_no_boolean_is_one_line(buildout, busybox):
    b = buildout
    b.write(toji_cfg(b, busybox).replace('detach = no', 'detach = later'))
    out = b.fail('-N')
    assert f"toji: member {b.prefix}-setup: option detach: expected a boolean" in out
    assert 'Traceback' not in out
