"""A no-op rerun asks the engine a fixed handful of things, however many parts there are.

Requests are counted through bench/countproxy.py (a unix-socket proxy in front
of the engine): one labelled listing per kind of object, shared by every part
of the run, and nothing per container or per option.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import n_containers_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'bench'))
from countproxy import CountingProxy  # noqa: E402

#: version, one listing each of containers, images, networks and volumes, and the
#: orphan sweep's own container and image listings.
MOST = 8


@pytest.mark.parametrize('tool', ['parts', 'system'])
def test_noop_rerun_requests_do_not_grow_with_the_number_of_containers(
        make_buildout, busybox, tmp_path, tool):
    counts = {}
    for n in (2, 6):
        b = make_buildout(f'{tool}{n}')
        b.write(n_containers_config(b, busybox, n, tool))
        b.run('-N')
        socket = str(tmp_path / f'engine-{n}.sock')
        with CountingProxy(socket) as proxy:
            b.run('-N', env={'DOCKER_HOST': f'unix://{socket}'})
            counts[n] = dict(proxy.counts)
        assert not [k for k in counts[n] if not k.startswith('GET ')], counts[n]  # looks only
    assert counts[2] == counts[6], counts
    assert sum(counts[6].values()) <= MOST, counts


def test_removing_kept_volume_parts_lists_volumes_once(make_buildout, client, tmp_path):
    """A removed volume part with keep = true changes nothing: the next one reuses the listing
    (the volume listings of a teardown do not grow with the number of volume parts)."""
    counts = {}
    for n in (2, 6):
        b = make_buildout(f'kept{n}')
        b.write('\n'.join(['[buildout]', 'parts = ' + ' '.join(f'v{i}' for i in range(n)), ''] + [
            f'[v{i}]\nrecipe = dockeroo_nagoya:docker.volume\nname = {b.prefix}-v{i}\n'
            for i in range(n)]))
        b.run('-N')
        b.write('[buildout]\nparts =\n')
        socket = str(tmp_path / f'kept-{n}.sock')
        with CountingProxy(socket) as proxy:
            b.run('-N', env={'DOCKER_HOST': f'unix://{socket}'})
            counts[n] = proxy.counts['GET /volumes']
        assert {v.name for v in client.volumes.list(filters={'name': b.prefix})} == {
            f'{b.prefix}-v{i}' for i in range(n)}
    assert 1 <= counts[2] == counts[6] <= 2, counts
