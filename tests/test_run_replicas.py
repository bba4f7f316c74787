"""docker.run's replicas: one part, N numbered containers; scaling touches only the difference."""
from __future__ import annotations


def cfg(b, busybox: str, replicas: int) -> str:
    return f'''
        [buildout]
        parts = worker

        [worker]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-worker
        image = {busybox}
        command = sleep 3600
        init = true
        stop-timeout = 1
        replicas = {replicas}
        env = WORKER=kojibuilder{{index}}
        hostname = worker{{index}}
        '''


def test_replicas_add_and_remove_only_the_difference(buildout, client, busybox):
    b = buildout
    b.write(cfg(b, busybox, 1))
    b.run('-N')
    one = client.containers.get(f'{b.prefix}-worker-1')
    assert 'WORKER=kojibuilder1' in one.attrs['Config']['Env']
    assert one.attrs['Config']['Hostname'] == 'worker1'

    b.write(cfg(b, busybox, 2))
    out = b.run('-N').stdout
    assert client.containers.get(f'{b.prefix}-worker-1').id == one.id
    two = client.containers.get(f'{b.prefix}-worker-2')
    assert 'WORKER=kojibuilder2' in two.attrs['Config']['Env']
    assert out.count('creating') == 1, out
    assert f'names = {b.prefix}-worker-1 {b.prefix}-worker-2' in (b.directory / '.installed.cfg').read_text()

    b.write(cfg(b, busybox, 1))
    b.run('-N')
    assert [c.name for c in b.owned('containers')] == [f'{b.prefix}-worker-1']
    assert client.containers.get(f'{b.prefix}-worker-1').id == one.id
