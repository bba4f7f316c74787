"""docker.persist: a container saved with the content of its volumes, owners and modes kept."""
from __future__ import annotations

import pytest

from helpers import run_output, buildout_config, ids, image_part, sleeping_part, write_volume_file

pytestmark = pytest.mark.slow


def config(b, busybox: str) -> str:
    return buildout_config(
        ['app', 'committed', 'persisted'],
        sleeping_part(b, 'app', busybox, volumes=f'{b.prefix}-data:/data\n/cache',
                      script='mkdir -p /data/sub\necho secret > /data/sub/f\n'
                             'chown 999:999 /data/sub /data/sub/f\nchmod 0640 /data/sub/f\n'
                             'echo warm > /cache/x\necho layer > /layer.txt'),
        image_part(b, 'committed', 'docker.commit', container='${app:name}'),
        image_part(b, 'persisted', 'docker.persist', container='${app:name}',
                   test='test -f /data/sub/f'))


SHOW = ('stat -c "%u:%g %a %n" /data/sub /data/sub/f; cat /data/sub/f /cache/x /layer.txt; '
        'ls /data; grep -c " /data " /proc/mounts')


def test_persist_puts_volume_content_into_the_image_and_a_new_container_sees_it(
        buildout, busybox, client):
    b = buildout
    persisted = f'{b.prefix}/persisted:latest'
    b.write(config(b, busybox))
    b.run('-N')
    out = run_output(client, persisted, ['sh', '-c', SHOW]).decode()
    lines = out.splitlines()
    assert lines[:2] == ['999:999 755 /data/sub', '999:999 640 /data/sub/f'], out
    assert lines[2:5] == ['secret', 'warm', 'layer'], out
    # /data is still a VOLUME: the new container's own volume, initialised from the image.
    assert lines[-1] == '1', out
    assert set(client.api.inspect_image(persisted)['Config']['Volumes']) == {'/data', '/cache'}
    # What docker commit leaves out.
    committed = run_output(client, f'{b.prefix}/committed', ['sh', '-c', 'ls -A /data; cat /layer.txt'])
    assert committed == b'layer\n'
    first = ids(client, b)

    out = b.run('-N')
    assert ids(client, b) == first, 'a rerun makes nothing again'
    assert 'adding the content' not in out.stdout + out.stderr

    # New content in the volume makes a new image; the plain commit stays as it was.
    write_volume_file(client, f'{b.prefix}-data', 'added.txt', b'more\n', uid=999, mode=0o600)
    out = b.run('-N')
    after = ids(client, b)
    assert after[f'image:{persisted}'] != first[f'image:{persisted}']
    assert after[f'image:{b.prefix}/committed:latest'] == first[f'image:{b.prefix}/committed:latest']
    assert 'volumes changed' in out.stdout + out.stderr
    shown = run_output(client, persisted, ['stat', '-c', '%u %a %s', '/data/added.txt'])
    assert shown == b'999 600 5\n'
