"""Koji builders on a second machine: [koji] builder-hosts, on a second Docker daemon.

The second daemon (tests/conftest.py's ``second_engine``) stands for a builder
machine: its own socket, data, bridge; its ``--network host`` containers reach
the hub published on 127.0.0.1, as a builder machine reaches hub-name. Needs
an image with Koji's server code in DN_KOJI_IMAGE (../shared/kojilab builds
one), as the whole-system test does.
"""
from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import time

import docker.errors
import pytest

from conftest import PLAN
from helpers import (run_output, actions, builder_reads, container_ids, host_koji, koji_buildout,
                     koji_services_hold_only_their_own, repository_packages,
                     repository_with_build, timed, unpublish)

KOJI_IMAGE = os.environ.get('DN_KOJI_IMAGE', '')

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not KOJI_IMAGE, reason='no Koji image: set DN_KOJI_IMAGE to an image with Koji\'s server '
    'code (../shared/kojilab builds one) to run builders on a second engine')]


def remote_ids(engine, b) -> dict[str, tuple[str, str]]:
    """The second engine's containers of this buildout: name -> (id, started)."""
    return {c.name: (c.id, c.attrs['State']['StartedAt']) for c in engine.client.containers.list(
        all=True, filters={'label': b.label})}


def run(*command: str, timeout: float = 120) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def koji_hosts(b) -> dict[str, tuple[str, str]]:
    """Koji host -> (enabled, ready), as the buildout's bin/koji list-hosts says."""
    return {line.split()[0]: tuple(line.split()[1:3]) for line in run(
        str(b.directory / 'bin' / 'koji'), 'list-hosts', '--quiet').splitlines()}


def koji_hosts_become(b, expected: dict[str, tuple[str, str]], within: float = 90) -> None:
    """list-hosts says ``expected`` (a host enabled again reports ready at its next
    check-in, a few seconds later)."""
    deadline = time.monotonic() + within
    while (seen := koji_hosts(b)) != expected and time.monotonic() < deadline:
        time.sleep(1)
    assert seen == expected


def take_down(b, client, engine2, local_only: str) -> None:
    """Every part removed (``local_only``: the [koji] lines without builder-hosts), then
    what is left of the buildout on the second engine and its named volumes here."""
    koji_buildout(b, '', extra=local_only)
    with contextlib.suppress(AssertionError):
        b.run('-N')
    for container in engine2.client.containers.list(all=True, filters={'label': b.label}):
        container.remove(force=True)
    for volume in engine2.client.volumes.list(filters={'label': b.label}):
        with contextlib.suppress(docker.errors.APIError):
            volume.remove(force=True)
    for volume in client.volumes.list(filters={'name': b.prefix}):
        with contextlib.suppress(docker.errors.APIError):
            volume.remove(force=True)


def test_builders_on_a_second_engine(buildout, client, koji_support, debian, second_engine):
    b = buildout
    engine2 = second_engine
    extra = (f'image = {KOJI_IMAGE}\nsupport-image = {koji_support}\nbase-image = {debian}\n'
             'builder-hosts =\n    box2 {host} {count} network=host')

    def configure(count: int | None) -> None:
        lines = extra.format(host=engine2.host, count=count) if count else \
            extra.split('\nbuilder-hosts')[0]
        koji_buildout(b, extra=lines)

    koji = str(b.directory / 'bin' / 'koji')
    kojictl = str(b.directory / 'bin' / 'kojictl')

    try:
        configure(None)
        timed('bring-up on one engine', b.run, '-N')
        alone = container_ids(b)

        # A builder machine added: its parts alone; nothing local is made anew.
        configure(1)
        out = timed('adding a builder machine (its image sent as a file)', b.run, '-N')
        assert koji_hosts(b) == {'kojibuilder1': ('Y', 'Y'), 'kojibuilder-box2-1': ('Y', 'Y')}
        local, remote = container_ids(b), remote_ids(engine2, b)
        assert {n: v for n, v in local.items() if not n.endswith('-job')} == \
            {n: v for n, v in alone.items() if not n.endswith('-job')}
        assert set(remote) == {f'{b.prefix}-builder-box2-1', f'{b.prefix}-builder-credentials-box2'}
        assert f'{b.prefix}-builder-box2-1' not in local
        # Only that builder's certificate and the CA reached the machine, never kojiadmin's.
        listing = run_output(engine2.client,
            KOJI_IMAGE, ['ls', '/etc/pki/koji'],
            volumes={f'{b.prefix}-builder-credentials-box2': {'bind': '/etc/pki/koji', 'mode': 'ro'}})
        assert listing.decode().split() == ['ca.crt', 'kojibuilder-box2-1.pem']
        # Each service, here and there, holds only what it uses: no CA key, no kojiadmin key.
        koji_services_hold_only_their_own(client, b, koji_support, engines=(engine2.client,))

        for _ in range(2):  # unchanged reruns: nothing installed, nothing restarted
            out = timed('rerun', b.run, '-N')
            assert actions(out.stdout) == [], out.stdout
            assert container_ids(b) == local and remote_ids(engine2, b) == remote

        # kojira and the local builder (it has topdir) make a repository; the second
        # engine's builder takes a task of its own through the hub alone.
        run(koji, 'add-tag', '--arches=x86_64', 'dn-hosts-build')
        timed('regen-repo', run, koji, 'regen-repo', '--wait', 'dn-hosts-build', timeout=300)
        assert '"state": 1' in run(koji, 'call', '--json-output', 'getRepo', 'dn-hosts-build')
        # The builder there reads topdir through the hub's /kojifiles, trusting its CA, as
        # kojid's downloads and mock's dnf do (the system's trust, not serverca).
        repomd = builder_reads(engine2.client.containers.get(f'{b.prefix}-builder-box2-1'),
                               'repos/dn-hosts-build/latest/x86_64/repodata/repomd.xml')
        assert b'<repomd' in repomd, repomd.decode()[-800:]
        run(koji, 'disable-host', 'kojibuilder1')
        try:
            task = run(koji, 'call', '--python', 'makeTask', "'sleep'", '[1]').strip()
            run(koji, 'watch-task', task, timeout=180)
            info = run(koji, 'taskinfo', task)
            assert 'Host: kojibuilder-box2-1' in info and 'State: closed' in info, info
        finally:
            run(koji, 'enable-host', 'kojibuilder1')

        # kojictl lists every builder with its engine.
        status = run(kojictl, 'status')
        row = next(line for line in status.splitlines() if f'{b.prefix}-builder-box2-1' in line)
        assert engine2.host in row or 'box2' in row, status

        # Two builders there: exactly one container more on the second engine, nothing
        # else touched.
        configure(2)
        plan = subprocess.run([str(PLAN), '-N'], cwd=b.directory, capture_output=True,
                              text=True, timeout=120)
        assert plan.returncode == 2, plan.stdout + plan.stderr
        assert f'create container {b.prefix}-builder-box2-2' in plan.stdout, plan.stdout
        # Only the machine's jobs run again (they register the new builder), nothing else.
        again = [line.split()[2] for line in plan.stdout.splitlines()
                 if line.split()[:1] == ['recreate']]
        assert sorted(again) == [f'{b.prefix}-bootstrap-box2-job:',
                                 f'{b.prefix}-credentials-box2-job:'], plan.stdout
        print(f'\nplan of box2 builders = 2: {plan.stdout.strip().splitlines()[-1]}')
        out = timed('box2 builders = 2', b.run, '-N')
        after = remote_ids(engine2, b)
        assert set(after) - set(remote) == {f'{b.prefix}-builder-box2-2'}
        assert {n: after[n] for n in remote} == remote
        assert {n: v for n, v in container_ids(b).items() if not n.endswith('-job')} == \
            {n: v for n, v in local.items() if not n.endswith('-job')}
        koji_hosts_become(b, {'kojibuilder1': ('Y', 'Y'), 'kojibuilder-box2-1': ('Y', 'Y'),
                      'kojibuilder-box2-2': ('Y', 'Y')})
        out = b.run('-N')
        assert actions(out.stdout) == [], out.stdout
        local, remote = container_ids(b), remote_ids(engine2, b)

        # Back to one builder there: the second one's container and key leave the machine,
        # its Koji host is disabled; nothing else is touched.
        configure(1)
        timed('box2 builders = 1', b.run, '-N')
        fewer = remote_ids(engine2, b)
        assert set(remote) - set(fewer) == {f'{b.prefix}-builder-box2-2'}
        assert {n: fewer[n] for n in fewer} == {n: remote[n] for n in fewer}
        listing = run_output(engine2.client,
            KOJI_IMAGE, ['ls', '/etc/pki/koji'], volumes={
                f'{b.prefix}-builder-credentials-box2': {'bind': '/etc/pki/koji', 'mode': 'ro'}})
        assert listing.decode().split() == ['ca.crt', 'kojibuilder-box2-1.pem']
        enabled = {host: state[0] for host, state in koji_hosts(b).items()}
        assert enabled == {'kojibuilder1': 'Y', 'kojibuilder-box2-1': 'Y',
                           'kojibuilder-box2-2': 'N'}
        out = b.run('-N')
        assert actions(out.stdout) == [], out.stdout
        local, remote = container_ids(b), remote_ids(engine2, b)

        # The second engine stopped: one line naming it, nothing local touched.
        engine2.stop()
        try:
            failed = b.fail('-N')
            errors = [line for line in failed.splitlines() if line.startswith('Error:')]
            assert len(errors) == 1 and engine2.host in errors[0], failed
            print(f'\nthe second engine stopped: {errors[0]}')
            assert 'Traceback' not in failed
            assert container_ids(b) == local
        finally:
            engine2.start()
        out = b.run('-N')
        assert actions(out.stdout) == [], out.stdout

        # The line taken out: its builders, their volume (their keys) and image go; the
        # hub disables its hosts; nothing local is touched.
        configure(None)
        timed('box2 taken out', b.run, '-N')
        assert remote_ids(engine2, b) == {}
        assert not engine2.client.volumes.list(filters={'label': b.label})
        # ... and the machine's keys left the credentials volume here too.
        left = run_output(client, koji_support, ['sh', '-c', 'ls /pki; ls /pki/hosts'], volumes={f'{b.prefix}-credentials': {
                                         'bind': '/pki', 'mode': 'ro'}}).decode().split()
        assert not [name for name in left if 'box2' in name], left
        assert {n: v for n, v in container_ids(b).items() if not n.endswith('-job')} == \
            {n: v for n, v in local.items() if not n.endswith('-job')}
        enabled = {host: state[0] for host, state in koji_hosts(b).items()}
        assert enabled == {'kojibuilder1': 'Y', 'kojibuilder-box2-1': 'N',
                           'kojibuilder-box2-2': 'N'}
        out = b.run('-N')
        assert actions(out.stdout) == [], out.stdout
    finally:
        take_down(b, client, engine2, extra.split('\nbuilder-hosts')[0])


def test_builders_on_a_second_engine_through_a_registry(buildout, client, koji_support, debian,
                                                        second_engine, registry):
    """builder-image-transfer = registry: the Koji image pushed to builder-registry here and
    pulled on the machine's engine in the one run that adds the machine; the builder there
    registered and ready; unchanged reruns push, pull and reinstall nothing."""
    b = buildout
    engine2 = second_engine
    pushed = f'{registry}/{b.prefix}/builder:latest'
    local_only = f'image = {KOJI_IMAGE}\nsupport-image = {koji_support}\nbase-image = {debian}'
    koji_buildout(b, extra=f'{local_only}\nbuilder-image-transfer = registry\n'
                  f'builder-registry = {registry}\n'
                  f'builder-hosts =\n    box2 {engine2.host} 1 network=host')
    try:
        out = timed('bring-up with a builder machine (its image through a registry)', b.run, '-N')
        assert f'pushing {pushed}' in out.stdout and f'pulling {pushed}' in out.stdout, out.stdout
        assert engine2.client.images.get(pushed).id == client.images.get(KOJI_IMAGE).id
        koji_hosts_become(b, {'kojibuilder1': ('Y', 'Y'), 'kojibuilder-box2-1': ('Y', 'Y')})
        local, remote = container_ids(b), remote_ids(engine2, b)
        assert set(remote) == {f'{b.prefix}-builder-box2-1', f'{b.prefix}-builder-credentials-box2'}
        for _ in range(2):  # unchanged reruns: nothing installed, pushed, pulled or restarted
            out = timed('rerun', b.run, '-N')
            assert actions(out.stdout) == [], out.stdout
            assert 'pushing' not in out.stdout and 'pulling' not in out.stdout, out.stdout
            assert container_ids(b) == local and remote_ids(engine2, b) == remote
        plan = subprocess.run([str(PLAN), '-N'], cwd=b.directory, capture_output=True,
                              text=True, timeout=120)
        assert plan.returncode == 0, plan.stdout + plan.stderr
    finally:
        take_down(b, client, engine2, local_only)
        for engine_client in (client, engine2.client):
            with contextlib.suppress(docker.errors.APIError):
                engine_client.images.remove(pushed)
        unpublish(registry, f'{b.prefix}/builder')


def test_builder_machine_reads_the_imported_build_through_kojifiles(
        buildout, client, koji_support, debian, koji_cli, rpms, second_engine):
    """A real RPM imported from the host and tagged; once the build tag's repository is
    made, the builder on the second engine finds the package (name-version-release) in
    that repository's primary metadata, read through its topurl (the hub's /kojifiles
    over TLS, trusting the installation's CA as kojid does), the way mock's dnf will."""
    b = buildout
    engine2 = second_engine
    local_only = f'image = {KOJI_IMAGE}\nsupport-image = {koji_support}\nbase-image = {debian}'
    koji_buildout(b, extra=f'{local_only}\nbuilder-hosts =\n    box2 {engine2.host} 1 network=host')
    try:
        timed('bring-up with a builder machine', b.run, '-N')
        config = b.directory / 'parts' / 'koji-client' / 'koji.conf'
        repo = repository_with_build(koji_cli, config, rpms)
        koji = functools.partial(host_koji, koji_cli, config=config)
        assert 'kojibuilder-box2-1 ' in koji('list-hosts', '--quiet')
        builder = engine2.client.containers.get(f'{b.prefix}-builder-box2-1')
        # Nothing of topdir on that machine: what it reads comes through the hub.
        assert not [m for m in builder.attrs['Mounts'] if m['Destination'] == '/mnt/koji']
        packages = repository_packages(
            lambda path: builder_reads(builder, f'repos/dn-build/{repo}/x86_64/{path}'))
        assert 'dn-hello-1.0-1' in packages, packages
    finally:
        take_down(b, client, engine2, local_only)
