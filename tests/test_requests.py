"""A no-op rerun asks the engine a fixed handful of things, however many parts there are.

Requests are counted through bench/countproxy.py (a unix-socket proxy in front
of the engine): one labelled listing per kind of object, shared by every part
of the run, and nothing per container or per option.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import container_ids_by_name, n_containers_config, output

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'bench'))
from countproxy import CountingProxy  # noqa: E402

#: version, one listing each of containers, images (every image: the parts' image lookups
#: and their own images are read from it), networks and volumes, and the orphan sweep's
#: listing of volume helpers.
MOST = 6


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


def _changed_env(config: str, section: str) -> str:
    """The configuration with ``env = ROLE=changed`` added to one member or part."""
    return config.replace(f'[{section}]\n', f'[{section}]\nenv = ROLE=changed\n', 1)


@pytest.mark.parametrize('tool', ['parts', 'system'])
def test_one_change_asks_about_the_changed_container_only(
        make_buildout, busybox, client, tmp_path, tool):
    """Changing one container's env recreates it alone, and the run's requests do not grow
    with the number of containers: a system reinstalled for one member's change does not
    inspect each member it keeps, and the replacement reads what the listing says."""
    counts = {}
    for n in (2, 6):
        b = make_buildout(f'one{tool}{n}')
        config = n_containers_config(b, busybox, n, tool)
        b.write(config)
        b.run('-N')
        before = container_ids_by_name(client, b)
        b.write(_changed_env(config, f'c{n - 1}'))
        socket = str(tmp_path / f'change-{tool}-{n}.sock')
        with CountingProxy(socket) as proxy:
            out = output(b.run('-N', env={'DOCKER_HOST': f'unix://{socket}'}))
            counts[n] = sum(proxy.counts.values())
            inspects = proxy.counts['GET /containers/*/json']
        assert inspects <= 1, proxy.counts   # the stop's look at the replaced container
        assert f'recreating {b.prefix}-c{n - 1}: env changed' in out, out
        after = container_ids_by_name(client, b)
        assert {k for k in after if after[k] != before[k]} == {f'c{n - 1}'}, (before, after)
    assert counts[2] == counts[6], counts


def test_system_restart_policy_follows_its_option_when_other_members_change(
        buildout, busybox, client):
    """The members a system keeps are not inspected for their restart policy when their
    ``restart`` is what the last install left: one set to another policy is still updated
    in place, and so is one set back (the record, not the creation, says what it has)."""
    b = buildout
    config = n_containers_config(b, busybox, 3, 'system')

    def policy(i: int) -> str:
        found = client.api.inspect_container(f'{b.prefix}-c{i}')['HostConfig']['RestartPolicy']
        return found.get('Name') or 'no'   # none set: the engine says ''

    b.write(config)
    b.run('-N')
    first = container_ids_by_name(client, b)
    b.write(config.replace('[c1]\n', '[c1]\nrestart = unless-stopped\n', 1))
    out = output(b.run('-N'))
    assert f'updating {b.prefix}-c1 in place: restart changed' in out, out
    assert [policy(i) for i in range(3)] == ['no', 'unless-stopped', 'no']
    b.write(_changed_env(config.replace('[c1]\n', '[c1]\nrestart = unless-stopped\n', 1), 'c2'))
    out = output(b.run('-N'))
    assert 'in place' not in out, out
    assert [policy(i) for i in range(3)] == ['no', 'unless-stopped', 'no']
    b.write(_changed_env(config, 'c2'))   # c1 back to no restart policy, made unless-stopped
    out = output(b.run('-N'))
    assert f'updating {b.prefix}-c1 in place: restart changed' in out, out
    assert [policy(i) for i in range(3)] == ['no', 'no', 'no']
    after = container_ids_by_name(client, b)
    assert {k: v for k, v in after.items() if k != 'c2'} == \
        {k: v for k, v in first.items() if k != 'c2'}


def test_an_interrupted_replacement_found_in_the_listing_is_removed_first(
        buildout, busybox, client):
    """A replacement an interrupted run left (ours: the part's labels) is read from the
    run's listing, not inspected, and still removed before the new one takes its name."""
    b = buildout
    config = n_containers_config(b, busybox, 2, 'system')
    b.write(config)
    b.run('-N')
    labels = client.api.inspect_container(f'{b.prefix}-c1')['Config']['Labels']
    left = client.api.create_container(busybox, 'sleep 3600', name=f'{b.prefix}-c1.replacement',
                                       labels=labels)['Id']
    b.write(_changed_env(config, 'c1'))
    out = output(b.run('-N'))
    assert f'recreating {b.prefix}-c1: env changed' in out, out
    assert not client.api.containers(all=True, filters={'id': left})
    assert not client.api.containers(all=True, filters={'name': f'{b.prefix}-c1.replacement'})
    assert client.api.inspect_container(f'{b.prefix}-c1')['State']['Running']
