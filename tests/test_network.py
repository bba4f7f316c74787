"""docker.network: options, recreation with our containers, refusal with foreign ones."""
from __future__ import annotations

from helpers import ids


def network_cfg(b, extra: str = '', parts: str = 'net') -> str:
    return f'''
        [buildout]
        parts = {parts}

        [net]
        recipe = dockeroo_nagoya:docker.network
        name = {b.prefix}-net
        subnet = {b.subnet_base}.0/24
        gateway = {b.subnet_base}.1
        ip-range = {b.subnet_base}.128/25
        internal = true
        {extra}
        '''


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
    b.write(network_cfg(b, parts='net app') + f'''
        [app]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-app
        image = {busybox}
        command = sleep 3600
        init = true
        networks = ${{net:name}}
        ''')
    b.run('-N')
    b.write('[buildout]\nparts =\n')
    log = tmp_path / 'fault.log'
    result = b.run('-N', env=fault_env('DELETE /networks/[^/]+$#1:endpoints', log))
    assert log.read_text().count('\n') == 1                # the engine's answer came once
    assert 'still counts endpoints of removed containers' in result.stdout + result.stderr
    assert not b.owned('networks') and not b.owned('containers')
