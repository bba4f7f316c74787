"""``docker.system``: a system of containers as one part, up in parallel in dependency order.

The system of the tests has six services in three levels: ``store`` and
``cache``; ``api`` (links to store, depends on cache) and ``worker`` (takes
store's volumes); ``web`` (links to api) and ``admin`` (depends on worker and
api). Every service needs a second before it listens, and is gated on it.
"""
from __future__ import annotations

import datetime
import re
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import (run_output, assert_one_error, buildout_config, container_ids_by_name, member_part,
                     n_containers_config, output, system_part)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'bench'))
from countproxy import CountingProxy  # noqa: E402

#: (section, options) of the six members, in the order separate parts would need.
SERVICE = "sh -c 'sleep 1; exec httpd -f -p 80 -h /tmp'"
STORE = ("sh -c '[ -e /data/created ] || echo first-start > /data/created; sleep 1; "
         "exec httpd -f -p 80 -h /data'")


def members(b, *, api_env: str = 'MODE=one') -> dict[str, dict[str, str]]:
    return {
        'store': {'command': STORE, 'volumes': f'{b.prefix}-data:/data'},
        'cache': {},
        'api': {'links': 'store', 'depends': 'cache', 'env': api_env},
        'worker': {'volumes-from': 'store', 'volumes': f'{b.prefix}-logs:/logs'},
        'web': {'links': 'api:backend'},
        'admin': {'depends': f'worker {b.prefix}-api'},
    }


def member_section(b, busybox: str, section: str, options: dict[str, str]) -> str:
    lines = [f'[{section}]', f'name = {b.prefix}-{section}', f'image = {busybox}',
             'init = true', 'stop-timeout = 1', 'wait-for = tcp:80',
             f'command = {options.get("command", SERVICE)}']
    lines += [f'{key} = {value}' for key, value in options.items() if key != 'command']
    return '\n'.join(lines) + '\n'


def system_config(b, busybox: str, *, only: list[str] | None = None, api_env: str = 'MODE=one',
                  parts: str = 'sys', extra: str = '') -> str:
    chosen = members(b, api_env=api_env)
    sections = only or list(chosen)
    head = textwrap.dedent(f'''\
        [buildout]
        parts = {parts}

        [sys]
        recipe = dockeroo_nagoya:docker.system
        containers = {' '.join(sections)}
        {extra}
        ''')
    return head + '\n' + '\n'.join(member_section(b, busybox, s, chosen[s]) for s in chosen)


def separate_parts_config(b, busybox: str) -> str:
    """The same six containers as docker.run parts (buildout installs them one by one)."""
    sections = []
    for section, options in members(b).items():
        options = dict(options)
        options.pop('depends', None)  # docker.run has no depends: the order of parts does it
        for key in ('links', 'volumes-from'):
            if key in options:
                target, _, alias = options[key].partition(':')
                options[key] = f'${{{target}:name}}' + (f':{alias}' if alias else '')
        text = member_section(b, busybox, section, options)
        sections.append(text.replace(f'[{section}]', f'[{section}]\nrecipe = dockeroo_nagoya:docker.run'))
    return f'[buildout]\nparts = {" ".join(members(b))}\n\n' + '\n'.join(sections)


def started_at(client, name: str) -> datetime.datetime:
    text = client.api.inspect_container(name)['State']['StartedAt']
    return datetime.datetime.fromisoformat(text[:26].rstrip('Z') + '+00:00')


def timed_run(b, *args: str) -> tuple[float, str]:
    started = time.monotonic()
    result = b.run(*args)
    return time.monotonic() - started, output(result)


# -- bring-up ------------------------------------------------------------------------------
@pytest.mark.slow
def test_six_members_in_three_levels_come_up_faster_than_six_separate_parts(
        make_buildout, busybox, client):
    separate = make_buildout('separate')
    separate.write(separate_parts_config(separate, busybox))
    separate_time, _ = timed_run(separate, '-N')
    assert len(container_ids_by_name(client, separate)) == 6

    b = make_buildout('system')
    b.write(system_config(b, busybox))
    system_time, out = timed_run(b, '-N')
    print(f'\nbring-up of six services in three levels: system {system_time:.1f}s, '
          f'six docker.run parts {separate_time:.1f}s')
    assert system_time < separate_time, out
    assert 'longest dependency chain: 3' in out, out

    first = container_ids_by_name(client, b)
    assert set(first) == {'store', 'cache', 'api', 'worker', 'web', 'admin'}
    for name in first:
        assert client.api.inspect_container(f'{b.prefix}-{name}')['State']['Running'], name
        labels = client.api.inspect_container(f'{b.prefix}-{name}')['Config']['Labels']
        assert labels['io.dockeroo-nagoya.member'] == name
        assert labels['io.dockeroo-nagoya.part'] == 'sys'
    # Each member started after its dependencies listened (a second after they started);
    # independent members started together.
    start = {name: started_at(client, f'{b.prefix}-{name}') for name in first}
    second = datetime.timedelta(seconds=0.9)
    for member, needs in {'api': ['store', 'cache'], 'worker': ['store'],
                          'web': ['api'], 'admin': ['worker', 'api']}.items():
        for need in needs:
            assert start[member] >= start[need] + second, (member, need, start)
    assert abs(start['store'] - start['cache']) < second
    assert abs(start['api'] - start['worker']) < second
    # Links and volumes-from name members by section: the engine gets container names.
    api = client.api.inspect_container(f'{b.prefix}-api')['HostConfig']
    assert any(link.startswith(f'/{b.prefix}-store:') and link.endswith('/store')
               for link in api['Links']), api['Links']
    worker = client.api.inspect_container(f'{b.prefix}-worker')
    assert worker['HostConfig']['VolumesFrom'] == [f'{b.prefix}-store:rw']
    assert (b.directory / 'bin' / 'sys').exists()

    rerun_time, out = timed_run(b, '-N')
    assert container_ids_by_name(client, b) == first
    assert not re.search(r'creating|recreating|starting', out), out


@pytest.mark.slow
def test_changed_member_is_recreated_with_the_members_linked_to_it_after_it(
        buildout, busybox, client):
    b = buildout
    b.write(system_config(b, busybox))
    b.run('-N')
    first = container_ids_by_name(client, b)
    b.write(system_config(b, busybox, api_env='MODE=two'))
    out = output(b.run('-N'))
    after = container_ids_by_name(client, b)
    changed = {name for name in first if first[name] != after[name]}
    # web links to api: recreated after it; admin only depends on api: kept.
    assert changed == {'api', 'web'}, out
    assert out.index(f'recreating {b.prefix}-api: env changed') < \
        out.index(f'recreating {b.prefix}-web: linked containers changed'), out
    assert 'MODE=two' in client.api.inspect_container(after['api'])['Config']['Env']
    # The control script's description names members; it never holds an environment.
    assert 'MODE=' not in (b.directory / 'parts' / 'sys' / 'system.json').read_text()
    for name in after:
        assert client.api.inspect_container(after[name])['State']['Running'], name


@pytest.mark.slow
def test_member_taken_out_is_removed_and_removing_the_part_keeps_the_volumes(
        buildout, busybox, client):
    b = buildout
    b.write(system_config(b, busybox))
    b.run('-N')
    kept = ['store', 'cache', 'api', 'worker', 'web']
    b.write(system_config(b, busybox, only=kept))
    out = output(b.run('-N'))
    assert set(container_ids_by_name(client, b)) == set(kept)
    assert f'removed container {b.prefix}-admin: it is no longer in containers' in out

    b.write('[buildout]\nparts =\n')
    since = time.time()
    out = output(b.run('-N'))
    assert container_ids_by_name(client, b) == {}
    # Dependents went first: web's stop signal before api's before store's (their
    # removals, logged when the engine has cleaned up, may finish in any order).
    kills = [e['Actor']['Attributes']['name'] for e in client.events(
        since=int(since) - 1, until=int(time.time()) + 1, decode=True,
        filters={'type': 'container', 'event': 'kill', 'label': b.label})]
    order = [kills.index(f'{b.prefix}-{name}') for name in ('web', 'api', 'store')]
    assert order == sorted(order), kills
    assert not (b.directory / 'bin' / 'sys').exists()
    data = run_output(client, busybox, ['cat', '/v/created'],
                                 volumes={f'{b.prefix}-data': {'bind': '/v', 'mode': 'ro'}})
    assert data == b'first-start\n'
    assert client.volumes.get(f'{b.prefix}-logs')


def test_failing_member_is_named_and_its_dependents_are_not_started(buildout, busybox, client):
    b = buildout
    b.write(textwrap.dedent(f'''\
        [buildout]
        parts = sys

        [sys]
        recipe = dockeroo_nagoya:docker.system
        containers = good bad after-bad

        [good]
        name = {b.prefix}-good
        image = {busybox}
        init = true
        stop-timeout = 1
        command = sh -c 'sleep 0.5; exec httpd -f -p 80'
        wait-for = tcp:80

        [bad]
        name = {b.prefix}-bad
        image = {busybox}
        command = sh -c 'echo no config here; exit 4'
        wait-for = tcp:80

        [after-bad]
        name = {b.prefix}-after-bad
        image = {busybox}
        depends = bad
        command = httpd -f -p 80
        '''))
    out = b.fail('-N')
    assert_one_error(out, f'sys: member bad: container {b.prefix}-bad exited with code 4 '
                     'while waiting for tcp:80', 'no config here')
    assert 'Traceback' not in out
    found = container_ids_by_name(client, b)
    assert 'after-bad' not in found
    assert client.api.inspect_container(f'{b.prefix}-good')['State']['Running']


# -- configuration errors, one line each -------------------------------------------------
MEMBER = '''
[{section}]
name = {prefix}-{section}
image = {image}
{body}
'''


@pytest.mark.parametrize('sections, bodies, expected', [
    ('a b', {'a': ''}, ['sys: option containers: expected names of sections of this buildout',
                        "'b (there is no [b])'"]),
    ('a b c', {'a': 'links = b', 'b': 'depends = c', 'c': 'volumes-from = a'},
     ['sys: option containers: dependency cycle a -> b -> c -> a']),
    ('a', {'a': 'links = a'}, ['sys: option containers: dependency cycle a -> a']),
    ('a b', {'a': 'depends = nowhere', 'b': ''},
     ['sys: member a: option depends: expected members of this system (a, b)', "'nowhere'"]),
    ('a b', {'a': '', 'b': 'recipe = dockeroo_nagoya:docker.run'},
     ['sys: option containers: section [b] has a recipe']),
    ('a b', {'a': 'wait-for = udp:53', 'b': ''}, ['sys: member a: option wait-for', "(not 'udp')"]),
    ('a b', {'a': '', 'b': 'image ='}, ['sys: member b: option image is required but missing']),
])
def test_bad_configuration_gives_one_clear_error(buildout, busybox, sections, bodies, expected):
    b = buildout
    text = f'[buildout]\nparts = sys\n\n[sys]\nrecipe = dockeroo_nagoya:docker.system\n' \
           f'containers = {sections}\n'
    for section, body in bodies.items():
        member = MEMBER.format(section=section, prefix=b.prefix, image=busybox, body=body)
        if 'image =' in body:
            member = member.replace(f'image = {busybox}\n', '')
        text += member
    b.write(text)
    assert_one_error(b.fail('-N'), *expected)


def test_two_members_with_one_container_name_are_refused(buildout, busybox):
    b = buildout
    b.write(buildout_config(['sys'], system_part(['a', 'b']),
                            member_part(b, 'a', busybox, name=f'{b.prefix}-same'),
                            member_part(b, 'b', busybox, name=f'{b.prefix}-same')))
    assert_one_error(b.fail('-N'), f'sys: members a and b both name their container '
                     f'{b.prefix}-same')


# -- the scheduler, without an engine ------------------------------------------------------
def test_scheduler_starts_each_item_as_soon_as_what_it_needs_is_done():
    from dockeroo_nagoya.model import dependencies, scheduling
    # a (0.3s) -> c; b (0.1s) -> d (0.1s): d must not wait for a's level.
    graph = {'a': set(), 'b': set(), 'c': {'a'}, 'd': {'b'}}
    took = {'a': 0.3, 'b': 0.1, 'c': 0.1, 'd': 0.1}
    began, ended = {}, {}
    clock = time.monotonic()

    def work(item: str) -> str:
        began[item] = time.monotonic() - clock
        time.sleep(took[item])
        ended[item] = time.monotonic() - clock
        return item.upper()

    assert scheduling.run(graph, work) == {'a': 'A', 'b': 'B', 'c': 'C', 'd': 'D'}
    assert began['c'] >= ended['a'] and began['d'] >= ended['b']
    assert began['d'] < ended['a']                     # not level by level
    assert max(ended.values()) < 0.55                  # the longest chain, not the sum (0.6)
    assert dependencies.reverse(graph) == {'a': {'c'}, 'b': {'d'}, 'c': set(), 'd': set()}
    assert dependencies.levels(graph) == [['a', 'b'], ['c', 'd']]


def test_scheduler_stops_scheduling_after_a_failure_and_waits_for_running_items():
    from dockeroo_nagoya.model import scheduling
    graph = {'slow': set(), 'bad': set(), 'after-bad': {'bad'}, 'after-slow': {'slow'}}
    done = []

    def work(item: str) -> None:
        if item == 'bad':
            raise ValueError('bad broke')
        time.sleep(0.2)
        done.append(item)

    with pytest.raises(scheduling.Failed) as failed:
        scheduling.run(graph, work)
    assert failed.value.first[0] == 'bad' and str(failed.value.first[1]) == 'bad broke'
    assert done == ['slow']                            # finished, but nothing new started


def test_cycles_are_found_and_named():
    from dockeroo_nagoya.model import dependencies
    assert dependencies.find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set()}) is None
    assert dependencies.find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert dependencies.find_cycle({'a': {'outside'}, 'b': {'b'}}) == ['b', 'b']


def test_members_created_ahead_are_removed_when_an_earlier_member_fails(buildout, client,
                                                                       busybox):
    """b and c wait for a: created while a starts, and removed again when a's gate fails."""
    import time as clock
    b = buildout
    b.write(buildout_config(
        ['sys'], system_part(['a', 'b', 'c']),
        member_part(b, 'a', busybox, command='sleep 3600', init='true', wait_for='exec:false',
                    wait_timeout='1'),
        member_part(b, 'b', busybox, command='sleep 3600', init='true', depends='a'),
        member_part(b, 'c', extends='b')))
    since = clock.time()
    out = b.fail('-N')
    assert 'wait-for' in out
    created = {e['Actor']['Attributes']['name'] for e in client.events(
        since=int(since) - 1, until=int(clock.time()) + 1, decode=True,
        filters={'type': 'container', 'event': 'create', 'label': b.label})}
    assert {f'{b.prefix}-b', f'{b.prefix}-c'} <= created, created   # made ahead of their turn
    assert {c.name for c in b.owned('containers')} <= {f'{b.prefix}-a'}  # and gone again


def test_cold_bring_up_asks_for_no_member_by_name(
        make_buildout, busybox, client, tmp_path):
    """A cold system looks its members' names up in one listing (no inspect per member, once
    to decide and again to create ahead), and the volume parts before it list volumes once;
    every member is created and started once, and the teardown removes them all."""
    b = make_buildout('coldreq')
    n = 6
    b.write(n_containers_config(b, busybox, n, 'system'))
    socket = str(tmp_path / 'engine.sock')
    with CountingProxy(socket) as proxy:
        b.run('-N', env={'DOCKER_HOST': f'unix://{socket}'})
        trace = list(proxy.trace)
    by_name = [path for _, method, path in trace
               if method == 'GET' and re.search(rf'/containers/{b.prefix}-c\d+/json$', path)]
    assert by_name == [], by_name
    # The volume parts before it: each one's new volume joins the run's listing.
    listings = [path for _, method, path in trace if method == 'GET' and path.endswith('/volumes')]
    assert len(listings) <= 2, listings
    creates = [when for when, method, path in trace if path.endswith('/containers/create')]
    starts = [when for when, method, path in trace if re.search(r'/containers/\w+/start$', path)]
    assert len(creates) == len(starts) == n
    assert {c.name for c in client.containers.list(filters={'name': b.prefix})} == {
        f'{b.prefix}-c{i}' for i in range(n)}
    b.write('[buildout]\nparts =\n')
    b.run('-N')
    assert client.containers.list(all=True, filters={'name': b.prefix}) == []
