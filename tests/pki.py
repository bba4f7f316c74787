"""Throwaway certificate authorities and certificates, made with the ``openssl`` command.

A builder machine's engine is reached over TCP with TLS both ways (Docker's
"Protect the Docker daemon socket"): the engine's certificate is checked
against a CA the client holds (``ca.pem``), and the client's (``cert.pem``,
``key.pem``) against the CA the engine was started with. The tests make
these the way docs/koji.rst tells an administrator to: the same commands, so
that what the tests prove is what a builder machine gets.

Python 3.13 and later check certificates strictly (``VERIFY_X509_STRICT``): a
CA needs a critical ``basicConstraints CA:TRUE`` and ``keyCertSign``, and every
certificate key identifiers (OpenSSL 3 adds them itself). Its own module, not
``helpers.py``: ``conftest.py`` makes a TLS engine with it, and ``helpers.py``
imports ``conftest``.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

#: What an engine's certificate says: the address the client connects to, and what it is for.
SERVER_EXTENSIONS = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'
#: What a client's certificate says: only that it is one.
CLIENT_EXTENSIONS = 'extendedKeyUsage=clientAuth'


def openssl(*args: str, cwd: Path) -> None:
    """One ``openssl`` command; its own output only in the error, where it says what failed."""
    subprocess.run(['openssl', *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> None:
    """``name.pem`` and ``name-key.pem``: a self-signed CA (P-256, one day)."""
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
            '-keyout', f'{name}-key.pem', '-out', f'{name}.pem', '-days', '1',
            '-subj', f'/CN=dn-test {name}',
            '-addext', 'basicConstraints=critical,CA:TRUE',
            '-addext', 'keyUsage=critical,keyCertSign,cRLSign', cwd=directory)


def issue(directory: Path, ca: str, name: str, extensions: str) -> None:
    """``name.pem`` and ``name-key.pem``, signed by ``ca``."""
    (directory / f'{name}.ext').write_text(extensions + '\n')
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
            '-keyout', f'{name}-key.pem', '-out', f'{name}.csr', '-subj', f'/CN={name}',
            cwd=directory)
    openssl('x509', '-req', '-in', f'{name}.csr', '-CA', f'{ca}.pem', '-CAkey', f'{ca}-key.pem',
            '-CAcreateserial', '-out', f'{name}.pem', '-days', '1', '-extfile', f'{name}.ext',
            cwd=directory)


def client_directory(pki: Path, name: str, ca: str, cert: str) -> Path:
    """A docker-cert-path: ca.pem (the CA the server is checked against), cert.pem, key.pem."""
    target = pki / name
    target.mkdir()
    shutil.copy(pki / f'{ca}.pem', target / 'ca.pem')
    shutil.copy(pki / f'{cert}.pem', target / 'cert.pem')
    shutil.copy(pki / f'{cert}-key.pem', target / 'key.pem')
    (target / 'key.pem').chmod(0o600)
    return target


def two_authorities(directory: Path) -> Path:
    """An engine's CA (``ca``) with its ``server`` and ``client``, and another CA
    (``rogue-ca``) with a ``rogue-server`` and ``rogue-client`` of its own: what an
    impostor or a stranger holds."""
    make_ca(directory, 'ca')
    make_ca(directory, 'rogue-ca')
    issue(directory, 'ca', 'server', SERVER_EXTENSIONS)
    issue(directory, 'ca', 'client', CLIENT_EXTENSIONS)
    issue(directory, 'rogue-ca', 'rogue-client', CLIENT_EXTENSIONS)
    issue(directory, 'rogue-ca', 'rogue-server', SERVER_EXTENSIONS)
    return directory


__all__ = ['CLIENT_EXTENSIONS', 'SERVER_EXTENSIONS', 'client_directory', 'issue', 'make_ca',
           'openssl', 'two_authorities']
