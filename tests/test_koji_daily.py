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
import gzip
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
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from conftest import PROJECT, Buildout, shared_lock
from dockeroo_nagoya.containers import next_name
from helpers import container_ids, koji_buildout, koji_services_hold_only_their_own, timed

KOJI_IMAGE = os.environ.get('DN_KOJI_IMAGE', '')
#: PyPI's koji CLI, the version of the test images.
KOJI_CLI_VERSION = '1.35.3'
KOJI_CLI_VENV = Path(tempfile.gettempdir()) / f'dn-test-koji-cli-{KOJI_CLI_VERSION}'
#: The maintenance jobs' interval in the test: seconds, not a day.
SWEEP_INTERVAL = 5

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not KOJI_IMAGE, reason='no Koji image: set DN_KOJI_IMAGE to an image with Koji\'s server '
    'code (../shared/kojilab builds one) to use Koji from the host')]

#: What hides a TLS mistake on this machine: the host client must not need them.
TRUST_VARIABLES = ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'SSL_CERT_FILE', 'SSL_CERT_DIR')


@pytest.fixture(scope='module')
def koji_cli() -> Path:
    """PyPI's koji CLI in a venv on /usr/bin/python3 (Debian's python3-rpm, which koji's
    import needs, is a system package), made once per machine."""
    python = Path('/usr/bin/python3')
    if subprocess.run([str(python), '-c', 'import rpm'], capture_output=True).returncode:
        pytest.skip("no python3-rpm for /usr/bin/python3 (Debian: apt-get install python3-rpm)")
    koji = KOJI_CLI_VENV / 'bin' / 'koji'
    with shared_lock('koji-cli'):
        if not koji.exists():
            shutil.rmtree(KOJI_CLI_VENV, ignore_errors=True)
            subprocess.run([str(python), '-m', 'venv', '--system-site-packages',
                            str(KOJI_CLI_VENV)], check=True)
            made = subprocess.run([str(KOJI_CLI_VENV / 'bin' / 'pip'), 'install', '-q',
                                   f'koji=={KOJI_CLI_VERSION}'], capture_output=True, text=True)
            if made.returncode:
                shutil.rmtree(KOJI_CLI_VENV, ignore_errors=True)
                pytest.skip(f'PyPI\'s koji {KOJI_CLI_VERSION} could not be installed '
                            f'(libkrb5-dev missing?): {made.stderr.strip().splitlines()[-1:]}')
    return koji


SPEC = """\
Name:           dn-hello
Version:        1.0
Release:        1
Summary:        A noarch package for the Koji profile's tests
License:        MIT
BuildArch:      noarch

%description
Imported into Koji by dockeroo_nagoya's tests.

%install
mkdir -p %{buildroot}/usr/share/dn-hello
echo hello > %{buildroot}/usr/share/dn-hello/hello.txt

%files
/usr/share/dn-hello/hello.txt
"""


@pytest.fixture(scope='module')
def rpms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """dn-hello-1.0-1: its noarch RPM and its SRPM, made with rpmbuild."""
    if not shutil.which('rpmbuild'):
        pytest.skip('no rpmbuild (Debian: apt-get install rpm)')
    top = tmp_path_factory.mktemp('rpmbuild')
    spec = top / 'dn-hello.spec'
    spec.write_text(SPEC)
    subprocess.run(['rpmbuild', '--define', f'_topdir {top}', '--define', '_binary_payload w9.gzdio',
                    '--define', '_source_payload w9.gzdio', '-ba', str(spec)],
                   check=True, capture_output=True)
    return (top / 'RPMS' / 'noarch' / 'dn-hello-1.0-1.noarch.rpm',
            top / 'SRPMS' / 'dn-hello-1.0-1.src.rpm')


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


def host_koji(koji: Path, *args: str, config: Path | None = None, home: Path | None = None,
              cwd: Path | None = None, timeout: float = 120) -> str:
    """The host's koji CLI, with none of the variables that would hide a TLS mistake."""
    env = {k: v for k, v in os.environ.items() if k not in TRUST_VARIABLES}
    if home:
        env['HOME'] = str(home)
    command = [str(koji), *(['-c', str(config)] if config else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd,
                            timeout=timeout)
    assert result.returncode == 0, f'{command}: {result.stdout}{result.stderr}'
    return result.stdout


def imported(koji: Path, config: Path, rpms: tuple[Path, Path]) -> None:
    """dn-hello-1.0-1 in Koji: its SRPM and RPM imported, the package in a tag (once)."""
    if 'dn-dest' in host_koji(koji, 'list-tags', config=config).split():
        return
    host_koji(koji, 'add-tag', 'dn-dest', config=config)
    host_koji(koji, 'add-pkg', '--owner=kojiadmin', 'dn-dest', 'dn-hello', config=config)
    host_koji(koji, 'import', str(rpms[1]), str(rpms[0]), config=config)


def tagged(koji: Path, config: Path, rpms: tuple[Path, Path]) -> None:
    """dn-hello-1.0-1 imported and tagged into dn-dest (a tagBuild task, which a builder
    runs), once."""
    imported(koji, config, rpms)
    if 'dn-hello-1.0-1' not in host_koji(koji, 'list-tagged', 'dn-dest', config=config):
        timed('tag-build', host_koji, koji, 'tag-build', '--wait', 'dn-dest', 'dn-hello-1.0-1',
              config=config, timeout=300)


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
    tagged(koji_cli, config, rpms)
    koji = functools.partial(host_koji, koji_cli, config=config)
    koji('add-tag', '--arches=x86_64', 'dn-build')
    koji('add-tag-inheritance', 'dn-build', 'dn-dest')
    koji('add-target', 'dn-target', 'dn-build', 'dn-dest')
    assert 'dn-hello-1.0-1' in koji('list-tagged', '--inherit', 'dn-build')
    # A repository with the build, requested as Koji 1.35 recommends (a tag without the
    # extra repo.auto is not regenerated by itself); the hub and kojira make it.
    timed('repository with the build', koji, 'wait-repo', '--request', 'dn-build',
          '--build=dn-hello-1.0-1', '--timeout=4', timeout=270)
    repo = json.loads(koji('call', '--json-output', 'getRepo', 'dn-build'))
    base = f'https://localhost:{b.port}/kojifiles/repos/dn-build/{repo["id"]}/x86_64'
    context = ssl.create_default_context(cafile=str(client_dir / 'ca.crt'))

    def fetch(url: str) -> bytes:
        with urllib.request.urlopen(url, context=context, timeout=60) as answer:
            return answer.read()

    repomd = ET.fromstring(fetch(f'{base}/repodata/repomd.xml'))
    ns = {'repo': 'http://linux.duke.edu/metadata/repo'}
    primary = next(data for data in repomd.findall('repo:data', ns) if data.get('type') == 'primary')
    href = primary.find('repo:location', ns).get('href')
    assert href.endswith('.gz'), href
    listing = gzip.decompress(fetch(f'{base}/{href}')).decode()
    assert '<name>dn-hello</name>' in listing and 'dn-hello-1.0-1.noarch.rpm' in listing

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
