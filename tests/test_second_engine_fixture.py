"""The second engine fixtures themselves: up, reachable, down, back with its images; the TLS one
over TCP to its own clients only."""
from __future__ import annotations

import contextlib
import subprocess

import docker.errors
import pytest
from helpers import run_output


def test_second_engine(client, busybox, second_engine):
    second_engine.load(client, busybox)
    assert second_engine.client.images.get(busybox)
    out = run_output(second_engine.client, busybox, ['sh', '-c', 'echo hi'])
    assert out.strip() == b'hi'
    second_engine.stop()
    second_engine.start()
    assert second_engine.client.images.get(busybox)


def test_tls_second_engine_answers_its_clients_only(tls_second_engine):
    """As a builder machine's engine: TCP with TLS both ways; its certificates pass strict
    X.509 checks (Python 3.13's), a client without a certificate is refused."""
    engine = tls_second_engine
    assert engine.tls_host.startswith('tcp://127.0.0.1:')
    assert sorted(p.name for p in engine.client_certs.iterdir()) == ['ca.pem', 'cert.pem', 'key.pem']
    for certificate in ('server.pem', 'client.pem'):
        checked = subprocess.run(['openssl', 'verify', '-x509_strict', '-CAfile', 'ca.pem',
                                  certificate], cwd=engine.pki, capture_output=True, text=True,
                                 check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    with contextlib.closing(engine.tls_client()) as secure:
        assert secure.version()['ApiVersion']
    with pytest.raises(docker.errors.DockerException, match='BAD_CERTIFICATE|CERTIFICATE_REQUIRED'):
        engine.tls_client(client_certificate=False).ping()
    engine.stop()
    engine.start()  # back where it was, on the same port and certificates
    with contextlib.closing(engine.tls_client()) as secure:
        assert secure.ping()
