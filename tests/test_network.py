"""docker.network: options, recreation with our containers, refusal with foreign ones."""
from __future__ import annotations

import pytest

from helpers import buildout_config, container_part, ids, network_part


def network_cfg(b, extra: str = '', parts: str = 'net') -> str:
    """The network ``PREFIX-net`` in the test's own subnet, with the option line ``extra``."""
    return buildout_config(parts.split(), network_part(
        b, subnet=f'{b.subnet_base}.0/24', gateway=f'{b.subnet_base}.1',
        ip_range=f'{b.subnet_base}.128/25', internal='true') + (extra + '\n' if extra else ''))


def test_network_options_reach_the_engine_and_rerun_is_a_no_op(buildout, client):
    b = buildout
    b.write(network_cfg(b, 'labels = role=backend'))
    b.run('-N')
    network = client.networks.get(f'{b.prefix}-net')
    config = network.attrs['IPAM']['Config'][0]
    assert config['Subnet'] == f'{b.subnet_base}.0/24'
    assert config['Gateway'] == f'{b.subnet_base}.1'
    assert config['IPRange'] == f'{b.subnet_base}.128/25'
    assert network.attrs['Internal'] is True
    assert network.attrs['Labels']['role'] == 'backend'
    first = ids(client, b)
    b.run('-N')
    assert ids(client, b) == first


def test_changed_network_is_recreated_and_foreign_users_block_removal(buildout, client, busybox):
    b = buildout
    b.write(network_cfg(b))
    b.run('-N')
    first = ids(client, b)[f'network:{b.prefix}-net']
    b.write(network_cfg(b, 'labels = v=2'))
    assert 'recreating network' in b.run('-N').stdout
    assert ids(client, b)[f'network:{b.prefix}-net'] != first

    foreign = client.containers.create(busybox, 'sleep 60', network=f'{b.prefix}-net')
    try:
        b.write(network_cfg(b, 'labels = v=3'))
        out = b.fail('-N')
        assert 'of another owner uses it' in out and 'Traceback' not in out
    finally:
        foreign.remove(force=True)
    b.write(network_cfg(b, 'labels = v=2'))
    b.run('-N')
    foreign = client.containers.create(busybox, 'sleep 60', network=f'{b.prefix}-net')
    try:
        b.write(network_cfg(b, 'labels = v=2', parts=''))
        out = b.fail('-N')
        assert 'is still used by the containers' in out and 'Traceback' not in out
    finally:
        foreign.remove(force=True)
    b.run('-N')
    assert not client.networks.list(names=[f'{b.prefix}-net'])


def test_stale_endpoints_of_removed_containers_are_waited_out(buildout, client, busybox,
                                                              tmp_path):
    """A loaded engine may count removed containers' endpoints for a moment: retried, not failed."""
    from faults.harness import fault_env
    b = buildout
    b.write(network_cfg(b, parts='net app') + '\n' + container_part(
        b, 'app', busybox, command='sleep 3600', init='true', networks='${net:name}'))
    b.run('-N')
    b.write('[buildout]\nparts =\n')
    log = tmp_path / 'fault.log'
    result = b.run('-N', env=fault_env('DELETE /networks/[^/]+$#1:endpoints', log))
    assert log.read_text().count('\n') == 1                # the engine's answer came once
    assert 'still counts endpoints of removed containers' in result.stdout + result.stderr
    assert not b.owned('networks') and not b.owned('containers')


def sleeper(section: str, name: str, image: str, network: str, recipe: bool = True,
            extra: str = '') -> str:
    """A ``sleep`` container section on one network."""
    return f'''
        [{section}]
        {'recipe = dockeroo_nagoya:docker.run' if recipe else ''}
        name = {name}
        image = {image}
        command = sleep 3600
        init = true
        networks = {network}
        {extra}
        '''


def renamed_cfg(b, tag: str, system: bool, busybox: str, more: str = '') -> str:
    """A network and two containers on it; ``tag`` is in every name."""
    members = ''.join(
        sleeper(f'{b.prefix}-app-{x}', f'{b.prefix}-{tag}-{x}', busybox, '${net:name}',
                recipe=not system, extra=after)
        for x, after in (('a', ''), ('b', f'depends = {b.prefix}-app-a')))
    if system:
        parts = 'net system'
        members += f'''
        [system]
        recipe = dockeroo_nagoya:docker.system
        containers = {b.prefix}-app-a {b.prefix}-app-b
        '''
    else:
        parts = f'net {more} {b.prefix}-app-a {b.prefix}-app-b'
    return f'''
        [buildout]
        parts = {parts}

        [net]
        recipe = dockeroo_nagoya:docker.network
        name = {b.prefix}-{tag}-net
        ''' + members


@pytest.mark.parametrize('system', [False, True], ids=['parts', 'system'])
def test_network_renamed_with_its_containers(buildout, client, busybox, system):
    """The old network is still used by the old containers while the network part installs:
    it goes at the end of the run, once their parts replaced them (it used to stop every run)."""
    b = buildout
    b.write(renamed_cfg(b, 'one', system, busybox))
    b.run('-N')
    old = client.networks.get(f'{b.prefix}-one-net').id
    b.write(renamed_cfg(b, 'two', system, busybox))
    result = b.run('-N')
    assert 'removed network' in result.stdout + result.stderr
    assert not client.networks.list(ids=[old])
    names = sorted(c.name for c in client.containers.list(all=True, filters={'name': b.prefix}))
    assert names == [f'{b.prefix}-two-a', f'{b.prefix}-two-b']
    for name in names:
        networks = client.containers.get(name).attrs['NetworkSettings']['Networks']
        assert list(networks) == [f'{b.prefix}-two-net']
    before = ids(client, b)
    b.run('-N')
    assert ids(client, b) == before


def test_old_network_still_used_at_the_end_of_the_run_is_left_with_a_warning(
        buildout, client, busybox):
    """A part that names the old network literally keeps it: said, not failed, not removed."""
    b = buildout
    b.write(renamed_cfg(b, 'one', False, busybox))
    b.run('-N')
    pinned = sleeper('pinned', f'{b.prefix}-pinned', busybox, f'{b.prefix}-one-net')
    b.write(renamed_cfg(b, 'two', False, busybox, more='pinned') + pinned)
    result = b.run('-N')
    assert 'is still used by the containers' in result.stdout + result.stderr
    assert 'it is left, the next run tries again' in result.stdout + result.stderr
    assert client.networks.list(names=[f'{b.prefix}-one-net'])
    assert client.containers.get(f'{b.prefix}-pinned').status == 'running'
    again = b.run('-N')   # tries again: still used, said again, and the run goes on
    assert 'it is left, the next run tries again' in again.stdout + again.stderr
    b.write(renamed_cfg(b, 'two', False, busybox))
    b.run('-N')
    assert not client.networks.list(names=[f'{b.prefix}-one-net'])
