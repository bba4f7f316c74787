"""``docker.copy`` with ``from-engine``: from a container on one engine into one on another.

As the Koji profile's builder machines need it (issue 18): a certificate and
the CA, made by a job on the buildout's own engine, go into a volume on a
builder machine's engine, streamed from engine to engine and never written to
the buildout machine's disk; copied again only when their content changes.
The second engine is a second dockerd on this machine (``second_engine``).
"""
from __future__ import annotations

import contextlib

import docker
import pytest

from helpers import (run_output, actions, archive, buildout_config, error_lines, file_tar, ids, keys_job,
                     output, plan, section)

CERTS = '/etc/pki/koji'


def credentials(b, busybox: str, content: str = 'one') -> str:
    """A job on the default engine that leaves a private key (0600, uid 1234) and a CA."""
    return section(
        'credentials', 'docker.run', name=f'{b.prefix}-credentials', image=busybox, job='true',
        env=f'CONTENT={content}',
        command="sh -c 'mkdir -p /out && echo \"$CONTENT\" > /out/a.pem && echo ca > /out/ca.crt"
                " && chown 1234:1234 /out/a.pem && chmod 600 /out/a.pem'")


def between_engines(b, busybox: str, host: str, content: str = 'one') -> str:
    """Credentials here; a volume and a (never started) container mounting it on ``host``;
    the copy from one to the other, written on the copy part's engine (``host``)."""
    return buildout_config(
        ['credentials', 'certs', 'holder', 'copy'],
        credentials(b, busybox, content),
        section('certs', 'docker.volume', docker_host=host, name=f'{b.prefix}-certs'),
        section('holder', 'docker.run', docker_host=host, name=f'{b.prefix}-holder',
                image=busybox, start='false', volumes=f'${{certs:name}}:{CERTS}',
                command='sleep 3600'),
        section('copy', 'docker.copy', docker_host=host, from_engine='default',
                container_from='${credentials:name}', container_to='${holder:name}',
                paths=f'/out/a.pem {CERTS}/a.pem\n/out/ca.crt {CERTS}/ca.crt'))


def in_volume(client: docker.DockerClient, busybox: str, volume: str, path: str) -> str:
    """``ls -n`` and content of a file in a volume, as a container mounting it sees them."""
    out = run_output(client, busybox, ['sh', '-c', f'ls -n /v/{path} && cat /v/{path}'],
                                volumes={volume: {'bind': '/v', 'mode': 'ro'}})
    return out.decode()


def test_copy_between_engines_copies_again_only_when_the_source_changes(
        buildout, busybox, client, second_engine, remote):
    b = buildout
    holder = f'{b.prefix}-holder'
    b.write(between_engines(b, busybox, second_engine.host))
    out = output(b.run('-N'))
    assert out.count('(first copy)') == 2, out
    found = archive(second_engine.client, holder, f'{CERTS}/a.pem')
    assert found['a.pem'] == (1234, 1234, 0o600, b'one\n')
    assert archive(second_engine.client, holder, f'{CERTS}/ca.crt')['ca.crt'][3] == b'ca\n'
    listing = in_volume(second_engine.client, busybox, f'{b.prefix}-certs', 'a.pem')
    assert listing.split()[0] == '-rw-------' and listing.split()[2] == '1234', listing
    assert listing.endswith('one\n'), listing
    # Each engine holds its own objects only, and nothing landed on this machine's disk.
    first, second = ids(client, b), ids(second_engine.client, b)
    assert set(first) == {f'container:{b.prefix}-credentials'}, first
    assert set(second) == {f'container:{holder}', f'volume:{b.prefix}-certs'}, second
    assert not [p for p in b.directory.rglob('*') if p.name in ('a.pem', 'ca.crt')]

    for _ in range(2):
        out = output(b.run('-N'))
        assert actions(out) == [] and 'copying' not in out, out
        assert (ids(client, b), ids(second_engine.client, b)) == (first, second)
    result = plan(b)  # reads both engines, and finds nothing to do
    assert result.returncode == 0, result.stdout + result.stderr

    b.write(between_engines(b, busybox, second_engine.host, content='two'))
    out = output(b.run('-N'))
    assert f'copying /out/a.pem to {CERTS}/a.pem (its source changed)' in out, out
    assert out.count('copying ') == 1, out  # the CA is the same
    assert archive(second_engine.client, holder, f'{CERTS}/a.pem')['a.pem'] == \
        (1234, 1234, 0o600, b'two\n')
    assert ids(second_engine.client, b) == second
    out = output(b.run('-N'))
    assert actions(out) == [] and 'copying' not in out, out


def test_plan_reads_the_source_on_its_engine(buildout, busybox, client, second_engine, remote):
    b = buildout
    b.write(between_engines(b, busybox, second_engine.host))
    b.run('-N')
    client.api.put_archive(f'{b.prefix}-credentials', '/out', file_tar('a.pem', b'new\n'))
    result = plan(b)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f'update copy /out/a.pem {CERTS}/a.pem: its source changed' in result.stdout
    assert 'ca.crt' not in result.stdout, result.stdout
    out = output(b.run('-N'))
    assert out.count('copying ') == 1, out
    assert archive(second_engine.client, f'{b.prefix}-holder', f'{CERTS}/a.pem')['a.pem'][3] == \
        b'new\n'


def test_a_stopped_target_engine_is_one_line_and_the_first_engine_is_left(
        buildout, busybox, client, second_engine, remote):
    b = buildout
    b.write(between_engines(b, busybox, second_engine.host))
    b.run('-N')
    first = ids(client, b)
    second_engine.stop()
    planned = plan(b)
    assert planned.returncode == 1, planned.stdout + planned.stderr
    for failed in (b.fail('-N'), planned.stdout + planned.stderr):
        found = error_lines(failed)
        assert len(found) == 1 and f'no Docker engine answers at {second_engine.host}' \
            in found[0], failed
        assert 'Traceback' not in failed, failed
    assert ids(client, b) == first
    second_engine.start()
    out = output(b.run('-N'))  # the record outlived the failed run: nothing to copy again
    assert actions(out) == [] and 'copying' not in out, out


def test_copy_to_the_host_from_a_container_on_another_engine(buildout, busybox, second_engine,
                                                             remote):
    b = buildout
    source = second_engine.client.containers.create(
        busybox, ['sh', '-c', 'true'], name=f'{b.prefix}-elsewhere')
    source.put_archive('/', file_tar('out/a.pem', b'key\n', uid=0))
    try:
        b.write(buildout_config(['copy'], section(
            'copy', 'docker.copy', from_engine=second_engine.host,
            container_from=f'{b.prefix}-elsewhere', paths='/out/a.pem var/a.pem')))
        out = output(b.run('-N'))
        assert 'copying /out/a.pem to ' in out and '(first copy)' in out, out
        copied = b.directory / 'var' / 'a.pem'
        assert copied.read_text() == 'key\n' and (copied.stat().st_mode & 0o777) == 0o600
        out = output(b.run('-N'))
        assert actions(out) == [] and 'copying' not in out, out

        second_engine.stop()  # the source's engine is named, not the part's own
        failed = b.fail('-N')
        found = error_lines(failed)
        assert len(found) == 1, failed
        assert f'copy: no Docker engine answers at {second_engine.host}' in found[0], failed
        assert copied.read_text() == 'key\n'
    finally:
        if second_engine.client is None:
            second_engine.start()
        with contextlib.suppress(docker.errors.APIError):
            second_engine.client.containers.get(f'{b.prefix}-elsewhere').remove(force=True)


@pytest.mark.parametrize('copy, expected', [
    ({'from_engine': 'defualt'}, "copy: option from-engine: no Docker context named 'defualt'"),
    ({'from_engine': 'tpc://builder:2376'},
     'copy: option from-engine: expected an engine URL of unix://, tcp:// or ssh://'),
    ({'from_engine': 'default tls=/nowhere'}, 'copy: option from-engine: expected no tls= for default'),
    ({'from_engine': 'tcp://127.0.0.1:2376 tls=/nowhere'},
     'copy: option from-engine: expected tls=DIR naming a directory holding ca.pem, cert.pem'),
    ({'from_engine': 'default', 'container_from': ''},
     'copy: option from-engine: it is the engine of container-from, which is not set'),
])
def test_bad_from_engine_is_one_line_before_anything_acts(buildout, busybox, client, copy, expected):
    b = buildout
    options = {'container_from': '${credentials:name}', 'paths': '/out/a.pem var/a.pem', **copy}
    if not options['container_from']:
        del options['container_from']
        options.update(container_to='${credentials:name}', paths='var/a.pem /out/a.pem')
    b.write(buildout_config(['credentials', 'copy'], credentials(b, busybox),
                            section('copy', 'docker.copy', **options)))
    out = b.fail('-N')
    found = error_lines(out)
    assert len(found) == 1 and expected in found[0], out
    assert 'Traceback' not in out and actions(out) == [], out
    assert b.owned('containers') == []


# -- sync: the target directory holds what the source's does ----------------------------
def synced(b, busybox: str, host: str, keys: str, sync: str = 'true') -> str:
    """The Koji builder machine's credentials: a directory copied from the job here into
    a volume on ``host``, through a holder container that never runs (``start = false``)."""
    return buildout_config(
        ['credentials', 'certs', 'holder', 'copy'],
        keys_job(b, busybox, keys),
        section('certs', 'docker.volume', docker_host=host, name=f'{b.prefix}-certs',
                keep='false', archive='false'),
        section('holder', 'docker.run', docker_host=host, name=f'{b.prefix}-holder',
                image=busybox, start='false', volumes=f'${{certs:name}}:{CERTS}',
                command='true'),
        section('copy', 'docker.copy', docker_host=host, from_engine='default',
                container_from='${credentials:name}', container_to='${holder:name}',
                paths=f'/out/keys/ {CERTS}/', sync=sync))


def volume_files(client: docker.DockerClient, busybox: str, volume: str) -> list[str]:
    """Every path in a volume, as a container mounting it lists them."""
    out = run_output(client, busybox, ['sh', '-c', 'cd /v && find . | sort'],
                                volumes={volume: {'bind': '/v', 'mode': 'ro'}})
    return [line for line in out.decode().split() if line != '.']


def test_sync_makes_a_volume_on_another_engine_hold_what_the_source_holds(
        buildout, busybox, client, second_engine, remote):
    """A builder taken out of a machine's count takes its private key out of the
    machine's volume: its holder never runs, so the key goes through a throwaway
    container there, which leaves the volume and nothing else behind."""
    b = buildout
    volume, holder = f'{b.prefix}-certs', f'{b.prefix}-holder'
    b.write(synced(b, busybox, second_engine.host, 'a b old'))
    out = output(b.run('-N'))
    assert f'copying /out/keys to {CERTS} (first copy)' in out and 'removing' not in out, out
    assert volume_files(second_engine.client, busybox, volume) == [
        './a.pem', './b.pem', './ca.crt', './old', './old/c.pem']
    second = ids(second_engine.client, b)
    for _ in range(2):
        out = output(b.run('-N'))
        assert actions(out) == [] and 'copying' not in out and 'removing' not in out, out
    result = plan(b)
    assert result.returncode == 0, result.stdout + result.stderr

    # b and old/ leave the source: the plan names what goes, the run removes it. (The plan
    # reads the source as it is: the job is run first, alone.)
    b.write(synced(b, busybox, second_engine.host, 'a'))
    b.run('-N', 'install', 'credentials')
    result = plan(b)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f'removes {CERTS}/b.pem, {CERTS}/old' in result.stdout, result.stdout
    out = output(b.run('-N'))
    assert f'removing {CERTS}/b.pem, {CERTS}/old (sync = true: the source no longer has ' \
        f'them)' in out, out
    assert out.index('removing') < out.index(f'copying /out/keys to {CERTS} (its source ' \
                                             f'changed)'), out
    assert volume_files(second_engine.client, busybox, volume) == ['./a.pem', './ca.crt']
    assert archive(second_engine.client, holder, f'{CERTS}/a.pem')['a.pem'] == \
        (1234, 1234, 0o600, b'a\n')
    assert ids(second_engine.client, b) == second   # the holder and the volume stay as they were
    assert second_engine.client.containers.get(holder).status == 'created'
    assert not [c.name for c in second_engine.client.containers.list(all=True)
                if c.name != holder and c.name.startswith('dockeroo-nagoya-tmp-')]
    for _ in range(2):
        out = output(b.run('-N'))
        assert actions(out) == [] and 'copying' not in out and 'removing' not in out, out
    assert volume_files(second_engine.client, busybox, volume) == ['./a.pem', './ca.crt']


def test_sync_turned_on_clears_out_what_copies_without_it_left(
        buildout, busybox, client, second_engine, remote):
    """Without sync a copy only adds, so a key taken out of the source stays there; setting
    sync copies the line once more and removes it."""
    b = buildout
    volume = f'{b.prefix}-certs'
    b.write(synced(b, busybox, second_engine.host, 'a b', sync='false'))
    b.run('-N')
    b.write(synced(b, busybox, second_engine.host, 'a', sync='false'))
    out = output(b.run('-N'))
    assert 'removing' not in out, out
    assert volume_files(second_engine.client, busybox, volume) == ['./a.pem', './b.pem',
                                                                   './ca.crt']
    b.write(synced(b, busybox, second_engine.host, 'a'))
    result = plan(b)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f'update copy /out/keys/ {CERTS}/: sync was turned on, removes {CERTS}/b.pem' \
        in result.stdout, result.stdout
    out = output(b.run('-N'))
    assert f'removing {CERTS}/b.pem (sync = true: the source no longer has it)' in out, out
    assert volume_files(second_engine.client, busybox, volume) == ['./a.pem', './ca.crt']
    out = output(b.run('-N'))
    assert actions(out) == [] and 'copying' not in out and 'removing' not in out, out
