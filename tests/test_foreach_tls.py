"""A line of ``builder-hosts`` whose machine is reached over TCP with TLS, on a real daemon (issue 18).

``box tcp://127.0.0.1:PORT tls=DIR 2``, as docs/koji.rst tells an administrator to
set up a builder machine: a second dockerd started with ``--tlsverify`` and a
CA, server and client certificate made with openssl (``tls_second_engine``),
not a proxy in front of the main engine (tests/test_tls.py). The image goes
there as the Koji profile sends it: a docker.save here, a docker.load of its
file there, and the sleepers there name the loaded image. Certificates that
do not fit are one line naming the part before anything acts, whichever side
refuses the handshake.
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator

import docker
import docker.errors
import pytest

from conftest import SecondEngine
from helpers import actions, assert_one_error, builder_hosts, ids
from pki import CLIENT_EXTENSIONS, client_directory, issue, make_ca

pytestmark = pytest.mark.slow


@pytest.fixture
def builder(buildout, busybox, tls_second_engine) -> Iterator[SecondEngine]:
    """The TLS engine; what the test's buildout made there, and the image it loaded there,
    removed afterwards (through the engine's unix socket: whatever the test did to
    certificates)."""
    yield tls_second_engine
    client = tls_second_engine.client
    assert client is not None
    buildout.cleanup(client)
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(busybox, force=True)


def other_ca_directories(engine: SecondEngine, name: str) -> dict[str, Path]:
    """Certificate directories that do not fit the engine, by what is wrong with them: the
    CA of another authority (the engine's certificate is refused here), a client
    certificate of another authority (refused by the engine), and no key.pem."""
    pki = engine.pki
    assert pki is not None and engine.client_certs is not None
    if not (pki / f'{name}-ca.pem').exists():
        make_ca(pki, f'{name}-ca')
        issue(pki, f'{name}-ca', f'{name}-client', CLIENT_EXTENSIONS)
    made = {}
    for what, ca, cert in (('server-not-trusted', f'{name}-ca', 'client'),
                           ('client-of-another-ca', 'ca', f'{name}-client')):
        directory = pki / f'{name}-{what}'
        if not directory.exists():
            client_directory(pki, directory.name, ca, cert)
        made[what] = directory
    incomplete = made['no-key'] = pki / f'{name}-no-key'
    if not incomplete.exists():
        shutil.copytree(engine.client_certs, incomplete)
        (incomplete / 'key.pem').unlink()
    return made


def test_sleepers_on_a_tls_builder_machine(buildout, client, busybox, builder):
    b = buildout
    engine = builder.tls_host
    certs = builder.client_certs
    remote = builder.client
    assert remote is not None

    builder_hosts(b, busybox, f'box {engine} tls={certs} 2')
    out = b.run()
    assert actions(out.stdout) == ['Installing save.', 'Installing img-box.',
                                   'Installing sleep-box.'], out.stdout
    first = ids(remote, b)
    assert sorted(first) == [f'container:{b.prefix}-box-1', f'container:{b.prefix}-box-2']
    assert all(c.status == 'running' for c in b.owned('containers', remote))
    assert not b.owned('containers'), 'nothing of the line runs on the buildout\'s own engine'
    installed = (b.directory / '.installed.cfg').read_text()
    assert f'engine = {engine} tls={certs}' in installed
    # Reached over TLS, not the unix socket: the engine that runs them is the TCP one.
    with contextlib.closing(builder.tls_client()) as secure:
        assert {c.id for c in secure.containers.list(filters={'label': b.label})} == \
            set(first.values())

    for _ in range(2):  # unchanged reruns: nothing installed or uninstalled, the same containers
        out = b.run()
        assert actions(out.stdout) == [], out.stdout
        assert ids(remote, b) == first

    # One more on the line: one container more there, the others the same.
    builder_hosts(b, busybox, f'box {engine} tls={certs} 3')
    out = b.run()
    assert 'Installing sleep-box.' in actions(out.stdout), out.stdout
    assert 'Installing img-box.' not in actions(out.stdout), out.stdout
    after = ids(remote, b)
    assert set(after) - set(first) == {f'container:{b.prefix}-box-3'}
    assert all(after[key] == value for key, value in first.items())
    assert actions(b.run().stdout) == []

    # Certificates that do not fit: one line naming the part, before anything acts.
    wrong = other_ca_directories(builder, 'other')
    for what, said in (('server-not-trusted', f'the TLS handshake with {engine} failed'),
                       ('client-of-another-ca', f'the TLS handshake with {engine} failed'),
                       ('no-key', 'option engine: expected tls=DIR naming a directory')):
        builder_hosts(b, busybox, f'box {engine} tls={wrong[what]} 3')
        out = b.fail()
        line = assert_one_error(out)
        assert line.startswith(('Error: img-box: ', 'Error: sleep-box: ')), (what, out)
        assert said in line, (what, line)
        if what == 'no-key':  # the directory of the line's tls=, and what it lacks
            assert f'(key.pem missing), got {str(wrong[what])!r}' in line, line
        assert 'no Docker engine answers' not in line, (what, line)
        assert actions(out) == [], (what, out)
        assert ids(remote, b) == after, what
        assert all(c.status == 'running' for c in b.owned('containers', remote)), what

    # The right certificates again: nothing had changed, so nothing to do.
    builder_hosts(b, busybox, f'box {engine} tls={certs} 3')
    assert actions(b.run().stdout) == []
    assert ids(remote, b) == after

    # The line taken out: its parts uninstalled, over TLS, its containers gone there.
    builder_hosts(b, busybox, '')
    out = b.run()
    assert 'Uninstalling sleep-box.' in actions(out.stdout), out.stdout
    assert b.owned('containers', remote) == []
