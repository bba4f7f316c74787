"""A review of the one way to place archive members (dockeroo_nagoya.mechanisms.members), by attacks
run through bin/buildout: what the first hostile suites did not try.

A link whose target climbs back through another link of the archive
(``t -> d/e/up/../..`` with ``d/e/up -> ../..``) reads as inside the target
when its text is normalised, yet leads out on the host. A copy to the host
follows no link another user put on the way to its directory, neither to
write nor to remove what sync finds stale. bin scripts and state files are
written by atomicfile alone, never through a fixed temporary name. A directory
of certificates in the environment (``DOCKER_CERT_PATH``) means checking the
engine whatever ``DOCKER_TLS_VERIFY`` holds. An https gate follows no
redirect to plain http. Every atomic host write (docker.save's archive too)
reaches its directory as HostWriter does. A git source's checkout is held to
the host's rules of links, as a source tarball is.
"""
from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import ssl
import tarfile
import threading
import time

import pytest

from dockeroo_nagoya.mechanisms import archives
from helpers import (DOCKERFILE, as_nobody, assert_one_error, build_config, buildout_config, cfg,
                     copy_to_host_config, git, git_repository, leaked, sleeper, tar_of,
                     tls_config)

#: Every run here sees the CAs its options give, not a bundle of the machine's.
pytestmark = pytest.mark.usefixtures('no_ca_bundles')

#: A link that is inside by its text and outside on disk: up is the root, t two levels above.
CLIMBING_CHAIN = [('d/e', {'type': tarfile.DIRTYPE, 'mode': 0o755}, b''),
                  ('d/e/up', {'type': tarfile.SYMTYPE, 'linkname': '../..'}, b''),
                  ('t', {'type': tarfile.SYMTYPE, 'linkname': 'd/e/up/../..'}, b'')]


def links_leading_out(directory) -> list[str]:
    """The links below ``directory`` that resolve outside it."""
    root = os.path.realpath(directory)
    found = []
    for parent, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(parent, name)
            resolved = os.path.realpath(path)
            if os.path.islink(path) and resolved != root and \
                    not resolved.startswith(root + os.sep):
                found.append(f'{path} -> {os.readlink(path)}')
    return found


def test_source_tarball_link_climbing_through_another_link_is_refused(buildout, busybox):
    b = buildout
    tarball = b.directory / 'ctx.tar'
    tar_of(tarball, [('Dockerfile', {'mode': 0o644}, DOCKERFILE), *CLIMBING_CHAIN])
    b.write(build_config(b, busybox, tarball))
    result = b.run('-N', check=False)
    assert links_leading_out(b.directory / 'var' / 'sources') == []
    line = assert_one_error(result.stdout + result.stderr)
    assert line.startswith('Error: image: option source:') and "'t'" in line, line


def test_extract_refuses_a_link_climbing_through_another_link_in_any_order(tmp_path):
    for order in (CLIMBING_CHAIN, [CLIMBING_CHAIN[0], CLIMBING_CHAIN[2], CLIMBING_CHAIN[1]]):
        tarball = tmp_path / 'chain.tar'
        tar_of(tarball, order)
        target = tmp_path / 'target'
        target.mkdir()
        with pytest.raises(archives.ArchiveError, match='leads out'):
            archives.extract(str(tarball), str(target))
        assert links_leading_out(target) == []
        shutil.rmtree(target)


# -- a copy to the host whose parent directory another user replaces by a link ---------------
@pytest.fixture
def renamable(shared_directory) -> str:
    """A directory anyone may rename things in (0777, not sticky: the kernel's
    protected_symlinks does not apply), for a copy's target below ``sub``."""
    out = os.path.join(shared_directory, 'out')
    os.mkdir(out)
    os.chmod(out, 0o777)
    return out


def plant_link_as_nobody(out: str, victim) -> None:
    """Another user renames ``out/sub`` away and leaves a link to ``victim`` in its place."""
    as_nobody(f'mv {out}/sub {out}/old && ln -s {victim} {out}/sub')


@pytest.mark.skipif(os.geteuid() != 0, reason='planting files as another user needs root')
def test_copy_to_the_host_follows_no_link_another_user_put_on_its_way(buildout, busybox, client,
                                                                       renamable, tmp_path):
    b = buildout
    out = renamable
    victim = tmp_path / 'victim'
    victim.mkdir(mode=0o700)
    (victim / 'x').write_text('untouched\n')
    b.write(copy_to_host_config(b, busybox, 'echo one > /x', f'/x {out}/sub/x'))
    b.run('-N')
    assert open(os.path.join(out, 'sub', 'x')).read() == 'one\n'
    plant_link_as_nobody(out, victim)
    source = client.containers.get(f'{b.prefix}-source')
    assert source.exec_run(['sh', '-c', 'echo two > /x']).exit_code == 0
    result = b.run('-N', check=False)
    assert (victim / 'x').read_text() == 'untouched\n', 'the copy followed the planted link'
    line = assert_one_error(result.stdout + result.stderr)
    assert line.startswith('Error: out: option paths:') and 'sub' in line, line


# -- TLS named by the environment --------------------------------------------------------
@pytest.mark.parametrize('verify', ['0', '', 'false'])
def test_an_impostor_gets_nothing_whatever_docker_tls_verify_the_environment_holds(
        buildout, client, certs, impostor, verify, monkeypatch):
    """DOCKER_CERT_PATH names a directory of certificates: the engine is checked against
    its ca.pem, whatever an environment's DOCKER_TLS_VERIFY says (docker's own client
    reads any non-empty value as on, and the SDK turns TLS on without checking for an
    empty one): not checking takes docker-tls-verify = false, written in the buildout."""
    b = buildout
    monkeypatch.setenv('DOCKER_CERT_PATH', str(certs))
    monkeypatch.setenv('DOCKER_TLS_VERIFY', verify)
    b.write(tls_config(b, 'environment', impostor.address, certs, pull=True))
    line = assert_one_error(b.fail())
    assert f'the TLS handshake with {impostor.address} failed' in line, line
    assert leaked(impostor.received) == [] and impostor.received == b'', impostor.received[:2000]
    assert not client.volumes.list(filters={'name': f'{b.prefix}-data'})


# -- files the buildout writes for itself ---------------------------------------------------
def test_a_script_is_never_written_through_a_link_at_a_temporary_name(buildout, tmp_path):
    """bin scripts (and every state file: .kept-by-parts.json, job logs, manifests, the
    reconnect and push records) are written by atomicfile alone: a fresh temporary name
    made with O_EXCL | O_NOFOLLOW, never a fixed one opened through whatever is there."""
    b = buildout
    victim = tmp_path / 'victim'
    victim.write_text('untouched\n')
    victim.chmod(0o600)
    (b.directory / 'bin').mkdir(exist_ok=True)
    os.symlink(victim, b.directory / 'bin' / 'tool.tmp')
    b.write(cfg(f'''
        [buildout]
        parts = tool

        [tool]
        recipe = dockeroo_nagoya:docker.command
        container = {b.prefix}-none
        command = true
        '''))
    b.run('-N')
    assert victim.read_text() == 'untouched\n', 'the script went through the planted link'
    assert (victim.stat().st_mode & 0o777) == 0o600
    script = b.directory / 'bin' / 'tool'
    assert not script.is_symlink() and (script.stat().st_mode & 0o777) == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason='planting files as another user needs root')
def test_a_synced_copy_removes_nothing_through_a_link_another_user_put_on_its_way(
        buildout, busybox, client, renamable, tmp_path):
    b = buildout
    out = renamable
    victim = tmp_path / 'victim'
    (victim / 'data').mkdir(parents=True, mode=0o700)
    (victim / 'data' / 'secret').write_text('root only\n')
    b.write(copy_to_host_config(b, busybox, 'mkdir -p /data && echo one > /data/a',
                                f'/data/ {out}/sub/data/', 'sync = true'))
    b.run('-N')
    assert sorted(os.listdir(os.path.join(out, 'sub', 'data'))) == ['a']
    plant_link_as_nobody(out, victim)
    source = client.containers.get(f'{b.prefix}-source')
    assert source.exec_run(['sh', '-c', 'echo two > /data/b']).exit_code == 0
    result = b.run('-N', check=False)
    assert (victim / 'data' / 'secret').read_text() == 'root only\n', \
        'the sync removed through the planted link'
    assert sorted(os.listdir(victim / 'data')) == ['secret']
    line = assert_one_error(result.stdout + result.stderr)
    assert line.startswith('Error: out: option ') and 'sub' in line, line


# -- an https gate whose server sends it elsewhere ------------------------------------------
class _Redirecting(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a redirect to ``self.server.location``."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(302)
        self.send_header('Location', self.server.location)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


class _Plain(http.server.BaseHTTPRequestHandler):
    """Answers 200 over plain HTTP: what anyone on the way could answer."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header('Content-Length', '6')
        self.end_headers()
        self.wfile.write(b'ready\n')
        self.server.asked = True

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serving(server: http.server.HTTPServer):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_an_https_gate_follows_no_redirect_to_plain_http(buildout, busybox, client, pki):
    """The https gate's certificate is checked; a redirect to http:// would let its answer
    come over a connection nobody checks: the gate fails at once, in one line."""
    b = buildout
    plain = http.server.HTTPServer(('127.0.0.1', 0), _Plain)
    plain.asked = False
    secure = http.server.HTTPServer(('127.0.0.1', 0), _Redirecting)
    secure.location = f'http://127.0.0.1:{plain.server_address[1]}/'
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / 'rogue-server.pem', pki / 'rogue-server-key.pem')
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    gate = f'https://127.0.0.1:{secure.server_address[1]}/ 200'
    with serving(plain), serving(secure):
        b.write(buildout_config(['web'], sleeper('web', busybox, name=f'{b.prefix}-web',
                                                 wait_for=gate, wait_timeout='20s',
                                                 wait_for_tls_ca=str(pki / 'rogue-ca.pem'))))
        started = time.monotonic()
        out = b.fail()
        assert time.monotonic() - started < 18, 'failed at once, not at the timeout'
    line = assert_one_error(out)
    assert line.startswith(f'Error: web: option wait-for: {gate}: ') and 'http://' in line, line
    assert not plain.asked, 'the gate asked the plain http server'


def test_an_http_gate_follows_no_redirect_to_another_host(buildout, busybox, client):
    """What a container answers must not send the buildout's host to an address of its
    choosing: a redirect to another host is not followed; it is the answer, judged by the
    gate's status (a gate waiting for 302 passes on it, one waiting for 200 does not)."""
    b = buildout
    elsewhere = http.server.HTTPServer(('127.0.0.2', 0), _Plain)
    elsewhere.asked = False
    sender = http.server.HTTPServer(('127.0.0.1', 0), _Redirecting)
    sender.location = f'http://127.0.0.2:{elsewhere.server_address[1]}/metadata'
    gate = f'http://127.0.0.1:{sender.server_address[1]}/'
    with serving(elsewhere), serving(sender):
        b.write(buildout_config(['web'], sleeper('web', busybox, name=f'{b.prefix}-web',
                                                 wait_for=f'{gate} 200', wait_timeout='3s')))
        line = assert_one_error(b.fail())
        assert line.startswith(f'Error: web: option wait-for: {gate} 200 did not pass'), line
        assert f'answered 302 (a redirect to {sender.location}' in line, line
        b.write(buildout_config(['web'], sleeper('web', busybox, name=f'{b.prefix}-web',
                                                 wait_for=f'{gate} 302', wait_timeout='3s')))
        out = b.run()
        assert 'Installing web.' in out.stdout, out.stdout
    assert not elsewhere.asked, 'the gate was sent to another host'


@pytest.mark.skipif(os.geteuid() != 0, reason='planting files as another user needs root')
def test_a_saved_image_is_not_written_through_a_link_another_user_put_on_its_way(
        buildout, busybox, renamable, tmp_path):
    """Every atomic host write (atomicfile: image archives, backups, checksums, records)
    reaches its directory as HostWriter does."""
    b = buildout
    out = renamable
    victim = tmp_path / 'victim'
    victim.mkdir(mode=0o700)
    b.write(cfg(f'''
        [buildout]
        parts = save

        [save]
        recipe = dockeroo_nagoya:docker.save
        name = {busybox}
        path = {out}/sub/app.tar
        '''))
    b.run('-N')
    assert os.path.getsize(os.path.join(out, 'sub', 'app.tar')) > 0
    plant_link_as_nobody(out, victim)
    result = b.run('-N', check=False)
    assert os.listdir(victim) == [], 'the image archive went through the planted link'
    line = assert_one_error(result.stdout + result.stderr)
    assert line.startswith('Error: save: ') and 'user 65534 made' in line, line


# -- a git source ------------------------------------------------------------------------
def test_a_git_source_with_a_link_leading_out_is_refused(buildout, busybox, tmp_path):
    """git writes a repository's links as they are stored: its checkout is held to the
    host's rules of links (members.IN_TARGET), as a source tarball's members are."""
    b = buildout
    repo = git_repository(tmp_path / 'repo', {'Dockerfile': DOCKERFILE.decode()})
    os.symlink('/etc', repo / 'etc')
    git('add', 'etc', cwd=repo)
    git('commit', '-q', '-m', 'link', cwd=repo)
    b.write(cfg(f'''
        [buildout]
        parts = image

        [image]
        recipe = dockeroo_nagoya:docker.build
        name = {b.prefix}/ctx
        source = git+file://{repo}#main
        build-args = BASE={busybox}
        '''))
    result = b.run('-N', check=False)
    line = assert_one_error(result.stdout + result.stderr)
    assert line.startswith('Error: image: option source:') and "'etc'" in line, line
    assert links_leading_out(b.directory / 'var' / 'sources') == []


def test_a_link_planted_at_the_lock_file_is_refused_and_its_target_untouched(buildout, tmp_path):
    """The run's lock file is opened without following a link: a link planted there (by
    whoever can write the buildout directory) would have the pid written over its target."""
    victim = tmp_path / 'victim'
    victim.write_text('precious\n')
    lock = buildout.directory / '.dockeroo-nagoya.lock'
    lock.unlink(missing_ok=True)
    lock.symlink_to(victim)
    buildout.write(f'''
        [buildout]
        parts = data

        [data]
        recipe = dockeroo_nagoya:docker.volume
        name = {buildout.prefix}-data
        ''')
    out = buildout.fail('-N')
    assert 'a link there is refused' in out and 'Traceback' not in out
    assert victim.read_text() == 'precious\n'
