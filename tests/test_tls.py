"""A TLS-protected engine: ``docker-host`` with ``docker-tls-verify`` works, a wrong certificate is one clear line.

The engine of the tests listens on a unix socket only, so the test puts a
TLS-terminating proxy in front of it: Python's ``ssl`` on 127.0.0.1,
requiring a client certificate from its own throwaway CA (made with the
``openssl`` command), forwarding the bytes to ``/var/run/docker.sock``.
tests/test_foreach_tls.py has a real second daemon listen with ``--tlsverify``.
"""
from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from helpers import TLSProxy, assert_one_error
from pki import client_directory, two_authorities

pytestmark = pytest.mark.skipif(not shutil.which('openssl'), reason='needs the openssl command')


@pytest.fixture(scope='module')
def pki(tmp_path_factory) -> Path:
    return two_authorities(tmp_path_factory.mktemp('pki'))


@pytest.fixture
def proxy(pki) -> Iterator[TLSProxy]:
    served = TLSProxy(pki)
    try:
        yield served
    finally:
        served.close()


def volume_config(b, port: int, cert_path: Path | str) -> str:
    return textwrap.dedent(f'''
        [buildout]
        parts = data

        [data]
        recipe = dockeroo_nagoya:docker.volume
        name = {b.prefix}-data
        docker-host = tcp://127.0.0.1:{port}
        docker-tls-verify = true
        docker-cert-path = {cert_path}
        ''').lstrip()


def test_a_tls_engine_with_the_right_certificates_works(buildout, client, pki, proxy):
    """Also with REQUESTS_CA_BUNDLE set (requests would let it replace ca.pem)."""
    b = buildout
    bundle = os.environ.get('REQUESTS_CA_BUNDLE') or str(pki / 'rogue-ca.pem')
    b.write(volume_config(b, proxy.port, client_directory(pki, 'good', 'ca', 'client')))
    b.run('-N', env={'REQUESTS_CA_BUNDLE': bundle, 'CURL_CA_BUNDLE': bundle})
    assert client.volumes.get(f'{b.prefix}-data')
    installed = (b.directory / '.installed.cfg').read_text()
    assert f'docker-host = tcp://127.0.0.1:{proxy.port}' in installed
    assert 'docker-tls-verify = true' in installed
    b.run('-N')
    # Removing the part reaches the same engine, the same way.
    b.write(volume_config(b, proxy.port, pki / 'good').replace('parts = data', 'parts ='))
    b.run('-N')


@pytest.mark.parametrize('certificates, said', [
    (('ca', 'rogue-client'), 'the TLS handshake with tcp://127.0.0.1:{port} failed'),
    (('rogue-ca', 'client'), 'the TLS handshake with tcp://127.0.0.1:{port} failed'),
    (None, 'option docker-cert-path:'),
], ids=['client-certificate-of-another-ca', 'server-not-trusted', 'cert-path-missing-files'])
def test_a_wrong_certificate_is_one_clear_line(buildout, client, pki, proxy, certificates, said):
    b = buildout
    if certificates is None:
        cert_path = pki / 'incomplete'
        cert_path.mkdir(exist_ok=True)
        shutil.copy(pki / 'ca.pem', cert_path / 'ca.pem')
    else:
        ca, cert = certificates
        cert_path = client_directory(pki, f'{ca}-{cert}', ca, cert)
    b.write(volume_config(b, proxy.port, cert_path))
    line = assert_one_error(b.fail('-N'))
    assert line.startswith('Error: data: '), line
    assert said.format(port=proxy.port) in line, line
    assert 'no Docker engine answers' not in line, 'a refused certificate is not a missing engine'
    assert not client.volumes.list(filters={'name': f'{b.prefix}-data'})
