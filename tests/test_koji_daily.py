"""The Koji profile in daily use (issue 26): the host's koji CLI on the profile's client
configuration, real content (an RPM built here, imported, tagged, in a repository,
downloaded), the maintenance jobs, the web UI in a browser.

One installation for the module (bring-up is the slow part). Needs an image with
Koji's server code in DN_KOJI_IMAGE (../shared/kojilab builds one), ``rpmbuild``
(Debian's rpm) and PyPI's koji CLI (installed here once, in a venv on
/usr/bin/python3 with Debian's python3-rpm); without them each test says in one
line what it misses.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import ssl
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from conftest import PROJECT, Buildout
from dockeroo_nagoya.mechanisms.runner import next_name
from helpers import (TRUST_VARIABLES, container_ids, host_koji, imported, koji_buildout,
                     koji_services_hold_only_their_own, repository_packages, repository_with_build,
                     tagged, timed)

KOJI_IMAGE = os.environ.get('DN_KOJI_IMAGE', '')
#: The maintenance jobs' interval in the test: seconds, not a day.
SWEEP_INTERVAL = 5

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not KOJI_IMAGE, reason='no Koji image: set DN_KOJI_IMAGE to an image with Koji\'s server '
    'code (../shared/kojilab builds one) to use Koji from the host')]

@pytest.fixture(scope='module')
def koji_system(client, koji_support, debian, tmp_path_factory) -> Iterator[Buildout]:
    """A whole installation, its maintenance jobs every few seconds, kept for the module."""
    directory = tmp_path_factory.mktemp('koji-daily') / 'buildout'
    directory.mkdir()
    b = Buildout(directory, client)
    extra = (f'image = {KOJI_IMAGE}\nsupport-image = {koji_support}\nbase-image = {debian}\n'
             f'sweep-interval = {SWEEP_INTERVAL}\ngc = true')
    koji_buildout(b, extra=extra)
    try:
        b.run('-N')
        yield b
    finally:
        b.cleanup()
        for volume in client.volumes.list(filters={'name': b.prefix}):
            with contextlib.suppress(docker.errors.APIError):
                volume.remove(force=True)


def test_host_client_downloads_with_the_profiles_configuration(koji_system, koji_cli, rpms,
                                                                tmp_path):
    """``koji -c parts/koji-client/koji.conf download-build`` and the same from
    ~/.koji/config.d trust the installation's CA for topurl, with nothing set by hand
    (REQUESTS_CA_BUNDLE and the like unset)."""
    config = koji_system.directory / 'parts' / 'koji-client' / 'koji.conf'
    imported(koji_cli, config, rpms)
    direct = tmp_path / 'direct'
    direct.mkdir()
    out = host_koji(koji_cli, 'download-build', '--arch=noarch', '--arch=src', 'dn-hello-1.0-1',
                    config=config, cwd=direct)
    assert 'dn-hello-1.0-1.noarch.rpm' in out
    for rpm in rpms:
        assert (direct / rpm.name).read_bytes() == rpm.read_bytes()

    # The README's other way: koji.conf copied to ~/.koji/config.d/, no -c.
    home = tmp_path / 'home'
    (home / '.koji' / 'config.d').mkdir(parents=True)
    shutil.copy(config, home / '.koji' / 'config.d' / 'dockeroo-koji.conf')
    copied = tmp_path / 'copied'
    copied.mkdir()
    host_koji(koji_cli, 'download-build', '--arch=noarch', 'dn-hello-1.0-1', home=home,
              cwd=copied)
    assert (copied / rpms[0].name).read_bytes() == rpms[0].read_bytes()


def test_maintenance_runs_by_itself(koji_system, client, koji_support):
    """koji-sweep-db and koji-gc (gc = true) run at start and every sweep-interval
    seconds, their output in the maintenance container's log; unchanged reruns touch
    nothing."""
    b = koji_system
    container = client.containers.get(f'{b.prefix}-maintenance')

    def runs(job: str) -> int:
        return container.logs().decode().count(f'koji-maintenance: {job} at ')

    first = runs('koji-sweep-db')
    assert first >= 1 and runs('koji-gc') >= 1
    deadline = time.monotonic() + 6 * SWEEP_INTERVAL
    while runs('koji-sweep-db') < first + 2 and time.monotonic() < deadline:
        time.sleep(1)
    log = container.logs().decode()
    assert runs('koji-sweep-db') >= first + 2, log[-3000:]
    assert 'failed (exit' not in log, log[-3000:]
    # koji-gc logged in as kojiadmin (through the web's certificate) and went through
    # its actions.
    assert 'koji-maintenance: done, next run in 5 s' in log
    # It holds the database password and the web's key, as the hub does; nothing more.
    koji_services_hold_only_their_own(client, b, koji_support)
    stats = container.stats(stream=False)
    print(f"\nmaintenance container's memory: {stats['memory_stats'].get('usage', 0) / 2**20:.1f} MiB")

    # Two unchanged reruns: nothing installed again, nothing restarted.
    before = container_ids(b)
    for _ in range(2):
        out = b.run('-N')
        assert 'Installing' not in out.stdout + out.stderr, out.stdout + out.stderr
        assert container_ids(b) == before


def test_imported_build_reaches_a_repository_and_the_host(koji_system, koji_cli, rpms, tmp_path):
    """A real RPM and its SRPM, imported from the host, tagged into a destination tag; the
    repository of a build tag that inherits it lists the package (read through
    /kojifiles, checked against the CA) and the host downloads the tag's latest build."""
    b = koji_system
    client_dir = b.directory / 'parts' / 'koji-client'
    config = client_dir / 'koji.conf'
    repo = repository_with_build(koji_cli, config, rpms)
    koji = functools.partial(host_koji, koji_cli, config=config)
    koji('add-target', 'dn-target', 'dn-build', 'dn-dest')
    base = f'https://localhost:{b.port}/kojifiles/repos/dn-build/{repo}/x86_64'
    context = ssl.create_default_context(cafile=str(client_dir / 'ca.crt'))

    def fetch(path: str) -> bytes:
        with urllib.request.urlopen(f'{base}/{path}', context=context, timeout=60) as answer:
            return answer.read()

    assert 'dn-hello-1.0-1' in repository_packages(fetch)

    out = koji('download-build', '--arch=noarch', '--latestfrom=dn-dest', 'dn-hello', cwd=tmp_path)
    assert 'dn-hello-1.0-1.noarch.rpm' in out
    assert (tmp_path / rpms[0].name).read_bytes() == rpms[0].read_bytes()


def chromium_dom(url: str, home: Path) -> str:
    """The page at ``url`` as headless Chromium renders it, trusting what the NSS
    database of ``home`` trusts."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            ['chromium', '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
             '--no-first-run', '--disable-background-networking', '--disable-component-update',
             '--disable-sync', f'--user-data-dir={profile}', '--dump-dom', url],
            capture_output=True, text=True, timeout=120,
            env={**{k: v for k, v in os.environ.items() if k not in TRUST_VARIABLES},
                 'HOME': str(home)})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_web_ui_in_a_browser(koji_system, koji_cli, rpms, tmp_path):
    """Headless Chromium, trusting the installation's CA (in its NSS database, as a user
    adds a CA: no certificate error ignored), renders the web's index, hosts, the
    imported build's page and its tag's page through the published TLS port."""
    if not shutil.which('chromium') or not shutil.which('certutil'):
        pytest.skip('no chromium or certutil (Debian: apt-get install chromium libnss3-tools)')
    b = koji_system
    client_dir = b.directory / 'parts' / 'koji-client'
    config = client_dir / 'koji.conf'
    tagged(koji_cli, config, rpms)
    koji = functools.partial(host_koji, koji_cli, config=config)
    nssdb = tmp_path / '.pki' / 'nssdb'
    nssdb.mkdir(parents=True)
    subprocess.run(['certutil', '-d', f'sql:{nssdb}', '-N', '--empty-password'], check=True)
    subprocess.run(['certutil', '-d', f'sql:{nssdb}', '-A', '-n', 'koji-ca', '-t', 'C,,',
                    '-i', str(client_dir / 'ca.crt')], check=True)
    build = json.loads(koji('call', '--json-output', 'getBuild', 'dn-hello-1.0-1'))
    tag = json.loads(koji('call', '--json-output', 'getTag', 'dn-dest'))
    web = f'https://localhost:{b.port}/koji'

    index = chromium_dom(f'{web}/index', tmp_path)
    assert 'dn-hello-1.0-1' in index  # the index lists recent builds
    hosts = chromium_dom(f'{web}/hosts', tmp_path)
    assert 'kojibuilder1' in hosts
    page = chromium_dom(f'{web}/buildinfo?buildID={build["id"]}', tmp_path)
    assert 'dn-hello-1.0-1.noarch.rpm' in page and 'dn-hello-1.0-1.src.rpm' in page
    page = chromium_dom(f'{web}/taginfo?tagID={tag["id"]}', tmp_path)
    text = ' '.join(re.sub(r'<[^>]+>', ' ', page).split())
    assert 'Information for tag dn-dest' in text and 'Builds 1' in text, text
    page = chromium_dom(f'{web}/builds?tagID={tag["id"]}', tmp_path)
    assert 'dn-hello-1.0-1' in page


#: The older Koji an installation is upgraded from (to DN_KOJI_IMAGE) in the killed-run test.
UPGRADE_FROM = os.environ.get('DN_KOJI_UPGRADE_FROM', 'kojilab/fedoralike:1.34.3')

#: Where an upgrade run is cut short: (engine event, the profile's container it happens to).
KILL_POINTS = [
    ('start', 'schema-job'),   # during the schema job
    ('die', 'schema-job'),     # the schema upgraded, the hub still the old one
    ('start', 'hub'),          # the old hub stopped, the new one started, its gate not passed
    ('start', 'kojira'),       # the hub ready on the new Koji, kojira and the builder old
    ('start', 'builder-1'),    # the hub and kojira new, the builder's replacement not ready
]


@pytest.fixture
def killable(client, buildout) -> Iterator[None]:
    """The test's volumes (kept by the profile when its parts go) removed afterwards."""
    yield
    for volume in client.volumes.list(filters={'name': buildout.prefix}):
        with contextlib.suppress(docker.errors.APIError):
            volume.remove(force=True)


def run_killed_at(b, client, event: str, container: str, timeout: float = 600) -> None:
    """Run bin/buildout -N and SIGKILL it as soon as the engine reports ``event`` for the
    buildout's ``container`` or its replacement (made under a temporary name, renamed once
    it passed its gate); what the run started goes on on the engine."""
    name = f'{b.prefix}-{container}'
    names = {name, next_name(name)}
    events = client.events(decode=True, filters={'type': 'container', 'event': event,
                                                 'label': b.label})
    process = subprocess.Popen([str(PROJECT / 'bin' / 'buildout'), '-c', 'buildout.cfg', '-N'],
                               cwd=b.directory, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    killed = threading.Event()

    def watch() -> None:
        for seen in events:
            if seen.get('Actor', {}).get('Attributes', {}).get('name') in names:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGKILL)
                killed.set()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        process.wait(timeout=timeout)
    finally:
        events.close()
    assert killed.is_set() and process.returncode == -signal.SIGKILL, \
        f'the run ended ({process.returncode}) before {event} of {name}'


@pytest.mark.parametrize('event,container', KILL_POINTS,
                         ids=[f'{e}-{c}' for e, c in KILL_POINTS])
def test_upgrade_run_killed_is_finished_by_the_next_run(buildout, client, koji_support, debian,
                                                        koji_cli, rpms, killable, event,
                                                        container):
    """An upgrade (UPGRADE_FROM -> DN_KOJI_IMAGE) whose bin/buildout is SIGKILLed at a
    chosen point: the next plain run finishes it (the new Koji's version, hosts ready),
    the tags and the imported build are still there, and the run after is a no-op."""
    try:
        client.images.get(UPGRADE_FROM)
    except docker.errors.ImageNotFound:
        pytest.skip(f'no {UPGRADE_FROM} to upgrade from (../shared/kojilab/build.sh '
                    'KOJI_GIT koji-1.34.3; or set DN_KOJI_UPGRADE_FROM)')
    b = buildout
    common = f'support-image = {koji_support}\nbase-image = {debian}'
    koji_buildout(b, extra=f'image = {UPGRADE_FROM}\n{common}')
    b.run('-N')
    config = b.directory / 'parts' / 'koji-client' / 'koji.conf'
    imported(koji_cli, config, rpms)

    koji_buildout(b, extra=f'image = {KOJI_IMAGE}\n{common}')
    run_killed_at(b, client, event, container)
    timed('the run after the killed one', b.run, '-N')

    version = client.images.get(KOJI_IMAGE).labels['org.opencontainers.image.version']
    assert version in host_koji(koji_cli, 'call', 'getKojiVersion', config=config)
    assert 'dn-dest' in host_koji(koji_cli, 'list-tags', config=config).split()
    assert 'dn-hello-1.0-1' in host_koji(koji_cli, 'list-builds', '--package=dn-hello',
                                         config=config)
    deadline = time.monotonic() + 60
    while (hosts := host_koji(koji_cli, 'list-hosts', '--quiet', config=config).split()[:3]) != \
            ['kojibuilder1', 'Y', 'Y'] and time.monotonic() < deadline:
        time.sleep(1)
    assert hosts == ['kojibuilder1', 'Y', 'Y']
    for name in ('hub', 'kojira', 'builder-1', 'maintenance'):
        assert client.containers.get(f'{b.prefix}-{name}').image.id == \
            client.images.get(KOJI_IMAGE).id, name

    before = container_ids(b)
    out = b.run('-N')
    assert 'Installing' not in out.stdout + out.stderr, out.stdout + out.stderr
    assert container_ids(b) == before
