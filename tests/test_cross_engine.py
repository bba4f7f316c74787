"""An image built on the buildout's engine, carried to another one in the same run (issue 18).

As the Koji profile's builder machines get their image: a ``docker.build`` on
the default engine, a ``docker.save`` of it, a ``docker.load`` of that file on
the builder's engine (``docker-host``) and a container there. What a part makes
is known per engine: the load's image does not stand in for the build's on the
default engine (no phantom recreate there), and a container on the builder's
engine may not name an image only the default engine has. The second engine is
a second dockerd on this machine (``second_engine``).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import docker
import docker.errors
import pytest

from helpers import actions, buildout_config, ids, plan_json, section, sleeper

pytestmark = pytest.mark.slow



def remote_ids(client: docker.DockerClient, b) -> dict[str, str]:
    """kind:name -> id of the buildout's containers and images on another engine (a
    loaded image keeps the labels of the build that made it)."""
    found = {f'container:{c.name}': c.id
             for c in client.containers.list(all=True, filters={'label': b.label})}
    for image in client.images.list(filters={'label': b.label}):
        for tag in image.tags or ['<none>']:
            found[f'image:{tag}'] = image.id
    return found


@pytest.fixture
def remote(buildout, second_engine) -> Iterator:
    """The second engine; what the test's buildout made there is removed afterwards."""
    yield second_engine
    client = second_engine.client
    for container in client.containers.list(all=True, filters={'label': buildout.label}):
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    for image in client.images.list():
        if any(tag.startswith(buildout.prefix) for tag in image.tags) or \
                image.labels.get('io.dockeroo-nagoya.buildout') == buildout.label.split('=', 1)[1]:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image.id, force=True)


def context(b, busybox: str, text: str) -> None:
    (b.directory / 'app').mkdir(exist_ok=True)
    (b.directory / 'app' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo {text} > /what\n')


def local_parts(b) -> list[str]:
    """The default engine's parts: a build, an image derived from it, a container."""
    return [section('app', 'docker.build', name=f'{b.prefix}/app',
                    source='${buildout:directory}/app'),
            section('derived', 'docker.image', name=f'{b.prefix}/derived',
                    **{'from': '${app:image}'}, command='sleep 3600'),
            sleeper('local', '${derived:image}', name=f'{b.prefix}-local')]


def remote_parts(b, host: str) -> list[str]:
    """The builder's parts: the build saved to a file here, loaded there under the same
    name, a container there."""
    return [section('save', 'docker.save', name='${app:image}'),
            section('load', 'docker.load', docker_host=host, name='${app:image}',
                    path='${save:path}'),
            sleeper('remote', '${load:image}', docker_host=host, name=f'{b.prefix}-remote')]


def carried(b, host: str) -> str:
    return buildout_config(['app', 'save', 'load', 'remote', 'derived', 'local'],
                           *local_parts(b), *remote_parts(b, host))


def moves(found: dict) -> set[tuple[str, str, str]]:
    """(kind, object, action) of what a plan says changes."""
    return {(c['kind'], c['object'], c['action']) for c in found['changes'] if c['action'] != 'none'}


def test_an_image_built_here_is_loaded_there_in_the_same_run_and_again_only_when_rebuilt(
        buildout, client, busybox, remote):
    b = buildout
    app, tar = f'{b.prefix}/app:latest', b.directory / 'parts' / 'save' / f'{b.prefix}_app_latest.tar'
    context(b, busybox, 'one')
    b.write(carried(b, remote.host))

    # Planned before anything exists: the file is written by the save part first.
    planned = moves(plan_json(b, 2))
    assert {('image', app, 'build'), ('file', str(tar), 'create'), ('image', app, 'create'),
            ('container', f'{b.prefix}-remote', 'create'),
            ('container', f'{b.prefix}-local', 'create')} <= planned, planned

    out = b.run('-N').stdout
    assert f'loading {app}' in out, out
    built = client.images.get(app).id
    assert remote.client.images.get(app).id == built
    container = remote.client.containers.get(f'{b.prefix}-remote')
    assert container.image.id == built and container.status == 'running'
    installed = (b.directory / '.installed.cfg').read_text()
    load_id = next(line for line in installed.split('[load]')[1].splitlines()
                   if line.startswith('image-id = '))
    assert load_id != 'image-id = ' and not load_id.startswith('image-id = sha256:'), load_id

    here, there, file = ids(client, b), remote_ids(remote.client, b), tar.stat()
    for run in (2, 3):
        again = b.run('-N').stdout
        assert actions(again) == [], f'run {run}:\n{again}'
        assert 'loading' not in again and 'saving' not in again, again
        assert ids(client, b) == here and remote_ids(remote.client, b) == there, again
        now = tar.stat()
        assert (now.st_mtime_ns, now.st_ino) == (file.st_mtime_ns, file.st_ino), 'file rewritten'
    assert plan_json(b, 0)

    # The build changes: the file is written again, the builder's image replaced and its
    # container recreated, in the one run; what the plan said.
    context(b, busybox, 'two')
    planned = moves(plan_json(b, 2))
    assert {('image', app, 'build'), ('file', str(tar), 'update'), ('image', app, 'recreate'),
            ('container', f'{b.prefix}-remote', 'recreate')} <= planned, planned
    out = b.run('-N').stdout
    rebuilt = client.images.get(app).id
    assert rebuilt != built and f'loading {app}' in out, out
    assert tar.stat().st_mtime_ns != file.st_mtime_ns
    assert remote.client.images.get(app).id == rebuilt
    container = remote.client.containers.get(f'{b.prefix}-remote')
    assert container.id != there[f'container:{b.prefix}-remote'] and container.image.id == rebuilt
    with pytest.raises(docker.errors.ImageNotFound):  # the replaced image is not left behind
        remote.client.images.get(built)

    here, there, file = ids(client, b), remote_ids(remote.client, b), tar.stat()
    settled = b.run('-N').stdout
    assert actions(settled) == [] and 'loading' not in settled, settled
    assert ids(client, b) == here and remote_ids(remote.client, b) == there, settled
    assert tar.stat().st_mtime_ns == file.st_mtime_ns
    plan_json(b, 0)

    # The parts removed: the builder's container and the tag the load made go with them.
    b.write(buildout_config(['app', 'derived', 'local'], *local_parts(b)))
    b.run('-N')
    assert remote_ids(remote.client, b) == {}, remote_ids(remote.client, b)


def test_adding_the_builder_parts_leaves_the_default_engine_as_it_is(
        buildout, client, busybox, remote):
    b = buildout
    context(b, busybox, 'one')
    b.write(buildout_config(['app', 'derived', 'local'], *local_parts(b)))
    b.run('-N')
    before = ids(client, b)

    # The load on the builder's engine registers the same reference as the build: the
    # image derived from the build here must still see the build, not the load.
    b.write(carried(b, remote.host))
    out = b.run('-N').stdout
    assert actions(out) == ['Installing save.', 'Installing load.', 'Installing remote.'], out
    assert ids(client, b) == before, out
    assert remote.client.containers.get(f'{b.prefix}-remote').status == 'running'


def test_a_container_there_naming_an_image_only_made_here_is_refused(buildout, client, busybox,
                                                                     remote):
    b = buildout
    context(b, busybox, 'one')
    b.write(buildout_config(
        ['app', 'remote'], local_parts(b)[0],
        sleeper('remote', '${app:image}', docker_host=remote.host, name=f'{b.prefix}-remote')))
    out = b.fail('-N')
    said = [line for line in out.splitlines() if 'option image' in line]
    assert len(said) == 1 and 'remote: option image: expected an image on the Docker engine ' \
        'or made by a part of this buildout' in said[0], out
    assert 'Traceback' not in out
    assert not client.images.list(name=f'{b.prefix}/app'), 'nothing acted'
    assert remote_ids(remote.client, b) == {}


def test_a_load_where_its_image_is_made_is_refused(buildout, busybox):
    """A docker.load of a save's file on the engine where a part makes that image (a
    builder-hosts line naming the hub's own engine) would stand in for its maker: one line."""
    b = buildout
    (b.directory / 'ctx').mkdir()
    (b.directory / 'ctx' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo one > /v\n')
    b.write(buildout_config(
        ['img', 'save', 'again'],
        section('img', 'docker.build', name=f'{b.prefix}/img:latest', source='ctx'),
        section('save', 'docker.save', name='${img:image}'),
        section('again', 'docker.load', name='${img:image}', path='${save:path}')))
    out = b.fail()
    errors = [line for line in out.splitlines() if line.startswith('Error:')]
    assert errors == [f"Error: again: option name: expected an image no other part makes on "
                      f"this engine ({b.prefix}/img:latest is made by part img here: load it on "
                      f"another engine, or leave this part out), got '{b.prefix}/img:latest'"], out
    assert not b.owned('images')
