"""An image built on the buildout's engine, carried to another one through a registry in the
same run (issue 18: the Koji profile's ``builder-image-transfer = registry``).

A ``docker.build`` on the default engine, a ``docker.push`` of it to a
registry, a ``docker.pull`` of the pushed reference on a second engine and a
container there. The pull's ``${pull:image-id}`` is what the push part says
the reference will hold (known before the push happened: no phantom reinstall
on the second run), and the pull fetches exactly when the second engine's image
is not the one pushed, with ``-N`` too (the push of this run changed the
registry). An unchanged rerun pushes and pulls nothing, and the plan says what
the run does.
"""
from __future__ import annotations

import contextlib
import json
import re
import time
from typing import Iterator

import docker
import docker.errors
import pytest

from helpers import run_output, actions, buildout_config, ids, plan_json, section, sleeper, unpublish

pytestmark = pytest.mark.slow


@pytest.fixture
def remote(buildout, second_engine, registry) -> Iterator:
    """The second engine; what the test's buildout made there, and its repository in the
    registry, are removed afterwards."""
    yield second_engine
    buildout.cleanup(second_engine.client)
    for image in second_engine.client.images.list():
        if any(buildout.prefix in tag for tag in image.tags):
            with contextlib.suppress(docker.errors.APIError):
                second_engine.client.images.remove(image.id, force=True)
    unpublish(registry, f'{buildout.prefix}/img')


def context(b, busybox: str, text: str) -> None:
    (b.directory / 'app').mkdir(exist_ok=True)
    (b.directory / 'app' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo {text} > /what\n')


def carried(b, registry: str, host: str) -> str:
    """Build here, push to the registry, pull there (``engine =``), a container there
    (``docker-host =``: one engine, two spellings)."""
    return buildout_config(
        ['app', 'push', 'pull', 'remote'],
        section('app', 'docker.build', name=f'{b.prefix}/app', source='${buildout:directory}/app'),
        section('push', 'docker.push', image='${app:image}',
                name=f'{registry}/{b.prefix}/img:latest'),
        section('pull', 'docker.pull', engine=host, image='${push:name}'),
        sleeper('remote', '${pull:image}', docker_host=host, name=f'{b.prefix}-remote'))


def moves(found: dict) -> dict[tuple[str, str], str]:
    """(kind, object) -> action of what a plan says changes."""
    return {(c['kind'], c['object']): c['action'] for c in found['changes']
            if c['action'] != 'none'}


def image_events(client: docker.DockerClient, since: float, prefix: str) -> list[str]:
    """``ACTION NAME`` of the engine's image events since ``since`` naming ``prefix`` (push,
    pull, tag...: the engine shares them with other tests)."""
    found = client.events(since=int(since), until=int(time.time()) + 1, decode=True,
                          filters={'type': 'image'})
    return [f'{e.get("Action")} {e.get("Actor", {}).get("Attributes", {}).get("name", e.get("id"))}'
            for e in found if prefix in json.dumps(e) and e.get('timeNano', 0) >= since * 1e9]


def pull_image_id(b) -> str:
    """The ``image-id`` buildout recorded for the pull part."""
    section_text = (b.directory / '.installed.cfg').read_text().split('[pull]')[1].split('\n[')[0]
    return re.search(r'^image-id = (.*)$', section_text, re.M).group(1)


def test_an_image_pushed_here_is_pulled_there_in_the_same_run_and_again_only_when_pushed_anew(
        buildout, client, busybox, registry, remote):
    b = buildout
    target = f'{registry}/{b.prefix}/img:latest'
    container = f'{b.prefix}-remote'
    context(b, busybox, 'one')
    b.write(carried(b, registry, remote.host))

    # Planned before anything exists: the pull follows the push, which follows the build.
    plan = plan_json(b, 2)
    planned = moves(plan)
    assert planned.get(('pushed', target)) == 'push', planned
    assert planned.get(('image', target)) == 'pull', planned
    assert planned.get(('container', container)) == 'create', planned
    pull = next(c for c in plan['changes'] if c['object'] == target and c['kind'] == 'image')
    assert 'pushed by push' in json.dumps(pull['reasons']), pull

    out = b.run('-N').stdout
    assert f'pushing {target}' in out and f'pulling {target}' in out, out
    built = client.images.get(f'{b.prefix}/app:latest').id
    assert remote.client.images.get(target).id == built
    running = remote.client.containers.get(container)
    assert running.image.id == built and running.status == 'running'
    first_id = pull_image_id(b)
    assert first_id.startswith('made:'), first_id

    # Unchanged reruns, with -N and without: no Installing, no push, no pull, same ids.
    here, there = ids(client, b), ids(remote.client, b)
    for args in (('-N',), ()):
        since = time.time()
        again = b.run(*args).stdout
        assert actions(again) == [], f'{args}:\n{again}'
        assert 'pushing' not in again and 'pulling' not in again, again
        assert ids(client, b) == here and ids(remote.client, b) == there, again
        assert pull_image_id(b) == first_id
        assert image_events(client, since, b.prefix) == []
        assert image_events(remote.client, since, b.prefix) == []
    assert moves(plan_json(b, 0)) == {}

    # The Dockerfile changes: built, pushed and pulled again in the one run, with -N (a plain
    # pull with -N never fetches a present image; this one follows the push) and without;
    # the container there is recreated on the new image. The plan says so first.
    for text, args in (('two', ('-N',)), ('three', ())):
        context(b, busybox, text)
        planned = moves(plan_json(b, 2, offline=bool(args)))
        assert planned.get(('image', f'{b.prefix}/app:latest')) == 'build', planned
        assert planned.get(('pushed', target)) == 'push', planned
        assert planned.get(('image', target)) == 'pull', planned
        assert planned.get(('container', container)) == 'recreate', planned
        before = remote.client.containers.get(container).id
        out = b.run(*args).stdout
        rebuilt = client.images.get(f'{b.prefix}/app:latest').id
        assert rebuilt != built, out
        assert f'pushing {target}' in out and f'pulling {target}' in out, out
        assert remote.client.images.get(target).id == rebuilt
        running = remote.client.containers.get(container)
        assert running.id != before and running.image.id == rebuilt, out
        with pytest.raises(docker.errors.ImageNotFound):  # the replaced image is not left there
            remote.client.images.get(built)
        assert run_output(remote.client, target, 'cat /what') == \
            f'{text}\n'.encode()
        changed_id = pull_image_id(b)
        assert changed_id != first_id

        # ... and then nothing again.
        here, there = ids(client, b), ids(remote.client, b)
        since = time.time()
        settled = b.run('-N').stdout
        assert actions(settled) == [] and 'pushing' not in settled and 'pulling' not in settled, \
            settled
        assert ids(client, b) == here and ids(remote.client, b) == there
        assert pull_image_id(b) == changed_id
        assert image_events(remote.client, since, b.prefix) == []
        assert moves(plan_json(b, 0)) == {}
        built, first_id = rebuilt, changed_id


def test_a_pull_of_a_pushed_reference_fetches_again_when_the_image_there_was_replaced(
        buildout, client, busybox, registry, remote):
    """The engine's image there is compared with the one pushed, not only counted as present:
    replaced by hand, it is pulled back with -N, and the plan says so (and that the
    container, on the pushed image all along, stays)."""
    b = buildout
    target = f'{registry}/{b.prefix}/img:latest'
    context(b, busybox, 'one')
    b.write(carried(b, registry, remote.host))
    b.run('-N')
    pushed = client.images.get(target).id
    container = remote.client.containers.get(f'{b.prefix}-remote').id
    remote.load(client, busybox)
    remote.client.images.get(busybox).tag(target)
    assert moves(plan_json(b, 2)) == {('image', target): 'pull'}
    out = b.run('-N').stdout
    assert f'pulling {target}' in out and 'pushing' not in out, out
    assert remote.client.images.get(target).id == pushed
    assert remote.client.containers.get(f'{b.prefix}-remote').id == container
    assert remote.client.images.get(busybox).id != pushed  # another tag's: not retired
