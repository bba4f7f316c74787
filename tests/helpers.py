"""Small helpers the tests share: object ids, volume content, forced reinstalls, error
lines, the scripts a buildout makes, tarballs of a root filesystem."""
from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import tarfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from conftest import PLAN, free_port
from dockeroo_nagoya.mechanisms import archives

HELPER = 'dockeroo-nagoya/helper:empty'


def ids(client: docker.DockerClient, b) -> dict[str, str]:
    """kind:name -> id of everything the buildout owns on ``client``'s engine."""
    found = {}
    for container in b.owned('containers', client):
        found[f'container:{container.name}'] = container.id
    for image in b.owned('images', client):
        for tag in image.tags or ['<none>']:
            found[f'image:{tag}'] = image.id
    for network in b.owned('networks', client):
        found[f'network:{network.name}'] = network.id
    for volume in b.owned('volumes', client):
        # Volumes have no id, and the engine's CreatedAt follows the data's mtime:
        # the identity label says whether it is the same volume definition.
        found[f'volume:{volume.name}'] = volume.attrs['Labels'].get('io.dockeroo-nagoya.identity')
    return found


def _mounted(client: docker.DockerClient, volume: str):
    empty_helper_image(client)
    return client.containers.create(HELPER, command=['/none'], volumes={volume: {'bind': '/v', 'mode': 'rw'}})


def write_volume_file(client: docker.DockerClient, volume: str, name: str, data: bytes,
                      uid: int = 1234, mode: int = 0o640) -> None:
    put_in_volume(client, volume, file_tar(name, data, uid=uid, mode=mode))


def volume_digest(client: docker.DockerClient, volume: str, root: bool = True) -> str:
    """Names, owners, modes and bytes of every file in the volume; with ``root`` false, of
    everything below its root (whose own mode is the driver's: a tmpfs root is 1777)."""
    digest = hashlib.sha256()
    with tarfile.open(fileobj=io.BytesIO(volume_tar(client, volume))) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.name == 'v' and not root:
                continue
            body = tar.extractfile(member).read() if member.isfile() else b''
            digest.update(f'{member.name} {member.uid} {member.gid} {member.mode:o} '.encode() + body)
    return digest.hexdigest()


def archive(client, container: str, path: str) -> dict[str, tuple[int, int, int, bytes]]:
    """name -> (uid, gid, mode, bytes) of a path in a container."""
    chunks, _ = client.api.get_archive(container, path)
    found = {}
    with tarfile.open(fileobj=io.BytesIO(b''.join(chunks))) as tar:
        for member in tar:
            body = tar.extractfile(member).read() if member.isfile() else b''
            found[member.name] = (member.uid, member.gid, member.mode & 0o7777, body)
    return found


def force_reinstall(b) -> None:
    """Make buildout believe every recipe changed, as a package upgrade does."""
    path = b.directory / '.installed.cfg'
    text = path.read_text()
    path.write_text(re.sub(r'__buildout_signature__ = .*', '__buildout_signature__ = changed', text))


# -- configuration scaffolding --------------------------------------------------------
def section(section_name: str, recipe: str, **options: str) -> str:
    """A buildout section; ``options`` with ``_`` for ``-`` (``wait_for`` -> ``wait-for``),
    multi-line values indented as buildout wants them."""
    lines = [f'[{section_name}]'] + ([f'recipe = dockeroo_nagoya:{recipe}'] if recipe else [])
    for key, value in options.items():
        value = str(value).strip('\n')
        lines.append(f'{key.replace("_", "-")} = ' + value.replace('\n', '\n    '))
    return '\n'.join(lines) + '\n'


def buildout_config(parts: list[str], *sections: str, head: str = '') -> str:
    """A whole buildout.cfg: ``[buildout]`` with ``parts``, then the sections."""
    return '\n'.join([f'[buildout]\nparts = {" ".join(parts)}\n{head}', *sections])


def sleeper(section_name: str, image: str, **options: str) -> str:
    """A docker.run part of a container that sleeps (stops at once: PID 1 ignores SIGTERM)."""
    return section(section_name, 'docker.run', image=image, command='sleep 3600', **options)


def publish(client: docker.DockerClient, image: str, repository: str, tag: str = 'v1') -> str:
    """Push a local image to a test registry as REPOSITORY:TAG and drop the local tag, so
    the first run takes it from the registry, as from Docker Hub."""
    client.images.get(image).tag(repository, tag)
    for line in client.images.push(repository, tag, stream=True, decode=True):
        assert 'error' not in line, line
    client.images.remove(f'{repository}:{tag}')
    return f'{repository}:{tag}'


def unpublish(registry: str, repository: str) -> None:
    """Delete every tag of ``repository`` (``PREFIX/NAME``) from a test registry (its
    manifests: the registry is the session's, its blobs go with it)."""
    base = f'http://{registry}/v2/{repository}'
    try:
        with urllib.request.urlopen(f'{base}/tags/list', timeout=10) as answer:
            tags = json.load(answer).get('tags') or []
    except urllib.error.HTTPError:
        return
    for tag in tags:
        head = urllib.request.Request(f'{base}/manifests/{tag}', method='HEAD', headers={
            'Accept': 'application/vnd.docker.distribution.manifest.v2+json'})
        with urllib.request.urlopen(head, timeout=10) as answer:
            digest = answer.headers['Docker-Content-Digest']
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(urllib.request.Request(f'{base}/manifests/{digest}',
                                                          method='DELETE'), timeout=10).close()


def actions(output: str) -> list[str]:
    """Buildout's ``Installing X.``/``Uninstalling X.`` lines of a run."""
    return [line for line in output.splitlines()
            if line.startswith(('Installing ', 'Uninstalling '))]


def keys_job(b, busybox: str, keys: str) -> str:
    """A job on the default engine leaving ``/out/keys/`` with one private key (0600, uid
    1234) per word of ``keys``; ``old/`` when it has ``old`` (a directory that goes)."""
    return section(
        'credentials', 'docker.run', name=f'{b.prefix}-credentials', image=busybox, job='true',
        env=f'KEYS={keys}',
        command="sh -c 'mkdir -p /out/keys && for k in $KEYS; do if [ $k = old ]; then "
                "mkdir -p /out/keys/old && echo c > /out/keys/old/c.pem; else "
                "echo $k > /out/keys/$k.pem && chown 1234:1234 /out/keys/$k.pem && "
                "chmod 600 /out/keys/$k.pem; fi; done && echo ca > /out/keys/ca.crt'")


def builder_hosts(b, busybox: str, line: str, parts: str = 'sleep-*') -> None:
    """A buildout of sleepers once per line of ``[koji] builder-hosts``, their image saved
    to a file here and loaded on each line's engine (the Koji profile's ``file`` way)."""
    b.write(buildout_config(
        parts.split(),
        section('koji', '', builder_hosts=line),
        section('save', 'docker.save', name=busybox),
        section('img-*', 'docker.load', for_each='koji:builder-hosts', engine='{engine}',
                path='${save:path}', name=busybox),
        section('sleep-*', 'docker.run', for_each='koji:builder-hosts', engine='{engine}',
                name=f'{b.prefix}-{{host}}', image='${img-{host}:image}', command='sleep 3600',
                replicas='{count}', stop_timeout='1'),
        head='extensions = dockeroo_nagoya'))


def n_containers_config(b, busybox: str, n: int, tool: str) -> str:
    """A network, ``n`` volumes and ``n`` sleepers (each mounting its volume, all after the
    first), as ``n`` docker.run parts (``tool = 'parts'``) or one docker.system (``'system'``)."""
    lines = ['[buildout]', 'parts = net ' + ' '.join(f'v{i}' for i in range(n)) +
             (' sys' if tool == 'system' else ' ' + ' '.join(f'c{i}' for i in range(n))), '',
             '[net]', 'recipe = dockeroo_nagoya:docker.network', f'name = {b.prefix}-net', '']
    for i in range(n):
        lines += [f'[v{i}]', 'recipe = dockeroo_nagoya:docker.volume', f'name = {b.prefix}-v{i}', '']
    if tool == 'system':
        lines += ['[sys]', 'recipe = dockeroo_nagoya:docker.system',
                  'containers = ' + ' '.join(f'c{i}' for i in range(n)), '']
    for i in range(n):
        lines += [f'[c{i}]'] + (['recipe = dockeroo_nagoya:docker.run'] if tool == 'parts' else [])
        lines += [f'name = {b.prefix}-c{i}', f'image = {busybox}', 'command = sleep 3600',
                  'init = true', 'networks = ${net:name}', f'volumes = ${{v{i}:name}}:/data']
        if i:
            lines.append('depends = ' + ('${c0:name}' if tool == 'parts' else 'c0'))
        lines.append('')
    return '\n'.join(lines)


# -- what a run says, and the scripts a buildout makes ---------------------------------
def output(result) -> str:
    return result.stdout + result.stderr


def error_lines(out: str) -> list[str]:
    """The Error lines of a run that must have no traceback (any number of them)."""
    assert 'Traceback' not in out, out
    return [line for line in out.splitlines() if line.startswith('Error:')]


def assert_one_error(out: str, *expected: str) -> str:
    """One ``Error:`` line, no traceback, and each of ``expected`` somewhere in the output
    (on that line, or in what the run said around it): the line is returned."""
    errors = error_lines(out)
    assert len(errors) == 1, out
    for text in expected:
        assert text in out, out
    return errors[0]


def assert_one_error_at_end(out: str, start: str) -> str:
    """As :func:`assert_one_error`, and stricter: the line starts ``Error: START`` and
    nothing follows it in the output (the error is one line, with no log or detail after
    it): the line is returned."""
    line = assert_one_error(out)
    assert line.startswith(f'Error: {start}'), out
    following = out.split(line, 1)[1].strip()
    assert following == '', f'the error goes on after its line:\n{out}'
    return line


def plan(b, *args: str, env: dict[str, str] | None = None,
         offline: bool = True) -> subprocess.CompletedProcess[str]:
    """dockeroo-plan in the buildout's directory, offline (``-N``) unless told otherwise."""
    return subprocess.run([str(PLAN), *(['-N'] if offline else []), *args], cwd=b.directory,
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=300)


def control(b, *args: str) -> subprocess.CompletedProcess[str]:
    """The buildout's ``bin/sys`` (a docker.system part named ``sys``), with no terminal."""
    return subprocess.run([str(b.directory / 'bin' / 'sys'), *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300)


def git(*args: str, cwd) -> str:
    return subprocess.run(['git', *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={'GIT_AUTHOR_NAME': 't', 'GIT_AUTHOR_EMAIL': 't@example.com',
                               'GIT_COMMITTER_NAME': 't', 'GIT_COMMITTER_EMAIL': 't@example.com',
                               'PATH': '/usr/bin:/bin', 'HOME': str(cwd)}).stdout


# -- root filesystems from tarballs (docker.bootstrap, docker.assemble, docker.diskimage) ---
BUSYBOX_BINARY = shutil.which('busybox') or '/bin/busybox'

#: A diskimage build-script: an ext4 file system of the build root.
MKE2FS = 'mke2fs -q -t ext4 -d "$BUILD_ROOT" "$IMAGE_FILE" 64M'


def busybox_tarball(path: Path, files: dict[str, str] | None = None) -> str:
    """A root filesystem tarball (compressed as the name says): busybox, sh, files; its sha256."""
    mode = {'.gz': 'w:gz', '.bz2': 'w:bz2', '.xz': 'w:xz'}.get(path.suffix, 'w')
    with tarfile.open(path, mode) as tar:
        _add_dir(tar, '.')
        _add_dir(tar, 'bin')
        tar.add(BUSYBOX_BINARY, arcname='bin/busybox')
        link = tarfile.TarInfo('bin/sh')
        link.type, link.linkname = tarfile.SYMTYPE, 'busybox'
        tar.addfile(link)
        for name, text in (files or {}).items():
            _add_file(tar, name, text.encode())
    return archives.file_sha256(str(path))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, **fields) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


def leftovers(client: docker.DockerClient, b) -> list[str]:
    """Containers, and untagged images, of the buildout: what a failure must not leave."""
    found = [f'container {c.name}' for c in client.containers.list(all=True, filters={'label': b.label})]
    found += [f'image {i.id[:19]}' for i in client.images.list(filters={'label': b.label, 'dangling': True})]
    return found


def image_id(client: docker.DockerClient, reference: str) -> str:
    return client.images.get(reference).id


# -- the Koji profile ------------------------------------------------------------------
KOJI_PROFILE = Path(__file__).resolve().parent.parent / 'profiles' / 'koji.cfg'


def koji_buildout(b, parts: str | None = None, builders: int = 1, port: int | None = None,
                  extra: str = '') -> None:
    """A buildout in the test's directory extending the profile where it is (nothing copied)."""
    if not hasattr(b, 'port'):
        b.port = port or free_port()
    lines = ['[buildout]', f'extends = {KOJI_PROFILE}',
             *([f'parts = {parts}'] if parts is not None else []), '', '[koji]',
             f'prefix = {b.prefix}', f'hub-port = {b.port}', f'builders = {builders}',
             'stop-timeout = 1', *extra.splitlines()]
    b.write('\n'.join(lines) + '\n')


def container_ids(b) -> dict[str, tuple[str, str]]:
    return {c.name: (c.id, c.attrs['State']['StartedAt']) for c in b.owned('containers')}


def timed(what: str, work, *args, **kwargs):
    """Run ``work`` and print how long it took (the documentation's figures; run with -s)."""
    started = time.monotonic()
    result = work(*args, **kwargs)
    print(f'\n{what}: {time.monotonic() - started:.1f} s', flush=True)
    return result


class TLSProxy:
    """An engine over TLS on 127.0.0.1 for tests that have a unix socket only: Python's
    ``ssl`` with the certificate ``PKI/SERVER.pem``, forwarding the bytes to the
    engine's socket (a man in the middle, when its certificate is another CA's), and
    keeping what clients sent after the handshake in ``received``.

    ``client_ca``: the CA a client certificate must come from (``None``: none is asked
    for, as an impostor that wants the traffic asks for nothing). ``port``: where a
    proxy that stood there before listened (the address a buildout recorded).
    """

    def __init__(self, pki: Path, server: str = 'server', client_ca: str | None = 'ca',
                 port: int = 0) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki / f'{server}.pem', pki / f'{server}-key.pem')
        if client_ca is not None:
            self.context.load_verify_locations(pki / f'{client_ca}.pem')
            self.context.verify_mode = ssl.CERT_REQUIRED
        self.listener = socket.create_server(('127.0.0.1', port))
        self.port = self.listener.getsockname()[1]
        self.address = f'tcp://127.0.0.1:{self.port}'
        self.refused = 0
        self.received = b''
        self.closed = False
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection) -> None:
        try:
            secure = self.context.wrap_socket(connection, server_side=True)
        except (ssl.SSLError, OSError):
            self.refused += 1
            connection.close()
            return
        engine = socket.socket(socket.AF_UNIX)
        engine.connect('/var/run/docker.sock')
        threading.Thread(target=self._pump, args=(engine, secure), daemon=True).start()
        self._pump(secure, engine, record=True)

    def _pump(self, source, sink, record: bool = False) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if record:
                    with self._lock:
                        self.received += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop listening (the port free for another proxy at once)."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept
        self.listener.close()


def git_repository(path: Path, files: dict[str, str], branch: str = 'main') -> Path:
    """A git work tree at ``path`` holding ``files`` in one commit on ``branch``."""
    path.mkdir(parents=True, exist_ok=True)
    git('init', '-q', '-b', branch, cwd=path)
    for name, text in files.items():
        (path / name).write_text(text)
    git('add', '.', cwd=path)
    git('commit', '-q', '-m', 'files', cwd=path)
    return path


# -- the Koji profile's credentials in its services ---------------------------------------
def koji_secrets(client: docker.DockerClient, support_image: str, volume: str) -> dict[str, str]:
    """Each private key (``NAME.key``: one line of its body) and secret (``db-password``,
    ``web-secret``: its text) of the installation's credentials volume ``volume``, by name:
    what a file holding it would contain, wherever it was copied to."""
    text = run_output(client,
        support_image, ['sh', '-c', 'cd /etc/pki/koji && for k in *.key; do '
                        'printf "%s\\t%s\\n" "$k" "$(sed -n 2p "$k")"; done; '
                        'for s in secrets/*; do printf "%s\\t%s\\n" "${s#secrets/}" "$(cat "$s")"; '
                        'done'], volumes={volume: {'bind': '/etc/pki/koji', 'mode': 'ro'}}).decode()
    found = dict(line.split('\t') for line in text.splitlines())
    assert {'ca.key', 'kojiadmin.key', 'db-password'} <= set(found), found
    assert all(len(value) >= 32 for value in found.values()), found
    return found


def koji_service_credentials(prefix: str, container: str) -> set[str]:
    """The secrets (names as :func:`koji_secrets` has them) a running service container of
    the Koji profile uses, and so may hold: the hub and web its server key, the web's
    proxy key and the two secrets; the database its password; kojira and each builder
    its own key; the maintenance jobs the database password and the web's key (koji-gc
    logs in as the web does). Never the CA's key or kojiadmin's."""
    role = container[len(prefix) + 1:]
    fixed = {'hub': {'hub.key', 'kojiweb.key', 'db-password', 'web-secret'},
             'database': {'db-password'}, 'kojira': {'kojira.key'},
             'maintenance': {'kojiweb.key', 'db-password'}}
    if role in fixed:
        return fixed[role]
    match = re.fullmatch(r'builder-(?:(\d+)|(.+-\d+))', role)
    assert match, f'{container}: not a service of the Koji profile'
    return {f'kojibuilder{match.group(1)}.key' if match.group(1) else f'kojibuilder-{match.group(2)}.key'}


def koji_secrets_exposed(container, secrets: dict[str, str], allowed: set[str]) -> list[str]:
    """What ``container`` (running) can read of ``secrets`` beyond ``allowed``: the CA's and
    kojiadmin's keys where the credentials volume keeps them, then any file anywhere on
    its filesystem (its volumes included; /proc, /sys and /dev left out) holding one of
    the others. Empty when it holds only what it uses."""
    forbidden = {name: value for name, value in secrets.items() if name not in allowed}
    script = ('for f in /etc/pki/koji/ca.key /etc/pki/koji/kojiadmin.key /etc/pki/koji/kojiadmin.pem; '
              'do cat "$f" >/dev/null 2>&1 && echo "readable:$f"; done; set --; '
              'for d in /*; do case $d in /proc|/sys|/dev) ;; *) set -- "$@" "$d" ;; esac; done; '
              'grep -rsoF ' + ' '.join(f'-e {shlex.quote(value)}' for value in forbidden.values())
              + ' "$@"; '
              'true')
    result = container.exec_run(['sh', '-c', script])
    assert result.exit_code == 0, result.output.decode()[-2000:]
    names = {value: name for name, value in forbidden.items()}
    exposed = []
    for line in result.output.decode().splitlines():
        if line.startswith('readable:'):
            exposed.append(f'{line[len("readable:"):]} is readable')
        elif ':' in line:
            path, _, value = line.rpartition(':')
            exposed.append(f'{names.get(value, value)} in {path}')
    return sorted(set(exposed))


def koji_services_hold_only_their_own(client: docker.DockerClient, b, support_image: str,
                                      engines: tuple = ()) -> None:
    """Every running container of the buildout (on this engine and ``engines``' clients)
    holds only the credentials its service uses (:func:`koji_service_credentials`)."""
    secrets = koji_secrets(client, support_image, f'{b.prefix}-credentials')
    seen = {}
    for engine_client in (client, *engines):
        for container in engine_client.containers.list(filters={'label': b.label}):
            allowed = koji_service_credentials(b.prefix, container.name)
            seen[container.name] = koji_secrets_exposed(container, secrets, allowed)
    assert {f'{b.prefix}-hub', f'{b.prefix}-database', f'{b.prefix}-kojira'} <= set(seen), seen
    exposed = {name: found for name, found in seen.items() if found}
    assert not exposed, f'services hold credentials they do not use: {exposed}'


#: What hides a TLS mistake on this machine: the host client must not need them.
TRUST_VARIABLES = ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'SSL_CERT_FILE', 'SSL_CERT_DIR')


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


def repository_with_build(koji: Path, config: Path, rpms: tuple[Path, Path]) -> int:
    """The id of a ready repository of dn-build, a build tag inheriting dn-dest, with
    dn-hello-1.0-1 imported and tagged in it (tags made once)."""
    tagged(koji, config, rpms)
    if 'dn-build' not in host_koji(koji, 'list-tags', config=config).split():
        host_koji(koji, 'add-tag', '--arches=x86_64', 'dn-build', config=config)
        host_koji(koji, 'add-tag-inheritance', 'dn-build', 'dn-dest', config=config)
    assert 'dn-hello-1.0-1' in host_koji(koji, 'list-tagged', '--inherit', 'dn-build',
                                         config=config)
    # Requested as Koji 1.35 recommends (a tag without the extra repo.auto is not
    # regenerated by itself); the hub and kojira make it.
    timed('repository with the build', host_koji, koji, 'wait-repo', '--request', 'dn-build',
          '--build=dn-hello-1.0-1', '--timeout=4', config=config, timeout=270)
    return json.loads(host_koji(koji, 'call', '--json-output', 'getRepo', 'dn-build',
                                config=config))['id']


def repository_packages(fetch: Callable[[str], bytes]) -> set[str]:
    """name-version-release of every package a yum repository's primary metadata lists,
    read with ``fetch`` (a path under the repository's arch directory -> its bytes), as
    dnf finds them: repomd.xml names the primary file."""
    repomd = ET.fromstring(fetch('repodata/repomd.xml'))
    ns = {'repo': 'http://linux.duke.edu/metadata/repo',
          'common': 'http://linux.duke.edu/metadata/common'}
    primary = next(data for data in repomd.findall('repo:data', ns)
                   if data.get('type') == 'primary')
    location = primary.find('repo:location', ns)
    href = location.get('href', '') if location is not None else ''
    assert href.endswith('.gz'), ET.tostring(primary)
    listing = ET.fromstring(gzip.decompress(fetch(href)))
    return {f"{package.findtext('common:name', namespaces=ns)}-{version.get('ver')}-"
            f"{version.get('rel')}"
            for package in listing.findall('common:package', ns)
            if (version := package.find('common:version', ns)) is not None}


#: Run in a builder's container: the file at argv[1] under the kojid's topurl (read
#: from its kojid.conf), fetched as kojid fetches (koji.openRemoteFile: the system's
#: trust, which holds the installation's CA), to stdout.
BUILDER_FETCH = '''\
import configparser, sys, koji
conf = configparser.ConfigParser()
conf.read("/etc/kojid/kojid.conf")
sys.stdout.buffer.write(koji.openRemoteFile(sys.argv[1], topurl=conf["kojid"]["topurl"]).read())
'''


def builder_reads(container, path: str) -> bytes:
    """``path`` under topdir, as the builder ``container`` reads it through its topurl
    (the hub's /kojifiles over TLS), never from a volume."""
    code, (out, err) = container.exec_run(['python3', '-c', BUILDER_FETCH, path], demux=True)
    assert code == 0, (err or b'').decode()[-800:]
    return out or b''


# -- hostile input: configs, tarballs, another user, TLS impostors ---------------------
def cfg(text: str) -> str:
    """A buildout configuration written indented in a test, as buildout reads it."""
    return textwrap.dedent(text).lstrip()


def tar_of(path, members: list[tuple[str, dict, bytes]]) -> None:
    """A tarball of (name, TarInfo fields, bytes of a regular file), in order."""
    with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT) as tar:
        for name, fields, data in members:
            info = tarfile.TarInfo(name)
            for key, value in fields.items():
                setattr(info, key, value)
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)


def build_config(b, busybox: str, tarball) -> str:
    return cfg(f'''
        [buildout]
        parts = image

        [image]
        recipe = dockeroo_nagoya:docker.build
        name = {b.prefix}/ctx
        source = file://{tarball}
        build-args = BASE={busybox}
        ''')


DOCKERFILE = b'ARG BASE\nFROM $BASE\nCOPY . /ctx/\n'


def as_nobody(script: str) -> None:
    subprocess.run(['sh', '-c', script], user='nobody', group='nogroup', check=True, timeout=30)


#: The registry password the TLS tests give by reference (DN_HOSTILE_PASSWORD).
SECRET = 'dn-hostile-registry-password'


def leaked(received: bytes) -> list[str]:
    """What an impostor got that it must not: request lines and registry credentials
    (``X-Registry-Auth`` is base64 JSON)."""
    text = received.decode('latin-1')
    found = re.findall(r'^[A-Z]+ /\S* HTTP/1\.[01]', text, re.M)
    for header in re.findall(r'^X-Registry-Auth: *(\S+)', text, re.M | re.I):
        decoded = base64.urlsafe_b64decode(header + '=' * (-len(header) % 4)).decode('latin-1')
        if SECRET in decoded:
            found.append(f'the registry password, in X-Registry-Auth: {decoded}')
    if SECRET in text:
        found.append('the registry password')
    return found


#: The ways a buildout names a directory of certificates without docker-tls-verify.
WAYS = {
    'part': ('', 'docker-host = {address}\ndocker-cert-path = {certs}', 'docker-cert-path'),
    'dockeroo-aliases': ('', 'engine-url = {address}\nengine-tls-cert-path = {certs}',
                         'docker-cert-path'),
    'buildout': ('docker-host = {address}\ndocker-cert-path = {certs}', '', 'docker-cert-path'),
    # DOCKER_CERT_PATH in the environment (test_an_impostor_engine_gets_nothing... sets it)
    'environment': ('', 'docker-host = {address}', 'DOCKER_CERT_PATH'),
}


def tls_config(b, way: str, address: str, certs: Path, extra: str = '',
               pull: bool = False) -> str:
    """A volume (and with ``pull`` a docker.pull with registry credentials) on the engine at
    ``address``, its certificates named the ``way`` given."""
    head, own, _ = WAYS[way]
    own = own.format(address=address, certs=certs)
    parts = ['data'] + (['image'] if pull else [])
    text = f'''
        [buildout]
        parts = {' '.join(parts)}
        {head.format(address=address, certs=certs).replace(chr(10), chr(10) + ' ' * 8)}

        [data]
        recipe = dockeroo_nagoya:docker.volume
        name = {b.prefix}-data
        {own.replace(chr(10), chr(10) + ' ' * 8)}
        {extra}
        '''
    if pull:
        text += f'''
        [image]
        recipe = dockeroo_nagoya:docker.pull
        image = 127.0.0.1:9/{b.prefix}/private:1
        username = someone
        password-env = DN_HOSTILE_PASSWORD
        {own.replace(chr(10), chr(10) + ' ' * 8)}
        '''
    return textwrap.dedent(text).lstrip()


def copy_to_host_config(b, busybox: str, made: str, paths: str, extra: str = '',
                        **options: str) -> str:
    """A sleeper that runs ``made`` first, and a docker.copy of ``paths`` (lines) from it to
    the host, with ``options`` and the option line ``extra``."""
    return buildout_config(
        ['source', 'out'],
        container_part(b, 'source', busybox, init='true', stop_timeout='1',
                       command=f"sh -c '{made} && touch /ready && exec sleep 3600'",
                       wait_for='exec:test -f /ready'),
        section('out', 'docker.copy', container_from='${source:name}', paths=paths, **options)
        + (extra + '\n' if extra else ''))


# -- shared scaffolding (issue 23, item 5): what several test modules wrote each for itself --
def empty_helper_image(client: docker.DockerClient) -> str:
    """The package's empty helper image (one empty file, nothing to run), imported when the
    engine has none yet: what holds a volume for reading and writing it."""
    if not client.images.list(name=HELPER):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w') as tar:
            tar.addfile(tarfile.TarInfo('.x'), io.BytesIO(b''))
        client.api.import_image_from_data(buf.getvalue(), repository=HELPER.split(':')[0], tag='empty')
    return HELPER


def file_tar(name: str, data: bytes, uid: int = 1234, mode: int = 0o600) -> bytes:
    """A tar of one regular file owned by ``uid`` (user and group), for ``put_archive``: a
    file changed in place, by hand as it were."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tar:
        info = tarfile.TarInfo(name)
        info.size, info.uid, info.gid, info.mode = len(data), uid, uid, mode
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def run_output(client: docker.DockerClient, image: str, command: Any = None,
               stdout: bool = True, stderr: bool = False, **kwargs: Any) -> bytes:
    """A throwaway container's output, as ``client.containers.run(..., remove=True)``
    returns it, without that call's race: docker-py opens a following log stream, removes
    the container after it exited and only then reads the stream, which on a loaded engine
    can end, with the container, before it passed the output on (a read of a file in a
    volume came back ``b''``). Here the logs are read once the engine says it exited (it
    has copied the output to the log by then), and the container removed after."""
    container = client.containers.create(image, command, **kwargs)
    try:
        container.start()
        status = container.wait()['StatusCode']
        if status != 0:
            raise docker.errors.ContainerError(container, status, command, image,
                                               container.logs(stdout=False, stderr=True))
        return container.logs(stdout=stdout, stderr=stderr)
    finally:
        container.remove(force=True)


def put_in_volume(client: docker.DockerClient, volume: str, tar: bytes) -> None:
    """Unpack an archive (the engine's ``put_archive`` form) at the volume's root, through a
    throwaway container of the empty helper image, as a user restoring it would."""
    container = _mounted(client, volume)
    try:
        container.put_archive('/v', tar)
    finally:
        container.remove(force=True)


def volume_tar(client: docker.DockerClient, volume: str) -> bytes:
    """The volume's whole content as the engine's archive API gives it (members under
    ``v/``, the root itself ``v``), read without running anything in it."""
    container = _mounted(client, volume)
    try:
        chunks, _ = container.get_archive('/v')
        return b''.join(chunks)
    finally:
        container.remove(force=True)


def plan_json(b, status: int, *args: str, offline: bool = True,
              secrets: tuple[str, ...] = ()) -> dict:
    """What ``dockeroo-plan --json`` answers (offline unless told otherwise), after checking
    its exit status (0 no changes, 2 changes) and that none of ``secrets`` is in its output."""
    result = plan(b, *args, '--json', offline=offline)
    said = result.stdout + result.stderr
    assert result.returncode == status, said
    for secret in secrets:
        assert secret not in said, said
    return json.loads(result.stdout)


def status_table(result: subprocess.CompletedProcess[str],
                 engines: bool = False) -> dict[str, list[str]]:
    """CONTAINER -> the other cells of a control script's ``status`` table (the header checked;
    with ``engines``, the ENGINE column of a system over several engines). ``exited (N)`` is
    one cell."""
    header, *rows = result.stdout.splitlines()
    columns = ['CONTAINER', *(['ENGINE'] if engines else []), 'STATE', 'HEALTH', 'IMAGE',
               'UPTIME', 'PORTS']
    assert header.split() == columns, result.stdout
    state = columns.index('STATE')
    table = {}
    for row in rows:
        cells = row.split()
        if cells[state] == 'exited':
            cells[state:state + 2] = [f'{cells[state]} {cells[state + 1]}']
        table[cells[0]] = cells[1:]
    return table


def container_ids_by_name(client: docker.DockerClient, b) -> dict[str, str]:
    """Name without the buildout's prefix (``db``, ``web-2``) -> id of each of its containers:
    equal before and after a run when the run recreated none (:func:`container_ids` also
    tells a restart, by full name)."""
    return {key.split(':', 1)[1].removeprefix(b.prefix + '-'): value
            for key, value in ids(client, b).items() if key.startswith('container:')}


def container_state(client: docker.DockerClient, name: str) -> dict:
    """The engine's ``State`` of a container (Status, Running, ExitCode, StartedAt, ...)."""
    return client.api.inspect_container(name)['State']


def volume_part(b, part: str = 'data', **options: str) -> str:
    """A docker.volume section ``[PART]`` of the volume ``PREFIX-PART`` (the buildout's prefix:
    what its clean-up finds)."""
    return section(part, 'docker.volume', name=f'{b.prefix}-{part}', **options)


def network_part(b, part: str = 'net', **options: str) -> str:
    """A docker.network section ``[PART]`` of the network ``PREFIX-PART``."""
    return section(part, 'docker.network', name=f'{b.prefix}-{part}', **options)


def container_part(b, part: str, image: str, **options: str) -> str:
    """A docker.run section ``[PART]`` of the container ``PREFIX-PART`` on ``image``."""
    return section(part, 'docker.run', name=f'{b.prefix}-{part}', image=image, **options)


def image_part(b, part: str, recipe: str, **options: str) -> str:
    """A section ``[PART]`` of an image recipe (build, image, assemble, ...) making the image
    ``PREFIX/PART``."""
    return section(part, recipe, name=f'{b.prefix}/{part}', **options)


def sleeping_part(b, part: str, image: str, **options: str) -> str:
    """A docker.run section ``[PART]`` of a container ``PREFIX-PART`` that sleeps, quick to
    stop (``init``, a one-second stop timeout): what a test keeps running to act on."""
    return container_part(b, part, image, command='sleep 3600', init='true', stop_timeout='1',
                          **options)


def context_build_part(b, part: str = 'app', **options: str) -> str:
    """A docker.build section ``[PART]`` of the image ``PREFIX/PART`` from the directory
    ``PART`` of the buildout (the test writes its Dockerfile there)."""
    return image_part(b, part, 'docker.build', source=f'${{buildout:directory}}/{part}',
                      **options)


def disk_part(build_image: str, base_image: str, part: str = 'disk', **options: str) -> str:
    """A docker.diskimage section ``[PART]``: ``base_image``'s file system at /mnt/root of a
    builder of ``build_image``, made into a file by the ``options``' scripts."""
    return section(part, 'docker.diskimage', build_image=build_image, base_image=base_image,
                   build_root='/mnt/root', **options)


def system_part(members: list[str], part: str = 'sys', **options: str) -> str:
    """A docker.system section ``[PART]`` of the ``members`` (sections of their own)."""
    return section(part, 'docker.system', containers=' '.join(members), **options)


def member_part(b, member: str, image: str = '', extends: str = '', name: str = '',
                **options: str) -> str:
    """A docker.system member's section (no recipe) of the container ``PREFIX-MEMBER`` (or
    ``name``); with ``extends``, buildout's ``<=`` macro first, so that it takes that member's
    options."""
    body = section(member, '', name=name or f'{b.prefix}-{member}',
                   **({'image': image} if image else {}), **options).split('\n', 1)[1]
    return f'[{member}]\n' + (f'<= {extends}\n' if extends else '') + body
