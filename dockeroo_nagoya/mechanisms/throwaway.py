"""Throwaway containers: run a script in an image, maybe commit the result, always remove.

Builders and assemble steps need a container only for the length of a
``with`` block. The container is created at once (so files can be put in
before anything runs), started on the first script with its own shell
reading an open stdin (so it stays up without any helper binary), and each
script is an exec with its own user, environment and directory. A failing
script raises a ``UserError`` with its exit code and last output lines. The
container is removed when the block ends, whatever ends it (an error, a
KeyboardInterrupt). Its name has the :data:`PREFIX` and a random part, so it
never clashes with a container somebody runs, and it carries the part's
ownership labels, so a crash leaves something the part can find and remove.

With ``own_command`` the container runs its image's own command instead
(a database a build talks to, a volume container that fills its volumes),
or ``command`` when given (a program of an image that may have no shell):
:meth:`Throwaway.start` starts it, :meth:`Throwaway.wait` waits for it to
end, and a commit stops it gracefully first. ``keep_volumes`` leaves the
volumes it mounts when it is removed: those it has through ``volumes_from``
are another container's. ``links`` link it to other
containers by name (legacy links, on the default bridge, as nagoya did).

:meth:`Throwaway.commit` makes an image from the container with the image
configuration (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME)
of the image it came from plus :class:`ImageConfig`; the shell that kept the
container alive never ends up in the image.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import json
import logging
import os
import posixpath
import re
import shlex
import tarfile
import textwrap
import uuid
from typing import Any, Iterable, Iterator, Mapping, Sequence

import zc.buildout

from ..model import options as opt
from ..engine.errors import APIError, ImageNotFound, NotFound
from ..engine.driver import Engine, explain
from ..engine.labels import LABEL
from .probes import bounded

PREFIX = 'dockeroo-nagoya-tmp-'
SCRATCH_IMAGE = 'dockeroo-nagoya/helper:scratch'
#: Shells that take ``-e`` (stop at the first failing command).
POSIX_SHELLS = frozenset({'sh', 'bash', 'dash', 'ash', 'ksh', 'mksh', 'zsh'})
TAIL_LINES = 15
PORT_RE = re.compile(r'^\d{1,5}(-\d{1,5})?(/(tcp|udp|sctp))?$')


# -- the configuration an image is committed with ------------------------------------
@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """What a user sets on a made image; ``None`` or empty keeps the base image's."""

    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    expose: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    user: str | None = None
    working_dir: str | None = None
    volumes: tuple[str, ...] = ()

    def changes(self, owner_labels: Mapping[str, str]) -> list[str]:
        """Dockerfile instructions for the engine's commit and import calls."""
        said = []
        if self.entrypoint is not None:
            said.append(f'ENTRYPOINT {json.dumps(list(self.entrypoint))}')
        if self.command is not None:
            said.append(f'CMD {json.dumps(list(self.command))}')
        said += [f'ENV {key}={_quote(value)}' for key, value in self.env]
        said += [f'EXPOSE {port}' for port in self.expose]
        labels = {**dict(self.labels), **owner_labels}
        said += [f'LABEL {_quote(key)}={_quote(value)}' for key, value in labels.items()]
        if self.user is not None:
            said.append(f'USER {self.user}')
        if self.working_dir is not None:
            said.append(f'WORKDIR {self.working_dir}')
        if self.volumes:
            said.append(f'VOLUME {json.dumps(list(self.volumes))}')
        return said


def _quote(value: str) -> str:
    """A double-quoted Dockerfile word: no variable expansion, no splitting."""
    escaped = value.replace('\\', '\\\\').replace('"', '\\"').replace('$', '\\$')
    return f'"{escaped}"'


def command_line(raw: str) -> tuple[str, ...]:
    """``CMD``-style value: a JSON array, or words split as a shell would."""
    text = raw.strip()
    if text.startswith('['):
        try:
            value = json.loads(text)
        except ValueError:
            raise opt.Invalid('a JSON array of strings or a command line') from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise opt.Invalid('a JSON array of strings or a command line')
        return tuple(value)
    try:
        return tuple(shlex.split(text))
    except ValueError as exc:
        raise opt.Invalid(f'a command line with balanced quotes ({exc})') from None


def ports(raw: str) -> tuple[str, ...]:
    found = tuple(opt.words(raw))
    for port in found:
        numbers = [int(n) for n in port.split('/')[0].split('-')] if PORT_RE.match(port) else []
        if not numbers or not all(1 <= n <= 65535 for n in numbers) or numbers != sorted(numbers):
            raise opt.Invalid('ports such as 80, 8000-8010 or 53/udp (port numbers from 1 to '
                              '65535, the lower first)')
    return found


def container_paths(raw: str) -> tuple[str, ...]:
    found = tuple(opt.words(raw))
    for path in found:
        if not path.startswith('/'):
            raise opt.Invalid('absolute paths in the container')
    return found


def image_config_options(volumes: bool = True) -> tuple[opt.Option, ...]:
    """The options of a made image's configuration (``volumes`` means VOLUME here)."""
    table: tuple[opt.Option, ...] = (
        opt.Option('command', command_line, doc="The image's CMD, split as a shell would."),
        opt.Option('entrypoint', command_line,
                   doc="The image's ENTRYPOINT, split as a shell would."),
        opt.Option('env', opt.key_values, default='', doc="The image's ENV: ``KEY=VALUE`` lines."),
        opt.Option('expose', ports, default='', doc="The image's EXPOSE: ports, ``PORT[/udp]``."),
        opt.Option('labels', opt.key_values, default='',
                   doc="The image's labels: ``KEY=VALUE`` lines."),
        opt.Option('user', opt.text, doc="The image's USER."),
        opt.Option('working-dir', opt.text, doc="The image's WORKDIR."),
    )
    if volumes:
        table += (opt.Option('volumes', container_paths, default='',
                             doc="The image's VOLUME: absolute paths in the container."),)
    return table


def image_config(values: Mapping[str, Any], volumes: bool = True) -> ImageConfig:
    return ImageConfig(
        command=values['command'], entrypoint=values['entrypoint'],
        env=tuple(values['env'].items()), expose=values['expose'],
        labels=tuple(values['labels'].items()), user=values['user'],
        working_dir=values['working-dir'], volumes=values['volumes'] if volumes else ())


def script_text(raw: str) -> str:
    """A script option as written, without the indentation buildout leaves."""
    return textwrap.dedent(raw).strip('\n') + '\n'


def binds(base: str) -> opt.Parser:
    """``SOURCE:TARGET[:ro|rw]`` lines; a SOURCE with a ``/`` or ``.`` is a host path."""
    def parse(raw: str) -> tuple[str, ...]:
        found = []
        for line in opt.lines(raw):
            fields = line.split(':')
            if len(fields) not in (2, 3) or not fields[1].startswith('/') or \
                    (len(fields) == 3 and fields[2] not in ('ro', 'rw')):
                raise opt.Invalid('SOURCE:/container/path[:ro|rw] lines (SOURCE a host path '
                                  'or a volume name)')
            source = fields[0]
            if '/' in source or source.startswith('.'):
                source = os.path.normpath(os.path.join(base, os.path.expanduser(source)))
            found.append(':'.join([source, *fields[1:]]))
        return tuple(found)
    return parse


# -- images with nothing in them ------------------------------------------------
def empty_image(engine: Engine, reference: str, changes: Sequence[str] = ()) -> str:
    """``reference``, an image with an empty root and the Dockerfile ``changes``, made
    once per engine (``scratch`` itself cannot make a container). Every empty image of
    the package comes from here."""
    if engine.image_id(reference) is None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w') as tar:
            root = tarfile.TarInfo('.')
            root.type, root.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(root)
        repository, tag = reference.split(':')
        engine.api.import_image_from_data(buf.getvalue(), repository=repository, tag=tag,
                                          changes=list(changes) or None)
    return reference


def scratch_image(engine: Engine) -> str:
    """The root an assembled image with ``base-image = scratch`` starts from (no label:
    the image made from it is the user's)."""
    return empty_image(engine, SCRATCH_IMAGE)


# -- the container -------------------------------------------------------------
class ScriptFailed(zc.buildout.UserError):
    """A script or command that exited non-zero; carries its exit code and last output lines."""

    def __init__(self, message: str, code: int | None, tail: list[str]) -> None:
        super().__init__(message)
        self.code = code
        self.tail = tail


class Throwaway:
    """A container for the length of a ``with`` block; see the module's docstring."""

    def __init__(self, engine: Engine, image: str, part: str, labels: Mapping[str, str], *,
                 what: str = 'container', shell: str = '/bin/sh', binds: Iterable[str] = (),
                 volumes_from: Iterable[str] = (), privileged: bool = False,
                 links: Iterable[tuple[str, str]] = (), own_command: bool = False,
                 command: Iterable[str] | None = None, user: str | None = None,
                 keep_volumes: bool = False, env: Mapping[str, str] | None = None,
                 log: logging.Logger | None = None) -> None:
        self.engine = engine
        self.api = engine.api
        self.image = image
        self.part = part
        self.labels = dict(labels)
        self.what = what
        self.shell = shell
        self.binds = list(binds)
        self.volumes_from = list(volumes_from)
        self.privileged = privileged
        self.links = list(links)
        self.command = list(command) if command is not None else None
        self.own_command = own_command or self.command is not None
        self.user = user
        self.keep_volumes = keep_volumes
        self.env = dict(env or {})
        self.log = log or logging.getLogger(part)
        self.id: str | None = None
        self.name = PREFIX + re.sub(r'[^a-zA-Z0-9_.-]', '_', part) + '-' + uuid.uuid4().hex[:10]
        self.started = False

    def __enter__(self) -> Throwaway:
        host_config = self.api.create_host_config(
            binds=self.binds or None, volumes_from=self.volumes_from or None,
            privileged=self.privileged, links=self.links or None)
        keep_alive: dict[str, Any] = {} if self.own_command else {
            'entrypoint': [self.shell], 'command': [], 'stdin_open': True}
        if self.command:
            keep_alive = {'entrypoint': self.command[:1], 'command': self.command[1:]}
        if self.user is not None:
            keep_alive['user'] = self.user
        try:
            created = self.api.create_container(
                self.image, name=self.name, labels=self.labels, host_config=host_config,
                environment=self.env or None, **keep_alive)
        except ImageNotFound:
            raise zc.buildout.UserError(
                f'{self.part}: image {self.image} for the {self.what} does not exist') from None
        self.id = created['Id']
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove the container, also after a failure; a second call does nothing."""
        if self.id is None:
            return
        container, self.id = self.id, None
        try:
            self.api.remove_container(container, force=True, v=not self.keep_volumes)
        except NotFound:
            pass
        except APIError as exc:
            self.log.warning('throwaway container %s not removed: %s', self.name,
                             explain(exc))

    # -- files ---------------------------------------------------------------------
    def put(self, path: str, data: bytes | Iterable[bytes]) -> None:
        """Unpack a tar (bytes or a stream of chunks) at ``path`` in the container."""
        self.api.put_archive(self._id, path, data)

    def get(self, path: str) -> tuple[Iterator[bytes], dict[str, Any]]:
        """A tar stream of ``path`` in the container; ``FileNotFoundError`` when it is missing."""
        try:
            return self.api.get_archive(self._id, path)
        except NotFound:
            raise FileNotFoundError(path) from None

    def export(self) -> Iterator[bytes]:
        """The container's whole filesystem as a tar stream."""
        return self.api.export(self._id)

    # -- running ---------------------------------------------------------------------
    def start(self) -> None:
        if self.started:
            return
        try:
            self.api.start(self._id)
        except APIError as exc:
            text = _one_line(explain(exc))
            needed = f'{self.command[0]}' if self.command else f'the shell {self.shell}'
            hint = f' (it needs {needed})' if 'no such file' in text.lower() or \
                'not found' in text.lower() else ''
            raise zc.buildout.UserError(
                f'{self.part}: the {self.what} from {_short(self.image)} does not start: '
                f'{text}{hint}') from None
        self.started = True

    def wait(self, timeout: int | None = None) -> None:
        """Wait for a container that runs its own command to end; raise on a non-zero exit."""
        self.start()
        self.log.info('waiting for the %s (%s) to finish', self.what, _short(self.image))
        code = self.api.wait(self._id, timeout=timeout).get('StatusCode')
        if code != 0:
            logs = self.api.logs(self._id, stdout=True, stderr=True, tail=TAIL_LINES)
            tail = [bounded(line) for line in logs.decode('utf-8', 'replace').splitlines()
                    if line.strip()]
            if tail:
                self.log.error('last output of the %s:\n%s', self.what,
                               '\n'.join('  ' + line for line in tail))
            last = f': {tail[-1].strip()}' if tail else ''
            raise ScriptFailed(f'{self.part}: the {self.what} ({_short(self.image)}) exited with '
                               f'code {code}{_one_line(last)}', code, tail)

    def stop(self, timeout: int = 10) -> None:
        """Stop the container (SIGTERM, then SIGKILL after ``timeout``), if it runs."""
        if self.started:
            with contextlib.suppress(APIError):
                self.api.stop(self._id, timeout=timeout)
            self.api.wait(self._id, timeout=None)

    def run(self, what: str, script: str | None = None, *, command: list[str] | None = None,
            args: Iterable[str] = (), shell: str | None = None, user: str | None = None,
            env: Mapping[str, str] | None = None, workdir: str | None = None) -> list[str]:
        """Run a script (with ``shell``) or a command; its last output lines.

        Raises :class:`ScriptFailed` on a non-zero exit.
        """
        self.start()
        shell = shell or self.shell
        if command is None:
            flags = ['-e'] if posixpath.basename(shell) in POSIX_SHELLS else []
            command = [shell, *flags, '-c', script or '', what.replace(' ', '-'), *args]
        self.log.info('running %s in the %s', what, self.what)
        exec_id = self.api.exec_create(self._id, command, user=user or '',
                                       environment=dict(env or {}), workdir=workdir)['Id']
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        pending = b''
        for chunk in self.api.exec_start(exec_id, stream=True):
            pending += chunk
            *complete, pending = pending.split(b'\n')
            for raw in complete:
                self._output(raw, what, tail)
        if pending:
            self._output(pending, what, tail)
        code = self.api.exec_inspect(exec_id).get('ExitCode')
        if code != 0:
            if tail:
                self.log.error('last output of %s:\n%s', what,
                               '\n'.join('  ' + line for line in tail))
            last = f': {tail[-1].strip()}' if tail else ''
            raise ScriptFailed(
                f'{self.part}: {what} exited with code {code} in the {self.what} '
                f'({_short(self.image)}){_one_line(last)}', code, list(tail))
        return list(tail)

    def _output(self, raw: bytes, what: str, tail: collections.deque[str]) -> None:
        line = bounded(raw.decode('utf-8', 'replace').rstrip('\r'))
        if line.strip():
            tail.append(line)
            self.log.debug('%s | %s', what, line)

    def commit(self, config: ImageConfig, owner_labels: Mapping[str, str]) -> str:
        """An untagged image of the container: its image's config, then ``config``."""
        if self.started and self.own_command:
            self.stop()
        elif self.started:
            with contextlib.suppress(APIError):
                self.api.kill(self._id)
            self.api.wait(self._id, timeout=None)
        base = dict(self.api.inspect_image(self.image).get('Config') or {})
        # The keep-alive shell must not become the image's command.
        base['Entrypoint'] = base.get('Entrypoint') or []
        base['Cmd'] = base.get('Cmd') or []
        base['OpenStdin'] = False
        base['Labels'] = {key: value for key, value in (base.get('Labels') or {}).items()
                          if not key.startswith(LABEL + '.')}
        result = self.api.commit(self._id, conf=base, pause=False,
                                 changes=config.changes(owner_labels))
        return result['Id']

    @property
    def _id(self) -> str:
        if self.id is None:
            raise RuntimeError('the throwaway container is used outside its with block')
        return self.id


def _one_line(text: Any) -> str:
    return ' '.join(str(text).split())


def _short(image: str) -> str:
    """An image for a message: its name, or the start of its id."""
    return image[:19] if image.startswith('sha256:') else image
