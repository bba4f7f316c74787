"""docker.temporary (nagoya moromi's systems): throwaway linked containers, saved as images."""
from __future__ import annotations

import pytest

from helpers import run_output, ids

DB = '''#!/bin/sh
# A toy database: stores the line each connection sends in a file in its volume, and
# says "stored" once it is written (a client that only sent could be followed by the
# system's stop before the line reached the file: the row was missing under load).
mkdir -p /var/lib/db
printf '#!/bin/sh\\nread line; echo "$line" >> /var/lib/db/rows; echo stored\\n' > /tmp/store
chmod +x /tmp/store
trap 'exit 0' TERM
while :; do nc -l -p 5000 -e /tmp/store & wait $!; done
'''

LOAD = '''
    for i in $(seq 100); do [ "$( (echo row-one; sleep 1) | nc db 5000)" = stored ] && break; sleep 0.1; done
    echo "report of $STAGE" > /files/report.txt
    chown 999:999 /files/report.txt
    chmod 0640 /files/report.txt
    echo done > /root-done.txt
'''


def config(b, busybox: str, script: str = LOAD) -> str:
    script = '\n            '.join(line.strip() for line in script.strip().splitlines())
    return f'''
        [buildout]
        parts = db-image files-image sys

        [db-image]
        recipe = dockeroo_nagoya:docker.image
        from = {busybox}
        name = {b.prefix}/db
        entrypoint = db.sh at /usr/local/bin/db
        volumes = /var/lib/db

        [files-image]
        recipe = dockeroo_nagoya:docker.image
        from = {busybox}
        name = {b.prefix}/files
        volumes = /files

        [sys]
        recipe = dockeroo_nagoya:docker.temporary
        from = {busybox}
        name = {b.prefix}/root
        commit = true
        command = cat /root-done.txt
        envs = STAGE=load
        links = ${{db-image:image}} alias db then persist to {b.prefix}/db-loaded
        volumes_from = ${{files-image:image}} persist to {b.prefix}/files-filled
        stop-timeout = 2
        script =
            {script}
        '''


def made(client, b) -> dict[str, str]:
    return {key: value for key, value in ids(client, b).items() if key.startswith('image:')}


@pytest.mark.slow
def test_linked_system_is_saved_to_images_and_leaves_no_container_also_when_it_fails(
        buildout, busybox, client):
    b = buildout
    (b.directory / 'db.sh').write_text(DB)
    b.write(config(b, busybox))
    b.run('-N')
    assert b.owned('containers') == []
    assert run_output(client, f'{b.prefix}/root') == b'done\n'
    rows = run_output(client, f'{b.prefix}/db-loaded', entrypoint=['cat', '/var/lib/db/rows'])
    assert rows == b'row-one\n'
    report = run_output(client, f'{b.prefix}/files-filled', [
        'sh', '-c', 'stat -c "%u %a" /files/report.txt; cat /files/report.txt'])
    assert report == b'999 640\nreport of load\n'
    first = made(client, b)
    assert set(first) == {f'image:{b.prefix}/{name}:latest' for name in
                          ('db', 'files', 'root', 'db-loaded', 'files-filled')}

    # A rerun runs nothing.
    out = b.run('-N')
    assert made(client, b) == first
    assert 'temporary system' not in out.stdout + out.stderr

    # A step that fails halfway: one clear error, no container, no new image, old images kept.
    b.write(config(b, busybox, LOAD + '    echo halfway; exit 3\n'))
    out = b.fail('-N')
    errors = [line for line in out.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and 'sys: script exited with code 3 in the root container' in errors[0]
    assert 'halfway' in out and 'Traceback' not in out
    assert b.owned('containers') == []
    assert made(client, b) == first
    assert client.images.list(filters={'dangling': True, 'label': b.label}) == []

    # Removing the part removes the images it saved.
    b.write(config(b, busybox).replace('parts = db-image files-image sys', 'parts = db-image files-image'))
    b.run('-N')
    assert set(made(client, b)) == {f'image:{b.prefix}/db:latest', f'image:{b.prefix}/files:latest'}


def test_bad_link_line_is_one_clear_error(buildout, busybox):
    b = buildout
    (b.directory / 'db.sh').write_text(DB)
    b.write(config(b, busybox).replace('alias db then persist to', 'as db keep'))
    out = b.fail('-N')
    assert 'Traceback' not in out
    assert 'sys: option links: expected IMAGE alias HOST [then] discard' in out
