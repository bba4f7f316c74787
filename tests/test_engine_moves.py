"""A part's engine changes, or cannot be reached, or is said in other words.

A part whose engine options name another engine (``docker-host`` taken out,
``engine = URL`` for another URL, ``[buildout] engine`` changed) is made anew
on the new engine, and what it made on the old one is removed once it is
there: nothing of it is left behind, and the rerun is quiet. A part gone from
the configuration whose engine does not answer is said in one line and
forgotten; its containers there are the orphans of the first run that reaches
that engine. ``engine = tcp://... tls=~/DIR``, ``[buildout] engine`` and a
context's name are read one way wherever they are written. The second engine
is a second dockerd on this machine (``second_engine``; ``tls_second_engine``
listens on TCP with TLS).
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from typing import Iterator

import docker
import docker.errors
import pytest

from conftest import SecondEngine
from dockeroo_nagoya.engine.driver import EngineConfig
from faults.harness import inject
from helpers import (actions, assert_one_error, buildout_config, builder_hosts, ids, plan, section,
                     sleeper)

pytestmark = pytest.mark.slow

MOVING = '.dockeroo-nagoya.moving.json'


def names(client: docker.DockerClient, b) -> dict[str, str]:
    """Container name -> status of what the buildout owns on ``client``'s engine."""
    return {c.name: c.status for c in b.owned('containers', client)}


def pair(b, busybox: str, **engine: str) -> str:
    """``db`` and ``web`` (which comes after it), both with the engine options ``engine``,
    and ``here`` on the buildout's own engine, which no change of theirs touches."""
    return buildout_config(
        ['here', 'db', 'web'],
        sleeper('here', busybox, name=f'{b.prefix}-here', stop_timeout='1'),
        sleeper('db', busybox, name=f'{b.prefix}-db', stop_timeout='1', **engine),
        sleeper('web', busybox, name=f'{b.prefix}-web', stop_timeout='1',
                depends='${db:name}', **engine))


def quiet(b, client: docker.DockerClient, other: docker.DockerClient) -> None:
    """Two unchanged reruns: nothing installed or uninstalled, the same objects on both
    engines, no hand-over left."""
    here, there = ids(client, b), ids(other, b)
    for _ in range(2):
        out = b.run('-N').stdout
        assert actions(out) == [], out
        assert 'moves' not in out and 'removing' not in out, out
        assert ids(client, b) == here and ids(other, b) == there
    assert not (b.directory / MOVING).exists()


def test_parts_moved_between_engines_leave_nothing_on_the_old_one(buildout, client, busybox,
                                                                   remote):
    b = buildout
    both = {f'{b.prefix}-db': 'running', f'{b.prefix}-web': 'running'}
    b.write(pair(b, busybox, docker_host=remote.host))
    b.run('-N')
    assert names(remote.client, b) == both
    assert names(client, b) == {f'{b.prefix}-here': 'running'}
    quiet(b, client, remote.client)
    here = client.containers.get(f'{b.prefix}-here').id
    there = ids(remote.client, b)

    # docker-host taken out: the buildout's own engine. The plan says both sides.
    b.write(pair(b, busybox))
    result = plan(b, '--json')
    assert result.returncode == 2, result.stdout + result.stderr
    changes = {(c['object'], c['action']): c['reasons']
               for c in json.loads(result.stdout)['changes']}
    for name in (f'{b.prefix}-db', f'{b.prefix}-web'):
        assert (name, 'create') in changes, changes
        note = changes[(name, 'remove')][0]['note']
        assert note.startswith(f'{name.rsplit("-", 1)[1]} moves to '), changes
    assert ids(remote.client, b) == there, 'a plan changes nothing'
    out = b.run('-N').stdout
    assert names(client, b) == {**both, f'{b.prefix}-here': 'running'}, out
    assert names(remote.client, b) == {}, out
    assert client.containers.get(f'{b.prefix}-here').id == here
    # Made on the new engine as new (not "again": they were never there), the old ones
    # removed after, web before db (it comes after db).
    lines = out.splitlines()
    made = lines.index(f'web: creating {b.prefix}-web')
    gone = [i for i, line in enumerate(lines) if line.startswith(('web: removed container',
                                                                  'db: removed container'))]
    assert len(gone) == 2 and made < min(gone), out
    assert lines[gone[0]].startswith('web:'), out
    assert f'creating {b.prefix}-db again' not in out, out
    quiet(b, client, remote.client)

    # Back there by a phrase: the same move the other way.
    b.write(pair(b, busybox, engine=remote.host))
    out = b.run('-N').stdout
    assert names(remote.client, b) == both, out
    assert names(client, b) == {f'{b.prefix}-here': 'running'}, out
    quiet(b, client, remote.client)


def test_a_builder_line_given_another_engine_moves_its_parts(buildout, client, busybox, remote,
                                                             tls_second_engine):
    b = buildout
    other = tls_second_engine.client
    assert other is not None
    sleepers = {f'{b.prefix}-box-1': 'running', f'{b.prefix}-box-2': 'running'}
    try:
        builder_hosts(b, busybox, f'box {remote.host} 2')
        b.run('-N')
        assert names(remote.client, b) == sleepers
        quiet(b, remote.client, other)

        builder_hosts(b, busybox, f'box {tls_second_engine.host} 2')
        out = b.run('-N').stdout
        assert actions(out) == ['Uninstalling sleep-box.', 'Uninstalling img-box.',
                                'Installing img-box.', 'Installing sleep-box.'], out
        assert names(other, b) == sleepers, out
        assert names(remote.client, b) == {}, out
        with pytest.raises(docker.errors.ImageNotFound):  # the image the line loaded there
            remote.client.images.get(busybox)
        assert other.images.get(busybox).id == client.images.get(busybox).id
        quiet(b, remote.client, other)
    finally:
        b.cleanup(other)


def test_a_failed_install_on_the_new_engine_leaves_the_old_running_until_one_succeeds(
        buildout, client, busybox, remote):
    b = buildout
    web = f'{b.prefix}-web'
    b.write(buildout_config(['web'], sleeper('web', busybox, name=web, stop_timeout='1',
                                             docker_host=remote.host)))
    b.run('-N')
    old = remote.client.containers.get(web).id

    b.write(buildout_config(['web'], section('web', 'docker.run', image=busybox, name=web,
                                             command='no-such-command')))
    assert_one_error(b.fail('-N'))
    assert remote.client.containers.get(web).id == old
    assert remote.client.containers.get(web).status == 'running'
    assert (b.directory / MOVING).exists()

    b.write(buildout_config(['web'], sleeper('web', busybox, name=web, stop_timeout='1')))
    out = b.run('-N').stdout
    assert names(client, b) == {web: 'running'}, out
    assert names(remote.client, b) == {}, out
    quiet(b, client, remote.client)


@pytest.mark.parametrize('rule', [
    'POST /containers/[^/]+/start$:killafter',  # the new one started, not yet recorded
    'DELETE /containers/:kill',                 # recorded, the old one on its way out
])
def test_a_move_killed_half_way_is_finished_by_the_next_run(buildout, client, busybox, remote,
                                                            rule):
    b = buildout
    web = f'{b.prefix}-web'
    b.write(buildout_config(['web'], sleeper('web', busybox, name=web, stop_timeout='1',
                                             docker_host=remote.host)))
    b.run('-N')

    b.write(buildout_config(['web'], sleeper('web', busybox, name=web, stop_timeout='1')))
    assert inject(b, rule).killed
    assert web in names(remote.client, b), 'killed before the old one was removed'
    assert (b.directory / MOVING).exists()
    out = b.run('-N').stdout
    assert names(client, b) == {web: 'running'}, out
    assert names(remote.client, b) == {}, out
    quiet(b, client, remote.client)


def test_a_second_address_of_the_same_engine_is_no_move(buildout, client, busybox, remote):
    b = buildout
    web = f'{b.prefix}-web'
    b.write(buildout_config(['web'], sleeper('web', busybox, name=web, docker_host=remote.host)))
    b.run('-N')
    before = remote.client.containers.get(web).id
    # Another path to the same socket (not a symbolic link, which one key already covers).
    other = remote.root / f'other-{uuid.uuid4().hex[:6]}.sock'
    os.link(remote.host.removeprefix('unix://'), other)
    try:
        b.write(buildout_config(['web'], sleeper('web', busybox, name=web,
                                                 engine=f'unix://{other}')))
        out = b.run('-N').stdout
        assert actions(out) == ['Uninstalling web.', 'Installing web.'], out
        assert 'moves' not in out and 'removed container' not in out, out
        assert remote.client.containers.get(web).id == before
        assert names(client, b) == {}
        quiet(b, client, remote.client)
    finally:
        other.unlink()


def test_a_removed_part_whose_engine_does_not_answer_is_forgotten(buildout, client, busybox,
                                                                  remote):
    b = buildout
    far, here = f'{b.prefix}-far', f'{b.prefix}-here'
    with_far = buildout_config(['here', 'far'], sleeper('here', busybox, name=here),
                               sleeper('far', busybox, name=far, docker_host=remote.host))
    b.write(with_far)
    b.run('-N')
    kept = client.containers.get(here).id
    remote.stop()

    # Still configured: its reinstall needs the engine, in one line, before anything acts.
    b.write(with_far.replace('sleep 3600', 'sleep 3601'))
    line = assert_one_error(b.fail('-N'))
    assert line.startswith(f'Error: far: no Docker engine answers at {remote.host}'), line
    assert client.containers.get(here).id == kept

    # Gone from the configuration: one warning, and buildout forgets it; the plan says so.
    b.write(buildout_config(['here'], sleeper('here', busybox, name=here)))
    planned = plan(b)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert 'what far made there is left' in planned.stdout, planned.stdout
    out = b.run('-N')
    said = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith('far:')]
    assert said == [f'far: removed from the configuration, but no Docker engine answers at '
                    f'{remote.host}: what it made there is left; no part of this buildout is '
                    f'on that engine now, so it stays (a run with a part there removes it; '
                    f'volumes are only reported)'], out.stdout
    assert '[far]' not in (b.directory / '.installed.cfg').read_text().split('[buildout]')[-1]
    again = b.run('-N').stdout
    assert actions(again) == [] and 'far' not in again, again
    assert client.containers.get(here).id == kept

    # The engine back: its container is still there, and the first run with a part on
    # that engine removes it as the orphan it is.
    remote.start()
    assert far in names(remote.client, b)
    b.write(buildout_config(['here', 'near'], sleeper('here', busybox, name=here),
                            sleeper('near', busybox, name=f'{b.prefix}-near',
                                    docker_host=remote.host)))
    out = b.run('-N').stdout
    assert f'removed container {far}: its part far is neither installed nor configured' in out, out
    assert names(remote.client, b) == {f'{b.prefix}-near': 'running'}
    assert client.containers.get(here).id == kept


def test_a_part_leaving_an_engine_that_does_not_answer_says_what_stays_there(
        buildout, client, busybox, remote):
    b = buildout
    web = f'{b.prefix}-web'
    b.write(buildout_config(['web'], sleeper('web', busybox, name=web, docker_host=remote.host)))
    b.run('-N')
    remote.stop()

    b.write(buildout_config(['web'], sleeper('web', busybox, name=web)))
    out = b.run('-N')
    said = [line for line in (out.stdout + out.stderr).splitlines() if 'moves to' in line]
    assert len(said) == 1 and said[0].startswith(
        f'web: moves to {EngineConfig().describe()}, but no Docker engine answers at '
        f'{remote.host}: what it made there is left there, and stays'), out.stdout
    assert names(client, b) == {web: 'running'}
    assert actions(b.run('-N').stdout) == []
    remote.start()
    assert web in names(remote.client, b), 'left there, as said'


def test_an_orphan_on_another_engine_named_like_a_container_being_removed_is_swept(
        buildout, client, busybox, remote):
    b = buildout
    same = f'{b.prefix}-same'
    b.write(buildout_config(['there', 'here'],
                            sleeper('there', busybox, name=f'{b.prefix}-there',
                                    docker_host=remote.host, stop_timeout='1'),
                            sleeper('here', busybox, name=same, stop_timeout='1')))
    b.run('-N')
    # What a failed install of a part since taken out leaves: a container labelled with the
    # buildout and that part, with the name of one on the other engine.
    remote.client.containers.create(busybox, 'sleep 3600', name=same, labels={
        'io.dockeroo-nagoya.buildout': str(os.path.realpath(b.directory)),
        'io.dockeroo-nagoya.part': 'ghost'})

    b.write(buildout_config([]))
    out = b.run('-N').stdout
    assert actions(out) == ['Uninstalling here.', 'Uninstalling there.'], out
    assert f'removed container {same}: its part ghost is neither installed nor configured' \
        in out, out
    assert names(remote.client, b) == {} and names(client, b) == {}, out


@pytest.fixture
def tls_remote(buildout, client, busybox, tls_second_engine) -> Iterator[SecondEngine]:
    tls_second_engine.load(client, busybox)
    try:
        yield tls_second_engine
    finally:
        buildout.cleanup(tls_second_engine.client)


def test_a_tls_directory_under_home_is_removed_as_installed(buildout, client, busybox, tls_remote,
                                                            tmp_path):
    b = buildout
    home = tmp_path / 'home'
    assert tls_remote.client_certs is not None
    shutil.copytree(tls_remote.client_certs, home / 'certs')
    env = {'HOME': str(home)}
    web = f'{b.prefix}-web'
    b.write(buildout_config(['web'], sleeper('web', busybox, name=web,
                                             engine=f'{tls_remote.tls_host} tls=~/certs')))
    b.run('-N', env=env)
    assert names(tls_remote.client, b) == {web: 'running'}
    for _ in range(2):
        assert actions(b.run('-N', env=env).stdout) == []

    b.write(buildout_config([]))
    out = b.run('-N', env=env).stdout
    assert actions(out) == ['Uninstalling web.'], out
    assert names(tls_remote.client, b) == {}, out


def test_the_buildout_engine_is_every_parts_default(buildout, client, busybox, remote):
    b = buildout
    plain, default, own = f'{b.prefix}-plain', f'{b.prefix}-default', f'{b.prefix}-own'

    def config(head: str, **extra: str) -> str:
        return buildout_config(
            ['plain', 'default', 'own'],
            sleeper('plain', busybox, name=plain, stop_timeout='1'),
            sleeper('default', busybox, name=default, engine='default', stop_timeout='1', **extra),
            sleeper('own', busybox, name=own, docker_host='unix:///var/run/docker.sock',
                    stop_timeout='1'), head=head)

    b.write(config(f'engine = {remote.host}'))
    out = b.run('-N')
    assert 'Unused option' not in out.stdout + out.stderr, out.stdout + out.stderr
    assert names(remote.client, b) == {plain: 'running', default: 'running'}
    assert names(client, b) == {own: 'running'}
    quiet(b, client, remote.client)
    mine = client.containers.get(own).id

    # [buildout] engine taken out: the two that followed it move, the one with its own
    # engine stays as it is.
    b.write(config(''))
    out = b.run('-N').stdout
    assert names(client, b) == {plain: 'running', default: 'running', own: 'running'}, out
    assert names(remote.client, b) == {}, out
    assert client.containers.get(own).id == mine
    quiet(b, client, remote.client)

    # What contradicts the [buildout] engine, there or in a part, is one line.
    b.write(config(f'engine = {remote.host}\ndocker-host = unix:///var/run/docker.sock'))
    line = assert_one_error(b.fail('-N'))
    assert line.startswith(f'Error: plain: option docker-host of [buildout]: expected no '
                           f'docker-host beside engine = {remote.host}'), line
    b.write(config(f'engine = {remote.host}', docker_host='unix:///var/run/docker.sock'))
    line = assert_one_error(b.fail('-N'))
    assert line.startswith('Error: default: option docker-host: expected no docker-host beside '
                           'engine = default'), line
    b.write(config('engine = no-such-context'))
    line = assert_one_error(b.fail('-N'))
    assert line.startswith("Error: plain: option engine of [buildout]: no Docker context named "
                           "'no-such-context'"), line
    assert names(client, b) == {plain: 'running', default: 'running', own: 'running'}


def test_an_engine_phrase_naming_a_context_is_checked_before_anything_acts(
        buildout, client, busybox, remote, tmp_path, monkeypatch):
    b = buildout
    web = f'{b.prefix}-web'
    b.write(buildout_config(['web'], sleeper('web', busybox, name=web, engine='nosuchctx')))
    line = assert_one_error(b.fail('-N'))
    assert line.startswith("Error: web: option engine: no Docker context named 'nosuchctx'"), line
    assert not (b.directory / '.installed.cfg').exists()

    # A context that exists is the engine it names; its part moves when it names another.
    config = tmp_path / 'docker-config'
    config.mkdir()
    (config / 'config.json').write_text('{}')
    monkeypatch.setenv('DOCKER_CONFIG', str(config))  # the SDK finds contexts beside it
    context = f'dnt-{uuid.uuid4().hex[:8]}'
    docker.ContextAPI.create_context(context, host=remote.host)
    try:
        b.write(buildout_config(['web'], sleeper('web', busybox, name=web, engine=context,
                                                 stop_timeout='1')))
        b.run('-N')
        assert names(remote.client, b) == {web: 'running'}
        assert actions(b.run('-N').stdout) == []
        b.write(buildout_config(['web'], sleeper('web', busybox, name=web, stop_timeout='1')))
        out = b.run('-N').stdout
        assert names(client, b) == {web: 'running'} and names(remote.client, b) == {}, out
        quiet(b, client, remote.client)
    finally:
        docker.ContextAPI.remove_context(context)
