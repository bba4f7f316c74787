"""docker.commit: a docker.run container saved as an image, again only when the container changes."""
from __future__ import annotations

import pytest

from helpers import run_output, buildout_config, ids, image_part, sleeping_part

pytestmark = pytest.mark.slow


def config(b, busybox: str, *, app_env: str = 'MODE=one', commit_env: str = 'SAVED=yes') -> str:
    return buildout_config(
        ['app', 'saved'],
        sleeping_part(b, 'app', busybox, env=app_env, script='echo "made in $MODE" > /state.txt'),
        image_part(b, 'saved', 'docker.commit', container='${app:name}', env=commit_env,
                   command='cat /state.txt', labels='purpose=demo', message='saved by buildout',
                   author='Tester <t@example.org>', test='grep -q "made in" /state.txt'))


def test_commit_round_trips_a_container_and_redoes_only_what_changed(buildout, busybox, client):
    b = buildout
    image = f'{b.prefix}/saved:latest'
    b.write(config(b, busybox))
    out = b.run('-N')
    assert run_output(client, image) == b'made in one\n'
    attrs = client.api.inspect_image(image)
    assert 'SAVED=yes' in attrs['Config']['Env'] and 'MODE=one' in attrs['Config']['Env']
    assert attrs['Config']['Labels']['purpose'] == 'demo'
    assert attrs['Config']['Labels']['io.dockeroo-nagoya.part'] == 'saved'
    assert attrs['Comment'] == 'saved by buildout' and attrs['Author'].startswith('Tester')
    assert 'testing the candidate' in out.stdout + out.stderr
    assert not client.images.list(name=f'{b.prefix}/saved:latest-candidate')
    first = ids(client, b)

    # A rerun saves nothing again.
    out = b.run('-N')
    assert ids(client, b) == first
    assert 'committing' not in out.stdout + out.stderr

    # A changed option of the commit makes a new image from the same container.
    b.write(config(b, busybox, commit_env='SAVED=again'))
    b.run('-N')
    second = ids(client, b)
    assert second[f'container:{b.prefix}-app'] == first[f'container:{b.prefix}-app']
    assert second[f'image:{image}'] != first[f'image:{image}']

    # A recreated container (its env changed) is committed again.
    b.write(config(b, busybox, app_env='MODE=two', commit_env='SAVED=again'))
    out = b.run('-N')
    third = ids(client, b)
    assert third[f'container:{b.prefix}-app'] != second[f'container:{b.prefix}-app']
    assert run_output(client, image) == b'made in two\n'
    assert 'container changed' in out.stdout + out.stderr
    assert len([i for i in b.owned('images')]) == 1, 'the previous image is gone'


def test_missing_container_is_one_clear_line(buildout, busybox):
    b = buildout
    b.write(f'''
        [buildout]
        parts = saved

        [saved]
        recipe = dockeroo_nagoya:docker.commit
        container = {b.prefix}-nothing
        name = {b.prefix}/saved
        ''')
    out = b.fail('-N')
    assert f"saved: option container: no container '{b.prefix}-nothing'" in out
    assert 'Traceback' not in out
