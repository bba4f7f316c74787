"""Secrets a configuration gives by reference stay out of what the buildout makes and says.

An image committed or persisted from a container with an ``env-file`` keeps
none of its values; a ``source`` git ref cannot smuggle options to git; a
source URL never carries credentials (they come by reference:
``source-username`` with ``source-password-env``, or ``source-netrc``), and
those are never printed nor recorded; a failed job's printed log shows
``***`` for the values of its secrets.
"""
from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import stat
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import Iterator

import pytest

from conftest import free_port
from helpers import (run_output, assert_one_error, buildout_config, container_part, git, git_repository,
                     image_part, output, plan, sleeping_part)

pytestmark = pytest.mark.slow

PASSWORD = 'hunter2-dn-secret-7f3a'


def commit_config(b, busybox: str, env_file) -> str:
    return buildout_config(
        ['app', 'saved', 'persisted'],
        sleeping_part(b, 'app', busybox, env='MODE=one', env_file=str(env_file),
                      volumes=f'{b.prefix}-data:/data',
                      script='echo "made in $MODE" > /state.txt && echo kept > /data/f'),
        image_part(b, 'saved', 'docker.commit', container='${app:name}'),
        image_part(b, 'persisted', 'docker.persist', container='${app:name}'))


def docker_history(image: str) -> str:
    return subprocess.run(['docker', 'history', '--no-trunc', image], check=True,
                          capture_output=True, text=True).stdout


def test_commit_and_persist_leave_the_env_file_values_out_of_the_image(buildout, busybox, client,
                                                                        tmp_path):
    b = buildout
    env_file = tmp_path / 'app.env'
    env_file.write_text(f'DB_PASSWORD={PASSWORD}\nDB_USER=app\n')
    b.write(commit_config(b, busybox, env_file))
    b.run('-N')
    container = client.api.inspect_container(f'{b.prefix}-app')
    assert f'DB_PASSWORD={PASSWORD}' in container['Config']['Env']  # the container has it
    for image in (f'{b.prefix}/saved:latest', f'{b.prefix}/persisted:latest'):
        attrs = client.api.inspect_image(image)
        env = attrs['Config']['Env']
        # The env-file's variables are reset; the run's own env and the image's stay.
        assert 'DB_PASSWORD=' in env and 'DB_USER=' in env and 'MODE=one' in env, env
        assert PASSWORD not in json.dumps(attrs), image
        assert PASSWORD not in docker_history(image), image
        assert run_output(client, image, 'cat /state.txt') == b'made in one\n'
    assert run_output(client, f'{b.prefix}/persisted:latest', 'cat /data/f') == b'kept\n'
    # A rerun commits nothing again.
    out = b.run('-N')
    assert 'committing' not in out.stdout + out.stderr


# -- a git ref cannot smuggle an option to git -------------------------------------------
def test_a_git_ref_that_is_a_git_option_is_refused_and_runs_nothing(buildout, busybox, tmp_path):
    b = buildout
    repo = git_repository(tmp_path / 'repo', {'Dockerfile': f'FROM {busybox}\n'})
    marker = tmp_path / 'ran'
    b.write(buildout_config(['app'], image_part(
        b, 'app', 'docker.build',
        source=f'git+file://{repo}#--upload-pack=touch {marker} && git-upload-pack')))
    planned = plan(b)
    assert planned.returncode not in (0, 2), output(planned)
    assert_one_error(output(planned), 'app: option source: expected a ref that does not start '
                                      'with -')
    assert not marker.exists()
    assert_one_error(b.fail('-N'), 'app: option source: expected a ref that does not start with -')
    assert not marker.exists()
    assert not b.owned('images')


# -- credentials for sources, by reference ------------------------------------------------
def test_a_source_url_with_credentials_is_refused_in_one_line(buildout):
    b = buildout
    b.write(buildout_config(['app'], image_part(
        b, 'app', 'docker.build',
        source=f'https://builder:{PASSWORD}@127.0.0.1:{free_port()}/ctx.tar')))
    for said in (b.fail('-N'), output(plan(b))):
        assert_one_error(said, 'app: option source: expected a URL without credentials',
                         'source-username', 'source-password-env', 'source-netrc')
        assert PASSWORD not in said
    assert not (b.directory / '.installed.cfg').exists() or \
        PASSWORD not in (b.directory / '.installed.cfg').read_text()


class BasicAuthFiles(http.server.SimpleHTTPRequestHandler):
    """Files of a directory, to a client with the right basic-auth header only."""

    expected = ''

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.headers.get('Authorization') != self.expected:
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="sources"')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        """Quiet."""


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An http server on 127.0.0.1 that serves ``root`` to user builder with PASSWORD."""
    root = tmp_path / 'served'
    root.mkdir()
    token = base64.b64encode(f'builder:{PASSWORD}'.encode()).decode()
    handler = type('Handler', (BasicAuthFiles,), {'expected': f'Basic {token}'})
    server = http.server.ThreadingHTTPServer(('127.0.0.1', free_port()),
                                             functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}', root
    finally:
        server.shutdown()
        server.server_close()


def _context_tar(path: Path, dockerfile: str) -> None:
    with tarfile.open(path, 'w') as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo('Dockerfile')
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))


def test_sources_behind_basic_auth_take_credentials_by_reference_and_keep_them_nowhere(
        buildout, busybox, client, auth_server, tmp_path):
    b = buildout
    url, root = auth_server
    _context_tar(root / 'ctx.tar', f'FROM {busybox}\nRUN echo tarball > /made\n')
    work = git_repository(tmp_path / 'work', {'Dockerfile': f'FROM {busybox}\nRUN echo git > /made\n'})
    git('clone', '-q', '--bare', str(work), str(root / 'repo.git'), cwd=tmp_path)
    git('update-server-info', cwd=root / 'repo.git')  # git's dumb http protocol
    netrc_file = tmp_path / 'netrc'
    netrc_file.write_text(f'machine 127.0.0.1 login builder password {PASSWORD}\n')
    b.write(buildout_config(
        ['tarball', 'git', 'netrc'],
        image_part(b, 'tarball', 'docker.build', source=f'{url}/ctx.tar',
                   source_username='builder', source_password_env='DN_SOURCE_PASSWORD'),
        image_part(b, 'git', 'docker.build', source=f'{url}/repo.git#main',
                   source_username='builder', source_password_env='DN_SOURCE_PASSWORD'),
        image_part(b, 'netrc', 'docker.build', source=f'git+{url}/repo.git#main',
                   source_netrc=str(netrc_file))))
    said = output(b.run('-N', env={'DN_SOURCE_PASSWORD': PASSWORD}))
    assert PASSWORD not in said
    for name, made in (('tarball', b'tarball\n'), ('git', b'git\n'), ('netrc', b'git\n')):
        assert run_output(client, f'{b.prefix}/{name}', 'cat /made') == made
    assert PASSWORD not in (b.directory / '.installed.cfg').read_text()
    sources = b.directory / 'var' / 'sources'
    records = list(sources.glob('*.json'))  # one per git source
    assert len(records) == 2
    for record in records:
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
    for path in sources.rglob('*'):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    planned = plan(b, env={'DN_SOURCE_PASSWORD': PASSWORD})
    assert planned.returncode == 0, output(planned)
    assert PASSWORD not in output(planned)
    # Without the password the server says no, in one line that does not guess at it.
    b.write((b.directory / 'buildout.cfg').read_text().replace('ctx.tar', 'ctx.tar?again'))
    said = b.fail('-N', env={'DN_SOURCE_PASSWORD': 'wrong'})
    assert_one_error(said, 'tarball: option source: cannot download', 'Unauthorized')
    assert 'wrong' not in said


# -- a failed job's printed log masks its secrets -----------------------------------------
def test_a_failed_job_prints_its_log_with_its_secrets_masked(buildout, busybox, tmp_path):
    b = buildout
    env_file = tmp_path / 'job.env'
    env_file.write_text(f'DB_PASSWORD={PASSWORD}\n')
    b.write(buildout_config(['job'], container_part(
        b, 'job', busybox, job='true', env_file=str(env_file),
        command='sh -c \'echo "connecting with $DB_PASSWORD"; exit 3\'')))
    said = b.fail('-N')
    assert_one_error(said, f'job: job {b.prefix}-job exited with code 3',
                     'connecting with ***')
    assert PASSWORD not in said
    kept = b.directory / 'var' / 'log' / f'{b.prefix}-job.log'
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and PASSWORD in kept.read_text()
