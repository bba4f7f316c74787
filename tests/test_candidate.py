"""Candidate tags: a new image gets NAME:TAG only when its ``test`` passes (one mechanism, every image recipe)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def config(b, busybox: str, test: str) -> str:
    return f'''
        [buildout]
        parts = app web

        [app]
        recipe = dockeroo_nagoya:docker.build
        name = {b.prefix}/app
        source = ${{buildout:directory}}/app
        build-args = BASE={busybox}
        test =
            test -s /version
            {test}

        [web]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-web
        image = ${{app:image}}
        command = httpd -f -p 80
        init = true
        stop-timeout = 1
        '''


def test_failing_test_leaves_the_previous_image_tagged_and_its_container_running(
        buildout, busybox, client):
    b = buildout
    image, candidate = f'{b.prefix}/app:latest', f'{b.prefix}/app:latest-candidate'
    (b.directory / 'app').mkdir()
    (b.directory / 'app' / 'Dockerfile').write_text('ARG BASE\nFROM $BASE\nCOPY version /version\n')
    (b.directory / 'app' / 'version').write_text('good\n')
    b.write(config(b, busybox, 'grep -q good /version'))
    b.run('-N')
    good = client.images.get(image).id
    web = client.containers.get(f'{b.prefix}-web')
    assert web.image.id == good and web.status == 'running'
    assert not client.images.list(name=candidate)

    # A new image that fails its test: the tag stays, the container is the same and runs on.
    (b.directory / 'app' / 'version').write_text('broken\n')
    out = b.fail('-N')
    errors = [line for line in out.splitlines() if line.startswith('Error:')]
    assert 'Traceback' not in out and len(errors) == 1, out
    assert 'app: test 2 failed (exit code 1): grep -q good /version' in errors[0]
    assert f'{image} stays on the previous image' in errors[0]
    assert f'kept as {candidate} for inspection' in errors[0]
    assert client.images.get(image).id == good
    assert client.images.get(candidate).id != good
    web.reload()
    assert web.id == client.containers.get(f'{b.prefix}-web').id
    assert web.status == 'running' and web.image.id == good
    assert [c.name for c in b.owned('containers')] == [f'{b.prefix}-web'], 'no test container left'

    # A test that passes moves the tag; the candidate tag goes, the container follows the image.
    b.write(config(b, busybox, 'grep -q broken /version'))
    b.run('-N')
    fixed = client.images.get(image).id
    assert fixed != good
    assert not client.images.list(name=candidate)
    assert client.containers.get(f'{b.prefix}-web').image.id == fixed
    assert [tag for i in b.owned('images') for tag in i.tags] == [image], 'no candidate tag left'
