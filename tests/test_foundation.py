"""The four resource recipes together, as the foundation issue's "done when" says."""
from __future__ import annotations

import re

import pytest

from helpers import run_output, force_reinstall, ids, volume_digest, write_volume_file

pytestmark = pytest.mark.slow


def config(b, busybox: str, parts: str = 'data net base app') -> str:
    return f'''
        [buildout]
        parts = {parts}

        [data]
        recipe = dockeroo_nagoya:docker.volume
        name = {b.prefix}-data
        keep = false

        [net]
        recipe = dockeroo_nagoya:docker.network
        name = {b.prefix}-net
        subnet = {b.subnet_base}.0/24

        [base]
        recipe = dockeroo_nagoya:docker.pull
        image = {busybox}

        [app]
        recipe = dockeroo_nagoya:docker.build
        name = {b.prefix}/app
        source = ${{buildout:directory}}/app
        build-args = BASE=${{base:image}}
        '''


def test_install_rerun_rebuild_reinstall_and_remove(buildout, busybox, client):
    b = buildout
    (b.directory / 'app').mkdir()
    (b.directory / 'app' / 'Dockerfile').write_text(
        'ARG BASE\nFROM $BASE\nCOPY hello.txt /hello.txt\nCMD ["cat", "/hello.txt"]\n')
    (b.directory / 'app' / 'hello.txt').write_text('one\n')
    (b.directory / 'app' / 'notes.log').write_text('ignored\n')
    (b.directory / 'app' / '.dockerignore').write_text('*.log\n')
    b.write(config(b, busybox))
    b.run('-N')
    first = ids(client, b)
    assert set(first) == {f'volume:{b.prefix}-data', f'network:{b.prefix}-net', f'image:{b.prefix}/app:latest'}
    write_volume_file(client, f'{b.prefix}-data', 'state.txt', b'precious\n')
    before = volume_digest(client, f'{b.prefix}-data')

    # A no-op rerun touches nothing.
    out = b.run('-N').stdout
    assert ids(client, b) == first
    assert 'building' not in out and 'creating' not in out
    assert volume_digest(client, f'{b.prefix}-data') == before

    # A file .dockerignore excludes changes nothing; a context file rebuilds.
    (b.directory / 'app' / 'notes.log').write_text('still ignored\n')
    b.run('-N')
    assert ids(client, b) == first
    (b.directory / 'app' / 'hello.txt').write_text('two\n')
    result = b.run('-N')
    after = ids(client, b)
    assert after[f'image:{b.prefix}/app:latest'] != first[f'image:{b.prefix}/app:latest']
    assert after[f'volume:{b.prefix}-data'] == first[f'volume:{b.prefix}-data']
    assert run_output(client, f'{b.prefix}/app') == b'two\n'
    assert re.search(r'rebuilding .*inputs changed', result.stdout + result.stderr)

    # A forced reinstall of every part (as after a package upgrade) adopts everything.
    force_reinstall(b)
    out = b.run('-N')
    assert 'Installing' in out.stdout + out.stderr
    assert ids(client, b) == after
    assert volume_digest(client, f'{b.prefix}-data') == before

    # Removing the parts removes what they made; the volume's data goes to an archive first.
    b.write(config(b, busybox, parts=''))
    b.run('-N')
    assert ids(client, b) == {}
    archives = list((b.directory / 'var' / 'backups').glob(f'{b.prefix}-data-*.tar'))
    assert len(archives) == 1
    assert (archives[0].stat().st_mode & 0o777) == 0o600
