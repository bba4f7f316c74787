"""docker.image (nagoya moromi): an image from options and resource lines, no Dockerfile."""
from __future__ import annotations

import os

import pytest

from helpers import run_output, ids


def files(b) -> None:
    d = b.directory
    (d / 'lib' / 'util').mkdir(parents=True)
    (d / 'lib' / 'util' / 'helper.sh').write_text('greet() { echo "$GREETING from helper"; }\n')
    (d / 'conf').mkdir()
    (d / 'conf' / 'app.conf').write_text('colour = blue\n')
    (d / 'steps').mkdir()
    (d / 'steps' / 'setup.sh').write_text(
        '#!/bin/sh\nset -e\n. /opt/util/helper.sh\ngreet > /opt/made.txt\npwd >> /opt/made.txt\n'
        'mkdir -p /var/lib/app && echo seeded > /var/lib/app/seed\n')
    (d / 'bin').mkdir()
    (d / 'bin' / 'start.sh').write_text(
        '#!/bin/sh\ncat /opt/made.txt /etc/app/app.conf /var/lib/app/seed; pwd; echo "args: $*"\n')


def config(b, busybox: str, **bad: str) -> str:
    resources = {
        'libs': '\n            lib/util in /opt\n            conf/app.conf at /etc/app/app.conf',
        'runs': 'steps/setup.sh in /opt/steps',
        'entrypoint': 'bin/start.sh at /usr/local/bin/start',
        **bad,
    }
    return f'''
        [buildout]
        parts = img

        [img]
        recipe = dockeroo_nagoya:docker.image
        from = {busybox}
        name = {b.prefix}/moromi
        maintainer = Koji Team <koji@example.org>
        libs = {resources['libs']}
        runs = {resources['runs']}
        entrypoint = {resources['entrypoint']}
        envs = GREETING=hello
        exposes = 8080
        volumes = /var/lib/app
        test = /usr/local/bin/start | grep -q "hello from helper"
        '''


@pytest.mark.slow
def test_moromi_image_with_in_and_at_resources_builds_runs_and_rebuilds_on_change(
        buildout, busybox, client):
    b = buildout
    image = f'{b.prefix}/moromi:latest'
    files(b)
    b.write(config(b, busybox))
    b.run('-N')
    out = run_output(client, image, ['x']).decode()
    assert out == ('hello from helper\n/opt/steps\ncolour = blue\nseeded\n/usr/local/bin\n'
                   'args: x\n'), out
    attrs = client.api.inspect_image(image)['Config']
    assert attrs['Entrypoint'] == ['/usr/local/bin/start']
    assert '8080/tcp' in attrs['ExposedPorts'] and '/var/lib/app' in attrs['Volumes']
    assert 'GREETING=hello' in attrs['Env']
    assert attrs['Labels']['maintainer'] == 'Koji Team <koji@example.org>'
    modes = run_output(client, image, entrypoint=['stat', '-c', '%a %u', '/usr/local/bin/start',
                                                     '/etc/app/app.conf'])
    assert modes.split(b'\n')[0].startswith(b'755 0')
    first = ids(client, b)

    # A rerun, and a touched but unchanged file, build nothing.
    os.utime(b.directory / 'conf' / 'app.conf', (1, 1))
    again = b.run('-N')
    assert ids(client, b) == first
    assert 'building' not in again.stdout + again.stderr

    # A changed resource file rebuilds.
    (b.directory / 'conf' / 'app.conf').write_text('colour = green\n')
    out = b.run('-N')
    assert ids(client, b)[f'image:{image}'] != first[f'image:{image}']
    assert 'rebuilding' in out.stdout + out.stderr
    assert b'colour = green' in run_output(client, image)


@pytest.mark.parametrize('option, line, expected', [
    ('libs', 'lib/util into /opt', "img: option libs: expected HOSTPATH in /CONTAINER/DIR or "
     "HOSTPATH at /CONTAINER/PATH lines, got 'lib/util into /opt'"),
    ('runs', 'steps/setup.sh in opt', 'img: option runs: expected HOSTPATH in /CONTAINER/DIR or '
     'HOSTPATH at /CONTAINER/PATH lines (the container side is absolute'),
    ('entrypoint', 'nothing/here.sh at /x', 'img: option entrypoint: expected HOSTPATH in '
     '/CONTAINER/DIR or HOSTPATH at /CONTAINER/PATH lines whose HOSTPATH exists'),
])
def test_bad_resource_line_is_one_clear_error(buildout, busybox, option, line, expected):
    b = buildout
    files(b)
    b.write(config(b, busybox, **{option: line}))
    out = b.fail('-N')
    assert 'Traceback' not in out, out
    errors = [text for text in out.splitlines() if text.startswith('Error:')]
    assert len(errors) == 1 and expected in errors[0], out
