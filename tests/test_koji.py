"""The Koji profile, extended from the test's own directory as a user extends it.

What needs no Koji code (credentials, database, order, gates, secrets, the
client's files) is tested always, on a locally bootstrapped Debian image.
The whole system is tested when an image with Koji's server code is named in
DN_KOJI_IMAGE (no registry reachable here has one: ../shared/kojilab/build.sh
makes a Fedora-like one from a Koji checkout), with an upgrade when
DN_KOJI_UPGRADE_IMAGE names a newer Koji; without an image that test says
plainly that it was skipped.
"""
from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import docker.errors
import pytest

from conftest import PROJECT
from helpers import (run_output, container_ids, koji_buildout, koji_secrets, koji_secrets_exposed,
                     koji_service_credentials, koji_services_hold_only_their_own, plan, timed)

KOJI_IMAGE = os.environ.get('DN_KOJI_IMAGE', '')
#: A newer Koji image to upgrade to in the whole-system test (e.g. 1.34.3 -> 1.35.3).
UPGRADE_IMAGE = os.environ.get('DN_KOJI_UPGRADE_IMAGE', '')

pytestmark = pytest.mark.slow


def in_volume(client, image: str, volume: str, command: str) -> str:
    return run_output(client, image, ['sh', '-c', command],
                                 volumes={volume: {'bind': '/etc/pki/koji', 'mode': 'ro'}}).decode()


def test_each_image_part_goes_alone(buildout, debian):
    """``bin/buildout install koji-support`` (an image part alone): [koji] names the part's
    image and the part reads [koji]; buildout must not stop on that loop. The plan makes
    each part as the install would, so nothing is built here."""
    b = buildout
    for part, extra, image in (('koji-support', f'image = {debian}', 'support:latest'),
                               ('koji-image', '', 'server:fedora'),
                               ('koji-base', 'base-image = ${koji-base:image}', 'debian:bookworm')):
        koji_buildout(b, part, extra=extra)
        said = plan(b)
        assert said.returncode == 2, said.stdout + said.stderr
        assert f'build image {b.prefix}/{image}: there is no such image yet' in said.stdout, \
            said.stdout


def test_credentials_and_database_need_no_koji_code(buildout, client, koji_support, debian):
    b = buildout
    parts = 'koji-network koji-credentials-job koji-database koji-builder-credentials-job koji-client'
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
                     # As Koji's clients on Python 3.13+ with urllib3 2.4+ (Fedora 44's) verify.
                     'openssl verify -x509_strict -CAfile ca.crt hub.crt kojiadmin.crt kojiweb.crt; '
                     # ECDSA P-256 keys: made in milliseconds (RSA keys took most of the job).
                     'for k in ca hub kojiadmin kojiweb kojira kojibuilder1; do '
                     'echo "$k $(openssl pkey -in $k.key -noout -text | grep -o prime256v1)"; done; '
                     'stat -c "%a %n" ca.key hub.key kojiadmin.pem secrets/db-password secrets/web-secret')
    for user in ('kojiadmin', 'kojiweb', 'kojira', 'kojibuilder1'):
        assert f'subject=CN={user},OU=koji,O=dockeroo_nagoya,C=XX' in text
    assert 'DNS:koji-hub' in text and 'DNS:localhost' in text and 'IP Address:127.0.0.1' in text
    assert 'CN=kojiweb,OU=koji,O=dockeroo_nagoya,C=XX\n' in text
    for cert in ('hub', 'kojiadmin', 'kojiweb'):
        assert f'{cert}.crt: OK' in text
    for key in ('ca', 'hub', 'kojiadmin', 'kojiweb', 'kojira', 'kojibuilder1'):
        assert f'{key} prime256v1\n' in text, text
    for path in ('ca.key', 'hub.key', 'kojiadmin.pem', 'secrets/db-password', 'secrets/web-secret'):
        assert f'600 {path}' in text

    # Each service's own volume holds exactly what it uses; the CA's key and kojiadmin's
    # stay in the credentials volume, which only jobs mount.
    def files(volume: str) -> list[str]:
        return in_volume(client, koji_support, f'{b.prefix}-{volume}',
                         'cd /etc/pki/koji && find . -type f | sort').split()

    assert files('credentials-hub') == [
        './ca.crt', './hub.crt', './hub.key', './kojiweb.pem', './kojiweb.subject',
        './secrets/db-password', './secrets/web-secret']
    assert files('credentials-database') == ['./secrets/db-password']
    assert files('credentials-kojira') == ['./ca.crt', './kojira.pem']
    assert files('credentials-builder-1') == ['./ca.crt', './kojibuilder1.pem']

    # The database answers with the generated password, which is written nowhere else.
    password = in_volume(client, koji_support, credentials, 'cat /etc/pki/koji/secrets/db-password').strip()
    assert len(password) >= 32
    database = client.containers.get(f'{b.prefix}-database')
    result = database.exec_run(['sh', '-c', 'PGPASSWORD=$(cat /etc/pki/koji/secrets/db-password) '
                                'psql -h 127.0.0.1 -U koji -d koji -tAc "select 42"'])
    assert result.exit_code == 0 and result.output.strip() == b'42'
    # It holds its password and nothing else of the credentials: not the CA's key, not
    # kojiadmin's (the credentials volume is the jobs' alone).
    assert koji_secrets_exposed(database, koji_secrets(client, koji_support, credentials),
                                koji_service_credentials(b.prefix, database.name)) == []
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
    assert files('credentials-builder-2') == ['./ca.crt', './kojibuilder2.pem']
    assert files('credentials-builder-1') == ['./ca.crt', './kojibuilder1.pem']
    assert container_ids(b)[f'{b.prefix}-database'] == before[f'{b.prefix}-database']

    # The host's client profile: the admin's key readable by its owner only.
    client_dir = b.directory / 'parts' / 'koji-client'
    assert oct((client_dir / 'kojiadmin.pem').stat().st_mode & 0o777) == '0o600'
    assert f'https://localhost:{b.port}/kojihub' in (client_dir / 'koji.conf').read_text()

    # Removing the parts removes the containers and the client's files (the private key
    # too), and keeps the data.
    koji_buildout(b, '', extra=extra)
    b.run('-N')
    assert not b.owned('containers')
    assert not (client_dir / 'kojiadmin.pem').exists() and not client_dir.exists()
    assert client.volumes.get(f'{b.prefix}-dbdata') and client.volumes.get(credentials)


def peak_connections(client, database: str, during) -> int:
    """The most connections to the koji database seen while ``during`` runs."""
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            result = client.containers.get(database).exec_run(
                ['su', 'postgres', '-s', '/bin/sh', '-c',
                 "psql -tAc \"select count(*) from pg_stat_activity where datname = 'koji'\""])
            if result.exit_code == 0:
                peak = max(peak, int(result.output.strip() or 0))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        during()
    finally:
        done.set()
        sampler.join()
    return peak


@pytest.mark.skipif(not KOJI_IMAGE, reason='no Koji image: set DN_KOJI_IMAGE to an image with '
                    "Koji's server code (docs/koji.rst: The Koji image contract; ../shared/kojilab builds "
                    'one) to run the whole profile')
def test_whole_koji_system(buildout, client, koji_support, debian, tmp_path):
    """From nothing to a working Koji and back: rerun, a builder more, an upgrade when
    DN_KOJI_UPGRADE_IMAGE names a newer Koji, bin/kojictl backup, removal of everything
    including the volumes, restore."""
    b = buildout
    extra = f'image = {KOJI_IMAGE}\nsupport-image = {koji_support}\nbase-image = {debian}'
    koji_buildout(b, extra=extra)
    timed('cold bring-up from the images', b.run, '-N')
    koji = str(b.directory / 'bin' / 'koji')
    kojictl = str(b.directory / 'bin' / 'kojictl')

    def run(command: str, *args: str, timeout: float = 60, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([command, *args], capture_output=True, text=True, timeout=timeout)
        assert not check or result.returncode == 0, result.stdout + result.stderr
        return result

    def run_koji(*args: str, timeout: float = 60) -> str:
        return run(koji, *args, timeout=timeout).stdout

    def ready_hosts() -> list[list[str]]:
        return [line.split()[:3] for line in run_koji('list-hosts', '--quiet').splitlines()]

    assert 'kojiadmin' in run_koji('moshimoshi')
    assert ready_hosts() == [['kojibuilder1', 'Y', 'Y']]
    # Each running service holds only the credentials it uses: the CA's key and
    # kojiadmin's are in none of them (the jobs that issue and register have them).
    timed('credentials checked in every service', koji_services_hold_only_their_own,
          client, b, koji_support)

    # Only the profile's TLS listener serves Koji: plain HTTP on port 80 has none of it.
    hub = f'{b.prefix}-hub'
    probe = client.containers.get(hub).exec_run(
        ['python3', '-c', 'import urllib.request, urllib.error\n'
         'for path in ("/kojihub", "/kojifiles/", "/koji/"):\n'
         '    try: print(path, urllib.request.urlopen("http://127.0.0.1" + path).status)\n'
         '    except urllib.error.HTTPError as e: print(path, e.code)\n'])
    assert probe.exit_code == 0 and probe.output.decode().split() == [
        '/kojihub', '404', '/kojifiles/', '404', '/koji/', '404'], probe.output
    # The web and the files answer on the published TLS port, checked against the CA.
    context = ssl.create_default_context(
        cafile=str(b.directory / 'parts' / 'koji-client' / 'ca.crt'))
    for path in ('/koji/', '/kojifiles/'):
        with urllib.request.urlopen(f'https://localhost:{b.port}{path}', context=context,
                                    timeout=60) as answer:
            assert answer.status == 200, path

    # httpd's errors go to the container's log, not to Fedora's logs/error_log.
    assert client.containers.get(hub).exec_run(
        ['sh', '-c', 'test ! -e /var/log/httpd/error_log']).exit_code == 0
    assert b'POST /kojihub' in client.containers.get(hub).logs()

    # kojira and a builder make a repository for a new tag.
    run_koji('add-tag', '--arches=x86_64', 'dn-smoke-build')
    timed('first regen-repo', run_koji, 'regen-repo', '--wait', 'dn-smoke-build', timeout=300)
    assert '"state": 1' in run_koji('call', '--json-output', 'getRepo', 'dn-smoke-build')

    # The hub holds at most hub-processes x hub-threads (4 x 2) database connections,
    # even under 20 concurrent calls.
    def burst() -> None:
        calls = [subprocess.Popen([koji, 'list-tags'], stdout=subprocess.DEVNULL)
                 for _ in range(20)]
        assert all(call.wait(timeout=120) == 0 for call in calls)

    peak = peak_connections(client, f'{b.prefix}-database', burst)
    print(f'\npeak database connections under 20 concurrent calls: {peak}')
    assert 0 < peak <= 4 * 2 + 2  # one more seen at times, briefly

    # Rerun: nothing installed again, nothing restarted.
    before = container_ids(b)
    out = timed('rerun', b.run, '-N')
    assert 'Installing' not in out.stdout + out.stderr
    assert container_ids(b) == before

    # One more builder: exactly one container more, registered and ready.
    koji_buildout(b, builders=2, extra=extra)
    timed('builders = 2', b.run, '-N')
    after = container_ids(b)
    assert set(after) - set(before) == {f'{b.prefix}-builder-2',
                                        f'{b.prefix}-builder-credentials-job-2'}
    assert all(after[name] == before[name] for name in before
               if not name.endswith('-job')), 'running services were not restarted'
    assert ready_hosts() == [['kojibuilder1', 'Y', 'Y'], ['kojibuilder2', 'Y', 'Y']]
    koji_services_hold_only_their_own(client, b, koji_support)
    assert client.containers.get(f'{b.prefix}-kojira').status == 'running'

    image = KOJI_IMAGE
    if UPGRADE_IMAGE:
        # A newer Koji in one run: its schema upgrade scripts, users, hosts and tags kept.
        run_koji('add-tag', 'dn-before-upgrade')
        extra_new = extra.replace(f'image = {KOJI_IMAGE}', f'image = {UPGRADE_IMAGE}')
        koji_buildout(b, builders=2, extra=extra_new)
        out = timed('upgrade', b.run, '-N')
        assert 'upgraded the Koji schema' in client.containers.get(
            f'{b.prefix}-schema-job').logs().decode()
        version = client.images.get(UPGRADE_IMAGE).labels['org.opencontainers.image.version']
        assert version in run_koji('call', 'getKojiVersion')
        assert 'dn-before-upgrade' in run_koji('list-tags').split()
        assert ready_hosts() == [['kojibuilder1', 'Y', 'Y'], ['kojibuilder2', 'Y', 'Y']]
        out = b.run('-N')
        assert 'Installing' not in out.stdout + out.stderr
        # Back to the older Koji: refused before anything is stopped.
        upgraded = container_ids(b)
        koji_buildout(b, builders=2, extra=extra)
        failed = b.fail('-N')
        assert 'moving to an older Koji is refused' in failed, failed
        errors = [line for line in failed.splitlines() if line.startswith('Error:')]
        assert errors == [f'Error: koji-schema-job: job {b.prefix}-schema-job exited with '
                          f'code 3'], failed
        assert {n: v for n, v in container_ids(b).items() if not n.endswith('-job')} == \
            {n: v for n, v in upgraded.items() if not n.endswith('-job')}
        koji_buildout(b, builders=2, extra=extra_new)
        image = UPGRADE_IMAGE
        b.run('-N')

    # bin/kojictl: status, logs, a restart in dependency order (gates waited for), then a
    # backup (the database frozen while it is read).
    status = run(kojictl, 'status')
    assert f'{b.prefix}-database' in status.stdout and f'{b.prefix}-hub' in status.stdout
    assert f'{b.prefix}-hub' in run(kojictl, 'logs', '--tail', '3').stdout
    lines = timed('kojictl restart', run, kojictl, 'restart', timeout=300).stdout.splitlines()
    assert lines.index(f'stopped {b.prefix}-database') > lines.index(f'stopped {b.prefix}-hub')
    assert lines.index(f'started {b.prefix}-hub') > lines.index(f'started {b.prefix}-database')
    assert 'kojiadmin' in run_koji('moshimoshi')
    assert ready_hosts() == [['kojibuilder1', 'Y', 'Y'], ['kojibuilder2', 'Y', 'Y']]
    backup = tmp_path / 'backup'
    timed('kojictl backup', run, kojictl, 'backup', str(backup), timeout=300)
    manifest = json.loads((backup / 'manifest.json').read_text())
    assert sorted(e['volume'] for e in manifest['volumes']) == sorted(
        f'{b.prefix}-{v}' for v in ('credentials', 'dbdata', 'topdir', 'credentials-hub',
                                    'credentials-database', 'credentials-kojira',
                                    'credentials-maintenance', 'credentials-builder-1', 'credentials-builder-2'))

    # Everything removed, the volumes too; restore into fresh volumes; the tags come back.
    run(kojictl, 'purge', '--yes', timeout=300)
    assert not b.owned('containers')
    assert not client.volumes.list(filters={'name': f'{b.prefix}-'})
    timed('kojictl restore', run, kojictl, 'restore', str(backup), timeout=300)
    timed('bring-up on the restored volumes', b.run, '-N')
    tags = run_koji('list-tags').split()
    assert 'dn-smoke-build' in tags and (not UPGRADE_IMAGE or 'dn-before-upgrade' in tags)
    assert ready_hosts() == [['kojibuilder1', 'Y', 'Y'], ['kojibuilder2', 'Y', 'Y']]
    assert image in run(kojictl, 'status').stdout

    # The database never ran out of connection slots.
    assert b'remaining connection slots' not in client.containers.get(
        f'{b.prefix}-database').logs()

    # Removing the parts keeps the database's and the topdir's data, and removes the
    # client's files with the admin's key.
    koji_buildout(b, '', builders=2, extra=extra)
    b.run('-N')
    assert not b.owned('containers')
    assert not (b.directory / 'parts' / 'koji-client' / 'kojiadmin.pem').exists()
    listing = run_output(client,
        koji_support, ['sh', '-c', 'ls /db/PG_VERSION && ls /top/repos'],
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


def test_profile_files_are_found_beside_the_profile(tmp_path: Path):
    """Every file the profile uses is named from [koji-files], the directory beside
    koji.cfg, so a buildout anywhere can extend it."""
    config = (PROJECT / 'profiles' / 'koji.cfg').read_text()
    assert '${buildout:directory}' not in config
    for relative in ('fedora', 'support', 'support-layout', 'hub', 'tools', 'kojira', 'builder'):
        assert '${koji-files:location}/' + relative in config
        assert (PROJECT / 'profiles' / 'koji' / relative).is_dir()
