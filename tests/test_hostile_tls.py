"""An engine or a service that poses as another gets nothing (issue 22, finding 4).

A directory of client certificates (``docker-cert-path``, dockeroo's
``engine-tls-cert-path``, in a part or in ``[buildout]``) means the engine's
certificate is checked against its ``ca.pem``, as ``docker --tlsverify`` does,
for a run, a plan, an uninstall from the recorded options and a control
script alike. The impostor is a man in the middle on 127.0.0.1: a certificate
of another CA, forwarding to the real engine and keeping what it was sent
(:class:`helpers.TLSProxy`). It must get nothing: no request line, no registry
credentials. Not checking takes ``docker-tls-verify = false``, said on every
run; a ``key.pem`` others can read is refused in one line. An ``https`` gate
checks its server's certificate too.

``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` and ``SSL_CERT_FILE`` are unset for
every run here: set (as on this machine), requests checks even an unchecked
engine against the system's CAs, which hides the mistake.
"""
from __future__ import annotations

import shutil
import subprocess
import textwrap
import time

import pytest

from conftest import PLAN, SecondEngine
from helpers import (WAYS, TLSProxy, actions, assert_one_error, buildout_config, control, leaked,
                     section, sleeper, tls_config)
from pki import client_directory, make_ca

pytestmark = [pytest.mark.skipif(not shutil.which('openssl'), reason='needs the openssl command'),
              pytest.mark.usefixtures('no_ca_bundles')]

def system_config(b, busybox: str, **engine: str) -> str:
    """A docker.system ``sys`` (bin/sys) of one sleeper, on the engine its options say."""
    return buildout_config(['sys'], section('sys', 'docker.system', containers='one', **engine),
                           section('one', '', name=f'{b.prefix}-one', image=busybox,
                                   command='sleep 3600'))


def run_plan(b, *args: str) -> subprocess.CompletedProcess[str]:
    """dockeroo-plan asking the registry (no -N): a read that carries the credentials."""
    return subprocess.run([str(PLAN), *args], cwd=b.directory, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize('way', list(WAYS))
def test_an_impostor_engine_gets_nothing_from_a_plan_or_a_run(buildout, client, certs,
                                                              impostor, way, monkeypatch):
    b = buildout
    if way == 'environment':
        monkeypatch.setenv('DOCKER_CERT_PATH', str(certs))
    b.write(tls_config(b, way, impostor.address, certs, pull=True))
    handshake = f'the TLS handshake with {impostor.address} failed'

    planned = run_plan(b)
    assert planned.returncode != 0, planned.stdout + planned.stderr
    line = assert_one_error(planned.stdout + planned.stderr)
    assert handshake in line and 'certificate verify failed' in line, line

    line = assert_one_error(b.fail())
    assert line.startswith(('Error: data: ', 'Error: image: ')), line
    assert handshake in line and 'certificate verify failed' in line, line

    assert leaked(impostor.received) == [], impostor.received[:2000]
    assert impostor.received == b''
    assert not client.volumes.list(filters={'name': f'{b.prefix}-data'})


def test_docker_tls_verify_false_connects_and_says_so_on_every_run(buildout, client, certs,
                                                                   impostor):
    b = buildout
    b.write(tls_config(b, 'part', impostor.address, certs, extra='docker-tls-verify = false'))
    warning = (f'data: docker-tls-verify = false: the certificate of the engine at '
               f'{impostor.address} is not checked against {certs}/ca.pem')
    for run in range(2):
        out = b.run()
        said = out.stdout + out.stderr
        warned = [line for line in said.splitlines() if 'docker-tls-verify = false' in line]
        assert len(warned) == 1 and warned[0].startswith(warning), said
        assert actions(out.stdout) == (['Installing data.'] if run == 0 else []), said
    assert client.volumes.get(f'{b.prefix}-data')
    assert impostor.received, 'it went through the man in the middle, as asked'
    assert 'docker-tls-verify = false' in (b.directory / '.installed.cfg').read_text()

    planned = run_plan(b, '-N')
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert (planned.stdout + planned.stderr).count(warning) == 1, planned.stderr

    # The uninstall reads the recorded options: unchecked as they say, and said again.
    before = len(impostor.received)
    b.write(tls_config(b, 'part', impostor.address, certs,
                       extra='docker-tls-verify = false').replace('parts = data', 'parts ='))
    out = b.run()
    assert 'Uninstalling data.' in out.stdout, out.stdout
    assert (out.stdout + out.stderr).count(warning) == 1, out.stdout + out.stderr
    assert len(impostor.received) > before, 'the uninstall reached the engine it was on'


@pytest.mark.parametrize('way', [*WAYS, 'engine-phrase'])
def test_a_key_others_can_read_is_refused_in_one_line(buildout, client, pki, certs, way,
                                                       monkeypatch):
    b = buildout
    (certs / 'key.pem').chmod(0o644)
    if way == 'environment':
        monkeypatch.setenv('DOCKER_CERT_PATH', str(certs))
    proxy = TLSProxy(pki)
    try:
        if way == 'engine-phrase':
            b.write(textwrap.dedent(f'''
                [buildout]
                parts = data

                [data]
                recipe = dockeroo_nagoya:docker.volume
                name = {b.prefix}-data
                engine = {proxy.address} tls={certs}
                ''').lstrip())
            option = 'engine'
        else:
            b.write(tls_config(b, way, proxy.address, certs))
            option = WAYS[way][2]
        line = assert_one_error(b.fail())
        start = 'DOCKER_CERT_PATH in the environment' if way == 'environment' else \
            f'option {option}'
        assert line.startswith(f'Error: data: {start}: '), line
        assert f'{certs}/key.pem is mode 0644: chmod 600 it' in line, line
        planned = run_plan(b, '-N')
        assert assert_one_error(planned.stdout + planned.stderr) == line
        assert proxy.received == b'' and proxy.refused == 0, 'nothing connected'
        assert not client.volumes.list(filters={'name': f'{b.prefix}-data'})
    finally:
        proxy.close()


def test_an_uninstall_and_a_control_script_check_the_engine_too(buildout, client, busybox,
                                                                 pki, certs):
    """Installed through the real engine's TLS, then an impostor takes its address: the
    control script and the uninstall (from the options .installed.cfg recorded) send it
    nothing."""
    b = buildout
    proxy = TLSProxy(pki)
    address, port = proxy.address, proxy.port
    b.write(system_config(b, busybox, docker_host=address, docker_cert_path=str(certs)))
    try:
        b.run()
        assert control(b, 'status').returncode == 0
    finally:
        proxy.close()
    assert proxy.received, 'installed through TLS'
    impostor = TLSProxy(pki, server='rogue-server', client_ca=None, port=port)
    try:
        status = control(b, 'status')
        assert status.returncode != 0, status.stdout + status.stderr
        line = status.stderr.strip().splitlines()
        assert len(line) == 1 and f'the TLS handshake with {address} failed' in line[0], \
            status.stderr
        assert 'Traceback' not in status.stderr

        b.write('[buildout]\nparts =\n')
        out = b.run()
        assert 'Uninstalling sys.' in out.stdout, out.stdout + out.stderr
        assert 'Traceback' not in out.stderr, out.stderr
        assert impostor.received == b'', impostor.received[:2000]
        assert leaked(impostor.received) == []
        assert [c.name for c in b.owned('containers')] == [f'{b.prefix}-one'], \
            'left on the engine it could not check'
    finally:
        impostor.close()


def test_an_https_gate_checks_the_certificate(buildout, client, busybox, pki):
    """The gate's server is a man in the middle to the engine (which answers 404 at /):
    a certificate of a CA the system does not know fails the gate at once, in one line;
    wait-for-tls-ca trusts that CA, wait-for-tls-verify = false trusts anything."""
    b = buildout
    server = TLSProxy(pki, server='rogue-server', client_ca=None)
    gate = f'https://127.0.0.1:{server.port}/ 404'
    try:
        b.write(buildout_config(['web'], sleeper('web', busybox, name=f'{b.prefix}-web',
                                                 wait_for=gate, wait_timeout='60s')))
        started = time.monotonic()
        out = b.fail()
        assert time.monotonic() - started < 45, 'failed at once, not at the timeout'
        line = assert_one_error(out)
        assert line.startswith(f'Error: web: option wait-for: {gate}: the certificate of '
                               f'https://127.0.0.1:{server.port}/ is not trusted'), line
        assert 'wait-for-tls-ca' in line, line
        assert server.received == b'', server.received[:2000]

        for trust in ({'wait_for_tls_ca': str(pki / 'rogue-ca.pem')},
                      {'wait_for_tls_verify': 'false'}):
            b.write(buildout_config(['web'], sleeper('web', busybox, name=f'{b.prefix}-web',
                                                     wait_for=gate, wait_timeout='60s',
                                                     **trust)))
            out = b.run()
            said = out.stdout + out.stderr
            assert 'passed' in said, said
            warned = [line for line in said.splitlines() if 'wait-for-tls-verify' in line]
            assert warned == ([] if 'wait_for_tls_ca' in trust else [
                'web: wait-for-tls-verify = false: the certificates of its https gates are not '
                'checked (give their CA with wait-for-tls-ca to check them)']), said
        assert server.received.startswith(b'GET / HTTP/1.1')
    finally:
        server.close()


@pytest.mark.slow
def test_a_real_tls_engine_with_a_certificate_directory_alone(buildout, client,
                                                              tls_second_engine):
    """dockerd --tlsverify: a directory alone is enough (the engine's certificate checked),
    and a directory of another CA is refused at the handshake."""
    b = buildout
    engine: SecondEngine = tls_second_engine
    assert engine.pki is not None and engine.client_certs is not None and engine.tls_host
    if not (engine.pki / 'hostile-ca.pem').exists():
        make_ca(engine.pki, 'hostile-ca')
    stranger = client_directory(engine.pki, str(b.directory.parent / 'stranger'),
                                'hostile-ca', 'client')
    try:
        b.write(tls_config(b, 'part', engine.tls_host, stranger))
        line = assert_one_error(b.fail())
        assert f'the TLS handshake with {engine.tls_host} failed' in line, line
        assert 'certificate verify failed' in line, line

        b.write(tls_config(b, 'part', engine.tls_host, engine.client_certs))
        out = b.run()
        assert 'docker-tls-verify' not in out.stdout + out.stderr, 'nothing to warn about'
        assert engine.client is not None
        assert engine.client.volumes.get(f'{b.prefix}-data')
        assert actions(b.run().stdout) == []
    finally:
        assert engine.client is not None
        b.cleanup(engine.client)


def test_a_control_script_says_it_does_not_check_the_engine(buildout, client, busybox, pki,
                                                             certs):
    """docker-tls-verify = false: the control script connects unchecked, as the run did,
    and says so in one line naming its part."""
    b = buildout
    proxy = TLSProxy(pki)
    try:
        b.write(system_config(b, busybox, docker_host=proxy.address, docker_cert_path=str(certs),
                              docker_tls_verify='false'))
        b.run()
        status = control(b, 'status')
        assert status.returncode == 0, status.stdout + status.stderr
        warned = [line for line in status.stderr.splitlines() if 'docker-tls-verify' in line]
        assert warned == [f'sys: docker-tls-verify = false: the certificate of the engine at '
                          f'{proxy.address} is not checked against {certs}/ca.pem, so whoever '
                          f'answers there gets this part\'s requests and credentials (remove '
                          f'docker-tls-verify = false to check it)'], status.stderr
    finally:
        proxy.close()
