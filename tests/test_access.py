"""Two buildouts on one engine, and two runs in one directory.

Buildouts in two directories with the same part names never touch each
other's objects: with different object names both work side by side (and
removing one's parts, or its orphan sweep, leaves the other's alone); with
the same object names the second stops with the ownership error and the
first's objects are as they were. In one directory, a second run while one
is under way stops with a clear message, also when it only uninstalls.
"""
from __future__ import annotations

import subprocess
import textwrap
import time

import pytest

from conftest import BUILDOUT
from helpers import assert_one_error, ids

pytestmark = pytest.mark.slow


def config(b, busybox: str, names: str, parts: str = 'data net web app') -> str:
    (b.directory / 'app').mkdir(exist_ok=True)
    (b.directory / 'app' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo app > /app\n')
    return textwrap.dedent(f'''
        [buildout]
        parts = {parts}

        [data]
        recipe = dockeroo_nagoya:docker.volume
        name = {names}-data
        keep = false

        [net]
        recipe = dockeroo_nagoya:docker.network
        name = {names}-net

        [web]
        recipe = dockeroo_nagoya:docker.run
        name = {names}-web
        image = {busybox}
        init = true
        stop-timeout = 1
        command = httpd -f -p 80
        networks = ${{net:name}}
        volumes = ${{data:name}}:/data

        [app]
        recipe = dockeroo_nagoya:docker.build
        name = {names}/app
        source = ${{buildout:directory}}/app
        ''').lstrip()


def running(client, b) -> dict[str, str]:
    return {c.name: c.status for c in b.owned('containers')}


def test_same_part_names_different_object_names_live_side_by_side(make_buildout, client, busybox):
    one, two = make_buildout('one'), make_buildout('two')
    one.write(config(one, busybox, one.prefix))
    two.write(config(two, busybox, two.prefix))
    one.run('-N')
    two.run('-N')
    first = ids(client, one)
    assert len(first) == 4 and len(ids(client, two)) == 4
    two.run('-N')
    # Removing every part of the second (keep = false: its volume goes too) leaves the first alone.
    two.write('[buildout]\nparts =\n')
    two.run('-N')
    assert ids(client, two) == {}
    assert ids(client, one) == first
    assert running(client, one) == {f'{one.prefix}-web': 'running'}
    one.run('-N')
    assert ids(client, one) == first


def test_same_object_names_the_second_stops_and_the_first_is_intact(make_buildout, client,
                                                                    busybox):
    one = make_buildout('one')
    one.write(config(one, busybox, one.prefix))
    one.run('-N')
    first = ids(client, one)
    owner = str(one.directory.resolve())
    for part, what in (('data', 'volume'), ('net', 'network'), ('web', 'container'),
                       ('app', 'image')):
        two = make_buildout(f'two-{part}')
        # The second buildout names one object as the first does (its others are its own).
        if part == 'web':
            two.write(config(two, busybox, two.prefix, parts='data net web').replace(
                f'name = {two.prefix}-web', f'name = {one.prefix}-web'))
        else:
            two.write(config(two, busybox, one.prefix, parts=part))
        out = two.fail('-N')
        line = assert_one_error(out)
        assert line.startswith(f'Error: {part}: {what} '), line
        assert f'already exists and belongs to the buildout in {owner} (part {part})' in line, line
        assert 'Uninstalling' not in out
        assert ids(client, one) == first
        assert running(client, one) == {f'{one.prefix}-web': 'running'}
    one.run('-N')
    assert ids(client, one) == first


def test_a_second_run_that_only_uninstalls_stops_while_one_is_under_way(buildout, busybox, client):
    """The lock is taken by uninstall hooks too: a run with other parts never interleaves."""
    b = buildout
    (b.directory / 'slow').mkdir()
    (b.directory / 'slow' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN sleep 4\n')
    b.write(textwrap.dedent(f'''
        [buildout]
        parts = data slow

        [data]
        recipe = dockeroo_nagoya:docker.volume
        name = {b.prefix}-data

        [slow]
        recipe = dockeroo_nagoya:docker.build
        name = {b.prefix}/slow
        source = ${{buildout:directory}}/slow
        no-cache = true
        ''').lstrip())
    b.run('-N', 'install', 'data')
    b.write('[buildout]\nparts =\n', name='nothing.cfg')
    first = subprocess.Popen([str(BUILDOUT), '-N'], cwd=b.directory, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    lock = b.directory / '.dockeroo-nagoya.lock'
    try:
        deadline = time.monotonic() + 30
        while lock.read_text().strip() != str(first.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        out = b.run('-N', config='nothing.cfg', check=False)
        output = out.stdout + out.stderr
        assert out.returncode != 0, output
        assert f'another buildout run (pid {first.pid})' in assert_one_error(output)
        assert client.volumes.get(f'{b.prefix}-data'), 'nothing was uninstalled meanwhile'
    finally:
        assert first.wait(120) == 0, first.stdout.read()
    assert client.images.get(f'{b.prefix}/slow')
