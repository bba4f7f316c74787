"""Fixtures for tests against a real engine and real ``bin/buildout`` runs.

Every buildout runs in its own temporary directory; whatever carries that
directory's ownership label is removed after the test, even when it fails.
Base images are made locally (no registry is reachable): a busybox image
from Debian's static busybox, and a Debian image from debootstrap that is
cached between runs.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import docker
import docker.errors
import docker.tls
import pytest

from dockeroo_nagoya.engine import tls as dockeroo_tls
from pki import (CLIENT_EXTENSIONS, SERVER_EXTENSIONS, client_directory, issue, make_ca,
                 two_authorities)

if TYPE_CHECKING:
    from helpers import TLSProxy

PROJECT = Path(__file__).resolve().parent.parent
BUILDOUT = PROJECT / 'bin' / 'buildout'
#: dockeroo-plan, as the venv installs it.
PLAN = PROJECT / '.venv' / 'bin' / 'dockeroo-plan'
LABEL_BUILDOUT = 'io.dockeroo-nagoya.buildout'
TEST_LABEL = 'io.dockeroo-nagoya.test'
BUSYBOX = 'dn-test/busybox:latest'
DEBIAN = 'dn-test/debian:bookworm'
HELPER = 'dockeroo-nagoya/helper:empty'


#: Images the suite makes for itself and removes at the very end (the Debian one is a cache).
#: The Koji profile's support image (Debian + PostgreSQL + OpenSSL), cached like the Debian one.
KOJI_SUPPORT = 'dn-test/koji-support:latest'


SHARED_IMAGES = (BUSYBOX, HELPER, 'dockeroo-nagoya/helper:scratch')


def _is_worker(config: pytest.Config) -> bool:
    """True in a pytest-xdist worker: shared images are the controller's to remove."""
    return hasattr(config, 'workerinput')


def pytest_configure(config: pytest.Config) -> None:
    # The counts of injected faults, bad inputs and searched places (tests/faults/harness.py),
    # gathered from the xdist workers and printed at the end of the session.
    from faults.harness import tally
    tally(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_worker(session.config):
        return
    try:
        client = docker.from_env()
        session.config.stash[_BEFORE] = {r for r in SHARED_IMAGES if _exists(client, r)}
    except docker.errors.DockerException:
        pass


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the shared images the run made, once every worker is done."""
    if _is_worker(session.config) or os.environ.get('DN_KEEP_IMAGES'):
        return
    before = session.config.stash.get(_BEFORE, None)
    if before is None:
        return
    client = docker.from_env()
    for reference in SHARED_IMAGES:
        if reference not in before:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(reference, force=True)


_BEFORE = pytest.StashKey[set]()


@contextlib.contextmanager
def shared_lock(name: str) -> Iterator[None]:
    """One maker at a time for what test processes share (images), across xdist workers."""
    with open(os.path.join(tempfile.gettempdir(), f'dn-test-{name}.lock'), 'w') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Mounts:
    """Which anonymous volumes each container mounted, from the engine's live events.

    The recipes keep a removed container's anonymous volumes (no data is lost
    silently), and so does ``containers.run(remove=True)`` in a test; a test's
    clean-up removes those of its own containers (labelled with its buildout, or
    named with its prefix), whatever ran alongside. Live, because the engine
    keeps only its last 256 events for a later look.
    """

    def __init__(self) -> None:
        self.volumes: dict[str, set[str]] = {}
        self.owners: dict[str, tuple[str, str]] = {}
        self.lock = threading.Lock()
        self.stream = None

    def follow(self, client: docker.DockerClient) -> None:
        self.stream = client.api.events(decode=True, filters={'type': ['container', 'volume']})
        threading.Thread(target=self._read, daemon=True, name='dn-test-mounts').start()

    def _read(self) -> None:
        with contextlib.suppress(docker.errors.DockerException, OSError, ValueError):
            for event in self.stream or ():
                actor = event.get('Actor') or {}
                attributes = actor.get('Attributes') or {}
                with self.lock:
                    if event.get('Type') == 'container' and event.get('Action') == 'create':
                        self.owners[actor.get('ID', '')] = (
                            attributes.get(LABEL_BUILDOUT, ''), attributes.get('name', ''))
                    elif event.get('Type') == 'volume' and event.get('Action') == 'mount':
                        volume = actor.get('ID', '')
                        if len(volume) == 64 and volume.isalnum():
                            self.volumes.setdefault(attributes.get('container', ''), set()).add(volume)

    def anonymous_volumes(self, directory: str, prefix: str) -> set[str]:
        time.sleep(0.05)  # the last events on their way
        with self.lock:
            return {volume for container, found in self.volumes.items()
                    for volume in found
                    if self.owners.get(container, ('', ''))[0] == directory
                    or self.owners.get(container, ('', ''))[1].startswith(prefix)}


MOUNTS = Mounts()


@pytest.fixture(scope='session')
def client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.exit(f'no Docker engine answers ({exc}); start dockerd first', returncode=3)
    watcher = docker.from_env(timeout=None)
    MOUNTS.follow(watcher)
    yield client
    client.close()
    watcher.close()


def _exists(client: docker.DockerClient, reference: str) -> bool:
    try:
        client.images.get(reference)
        return True
    except docker.errors.ImageNotFound:
        return False


@pytest.fixture(scope='session')
def busybox(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny image: FROM scratch plus Debian's static busybox (under a second)."""
    with shared_lock('busybox'):
        if not _exists(client, BUSYBOX):
            build_busybox(client, tmp_path_factory.mktemp('busybox'), BUSYBOX)
    return BUSYBOX


def build_busybox(client: docker.DockerClient, context: Path, tag: str) -> str:
    binary = shutil.which('busybox') or '/bin/busybox'
    shutil.copy(binary, context / 'busybox')
    (context / 'Dockerfile').write_text(textwrap.dedent('''\
        FROM scratch
        COPY busybox /bin/busybox
        RUN ["/bin/busybox", "--install", "-s", "/bin"]
        RUN mkdir -p /tmp /etc /var /root /data && chmod 1777 /tmp \\
            && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd \\
            && echo 'root:x:0:' > /etc/group
        ENV PATH=/bin
        LABEL io.dockeroo-nagoya.test=1
        CMD ["sh"]
        '''))
    image, _ = client.images.build(path=str(context), tag=tag, rm=True)
    return image.id


@pytest.fixture(scope='session')
def debian(client: docker.DockerClient) -> str:
    """A Debian bookworm minbase image from debootstrap, cached between runs."""
    with shared_lock('debian'):
        return _make_debian(client)


def _make_debian(client: docker.DockerClient) -> str:
    if _exists(client, DEBIAN):
        return DEBIAN
    if not shutil.which('debootstrap'):
        pytest.skip('debootstrap is not installed (apt-get install debootstrap)')
    root = Path(tempfile.mkdtemp(prefix='dn-debian-'))
    try:
        mirror = os.environ.get('DN_DEBIAN_MIRROR', 'http://deb.debian.org/debian')
        subprocess.run(['debootstrap', '--variant=minbase', 'bookworm', str(root), mirror],
                       check=True, stdout=subprocess.DEVNULL)
        tar = subprocess.Popen(['tar', '-C', str(root), '-c', '.'], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        client.api.import_image_from_stream(tar.stdout, repository=DEBIAN.split(':')[0],
                                            tag='bookworm', changes=[f'LABEL {TEST_LABEL}=1'])
        tar.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return DEBIAN


@pytest.fixture(scope='session')
def koji_support(client, debian) -> str:
    """The profile's support image (Debian + PostgreSQL + OpenSSL), cached like the Debian one."""
    with shared_lock('koji-support'):
        try:
            client.images.get(KOJI_SUPPORT)
        except docker.errors.ImageNotFound:
            client.images.build(path=str(PROJECT / 'profiles' / 'koji' / 'support'), tag=KOJI_SUPPORT,
                                buildargs={'BASE': debian}, labels={TEST_LABEL: '1'}, rm=True)
    return KOJI_SUPPORT


class Buildout:
    """A buildout in a temporary directory, run with the project's bin/buildout."""

    def __init__(self, directory: Path, client: docker.DockerClient) -> None:
        self.directory = directory
        self.client = client
        self.prefix = 'dnt-' + uuid.uuid4().hex[:8]
        # A /24 of its own, so that buildouts running at the same time never overlap; in
        # 10.232-233.X, outside the engine's default pools (172.17-31.0.0/16, 192.168.0.0/16),
        # where a network made without a subnet (a Koji profile's, a bench's) could take a
        # whole 172.30.0.0/16 and overlap every test's subnet.
        self.subnet_base = f'10.{232 + int(self.prefix[4:6], 16) % 2}.{int(self.prefix[6:8], 16)}'

    def write(self, config: str, name: str = 'buildout.cfg') -> Path:
        path = self.directory / name
        path.write_text(textwrap.dedent(config).lstrip())
        return path

    def run(self, *args: str, check: bool = True, env: dict[str, str] | None = None,
            config: str = 'buildout.cfg') -> subprocess.CompletedProcess[str]:
        """Run bin/buildout; offline and with newest off unless args say otherwise."""
        command = [str(BUILDOUT), '-c', config, *args]
        result = subprocess.run(command, cwd=self.directory, capture_output=True, text=True,
                                env={**os.environ, **(env or {})}, timeout=900)
        if check and result.returncode != 0:
            raise AssertionError(f'buildout failed ({result.returncode}):\n'
                                 f'{result.stdout}\n{result.stderr}')
        return result

    def fail(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run bin/buildout expecting failure; return the output."""
        result = self.run(*args, check=False, env=env)
        assert result.returncode != 0, f'buildout should have failed:\n{result.stdout}{result.stderr}'
        return result.stdout + result.stderr

    @property
    def label(self) -> str:
        return f'{LABEL_BUILDOUT}={os.path.realpath(self.directory)}'

    def owned(self, kind: str, client: docker.DockerClient | None = None) -> list:
        """What the buildout owns on its engine, or on ``client``'s (a second engine)."""
        client = client or self.client
        flt = {'label': self.label}
        if kind == 'containers':
            return client.containers.list(all=True, filters=flt)
        return getattr(client, kind).list(filters=flt)

    def cleanup(self, client: docker.DockerClient | None = None) -> None:
        """Remove what the buildout made on its engine, or on ``client``'s (whose anonymous
        volumes no watcher follows: they go with their containers)."""
        elsewhere = client is not None
        client = client or self.client
        anonymous = [] if elsewhere else \
            MOUNTS.anonymous_volumes(os.path.realpath(self.directory), self.prefix)
        for container in self.owned('containers', client):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True, v=elsewhere)
        for volume in anonymous:
            with contextlib.suppress(docker.errors.APIError):
                client.volumes.get(volume).remove()
        for image in self.owned('images', client):
            for tag in image.tags or [image.id]:
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(tag, force=True)
        for network in self.owned('networks', client):
            with contextlib.suppress(docker.errors.APIError):
                network.remove()
        for volume in self.owned('volumes', client):
            with contextlib.suppress(docker.errors.APIError):
                volume.remove(force=True)
        for volume in client.volumes.list(filters={'name': self.prefix}):
            with contextlib.suppress(docker.errors.APIError):
                volume.remove(force=True)
        for network in client.networks.list(names=[self.prefix]):
            with contextlib.suppress(docker.errors.APIError):
                network.remove()


@pytest.fixture
def buildout(client: docker.DockerClient, tmp_path: Path) -> Iterator[Buildout]:
    directory = tmp_path / 'buildout'
    directory.mkdir()
    made = Buildout(directory, client)
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture
def make_buildout(client: docker.DockerClient, tmp_path: Path) -> Iterator:
    """More than one buildout in a test."""
    made: list[Buildout] = []

    def make(name: str) -> Buildout:
        directory = tmp_path / name
        directory.mkdir()
        made.append(Buildout(directory, client))
        return made[-1]

    try:
        yield make
    finally:
        for one in made:
            one.cleanup()


@pytest.fixture
def swarm(client: docker.DockerClient) -> Iterator[None]:
    """A single-node Swarm on loopback, made for the test and left again; one test
    process at a time (the engine has one Swarm)."""
    with shared_lock('swarm'):
        made = client.info()['Swarm']['LocalNodeState'] != 'active'
        if made:
            client.swarm.init(advertise_addr='127.0.0.1', listen_addr='127.0.0.1:2377')
        try:
            yield
        finally:
            if made:
                client.swarm.leave(force=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


REGISTRY_USER = 'dn-pusher'
REGISTRY_PASSWORD = 'registry-pw-4f1c9e77b2'


@pytest.fixture(scope='session')
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1 (insecure-allowed for loopback)."""
    yield from _serve_registry(tmp_path_factory.mktemp('registry'), auth=False)


@pytest.fixture(scope='session')
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry that wants REGISTRY_USER / REGISTRY_PASSWORD (htpasswd, bcrypt)."""
    yield from _serve_registry(tmp_path_factory.mktemp('auth-registry'), auth=True)


def _serve_registry(root: Path, auth: bool) -> Iterator[str]:
    binary = shutil.which('docker-registry')
    if not binary:
        pytest.skip('docker-registry is not installed (apt-get install docker-registry)')
    port = free_port()
    config = root / 'config.yml'
    auth_block = ''
    if auth:
        import bcrypt
        hashed = bcrypt.hashpw(REGISTRY_PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
        (root / 'htpasswd').write_text(f'{REGISTRY_USER}:{hashed}\n')
        auth_block = f'auth:\n  htpasswd:\n    realm: test\n    path: {root}/htpasswd\n'
    config.write_text(textwrap.dedent(f'''\
        version: 0.1
        log:
          level: error
        storage:
          filesystem:
            rootdirectory: {root}/data
          delete:
            enabled: true
        http:
          addr: 127.0.0.1:{port}
        ''') + auth_block)
    process = subprocess.Popen([binary, 'serve', str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(('127.0.0.1', port), 0.2):
                break
            time.sleep(0.05)
        yield f'127.0.0.1:{port}'
    finally:
        process.terminate()
        process.wait(10)


def python() -> str:
    return sys.executable


class SecondEngine:
    """A second Docker daemon on this machine, as a builder machine's engine would be.

    Its own socket, data root, exec root, pid file and bridge (``--bridge none`` would
    delete the first daemon's docker0), no iptables rules of its own; its ``--network
    host`` containers reach the first engine's ports on 127.0.0.1. ``stop()`` stops it
    (a test of an engine that does not answer) and ``start()`` brings it back with
    everything it held.

    With ``tls=True`` it also listens on ``tls_host`` (``tcp://127.0.0.1:PORT``) with
    ``--tlsverify``, as a builder machine's engine does: a CA, a server and a client
    certificate made with openssl in ``pki`` (:mod:`pki`), the client's as a
    docker-cert-path in ``client_certs``. ``host`` and ``client`` stay the unix socket
    (TLS guards TCP only), so that set-up and clean-up never depend on what a test
    does to certificates.
    """

    def __init__(self, index: int, tls: bool = False) -> None:
        self.index = index
        self.root = Path(tempfile.mkdtemp(prefix=f'dnE{index}-', dir='/tmp'))
        self.bridge = f'dnb{index}'
        self.host = f'unix://{self.root}/docker.sock'
        self.process: subprocess.Popen | None = None
        self.client: docker.DockerClient | None = None
        self.tls_host: str | None = None
        self.pki: Path | None = None
        self.client_certs: Path | None = None
        if tls:
            self._make_certificates()

    def _make_certificates(self) -> None:
        """The engine's CA and certificate and one client's, as docs/koji.rst says to make them
        (the port chosen once: ``start()`` after ``stop()`` listens where it did)."""
        self.pki = self.root / 'pki'
        self.pki.mkdir()
        make_ca(self.pki, 'ca')
        issue(self.pki, 'ca', 'server', SERVER_EXTENSIONS)
        issue(self.pki, 'ca', 'client', CLIENT_EXTENSIONS)
        self.client_certs = client_directory(self.pki, 'client-certs', 'ca', 'client')
        self.tls_host = f'tcp://127.0.0.1:{free_port()}'

    def _listen(self) -> list[str]:
        """dockerd's ``--host`` flags, and the TLS ones when it has a TCP socket too."""
        flags = ['--host', self.host]
        if self.tls_host is not None and self.pki is not None:
            flags += ['--host', self.tls_host, '--tlsverify',
                      '--tlscacert', str(self.pki / 'ca.pem'),
                      '--tlscert', str(self.pki / 'server.pem'),
                      '--tlskey', str(self.pki / 'server-key.pem')]
        return flags

    def tls_client(self, certs: Path | None = None, client_certificate: bool = True
                   ) -> docker.DockerClient:
        """A client of ``tls_host`` with the certificates of ``certs`` (default
        ``client_certs``; ``client_certificate=False``: its ca.pem only), checking the
        engine's certificate against that ca.pem as ``docker --tlsverify`` does.

        Made by :func:`dockeroo_nagoya.engine.tls.client`: the SDK's own lets
        ``REQUESTS_CA_BUNDLE`` (set on many machines, this one too) replace ca.pem.
        """
        assert self.tls_host is not None, 'a SecondEngine(tls=True) has a TLS socket'
        certs = certs or self.client_certs
        assert certs is not None
        mine = (str(certs / 'cert.pem'), str(certs / 'key.pem')) if client_certificate else None
        tls = docker.tls.TLSConfig(client_cert=mine, ca_cert=str(certs / 'ca.pem'), verify=True)
        return dockeroo_tls.client(docker.DockerClient, base_url=self.tls_host, tls=tls,
                                   timeout=120)

    def start(self) -> None:
        if subprocess.run(['ip', 'link', 'show', self.bridge], capture_output=True).returncode:
            subprocess.run(['ip', 'link', 'add', self.bridge, 'type', 'bridge'], check=True)
            subprocess.run(['ip', 'addr', 'add', f'10.234.{self.index}.1/24', 'dev', self.bridge],
                           check=True)
            subprocess.run(['ip', 'link', 'set', self.bridge, 'up'], check=True)
        self._launch(['dockerd', *self._listen(), '--data-root', str(self.root / 'data'),
                      '--exec-root', str(self.root / 'exec'),
                      '--pidfile', str(self.root / 'docker.pid'),
                      '--bridge', self.bridge, '--iptables=false'])

    def _launch(self, command: list[str]) -> None:
        """Start the daemon (``command``, logging to dockerd.log) and wait until it answers."""
        log = open(self.root / 'dockerd.log', 'ab')  # noqa: SIM115 - the daemon's, closed by it
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client = docker.DockerClient(base_url=self.host, timeout=120)
                self.client.ping()
                if self.tls_host is not None:
                    with contextlib.closing(self.tls_client()) as secure:
                        secure.ping()
                return
            except (docker.errors.DockerException, OSError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f'dockerd in {self.root} did not start: '
                                       + (self.root / 'dockerd.log').read_text()[-2000:])
                time.sleep(0.2)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        netns = self.root / 'exec' / 'netns' / 'default'
        if os.path.ismount(netns):
            subprocess.run(['umount', str(netns)], check=False)

    def load(self, client: docker.DockerClient, reference: str) -> None:
        """Copy an image of the first engine here (as a test's set-up, not as a recipe)."""
        assert self.client is not None
        self.client.images.load(b''.join(client.images.get(reference).save(named=reference)))

    def destroy(self) -> None:
        self.stop()
        subprocess.run(['ip', 'link', 'del', self.bridge], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def engine_slot() -> Iterator[int]:
    """A number N no other test process on this machine holds while the block runs (a
    lock file per number): test sessions run side by side (xdist workers, and other
    sessions on the same machine), and one's teardown deletes its bridge ``dnbN``."""
    for index in range(1, 250):
        with open(os.path.join(tempfile.gettempdir(), f'dn-test-engine-{index}.lock'), 'w') as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            try:
                yield index
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
            return
    raise RuntimeError('no free number for a second Docker daemon (249 in use)')


def _running_engine(tls: bool) -> Iterator[SecondEngine]:
    """A started SecondEngine in a number of its own, destroyed at the end, even on failure."""
    with engine_slot() as index:
        engine = SecondEngine(index, tls=tls)
        try:
            engine.start()
            yield engine
        finally:
            engine.destroy()


@pytest.fixture(scope='module')
def second_engine() -> Iterator[SecondEngine]:
    """A second Docker daemon for the tests of a module (one per test process: its own
    bridge and subnet 10.234.N.0/24, N held by no other test process), stopped and
    removed at the end, even on failure."""
    yield from _running_engine(tls=False)


@pytest.fixture(scope='module')
def tls_second_engine() -> Iterator[SecondEngine]:
    """A second Docker daemon that also listens on ``tls_host`` with ``--tlsverify``, as a
    builder machine's engine (``client_certs``: ca.pem, cert.pem, key.pem); a daemon of
    its own beside ``second_engine``, which a module may use too."""
    if not shutil.which('openssl'):
        pytest.skip('needs the openssl command')
    yield from _running_engine(tls=True)


@pytest.fixture
def remote(buildout: Buildout, client: docker.DockerClient, busybox: str,
           second_engine: SecondEngine) -> Iterator[SecondEngine]:
    """``second_engine`` as a builder machine's engine: busybox there, running again after
    the test even when the test stopped it, and what the test's buildout made there removed
    (the ``buildout`` fixture cleans the first engine only). A module may have a ``remote``
    of its own (one that loads no image, or removes more)."""
    second_engine.load(client, busybox)
    try:
        yield second_engine
    finally:
        if second_engine.client is None:
            second_engine.start()
        buildout.cleanup(second_engine.client)


#: The three-node Swarm's own network: a bridge on this machine and the nodes behind veths.
SWARM_BRIDGE = 'dnswbr0'
SWARM_SUBNET = '10.237.0'
SWARM_HOST_ADDRESS = f'{SWARM_SUBNET}.1'
#: A tag for the one firewall rule the fixture adds (and takes away again).
SWARM_RULE_COMMENT = 'dockeroo-nagoya-test-swarm'


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(['ip', *args], check=check, capture_output=True)


def _stop_left(pidfile: Path, root: Path) -> None:
    """What a killed test session left running in ``root`` (a daemon, the registry): the
    process of ``pidfile`` if its command line names ``root``."""
    try:
        pid = int(pidfile.read_text())
        command = Path(f'/proc/{pid}/cmdline').read_bytes()
    except (OSError, ValueError):
        return
    if str(root).encode() not in command:
        return
    os.kill(pid, 15)
    deadline = time.monotonic() + 30
    while Path(f'/proc/{pid}').exists() and time.monotonic() < deadline:
        time.sleep(0.2)


class SwarmNode(SecondEngine):
    """One machine of the Swarm: a dockerd in a network namespace of its own (``NS``), with
    its own host name (a UTS namespace), data root, exec root, pid file, unix socket and
    bridge, reached from the others over a veth on :data:`SWARM_BRIDGE`.

    ``nsenter --net`` (not ``ip netns exec``, which remounts /sys and hides the cgroups
    dockerd needs); the daemon's iptables rules stay inside its namespace.
    """

    def __init__(self, root: Path, name: str, number: int,  # pylint: disable=super-init-not-called
                 registry: str) -> None:
        self.name = name
        self.netns = f'dnsw-{name}'
        self.veth = f'dnsw-{name}'[:15]
        self.address = f'{SWARM_SUBNET}.{10 + number}'
        # The daemon's own bridge, in a /27 of the subnet above the nodes' /26.
        self.bridge_cidr = f'{SWARM_SUBNET}.{32 + 32 * number + 1}/27'
        self.root = root / name
        self.host = f'unix://{self.root}/docker.sock'
        self.registry = registry
        self.process: subprocess.Popen | None = None
        self.client: docker.DockerClient | None = None
        self.tls_host = None

    def make_network(self) -> None:
        self.root.mkdir(exist_ok=True)
        _ip('netns', 'add', self.netns)
        _ip('link', 'add', self.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', self.netns)
        _ip('link', 'set', self.veth, 'master', SWARM_BRIDGE)
        _ip('link', 'set', self.veth, 'up')
        inside = ('netns', 'exec', self.netns, 'ip')
        _ip(*inside, 'link', 'set', 'lo', 'up')
        _ip(*inside, 'addr', 'add', f'{self.address}/26', 'dev', 'eth0')
        _ip(*inside, 'link', 'set', 'eth0', 'up')
        _ip(*inside, 'link', 'add', 'dnswdocker0', 'type', 'bridge')
        _ip(*inside, 'addr', 'add', self.bridge_cidr, 'dev', 'dnswdocker0')
        _ip(*inside, 'link', 'set', 'dnswdocker0', 'up')

    def start(self) -> None:
        self._launch(
            ['nsenter', f'--net=/var/run/netns/{self.netns}', '--', 'unshare', '--uts', '--',
             'sh', '-c', f'hostname {self.name} && exec "$@"', 'sh',
             'dockerd', '--host', self.host, '--data-root', str(self.root / 'data'),
             '--exec-root', str(self.root / 'exec'), '--pidfile', str(self.root / 'docker.pid'),
             '--bridge', 'dnswdocker0', '--insecure-registry', self.registry])

    def destroy(self) -> None:
        self.stop()
        _stop_left(self.root / 'docker.pid', self.root)
        # What the daemon mounted under its roots (its netns files, overlay layers).
        mounts = Path('/proc/self/mounts').read_text().split('\n')
        mine = [line.split()[1] for line in mounts
                if len(line.split()) > 1 and line.split()[1].startswith(str(self.root))]
        for mountpoint in sorted(mine, reverse=True):
            subprocess.run(['umount', '-l', mountpoint], check=False, capture_output=True)
        _ip('netns', 'del', self.netns, check=False)
        _ip('link', 'del', self.veth, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


class SwarmNodes:
    """A Swarm of three machines on this one: a manager and two workers (:class:`SwarmNode`),
    labelled ``tier=front`` (worker1) and ``tier=back`` (worker2), all ``pool=app`` on the
    workers; a registry (Debian's docker-registry) on the bridge's address that every node
    pulls from; ``busybox``: a busybox image built on the manager and pushed there.

    Traffic stays between the bridge's addresses: no default route, no NAT; the one
    firewall rule added lets the bridge forward between its own ports (this machine's
    FORWARD policy drops bridged frames otherwise).
    """

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.registry = f'{SWARM_HOST_ADDRESS}:{port}'
        self.registry_process: subprocess.Popen | None = None
        self.manager = SwarmNode(root, 'manager', 1, self.registry)
        self.workers = [SwarmNode(root, f'worker{n}', n + 1, self.registry) for n in (1, 2)]
        self.busybox = f'{self.registry}/dn/busybox:1'
        self.rule_added = False

    @property
    def nodes(self) -> list[SwarmNode]:
        return [self.manager, *self.workers]

    @property
    def client(self) -> docker.DockerClient:
        assert self.manager.client is not None
        return self.manager.client

    def _rule(self, action: str) -> list[str]:
        return ['iptables', action, 'FORWARD', *(['1'] if action == '-I' else []),
                '-i', SWARM_BRIDGE, '-o', SWARM_BRIDGE, '-m', 'comment', '--comment',
                SWARM_RULE_COMMENT, '-j', 'ACCEPT']

    def up(self) -> None:
        self.down()  # what a killed earlier session left
        _ip('link', 'add', SWARM_BRIDGE, 'type', 'bridge')
        _ip('addr', 'add', f'{SWARM_HOST_ADDRESS}/26', 'dev', SWARM_BRIDGE)
        _ip('link', 'set', SWARM_BRIDGE, 'up')
        subprocess.run(self._rule('-I'), check=True, capture_output=True)
        self.rule_added = True
        self._serve_registry()
        for node in self.nodes:
            node.make_network()
            node.start()
        manager = self.client
        manager.swarm.init(advertise_addr=self.manager.address,
                           listen_addr=f'{self.manager.address}:2377')
        token = manager.swarm.attrs['JoinTokens']['Worker']
        for worker, tier in zip(self.workers, ('front', 'back')):
            assert worker.client is not None
            worker.client.swarm.join(remote_addrs=[f'{self.manager.address}:2377'],
                                     join_token=token, advertise_addr=worker.address,
                                     listen_addr=f'{worker.address}:2377')
            node = self.node(worker.name)
            spec = dict(node.attrs['Spec'])
            spec['Labels'] = {'tier': tier, 'pool': 'app'}
            node.update(spec)
        context = self.root / 'busybox'
        context.mkdir()
        build_busybox(manager, context, self.busybox)
        for _ in manager.images.push(self.busybox, stream=True, decode=True):
            pass

    def node(self, hostname: str):
        """The Swarm's node object of a machine, by its host name (as the manager sees it)."""
        found = [n for n in self.client.nodes.list() if n.attrs['Description']['Hostname'] == hostname]
        assert len(found) == 1, found
        return found[0]

    def _serve_registry(self) -> None:
        registry = self.root / 'registry'
        registry.mkdir()
        (registry / 'config.yml').write_text(textwrap.dedent(f'''\
            version: 0.1
            log:
              level: error
            storage:
              filesystem:
                rootdirectory: {registry}/data
              delete:
                enabled: true
            http:
              addr: {self.registry}
            '''))
        self.registry_process = subprocess.Popen(
            ['docker-registry', 'serve', str(registry / 'config.yml')],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (registry / 'pid').write_text(str(self.registry_process.pid))
        host, port = self.registry.split(':')
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError('the Swarm\'s registry did not start')

    def down(self) -> None:
        """Everything away, whatever state it is in (each step on its own)."""
        for node in self.nodes:
            node.destroy()
        for name in ('manager', 'worker1', 'worker2'):  # a killed session's
            _ip('netns', 'del', f'dnsw-{name}', check=False)
        if self.registry_process is not None:
            self.registry_process.terminate()
            self.registry_process.wait(10)
            self.registry_process = None
        _stop_left(self.root / 'registry' / 'pid', self.root)
        while subprocess.run(self._rule('-D'), capture_output=True).returncode == 0:
            pass
        self.rule_added = False
        _ip('link', 'del', SWARM_BRIDGE, check=False)


@pytest.fixture(scope='module')
def swarm_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmNodes]:
    """A three-node Swarm (:class:`SwarmNodes`) for a module's tests, one test process at a
    time on this machine (the bridge and subnet are fixed); all of it removed at the end,
    even on failure."""
    if not shutil.which('docker-registry') or not shutil.which('nsenter'):
        pytest.skip('needs docker-registry and nsenter')
    with shared_lock('swarm-nodes'):
        for left in Path('/tmp').glob('dnsw-*'):  # a killed session's (the lock is ours)
            SwarmNodes(left, 0).down()
            shutil.rmtree(left, ignore_errors=True)
        root = Path(tempfile.mkdtemp(prefix='dnsw-', dir='/tmp'))
        nodes = SwarmNodes(root, free_port())
        try:
            nodes.up()
            yield nodes
        finally:
            nodes.down()
            shutil.rmtree(root, ignore_errors=True)


#: PyPI's koji CLI, the version of the test images.
KOJI_CLI_VERSION = '1.35.3'
KOJI_CLI_VENV = Path(tempfile.gettempdir()) / f'dn-test-koji-cli-{KOJI_CLI_VERSION}'


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


# -- hostile input: a directory anyone writes, a PKI and an impostor TLS engine ---------
@pytest.fixture
def shared_directory():
    """A directory anyone may write to (sticky, as /tmp), removed after."""
    directory = tempfile.mkdtemp(prefix='dn-shared-', dir='/tmp')
    os.chmod(directory, 0o1777)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope='module')
def pki(tmp_path_factory) -> Path:
    return two_authorities(tmp_path_factory.mktemp('pki'))


@pytest.fixture
def no_ca_bundles(monkeypatch) -> None:
    """The runs see the CAs their options give, not a bundle of the machine's."""
    for name in ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'SSL_CERT_FILE'):
        monkeypatch.delenv(name, raising=False)
    from helpers import SECRET  # helpers imports this module: not at its top
    monkeypatch.setenv('DN_HOSTILE_PASSWORD', SECRET)


@pytest.fixture
def impostor(pki) -> Iterator[TLSProxy]:
    """A man in the middle: another CA's certificate, no client certificate asked for."""
    from helpers import TLSProxy
    served = TLSProxy(pki, server='rogue-server', client_ca=None)
    try:
        yield served
    finally:
        served.close()


@pytest.fixture
def certs(pki, tmp_path) -> Path:
    """The client's docker-cert-path: the engine's CA, a client certificate it trusts."""
    return client_directory(pki, str(tmp_path / 'certs'), 'ca', 'client')


# -- the order in which xdist hands out the files -----------------------------------------
#: The files that take longest, longest first: ``--durations`` and CPU of each file run on
#: its own (December 2026, on a loaded machine, so the order is rough), the files not
#: measured then by their number of bin/buildout runs. ``make test`` hands whole files to
#: its processes (``--dist loadfile``) in collection order (pytest.ini:
#: ``--no-loadscope-reorder``; xdist's own order, most tests first, left the files of one
#: or two long tests, such as test_persist, test_noop_cost or test_typing's cold mypy, for
#: the end, where one process ran them alone while the others had finished). Long files
#: first, short ones last: the processes end within a short file of each other. The first
#: two hold one long test each (debootstrap's download, a Swarm of three engines: 100 and
#: 120 s in the December 2026 runs). A file not named here keeps its place after these.
LONGEST_FIRST = (
    'test_diskimage.py', 'test_swarm_nodes.py', 'test_plan.py', 'test_control.py', 'test_copy.py', 'test_volume.py',
    'test_copy_engines.py', 'test_docs.py', 'test_faults.py', 'test_run.py',
    'test_decide_act.py', 'test_control_engines.py', 'test_network.py',
    'test_engine_moves.py', 'test_registry_transfer.py',
    'test_push.py', 'test_control_parts.py', 'test_config_errors.py', 'test_bootstrap.py',
    'test_reruns.py', 'test_system.py', 'test_dockeroo.py', 'test_typing.py',
    'test_control_cli.py', 'test_persist.py', 'test_cross_engine.py', 'test_noop_cost.py',
    'test_pull.py', 'test_image.py', 'test_commit.py', 'test_removal_plan.py',
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files in the order of :data:`LONGEST_FIRST`, the others after them as collected; the
    tests of a file keep their order."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
