"""docker.run's replicas: one part, N numbered containers; scaling touches only the difference."""
from __future__ import annotations

from helpers import buildout_config, sleeping_part


def replicas_config(b, busybox: str, replicas: int) -> str:
    """``replicas`` sleeping workers, each numbered in its env and hostname."""
    return buildout_config(['worker'], sleeping_part(b, 'worker', busybox, replicas=str(replicas),
                                                     env='WORKER=kojibuilder{index}',
                                                     hostname='worker{index}'))


def test_replicas_add_and_remove_only_the_difference(buildout, client, busybox):
    b = buildout
    b.write(replicas_config(b, busybox, 1))
    b.run('-N')
    one = client.containers.get(f'{b.prefix}-worker-1')
    assert 'WORKER=kojibuilder1' in one.attrs['Config']['Env']
    assert one.attrs['Config']['Hostname'] == 'worker1'

    b.write(replicas_config(b, busybox, 2))
    out = b.run('-N').stdout
    assert client.containers.get(f'{b.prefix}-worker-1').id == one.id
    two = client.containers.get(f'{b.prefix}-worker-2')
    assert 'WORKER=kojibuilder2' in two.attrs['Config']['Env']
    assert out.count('creating') == 1, out
    assert f'names = {b.prefix}-worker-1 {b.prefix}-worker-2' in (b.directory / '.installed.cfg').read_text()

    b.write(replicas_config(b, busybox, 1))
    b.run('-N')
    assert [c.name for c in b.owned('containers')] == [f'{b.prefix}-worker-1']
    assert client.containers.get(f'{b.prefix}-worker-1').id == one.id
