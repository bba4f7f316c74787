"""Tearing containers down: dependents first, independent ones together, no grace period
spent waiting for a signal that cannot arrive.

The engine's own events say what happened to each container and when
(``kill`` with the signal sent, ``die`` with the exit code), so these tests
check order and overlap from them, not from how long a run took.
"""
from __future__ import annotations

import time

import docker
import pytest

from dockeroo_nagoya.mechanisms import stopsignal
from faults.harness import fault_env
from helpers import buildout_config, member_part, system_part

#: A service that takes a second to shut down after SIGTERM, then exits 0.
SLOW_STOP = "sh -c 'trap \"sleep 1; exit 0\" TERM; while true; do sleep 0.2; done'"

#: The same, writing the host's uptime when SIGTERM came and when it ended into /out:
#: the order of processes ending is what dependents-first means (the engine's die event
#: comes later, after its clean-up).
STAMPED_STOP = """#!/bin/sh
stamp() { cut -d' ' -f1 /proc/uptime > /out/$NAME.$1; }
trap 'stamp term; sleep 1; stamp done; exit 0' TERM
while true; do sleep 0.2; done
"""


def stamps(directory, names) -> dict[str, dict[str, float]]:
    return {n: {k: float((directory / f'{n}.{k}').read_text()) for k in ('term', 'done')}
            for n in names}


def events(client: docker.DockerClient, b, since: float) -> list[tuple[str, str, dict]]:
    """(action, container name, attributes) of the buildout's containers since ``since``."""
    found = client.events(since=int(since) - 1, until=int(time.time()) + 1, decode=True,
                          filters={'type': 'container', 'label': b.label})
    return [(e['Action'], e['Actor']['Attributes'].get('name', ''), e['Actor']['Attributes'],
             e['timeNano'] / 1e9) for e in found]


def first(log: list, action: str, name: str, **attributes: str) -> int:
    """Position of the first matching event (a stop is a TERM kill, a die, then stop)."""
    for index, (act, who, attrs, _) in enumerate(log):
        if act == action and who == name and all(attrs.get(k) == v for k, v in attributes.items()):
            return index
    raise AssertionError(f'no {action} {attributes} event of {name} in {log}')


def a_and_b(b, busybox: str, keep_a: bool = False) -> str:
    """Two docker.run parts, b after a."""
    return f'''
        [buildout]
        parts = a b

        [a]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-a
        image = {busybox}
        command = sleep 3600
        init = true
        keep = {str(keep_a).lower()}

        [b]
        <= a
        name = {b.prefix}-b
        keep = false
        depends = ${{a:name}}
        '''


def run_with_one_part_of_ours(b) -> None:
    """A run where some part of this package acts: the orphan sweep happens in it."""
    b.write(f'''
        [buildout]
        parts = net

        [net]
        recipe = dockeroo_nagoya:docker.network
        name = {b.prefix}-net
        ''')
    b.run('-N')


def test_stop_signal_seen_or_not(client, busybox):
    """Read from /proc on this host: who would never see the stop signal."""
    cases = {
        'sleep': dict(command='sleep 3600'),                         # PID 1, no handler
        'init': dict(command='sleep 3600', init=True),               # docker-init waits for it
        'trap': dict(command=['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done']),
        'ignores': dict(command=['sh', '-c', 'trap "" TERM; sleep 3600 & wait']),
        'host-pid': dict(command='sleep 3600', pid_mode='host'),     # not a namespace's init
        'usr1': dict(command='sleep 3600', stop_signal='SIGUSR1'),
    }
    made = {}
    try:
        for key, kwargs in cases.items():
            made[key] = client.containers.run(busybox, detach=True, **kwargs)
        time.sleep(0.5)
        seen = {key: stopsignal.ignored(client.api.inspect_container(c.id))
                for key, c in made.items()}
    finally:
        for container in made.values():
            container.remove(force=True)
    assert seen == {'sleep': 'SIGTERM', 'init': None, 'trap': None, 'ignores': 'SIGTERM',
                    'host-pid': None, 'usr1': 'SIGUSR1'}
    assert stopsignal.signal_number('TERM') == stopsignal.signal_number('15') == 15
    assert stopsignal.signal_number('SIGNOPE') is None
    assert stopsignal.ignored({'Id': 'x', 'State': {'Running': False, 'Pid': 0}}) is None


def test_separate_parts_stop_dependents_first_and_independent_ones_together(buildout, client,
                                                                            busybox, tmp_path):
    """d -> b -> a and c -> a as docker.run parts: d and c stop at the same time, a last."""
    b = buildout
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'stop.sh').write_text(STAMPED_STOP)
    parts = {'a': '', 'b': '${a:name}', 'c': '${a:name}', 'd': '${b:name}'}
    config = ['[buildout]', 'parts = a b c d', '']
    for part, after in parts.items():
        config += [f'[{part}]', 'recipe = dockeroo_nagoya:docker.run', f'name = {b.prefix}-{part}',
                   f'image = {busybox}', 'command = sh /out/stop.sh', f'env = NAME={part}',
                   f'volumes = {out}:/out']
        config += [f'depends = {after}', ''] if after else ['']
    b.write('\n'.join(config))
    b.run('-N')
    b.write('[buildout]\nparts =\n')
    since = time.time()
    b.run('-N')
    assert not b.owned('containers')
    at = stamps(out, parts)
    # Nothing got its SIGTERM before everything that depends on it had ended.
    assert at['d']['done'] <= at['b']['term']
    for dependent in ('b', 'c'):
        assert at[dependent]['done'] <= at['a']['term']
    # d and c come after no removed container: both had SIGTERM before either ended.
    assert max(at['d']['term'], at['c']['term']) < min(at['d']['done'], at['c']['done'])
    # Each had its handler run (exit 0), none was killed for taking its second.
    log = events(client, b, since)
    for part in parts:
        assert log[first(log, 'die', f'{b.prefix}-{part}')][2].get('exitCode') == '0', log


def test_a_system_member_that_ignores_sigterm_is_not_waited_for(buildout, client, busybox,
                                                                tmp_path):
    """sleep as PID 1 never sees SIGTERM: the 30 s stop-timeout is not waited out, order kept."""
    b = buildout
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'stop.sh').write_text(STAMPED_STOP)
    b.write(buildout_config(
        ['sys'], system_part(['a', 'b', 'c']),
        member_part(b, 'a', busybox, command='sleep 3600', stop_timeout='30'),
        member_part(b, 'b', extends='a', depends='a'),
        member_part(b, 'c', extends='a', command='sh /out/stop.sh', env='NAME=c',
                    volumes=f'{out}:/out', depends='b')))
    b.run('-N')
    b.write('[buildout]\nparts =\n')
    since = time.time()
    text = b.run('-N').stdout
    assert not b.owned('containers')
    for member in ('a', 'b'):
        assert f'{b.prefix}-{member}: its main process ignores SIGTERM: stopping it at once' in text
    assert f'{b.prefix}-c: its main process' not in text
    log = events(client, b, since)
    a, bb, c = (f'{b.prefix}-{m}' for m in 'abc')
    assert log[first(log, 'die', c)][2]['exitCode'] == '0'          # its handler ran
    assert first(log, 'kill', c, signal='15') < first(log, 'kill', bb) < first(log, 'kill', a)
    for name in (a, bb):
        assert log[first(log, 'die', name)][2]['exitCode'] == '137'  # killed, as at the timeout
        assert [e for e in log if e[0] == 'kill' and e[1] == name] == \
            [log[first(log, 'kill', name, signal='9')]]              # SIGKILL only, at once
    # c took its second to end before b was killed (both on the host's wall clock; the
    # uptime stamps have 10 ms steps).
    with open('/proc/uptime', encoding='ascii') as uptime:
        booted = time.time() - float(uptime.read().split()[0])
    assert booted + stamps(out, ['c'])['c']['done'] <= log[first(log, 'kill', bb)][3] + 0.05


def test_a_failed_background_removal_fails_the_run_and_the_next_run_removes_it(
        buildout, tmp_path, busybox):
    """The engine refuses one removal: the run ends in one error line; a rerun cleans up."""
    b = buildout
    b.write(a_and_b(b, busybox))
    b.run('-N')
    b.write('[buildout]\nparts =\n')
    rule = 'POST /containers/[^/]+/kill#1:error'   # b's processes cannot be ended
    result = b.run('-N', check=False, env=fault_env(rule, tmp_path / 'fault.log'))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert 'Traceback' not in output
    errors = [line for line in output.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and errors[0].startswith('Error: b: '), output
    assert 'a: its containers were left running because b' in output
    left = {c.name for c in b.owned('containers')}
    assert left == {f'{b.prefix}-a', f'{b.prefix}-b'} or left == {f'{b.prefix}-a'}, left
    run_with_one_part_of_ours(b)   # the orphans of the removed parts go
    assert not b.owned('containers')


@pytest.mark.parametrize('keep', ['true', 'false'])
def test_a_removed_part_with_a_volume_part_after_it(buildout, client, busybox, keep):
    """The volume's removal waits for the container that uses it (a background removal)."""
    b = buildout
    b.write(f'''
        [buildout]
        parts = data app

        [data]
        recipe = dockeroo_nagoya:docker.volume
        name = {b.prefix}-data
        keep = {keep}

        [app]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-app
        image = {busybox}
        command = {SLOW_STOP}
        volumes = ${{data:name}}:/data
        ''')
    b.run('-N')
    b.write('[buildout]\nparts =\n')
    b.run('-N')
    assert not b.owned('containers')
    assert bool(client.volumes.list(filters={'name': f'{b.prefix}-data'})) == (keep == 'true')


def test_a_kept_container_stays_kept_when_a_dependent_removal_fails(buildout, tmp_path, busybox):
    """keep = true is recorded in the hook itself: no later failure turns it into an orphan."""
    b = buildout
    b.write(a_and_b(b, busybox, keep_a=True))
    b.run('-N')
    b.write('[buildout]\nparts =\n')
    result = b.run('-N', check=False,
                   env=fault_env('DELETE /containers/[^/]+$#1:error', tmp_path / 'fault.log'))
    assert result.returncode == 1, result.stdout + result.stderr
    run_with_one_part_of_ours(b)   # the sweep removes b's orphan, leaves the kept a
    assert {c.name: c.status for c in b.owned('containers')} == {f'{b.prefix}-a': 'running'}
