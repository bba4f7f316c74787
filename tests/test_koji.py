"""The Koji profile.

What needs no Koji code (credentials, database, order, gates, secrets) is
tested always, on a locally bootstrapped Debian image. The whole system is
tested when an image with Koji's server code is named in DN_KOJI_IMAGE (no
registry reachable here has one; the README says how to make one); without
it that test says plainly that it was skipped.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import docker.errors
import pytest

from conftest import PROJECT, TEST_LABEL, free_port, shared_lock

SUPPORT = 'dn-test/koji-support:latest'
KOJI_IMAGE = os.environ.get('DN_KOJI_IMAGE', '')

pytestmark = pytest.mark.slow


@pytest.fixture(scope='session')
def koji_support(client, debian) -> str:
    """The profile's support image (Debian + PostgreSQL + OpenSSL), cached like the Debian one."""
    with shared_lock('koji-support'):
        try:
            client.images.get(SUPPORT)
        except docker.errors.ImageNotFound:
            client.images.build(path=str(PROJECT / 'profiles' / 'koji' / 'support'), tag=SUPPORT,
                                buildargs={'BASE': debian}, labels={TEST_LABEL: '1'}, rm=True)
    return SUPPORT


def koji_buildout(b, parts: str, builders: int = 1, port: int | None = None,
                  extra: str = '') -> None:
    """The profile copied into the test's buildout, as a user copies it for an installation."""
    if not (b.directory / 'koji.cfg').exists():
        shutil.copy(PROJECT / 'profiles' / 'koji.cfg', b.directory / 'koji.cfg')
        shutil.copytree(PROJECT / 'profiles' / 'koji', b.directory / 'koji')
        b.port = port or free_port()
    lines = ['[buildout]', 'extends = koji.cfg', f'parts = {parts}', '', '[koji]',
             f'prefix = {b.prefix}', f'hub-port = {b.port}', f'builders = {builders}',
             'stop-timeout = 1', *extra.splitlines()]
    b.write('\n'.join(lines) + '\n')


def in_volume(client, image: str, volume: str, command: str) -> str:
    return client.containers.run(image, ['sh', '-c', command], remove=True,
                                 volumes={volume: {'bind': '/etc/pki/koji', 'mode': 'ro'}}).decode()


def container_ids(b) -> dict[str, tuple[str, str]]:
    return {c.name: (c.id, c.attrs['State']['StartedAt']) for c in b.owned('containers')}


def test_credentials_and_database_need_no_koji_code(buildout, client, koji_support, debian):
    b = buildout
    parts = 'koji-network koji-credentials-job koji-database'
    # No part here uses the Koji image; naming one keeps buildout from building Fedora's.
    extra = f'image = dn-test/no-koji-code\nsupport-image = {koji_support}\nbase-image = {debian}'
    koji_buildout(b, parts, extra=extra)
    out = b.run('-N', '-vv')
    log = out.stdout + out.stderr
    assert log.index('Installing koji-credentials-job') < log.index('Installing koji-database')
    assert 'pg_isready' in log and 'passed' in log
    credentials = f'{b.prefix}-credentials'

    # Certificates: CN is the Koji user, the hub's names are in its SAN, ProxyDNs is RFC 2253.
    text = in_volume(client, koji_support, credentials,
                     'cd /etc/pki/koji && for c in kojiadmin kojiweb kojira kojibuilder1; do '
                     'openssl x509 -in $c.crt -noout -subject -nameopt RFC2253; done; '
                     'openssl x509 -in hub.crt -noout -ext subjectAltName; cat kojiweb.subject; '
                     'openssl verify -CAfile ca.crt kojiadmin.crt; '
                     'stat -c "%a %n" ca.key hub.key kojiadmin.pem secrets/db-password secrets/web-secret')
    for user in ('kojiadmin', 'kojiweb', 'kojira', 'kojibuilder1'):
        assert f'subject=CN={user},OU=koji,O=dockeroo_nagoya,C=XX' in text
    assert 'DNS:koji-hub' in text and 'DNS:localhost' in text and 'IP Address:127.0.0.1' in text
    assert 'CN=kojiweb,OU=koji,O=dockeroo_nagoya,C=XX\n' in text
    assert 'kojiadmin.crt: OK' in text
    for path in ('ca.key', 'hub.key', 'kojiadmin.pem', 'secrets/db-password', 'secrets/web-secret'):
        assert f'600 {path}' in text

    # The database answers with the generated password, which is written nowhere else.
    password = in_volume(client, koji_support, credentials, 'cat /etc/pki/koji/secrets/db-password').strip()
    assert len(password) >= 32
    database = client.containers.get(f'{b.prefix}-database')
    result = database.exec_run(['sh', '-c', 'PGPASSWORD=$(cat /etc/pki/koji/secrets/db-password) '
                                'psql -h 127.0.0.1 -U koji -d koji -tAc "select 42"'])
    assert result.exit_code == 0 and result.output.strip() == b'42'
    assert password not in log
    assert password not in (b.directory / '.installed.cfg').read_text()
    assert password not in str(database.attrs)

    # A rerun changes nothing; a second builder adds one certificate and keeps the others.
    before = container_ids(b)
    sums = in_volume(client, koji_support, credentials, 'cd /etc/pki/koji && sha256sum ca.crt kojiadmin.pem hub.pem')
    out = b.run('-N')
    assert container_ids(b) == before
    assert 'running job' not in out.stdout
    koji_buildout(b, parts, builders=2, extra=extra)
    b.run('-N')
    assert in_volume(client, koji_support, credentials,
                     'cd /etc/pki/koji && sha256sum ca.crt kojiadmin.pem hub.pem') == sums
    assert 'kojibuilder2.pem' in in_volume(client, koji_support, credentials, 'ls /etc/pki/koji')
    assert container_ids(b)[f'{b.prefix}-database'] == before[f'{b.prefix}-database']

    # Removing the parts removes the containers and keeps the data.
    koji_buildout(b, '', extra=extra)
    b.run('-N')
    assert not b.owned('containers')
    assert client.volumes.get(f'{b.prefix}-dbdata') and client.volumes.get(credentials)


@pytest.mark.skipif(not KOJI_IMAGE, reason='no Koji image: set DN_KOJI_IMAGE to an image with '
                    "Koji's server code (README: Koji image contract) to run the whole profile")
def test_whole_koji_system(buildout, client, koji_support, debian):
    b = buildout
    parts = ('koji-network koji-credentials-job koji-database koji-schema-job koji-hub '
             'koji-bootstrap-job kojira koji-builder koji-client koji-cli')
    extra = f'image = {KOJI_IMAGE}\nsupport-image = {koji_support}\nbase-image = {debian}'
    koji_buildout(b, parts, extra=extra)
    started = time.monotonic()
    b.run('-N')
    print(f'\nKoji profile up in {time.monotonic() - started:.1f} s')
    koji = str(b.directory / 'bin' / 'koji')

    def run_koji(*args: str, timeout: float = 60) -> str:
        result = subprocess.run([koji, *args], capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert 'kojiadmin' in run_koji('moshimoshi')
    hosts = run_koji('list-hosts', '--quiet')
    assert hosts.split()[:3] == ['kojibuilder1', 'Y', 'Y'], hosts

    # The host's client profile works with the published port.
    conf = (b.directory / 'parts' / 'koji-client' / 'koji.conf').read_text()
    assert f'https://localhost:{b.port}/kojihub' in conf
    assert oct((b.directory / 'parts' / 'koji-client' / 'kojiadmin.pem').stat().st_mode & 0o777) == '0o600'

    # kojira and a builder make a repository for a new tag (the hub schedules once a minute).
    run_koji('add-tag', '--arches=x86_64', 'dn-smoke-build')
    run_koji('regen-repo', '--wait', '--timeout=4', 'dn-smoke-build', timeout=300)
    repo = run_koji('call', '--json-output', 'getRepo', 'dn-smoke-build')
    assert '"state": 1' in repo, repo

    # Rerun: nothing restarts. One more builder: exactly one container, registered.
    before = container_ids(b)
    b.run('-N')
    assert container_ids(b) == before
    koji_buildout(b, parts, builders=2, extra=extra)
    b.run('-N')
    after = container_ids(b)
    assert set(after) - set(before) == {f'{b.prefix}-builder-2'}
    assert all(after[name] == before[name] for name in before
               if not name.endswith('-job')), 'running services were not restarted'
    hosts = run_koji('list-hosts', '--quiet')
    assert [line.split()[:3] for line in hosts.splitlines()] == [
        ['kojibuilder1', 'Y', 'Y'], ['kojibuilder2', 'Y', 'Y']], hosts

    # Removing the parts keeps the database's and the topdir's data.
    koji_buildout(b, '', builders=2, extra=extra)
    b.run('-N')
    assert not b.owned('containers')
    listing = client.containers.run(
        koji_support, ['sh', '-c', 'ls /db/PG_VERSION && ls /top/repos'], remove=True,
        volumes={f'{b.prefix}-dbdata': {'bind': '/db', 'mode': 'ro'},
                 f'{b.prefix}-topdir': {'bind': '/top', 'mode': 'ro'}}).decode()
    assert 'PG_VERSION' in listing and 'dn-smoke-build' in listing


@pytest.fixture(autouse=True)
def _remove_kept_volumes(buildout, client):
    """The profile keeps its volumes when parts go; the test's own are removed afterwards."""
    yield
    for volume in client.volumes.list(filters={'name': buildout.prefix}):
        with contextlib.suppress(docker.errors.APIError):
            volume.remove(force=True)


def test_profile_files_are_where_the_profile_says(tmp_path: Path):
    config = (PROJECT / 'profiles' / 'koji.cfg').read_text()
    for relative in ('koji/fedora', 'koji/support', 'koji/support-layout', 'koji/hub',
                     'koji/tools', 'koji/kojira', 'koji/builder'):
        assert '${buildout:directory}/' + relative in config
        assert (PROJECT / 'profiles' / relative).is_dir()
