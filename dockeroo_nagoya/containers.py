"""Containers: options to a spec, a spec to an identity, an identity to a plan, a plan to acts.

Shared by every recipe that runs containers (``docker.run`` has one per
part; a system recipe has many). The steps, as docker compose does them:

1. :data:`TABLE` parses one container's options; :meth:`ContainerSpec.from_values`
   checks how they go together.
2. :meth:`Runner.identity` hashes the options that need a new container,
   plus what they point at, read now: the image's id (a rebuilt image makes a
   new identity), the content of ``env-file`` (never stored, only hashed)
   and of ``layout``. The hash is the ``io.dockeroo-nagoya.identity`` label;
   a short hash per option goes in ``io.dockeroo-nagoya.inputs`` so that a
   recreate can say which option changed.
3. :func:`plan` compares that with the container found in the buildout's one
   labelled listing (no request per container on a rerun) and decides:
   keep, create, recreate or start, with the reason it logs.
4. :meth:`Runner.converge` acts: create (callbacks, layout), start, then a
   job is waited for, a service is gated (:mod:`.probes`) and its script run.

Jobs (``job = true``) keep their exited container as the record that they
ran: exit code 0 with an unchanged identity means done, so a rerun does not
run the job again, and ``docker logs`` still shows what it did. Removing
that container (by hand or with ``docker container prune``) runs the job
again, as does any other exit code.

A new container whose setup fails (layout, start, script or a callback) is
removed again, so the next run starts clean; one that fails a readiness gate
is kept for inspection and gated again on the next run. A run killed half-way
is finished by the next: a container never started is made anew, as is one
with a script when the run that made it did not finish (the script runs once
its gates passed), and a job still running is waited for. Named and anonymous
volumes are never removed; a recreated container gets its predecessor's
anonymous volumes back at the same paths.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import math
import os
import re
import shlex
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

import docker.errors
import docker.models.containers
import requests.exceptions
import zc.buildout

from . import copying, decisions, identities, readfiles
from . import options as opt
from . import probes, stopsignal
from .secrets import masked, secret_env_label, write_private
from .engine import LABEL_IDENTITY, LABEL_INPUTS, Engine, identity_hash, labels_of, owner_of

if TYPE_CHECKING:
    from .recipe import Recipe
    from .runstate import Run

EVENTS = ('pre-create', 'post-create', 'pre-start', 'post-start',
          'pre-stop', 'post-stop', 'pre-remove', 'post-remove')

#: nagoya toji's spellings, taken when the dockeroo name is not given.
TOJI_ALIASES = {
    'working_dir': 'working-dir',
    'volumes_from': 'volumes-from',
    'envs': 'env',
    'add_capabilities': 'cap-add',
    'drop_capabilities': 'cap-drop',
    'run_once': 'run-once',
    'commands': 'command',
}

DEFAULT_NETWORKS = ('bridge', 'host', 'none', 'default')
RESTART_RE = re.compile(r'^(no|always|unless-stopped|on-failure)(?::([0-9]+))?$', re.ASCII)
#: The most restarts on-failure may ask for: what the engine's API takes (a 32-bit int).
MAX_RETRIES = 2 ** 31 - 1
CAPABILITY_RE = re.compile(r'^(?:CAP_)?[A-Z_]+$|^ALL$')
EXITED_RE = re.compile(r'^Exited \((-?\d+)\)')
HEX64_RE = re.compile(r'^[0-9a-f]{64}$')
JOB_WAIT_CHUNK = 30.0

log = logging.getLogger('dockeroo_nagoya')


# -- parsers for one line or value ------------------------------------------
def command_line(raw: str) -> list[str] | None:
    """A command as a shell would split it (quotes, no expansion)."""
    try:
        words = shlex.split(raw)
    except ValueError as exc:
        raise opt.Invalid(f'a command with balanced quotes ({exc})') from None
    return words or None


def port_line(raw: str) -> dict[str, Any]:
    """``[IP:][HOST:]CONTAINER[/tcp|udp|sctp]``, as ``docker run -p`` takes it."""
    expected = 'ports lines [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp|sctp] with ports from 1 to 65535'
    text = raw.strip()
    text, _, proto = text.partition('/')
    proto = proto or 'tcp'
    if proto not in ('tcp', 'udp', 'sctp'):
        raise opt.Invalid(expected)
    ip = ''
    if text.startswith('['):
        ip, sep, text = text[1:].partition(']:')
        if not sep:
            raise opt.Invalid(expected)
    fields = text.split(':')
    if len(fields) == 3 and not ip:
        ip = fields.pop(0)
    if len(fields) not in (1, 2):
        raise opt.Invalid(expected)
    if ip:
        try:
            opt.ip_address(ip)
        except opt.Invalid:
            raise opt.Invalid(expected) from None
    host = fields[0] if len(fields) == 2 else ''
    try:
        container = opt.port(fields[-1])
        host_port = opt.port(host) if host else None
    except opt.Invalid:
        raise opt.Invalid(expected) from None
    return {'container': f'{container}/{proto}', 'ip': ip, 'host': host_port}


def volume_line(raw: str) -> dict[str, Any]:
    """``SOURCE:/PATH[:MODE]`` (a volume name or host path) or ``/PATH`` (anonymous)."""
    expected = ('volumes lines SOURCE:/CONTAINER/PATH[:ro|rw] (SOURCE a volume name or a host '
                'path starting with /, ./ or ~/) or /CONTAINER/PATH')
    fields = raw.strip().split(':')
    if len(fields) == 1:
        source, target, mode = None, fields[0], 'rw'
    elif len(fields) in (2, 3):
        source, target = fields[0], fields[1]
        mode = fields[2] if len(fields) == 3 else 'rw'
    else:
        raise opt.Invalid(expected)
    if not target.startswith('/'):
        raise opt.Invalid(expected)
    flags = mode.split(',')
    if not all(flag in ('ro', 'rw', 'z', 'Z', 'nocopy') for flag in flags) or \
            ('ro' in flags and 'rw' in flags):
        raise opt.Invalid(expected)
    if source is not None:
        is_path = source.startswith(('/', './', '../', '~')) or source in ('.', '..')
        if not is_path and not opt.NAME_RE.match(source):
            raise opt.Invalid(expected)
    return {'source': source, 'target': target, 'mode': mode}


def volumes_from_line(raw: str) -> str:
    """``CONTAINER[:ro|rw]`` (nagoya writes the mode, dockeroo leaves it out)."""
    name, _, mode = raw.strip().partition(':')
    if not opt.NAME_RE.match(name) or mode not in ('', 'ro', 'rw'):
        raise opt.Invalid('volumes-from lines CONTAINER[:ro|rw]')
    return f'{name}:{mode or "rw"}'


def link_line(raw: str) -> list[str]:
    """``CONTAINER[:ALIAS]``."""
    name, _, alias = raw.strip().partition(':')
    if not opt.NAME_RE.match(name) or (alias and not opt.NAME_RE.match(alias)):
        raise opt.Invalid('links lines CONTAINER[:ALIAS]')
    return [name, alias or name]


def restart_policy(raw: str) -> dict[str, Any]:
    """``no``, ``always``, ``unless-stopped`` or ``on-failure[:RETRIES]``."""
    match = RESTART_RE.match(raw.strip())
    if not match or (match.group(2) and match.group(1) != 'on-failure') or \
            int(match.group(2) or 0) > MAX_RETRIES:
        raise opt.Invalid(f'no, always, unless-stopped or on-failure[:RETRIES] (RETRIES at '
                          f'most {MAX_RETRIES})')
    return {'Name': match.group(1), 'MaximumRetryCount': int(match.group(2) or 0)}


def capabilities(raw: str) -> list[str]:
    words = raw.split()
    for word in words:
        if not CAPABILITY_RE.match(word):
            raise opt.Invalid('capability names such as NET_ADMIN or SYS_PTRACE')
    return words


def callback_line(raw: str) -> tuple[str, str]:
    """``EVENT = module:function``; toji's ``pre_start:module.function`` too."""
    text = raw.strip()
    if '=' in text:
        event, _, target = text.partition('=')
    else:
        event, _, target = text.partition(':')
        module, _, function = target.strip().rpartition('.')
        target = f'{module}:{function}' if module else target
    event, target = event.strip().replace('_', '-'), target.strip()
    module, _, function = target.partition(':')
    if event not in EVENTS or not module or not function.isidentifier() or \
            not all(part.isidentifier() for part in module.split('.')):
        raise opt.Invalid(f'callbacks lines EVENT = module:function with EVENT one of '
                          f'{", ".join(EVENTS)}')
    return event, target


def healthcheck_test(raw: str) -> list[str]:
    """A shell command for the engine's healthcheck, or ``none`` to turn the image's off."""
    text = raw.strip()
    if not text:
        raise opt.Invalid('a shell command, or none')
    return ['NONE'] if text.lower() == 'none' else ['CMD-SHELL', text]


TABLE: tuple[opt.Option, ...] = (
    # dockeroo's own example names the container with ``container``.
    opt.Option('name', opt.name, identity=False, aliases=('container',),
               doc=("The container's name (default: the part's name); dockeroo's ``container`` too."
                    ' ``${part:name}`` for parts that link to it.')),
    opt.Option('image', opt.image_reference, required=True,
               doc=('The image to run: a local image; make it with a ``docker.build``, '
                    '``docker.pull`` or another image part and reference ``${part:image}``.')),
    opt.Option('command', command_line, doc='The command, split as a shell would.'),
    opt.Option('entrypoint', command_line, doc='The entrypoint, split as a shell would.'),
    opt.Option('env', opt.key_values, default='', doc='Environment: ``KEY=VALUE`` lines.'),
    opt.Option('env-file', opt.path, identity=False,
               secret=True,  # its content is hashed instead
               doc=('A file of ``KEY=VALUE`` lines, read at each run; only its hash is kept '
                    '(a secret by reference).')),
    opt.Option('ports', opt.each(port_line), default='',
               doc='Published ports: ``[IP:][HOST:]CONTAINER[/udp]`` lines.'),
    opt.Option('volumes', opt.each(volume_line), default='',
               doc=("``SOURCE:/PATH[:ro]`` lines, SOURCE a volume's name or a host path "
                    "(``/``, ``./``, ``~/``), or ``/PATH`` alone for an anonymous volume.")),
    opt.Option('volumes-from', opt.each(volumes_from_line), default='',
               doc='``CONTAINER[:ro|rw]`` lines.'),
    opt.Option('links', opt.each(link_line), default='',
               doc=('``CONTAINER[:ALIAS]`` lines: a container on the engine or one a part of this '
                    'buildout makes, else one error line before anything acts.')),
    opt.Option('networks', opt.each(opt.name), default='',
               doc='Networks to join, one name a line (the first one at creation).'),
    opt.Option('network-aliases', opt.each(opt.name), default='',
               doc="The container's aliases, on each user-defined network."),
    opt.Option('hostname', opt.text, doc="The container's host name."),
    opt.Option('user', opt.text, doc='The user (``NAME``, ``UID[:GID]``) the command runs as.'),
    opt.Option('working-dir', opt.text, doc='The working directory of the command.'),
    opt.Option('tty', opt.boolean, default='false', doc='Allocate a terminal.'),
    opt.Option('init', opt.boolean, default='false',
               doc="Run the engine's init as PID 1 (it forwards signals and reaps zombies)."),
    opt.Option('privileged', opt.boolean, default='false', doc='A privileged container.'),
    opt.Option('cap-add', capabilities, default='',
               doc='Capabilities to add, e.g. ``NET_ADMIN``.'),
    opt.Option('cap-drop', capabilities, default='', doc='Capabilities to drop.'),
    opt.Option('labels', opt.key_values, default='',
               doc='``KEY=VALUE`` labels, beside the ownership labels.'),
    opt.Option('healthcheck', healthcheck_test,
               doc=("The engine's health check: a shell command, or ``none`` to turn off the "
                    "image's.")),
    opt.Option('healthcheck-interval', opt.duration, default='1s',
               doc='Time between two health checks (1s, so ``wait-for = healthy`` is quick).'),
    opt.Option('healthcheck-timeout', opt.duration, default='10s',
               doc='Time one health check may take.'),
    opt.Option('healthcheck-retries', opt.integer(1, opt.MAX_REPLICAS), default='3',
               doc='Failed checks in a row that make the container unhealthy.'),
    opt.Option('healthcheck-start-period', opt.duration, default='0',
               doc='Time after the start during which failures do not count.'),
    opt.Option('layout', opt.existing_directory, identity=False,
               doc=('A host directory laid over ``/`` before the first start (owners root, modes '
                    'kept); its content is part of the identity.')),  # its content is hashed
    opt.Option('script', opt.text,
               doc='Shell script run once in each new container, after its gates passed.'),
    opt.Option('script-shell', opt.text, default='/bin/sh', doc='The shell that runs ``script``.'),
    opt.Option('script-user', opt.text,
               doc="The user that runs ``script`` (default: the container's)."),
    opt.Option('job', opt.boolean, default='false',
               doc=("Run to completion (toji's ``detach = no``); a non-zero exit fails the part; a "
                    'job that succeeded runs again only when its identity changes.')),
    # toji's run_once: started once; later runs leave it as it is unless it changed.
    opt.Option('run-once', opt.boolean, default='false', identity=False,
               doc=('Start the container when it is made, and never again by later runs (nor by '
                    '``bin/PART start``) once it stopped, until its identity changes.')),
    opt.Option('start', opt.boolean, default='true', identity=False,
               doc='``false`` only creates the container.'),
    opt.Option('restart', restart_policy, identity=False,
               doc=('Restart policy: ``no``, ``always``, ``unless-stopped`` or ``on-failure[:N]``; '
                    'changed in place.')),
    opt.Option('stop-timeout', opt.duration, default='10', identity=False,
               doc=('Time a stop waits before SIGKILL (not waited when PID 1 never sees the '
                    'signal).')),
    opt.Option('wait-for', probes.parse_gates, default='', identity=False,
               doc=('Readiness gates, one a line: ``tcp:PORT``, ``http(s)://... [STATUS] [REGEX]``,'
                    ' ``exec:COMMAND``, ``log:REGEX`` or ``healthy``.')),
    opt.Option('wait-for-tls-verify', opt.boolean, default='true', identity=False,
               doc=('``false`` turns off the certificate check of ``https`` gates (warned on '
                    'every run).')),
    opt.Option('wait-for-tls-ca', opt.existing_file, identity=False,
               doc=('A CA file that ``https`` gates check the certificate against (default: '
                    "the system's trust).")),
    opt.Option('wait-timeout', opt.duration, identity=False,
               doc='How long the gates may take (default 120s).'),
    opt.Option('callbacks', opt.each(callback_line), default='', identity=False,
               doc=('``EVENT = module:function`` lines for ``pre-``/``post-`` ``create``, '
                    '``start``, ``stop``, ``remove``.')),
    opt.Option('keep', opt.boolean, default='false', identity=False,
               doc='Leave the container when the part is removed.'),
)

#: How long gates may take together when wait-timeout is not set.
DEFAULT_WAIT_TIMEOUT = 120.0


def take_toji_aliases(options: Any, part: str = '') -> None:
    """Copy toji's underscored option names to ours, so its configurations read as they are.

    toji's ``detach = no`` (wait for the container to finish) is ``job = true``.
    """
    for alias, name in TOJI_ALIASES.items():
        if alias in options and name not in options:
            options[name] = options[alias]
    if 'detach' in options and 'job' not in options:
        try:
            options['job'] = 'false' if opt.boolean(options['detach']) else 'true'
        except opt.Invalid as exc:
            raise opt.invalid(part or 'a member', 'detach', f'{exc}: toji\'s detach = no is '
                              f'job = true', options['detach']) from None


# -- the spec -------------------------------------------------------------------
@dataclasses.dataclass
class ContainerSpec:
    """One container's parsed options, checked together, plus the layout's digest."""

    part: str
    name: str
    directory: str
    values: dict[str, Any]
    layout_digest: str | None = None

    @classmethod
    def from_values(cls, part: str, name: str, values: dict[str, Any],
                    directory: str, run: Run | None = None) -> ContainerSpec:
        values['wait-for'] = probes.trusting(values['wait-for'], values['wait-for-tls-verify'],
                                             values['wait-for-tls-ca'], part, run)
        spec = cls(part, name, directory, values)
        spec.check()
        spec.check_callbacks()
        if values['layout']:
            try:
                spec.layout_digest = copying.digest(copying.layout_members(values['layout']))
            except OSError as exc:
                raise opt.invalid(part, 'layout', f'a directory this user can read all of '
                                  f'({exc.strerror}: {exc.filename})', values['layout']) from None
        return spec

    def check(self) -> None:
        """Options that do not go together, said as one line each."""
        values, part = self.values, self.part
        if values['job']:
            for option in ('wait-for', 'script'):
                if values[option]:
                    raise opt.invalid(part, option, 'nothing for a job (job = true runs the '
                                      'container to completion; gates and scripts are for services)',
                                      self.raw(option))
            if not values['start']:
                raise opt.invalid(part, 'start', 'true for a job (job = true starts it to run it)',
                                  'false')
            restart = values['restart']
            if restart and restart['Name'] != 'no':
                raise opt.invalid(part, 'restart', 'no for a job (job = true)', self.raw('restart'))
        restart = values['restart']
        if values['run-once'] and restart and restart['Name'] != 'no':
            raise opt.invalid(part, 'restart', 'no with run-once (run_once: started once, '
                              'never again)', self.raw('restart'))
        if values['script'] and not values['start']:
            raise opt.invalid(part, 'script', 'start = true (a script runs in the started '
                              'container)', values['script'])
        networks = values['networks']
        if len(networks) > 1 and any(n in ('host', 'none') for n in networks):
            raise opt.invalid(part, 'networks', 'host or none alone, not with other networks',
                              ' '.join(networks))
        if values['network-aliases'] and not self.user_networks:
            raise opt.invalid(part, 'network-aliases', 'a user-defined network in networks '
                              '(the default bridge has no aliases)', ' '.join(values['network-aliases']))
        if values['env-file']:
            read_env_file(part, values['env-file'])  # a bad file is said before anything acts
        if values['wait-for'] and values['wait-timeout'] == 0:
            raise opt.invalid(part, 'wait-timeout', 'a duration above 0', '0')

    def raw(self, option: str) -> str:
        value = self.values.get(option)
        if isinstance(value, list):
            return ' '.join(getattr(v, 'text', str(v)) for v in value)
        return str(value)

    @property
    def user_networks(self) -> list[str]:
        return [n for n in self.values['networks'] if n not in DEFAULT_NETWORKS]

    @property
    def job(self) -> bool:
        return bool(self.values['job'])

    @property
    def stop_timeout(self) -> int:
        return int(math.ceil(self.values['stop-timeout']))

    def callbacks(self) -> Callbacks:
        return Callbacks(self.part, self.directory, self.values['callbacks'])

    def binds(self) -> list[dict[str, Any]]:
        """Named volumes and host paths (made absolute against the buildout)."""
        found = []
        for volume in self.values['volumes']:
            source = volume['source']
            if source is None:
                continue
            if source.startswith(('.', '~')):
                source = os.path.normpath(os.path.join(self.directory, os.path.expanduser(source)))
            found.append({**volume, 'source': source})
        return found

    def identity_values(self, image_id: str, env_file_digest: str | None) -> dict[str, Any]:
        """What a new container is needed for, with what it points at resolved now."""
        values = {o.name: self.values[o.name] for o in TABLE if o.identity}
        values.pop('name', None)
        if not values['healthcheck']:
            for key in ('healthcheck-interval', 'healthcheck-timeout', 'healthcheck-retries',
                        'healthcheck-start-period'):
                values.pop(key)
        values['image-id'] = image_id
        values['env-file'] = env_file_digest
        values['layout'] = self.layout_digest
        return {key: value for key, value in values.items() if value not in (None, '', [], {})}

    def check_image(self, engine: Engine) -> None:
        """Refuse, before anything acts, an image that is neither on the engine nor made
        by a part of this buildout (the configuration alone shows it)."""
        image = self.values['image']
        if identities.maker_of(engine.run, engine.config, image) is not None or \
                engine.image_id(image):
            return
        raise opt.invalid(self.part, 'image', 'an image on the Docker engine or made by a part '
                          'of this buildout (docker.build, docker.pull, ...: reference it as '
                          '${part:image} so that buildout makes it first)', image)

    def check_links(self, engine: Engine, system: bool = False) -> None:
        """Refuse, before anything acts, a link to a container that is neither on the
        engine nor kept by a part of this buildout (for a member of a system, its other
        members: :meth:`.SystemRecipe._resolve` named them by container already)."""
        for target, _ in self.values['links']:
            if identities.will_have_container(engine.run, engine.config, target):
                continue
            if any(f'/{target}' in (listed.get('Names') or [])
                   for listed in engine.owned('containers', self.directory)):
                continue
            if engine.inspect('containers', target) is not None:
                continue
            member = ', a member of this system' if system else ''
            raise opt.invalid(self.part, 'links', f'a container on the Docker engine{member} or '
                              f'one a part of this buildout makes (reference it as '
                              f'${{part:name}} so that buildout makes it first)', target)

    def check_callbacks(self) -> None:
        """Import every callback's module and find its function before anything acts."""
        callbacks = self.callbacks()
        for event, target in self.values['callbacks']:
            callbacks.resolve(event, target)

    def configured_identity(self, engine: Engine) -> str:
        """What the configuration says this container is, before anything acts: its
        options with its image as :func:`.identities.image_term` sees it (for a part
        that saves the container as an image, :mod:`.identities`)."""
        env_file = self.values['env-file']
        env_file_digest = identity_hash(read_env_file(self.part, env_file)) if env_file else None
        term = identities.image_term(engine, self.directory, self.values['image'])
        return identity_hash(self.identity_values(term, env_file_digest))


# -- identity and plan ---------------------------------------------------------------
def option_hashes(values: Mapping[str, Any]) -> dict[str, str]:
    """A short hash per identity option, to say later which one changed."""
    return {key: identity_hash(value)[:8] for key, value in sorted(values.items())}


def encode_hashes(hashes: Mapping[str, str]) -> str:
    return json.dumps(dict(hashes), sort_keys=True, separators=(',', ':'))


def decode_hashes(text: str | None) -> dict[str, str] | None:
    try:
        found = json.loads(text or '')
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def changed_inputs(current: Mapping[str, Any], hashes: Mapping[str, str]) -> list[str] | None:
    """The identity options whose per-option hash differs from the container's label
    (``None``: the label cannot say); ``image-id`` only when ``image`` did not change."""
    before = decode_hashes(labels_of(dict(current)).get(LABEL_INPUTS))
    if before is None:
        return None
    changed = sorted(key for key in set(before) | set(hashes) if before.get(key) != hashes.get(key))
    return [key for key in changed if key != 'image-id' or 'image' not in changed]


def what_changed(current: Mapping[str, Any], hashes: Mapping[str, str]) -> str:
    """``env changed``, ``image rebuilt``…, from the per-option label."""
    changed = changed_inputs(current, hashes)
    if changed == ['image-id']:
        return 'its image changed (rebuilt or pulled anew)'
    return ', '.join(f'{key} changed' for key in changed or ()) or 'its identity changed'


def exit_code(current: Mapping[str, Any]) -> int | None:
    """The exit code of a listed container, from its status text."""
    match = EXITED_RE.match(current.get('Status') or '')
    return int(match.group(1)) if match else None


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to do with one container, and why (for the log)."""

    action: str  # keep, create, recreate, start, wait (for a job still running)
    reason: str
    current: Mapping[str, Any] | None = None
    #: The identity and per-option hashes the container is to have (set by Runner.decide).
    identity: str = ''
    hashes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: (before, after) of the restart policy when a kept container changes it in place.
    restart: tuple[str, str] | None = None


def plan(spec: ContainerSpec, current: Mapping[str, Any] | None, identity: str,
         hashes: Mapping[str, str], expected: bool) -> Plan:
    """Decide before acting: ``expected`` says the container was installed before."""
    if current is None:
        return Plan('create', 'it was removed' if expected else '')
    if labels_of(dict(current)).get(LABEL_IDENTITY) != identity:
        return Plan('recreate', what_changed(current, hashes), current)
    state = current.get('State')
    if spec.values['run-once'] and state == 'exited' and not spec.job:
        return Plan('keep', 'it runs once (run-once): it was started before', current)
    if spec.job:
        code = exit_code(current)
        if state == 'exited' and code == 0:
            return Plan('keep', 'the job already ran', current)
        if state == 'exited':
            return Plan('recreate', f'its last run exited with {code}', current)
        if state == 'running':  # an interrupted run started it: wait for it, never run it twice
            return Plan('wait', 'its run is still going', current)
        return Plan('recreate', f'its last run did not finish (it is {state})', current)
    if state == 'created' and spec.values['start']:  # its layout or start was interrupted
        return Plan('recreate', 'its setup did not finish (it was never started)', current)
    if spec.values['script'] and not expected:  # the run that made it did not record it
        return Plan('recreate', 'its script may not have run (the run that made it did not '
                    'finish)', current)
    if state in ('running', 'paused', 'restarting') or not spec.values['start']:
        return Plan('keep', 'it is up to date', current)
    if state == 'exited':
        return Plan('start', f'it was stopped (exited with {exit_code(current)})', current)
    if state == 'created':
        return Plan('start', 'it was created but not started', current)
    return Plan('recreate', f'it is {state}', current)


# -- callbacks -------------------------------------------------------------------
class CallbackFailed(zc.buildout.UserError):
    """A user's callback raised; the message names it."""


class Callbacks:
    """nagoya's callbacks: ``EVENT = module:function``, called with the container.

    The buildout directory is importable. The function gets the SDK's
    container object (``docker.models.containers.Container``); for
    ``pre-create`` that object has no id yet, only ``Name`` and ``Config``.
    """

    def __init__(self, part: str, directory: str, lines: list[tuple[str, str]]) -> None:
        self.part = part
        self.directory = directory
        self.lines = lines

    def __bool__(self) -> bool:
        return bool(self.lines)

    def wanted(self, event: str) -> bool:
        return any(line_event == event for line_event, _ in self.lines)

    def fire(self, event: str, container: Callable[[], docker.models.containers.Container]) -> None:
        """Call the event's functions in order; ``container`` makes the object when needed."""
        targets = [target for line_event, target in self.lines if line_event == event]
        if not targets:
            return
        model = container()
        for target in targets:
            function = self.resolve(event, target)
            try:
                function(model)
            except Exception as exc:  # noqa: BLE001 - user code: any failure fails the part
                raise CallbackFailed(
                    f'{self.part}: callback {event} = {target} failed on {model.name}: '
                    f'{type(exc).__name__}: {exc}') from exc

    def resolve(self, event: str, target: str) -> Callable[[Any], Any]:
        """The function ``target`` names; a module that cannot be imported, or that has no
        such function, is one line naming the part and the option."""
        module_name, _, function_name = target.partition(':')
        if self.directory not in sys.path:
            sys.path.insert(0, self.directory)
        line = f'{event} = {target}'
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - import runs user code
            reason = (str(exc).splitlines() or [''])[0]
            error = opt.invalid(self.part, 'callbacks', 'a module that can be imported (from '
                                'the buildout directory or the Python path)', line)
            raise CallbackFailed(f'{error} ({type(exc).__name__}: {reason})') from exc
        function = getattr(module, function_name, None)
        if not callable(function):
            error = opt.invalid(self.part, 'callbacks', f'a module with a function '
                                f'{function_name}', line)
            raise CallbackFailed(f'{error} ({module_name} has none)')
        return function


# -- acting on one container -----------------------------------------------------------
class JobFailed(zc.buildout.UserError):
    """A job exited with another code than 0, or did not finish in time."""


class Runner:
    """Brings one container of a recipe to its spec (one runner per container).

    A recipe with several containers (a system) gives each runner the engine
    of the thread it runs in and the labels that say which member it is;
    ``spec.part`` is then the name errors use (``system: member db``), while
    the ownership labels keep the recipe's part.
    """

    def __init__(self, recipe: Recipe, spec: ContainerSpec, engine: Engine | None = None,
                 labels: Mapping[str, str] | None = None) -> None:
        self.recipe = recipe
        self.engine: Engine = engine or recipe.engine
        self.spec = spec
        self.log: logging.Logger = recipe.log
        self.callbacks = spec.callbacks()
        self.env: dict[str, str] = {}
        #: The names in :attr:`env` whose values come from env-file (secrets).
        self.secret_names: set[str] = set()
        self.extra_labels: dict[str, str] = dict(labels or {})
        #: A new container made by :meth:`create_ahead`, still to be brought up.
        self.ahead: str | None = None

    # -- finding and identity -----------------------------------------------------
    def find(self) -> dict[str, Any] | None:
        """The container of this name from the shared listing; refuse one of another owner."""
        name = self.spec.name
        for listed in self.engine.owned('containers', self.recipe.directory):
            if f'/{name}' in (listed.get('Names') or []):
                _, part = owner_of(listed)
                if part != self.recipe.name:
                    raise zc.buildout.UserError(
                        f'{self.spec.part}: container {name} belongs to part {part} of this '
                        f'buildout: give one of them another name')
                return listed
        found = self.engine.inspect('containers', name)
        if found is not None:
            self.recipe.check_ours(found, 'container', name)
        return None

    def identity(self, extra: Mapping[str, Any] | None = None) -> tuple[str, dict[str, str]]:
        """(identity hash, per-option hashes), with the image and env-file read now.

        ``extra`` adds what else needs a new container (a system adds the ids
        of the members this one links to or takes volumes from).
        """
        spec = self.spec
        image_id = self.engine.image_id(spec.values['image'])
        if image_id is None:
            maker = identities.maker_of(self.engine.run, self.engine.config, spec.values['image'])
            if maker is not None:  # bin/buildout install PART, on a buildout not installed yet
                raise zc.buildout.UserError(
                    f'{spec.part}: option image: no image {spec.values["image"]} yet: part '
                    f'{maker} makes it and is not installed: run bin/buildout (or bin/buildout '
                    f'install {maker} {spec.part.split(":")[0]})')
            raise zc.buildout.UserError(
                f'{spec.part}: option image: no image {spec.values["image"]} on the Docker '
                f'engine: build it with a docker.build part or fetch it with a docker.pull part')
        env_file_digest = None
        if spec.values['env-file']:
            file_env = read_env_file(spec.part, spec.values['env-file'])
            env_file_digest = identity_hash(file_env)
            self.env = {**file_env, **spec.values['env']}
            self.secret_names = set(file_env) - set(spec.values['env'])
        else:
            self.env = dict(spec.values['env'])
            self.secret_names = set()
        values = spec.identity_values(image_id, env_file_digest)
        values.update({key: value for key, value in (extra or {}).items() if value})
        return identity_hash(values), option_hashes(values)

    def labels(self, identity: str, hashes: Mapping[str, str]) -> dict[str, str]:
        user = {**self.spec.values['labels'], LABEL_INPUTS: encode_hashes(hashes)}
        # The names of the variables from env-file: a commit resets them, a log masks them.
        return {**self.recipe.labels(identity, user), **secret_env_label(self.secret_names),
                **self.extra_labels}

    # -- the plan, carried out ------------------------------------------------------
    def converge(self, fresh: bool, expected: bool | None = None,
                 extra_identity: Mapping[str, Any] | None = None) -> str:
        """Make the container match the spec; return its id.

        ``fresh`` is an install (first, or after a change or a failure): then a
        kept container also gets its in-place changes and its gates checked.
        ``expected`` says the container was installed before (by default: the
        part was); ``extra_identity`` goes to :meth:`identity`.
        """
        if self.ahead is not None:
            container, self.ahead = self.ahead, None
            self._bring_up(container, new=True)
            return container
        step = self.decide(fresh, expected, extra_identity)
        current, identity, hashes = step.current, step.identity, step.hashes
        name = self.spec.name
        if step.action == 'keep':
            assert current is not None
            self.log.debug('%s: %s', name, step.reason)
            if step.restart is not None:
                self.log.info('updating %s in place: restart changed', self.spec.name)
                self._update_in_place(current['Id'])
            if fresh:
                if current.get('State') == 'running' and self.spec.values['wait-for']:
                    self._wait_ready(current['Id'])
            return current['Id']
        if step.action == 'start':
            assert current is not None
            self.log.info('starting %s: %s', name, step.reason)
            self._bring_up(current['Id'], new=False)
            return current['Id']
        if step.action == 'wait':  # never started again: it may end while we look
            assert current is not None
            self.log.info('waiting for job %s: %s', name, step.reason)
            self._await_job(current['Id'])
            return current['Id']
        if step.action == 'recreate':
            assert current is not None
            self.log.info('recreating %s: %s', name, step.reason)
            if self.spec.job:  # a job's old container is only the record of its last run
                inherited = self._anonymous_volumes(current['Id'])
                self.remove(current['Id'])
                container = self._create(self.labels(identity, hashes), inherited)
                self._bring_up(container, new=True)
                return container
            return self._replace(current, self.labels(identity, hashes))
        self._say_creating(step)
        container = self._create(self.labels(identity, hashes), [])
        self._bring_up(container, new=True)
        return container

    def decide(self, fresh: bool, expected: bool | None = None,
               extra_identity: Mapping[str, Any] | None = None) -> Plan:
        """What :meth:`converge` will do, and why: the one decision for a run and a plan.

        Reads only: the shared listing, the image's id, the env-file, and for a
        kept container of an install its restart policy."""
        current = self.find()
        if current is not None and identities.planned_removal(self.engine.run,
                                                              self.engine.config, self.spec.name):
            current = None  # a part before this one removes it (see Runner.change)
        identity, hashes = self.identity(extra_identity)
        if expected is None:
            expected = self.recipe.installed_before(fresh)
        step = plan(self.spec, current, identity, hashes, expected=expected)
        restart = None
        if step.action == 'keep' and fresh and current is not None:
            restart = self._restart_change(current['Id'])
        return dataclasses.replace(step, identity=identity, hashes=hashes, restart=restart)

    def change(self, step: Plan) -> decisions.Change:
        """A decision as data: the action in the plan's words, with its reasons."""
        current, name = step.current, self.spec.name
        found = current['Id'] if current is not None else None
        removed = identities.planned_removal(self.engine.run, self.engine.config, name)
        if step.action == 'create' and removed is not None:
            return decisions.Change('container', name, 'recreate', [decisions.state(
                f'removed first: {removed[1]}')], removed[0])
        if step.action == 'keep':
            if step.restart is not None:
                return decisions.Change('container', name, 'update', [decisions.Reason.of(
                    'restart', *step.restart)], found)
            return decisions.Change('container', name, 'none', [], found)
        if step.action == 'wait':
            return decisions.Change('container', name, 'none', [decisions.state(step.reason)], found)
        reasons: list[decisions.Reason] = []
        if step.action == 'recreate' and current is not None and \
                labels_of(dict(current)).get(LABEL_IDENTITY) != step.identity:
            changed = changed_inputs(current, step.hashes)
            for key in changed or ():
                if key == 'image-id':
                    why = identities.planned_change(self.engine.run, self.engine.config,
                                                    self.spec.values['image'])
                    reasons.append(decisions.Reason(f'image {self.spec.values["image"]}',
                                                    follows=why, note=None if why else
                                                    'rebuilt or pulled anew'))
                else:
                    reasons.append(decisions.Reason.of(key))
            if not reasons:
                reasons.append(decisions.state(step.reason))
        elif step.reason:
            reasons.append(decisions.state(step.reason))
        return decisions.Change('container', name, step.action, reasons, found)

    def _replace(self, current: Mapping[str, Any], labels: dict[str, str]) -> str:
        """Replace a container so that a refused change never leaves the user without it.

        The new container is created first, under a temporary name: a create the
        engine refuses (a capability, network or container it does not know)
        leaves the old one running, untouched. Then the old one is stopped (the
        two never run at once: they may share host ports, aliases or a
        database's files), the new one started and gated; only then is the old
        one removed and the new one given the name. When a step fails, the new
        container goes and the old one is started again (same id, gates passed),
        and the error says which option the engine refused when that is known.
        """
        spec, old = self.spec, current['Id']
        was_running = current.get('State') in ('running', 'restarting', 'paused')
        temporary = next_name(spec.name)
        leftover = self.engine.inspect('containers', temporary)
        if leftover is not None and self.recipe.is_ours(leftover):  # an interrupted replacement
            self._discard(leftover['Id'], quiet=True)
        inherited = self._anonymous_volumes(old)
        try:
            container = self._create(labels, inherited, name=temporary)
        except docker.errors.APIError as exc:
            raise refused(spec, exc, 'kept') from None
        self.stop(old)
        try:
            self._bring_up(container, new=True, discard=False)
        except BaseException as exc:
            tail = probes.log_tail(self.engine, container, spec.name) \
                if not isinstance(exc, (probes.NotReady, zc.buildout.UserError)) else ''
            if 'wrote nothing to its log' in tail or 'no log of' in tail:
                tail = ''
            self._discard(container, quiet=True)
            if was_running:
                self.log.info('starting the previous %s again: its replacement failed', spec.name)
                self.engine.api.start(old)
                self.engine.forget('containers')
                self._wait_ready(old)
            if isinstance(exc, docker.errors.APIError):
                raise refused(spec, exc, 'running again' if was_running else 'kept',
                              tail) from None
            if isinstance(exc, zc.buildout.UserError):
                kept = ('the previous container is running again' if was_running
                        else 'the previous container is kept')
                raise type(exc)(f'{exc}\n({kept}; the new one was removed)') from None
            raise
        self.remove(old)
        self.engine.api.rename(container, spec.name)
        self.engine.forget('containers')
        return container

    def create_ahead(self, expected: bool, extra_identity: Mapping[str, Any] | None = None) -> None:
        """Create a container that does not exist yet before its turn to start.

        Creating needs nothing else to be up (starting does): a system creates
        its new members at the same time, and each member's turn is then only
        its start. Members with create callbacks are created in their turn.
        """
        if self.callbacks.wanted('pre-create') or self.callbacks.wanted('post-create'):
            return
        if self.find() is not None:
            return
        identity, hashes = self.identity(extra_identity)
        self._say_creating(plan(self.spec, None, identity, hashes, expected=expected))
        self.ahead = self._create(self.labels(identity, hashes), [])

    def _say_creating(self, step: Plan) -> None:
        name = self.spec.name
        self.log.info('creating %s%s', f'{name} again: ' if step.reason else name, step.reason)

    def discard_ahead(self) -> None:
        """A container made ahead whose turn never came (something before it failed)."""
        if self.ahead is not None:
            container, self.ahead = self.ahead, None
            self._discard(container)

    def _create(self, labels: dict[str, str], inherited: list[str], name: str | None = None) -> str:
        kwargs = create_arguments(self.engine, self.spec, self.env, labels, inherited)
        if name is not None:
            kwargs['name'] = name
        self.callbacks.fire('pre-create', lambda: self._planned_model(kwargs))
        container = self.engine.api.create_container(**kwargs)['Id']
        self.engine.forget('containers')
        try:
            for network in self.spec.user_networks[1:]:
                self.engine.api.connect_container_to_network(
                    container, network, aliases=self.spec.values['network-aliases'] or None)
            self.callbacks.fire('post-create', lambda: self._model(container))
        except Exception:
            self._discard(container)
            raise
        return container

    def _bring_up(self, container: str, new: bool, discard: bool = True) -> None:
        """Layout, start, then wait for a job or gate a service and run its script.

        A new container whose setup fails is removed again unless ``discard`` is
        false (the caller does it, with more to undo)."""
        spec = self.spec
        try:
            if new and spec.values['layout']:
                members = copying.layout_members(spec.values['layout'])
                copying.write_container(self.engine, container, members)
            if not spec.values['start']:
                return
            self.callbacks.fire('pre-start', lambda: self._model(container))
            self.engine.api.start(container)
            self.engine.forget('containers')
            if spec.job:
                self._await_job(container)
            else:
                self._wait_ready(container)
                if new and spec.values['script']:
                    self._run_script(container)
            self.callbacks.fire('post-start', lambda: self._model(container))
        except (probes.NotReady, JobFailed):
            raise
        except Exception:
            if new and discard:
                self._discard(container)
            raise

    def _wait_ready(self, container: str) -> None:
        gates = self.spec.values['wait-for']
        if gates:
            timeout = self.spec.values['wait-timeout'] or DEFAULT_WAIT_TIMEOUT
            probes.wait_until_ready(self.engine, container, self.spec.name, gates, timeout,
                                    self.spec.part, self.log)

    def _await_job(self, container: str) -> None:
        """Wait for the job to exit; fail with its code and log tail unless it is 0."""
        spec = self.spec
        self.log.info('running job %s', spec.name)
        started = time.monotonic()
        limit = spec.values['wait-timeout']
        while True:
            chunk = JOB_WAIT_CHUNK if limit is None else \
                max(0.1, min(JOB_WAIT_CHUNK, started + limit - time.monotonic()))
            try:
                code = self.engine.api.wait(container, timeout=chunk)['StatusCode']
                break
            except requests.exceptions.ConnectionError:
                # The SDK reports a wait that outlasted its timeout this way; a gone
                # engine fails the inspect below with its own message.
                self.engine.api.inspect_container(container)
            if limit is not None and time.monotonic() - started >= limit:
                self.stop(container)
                raise self._job_failed(container, f'did not finish within {limit:g}s '
                                                  f'(wait-timeout); it was stopped')
        if code != 0:
            raise self._job_failed(container, f'exited with code {code}')
        self.log.info('job %s done in %.1fs', spec.name, time.monotonic() - started)

    def _job_failed(self, container: str, what: str) -> JobFailed:
        """The failure of a job, said with its last log lines; its container removed.

        Buildout forgets a part whose install failed, so nothing would remove the
        container once the part leaves the configuration (when no other part of
        the buildout is left, no code of this package runs at all). Its whole log
        is kept in ``var/log/NAME.log`` instead (mode 0600: a job's output may be
        secret); the next run runs the job again."""
        spec = self.spec
        tail = probes.log_tail(self.engine, container, spec.name)
        path = os.path.join(self.recipe.directory, 'var', 'log', f'{spec.name}.log')
        kept = ''
        try:
            log = self.engine.api.logs(container, stdout=True, stderr=True, timestamps=True)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_private(path, log if isinstance(log, bytes) else str(log).encode())
            kept = f'; its whole log is in {os.path.relpath(path, self.recipe.directory)}'
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            self.log.warning('the log of job %s is not kept: %s', spec.name, exc)
        self._discard(container, quiet=True)
        self.log.info('removed job %s: its run failed%s', spec.name, kept)
        return JobFailed(f'{spec.part}: job {spec.name} {what}{tail}')

    def _run_script(self, container: str) -> None:
        spec = self.spec
        self.log.info('running the script of %s', spec.name)
        command = [spec.values['script-shell'], '-c', spec.values['script']]
        code, output = probes.run_in(self.engine, container, command, spec.values['script-user'])
        output = masked(output, (self.env[name] for name in self.secret_names))
        for line in output.splitlines():
            self.log.debug('%s script: %s', spec.name, line)
        if code != 0:
            tail = '\n'.join(f'  {line}' for line in output.rstrip().splitlines()[-probes.LOG_TAIL:])
            raise zc.buildout.UserError(
                f'{spec.part}: option script: exited with code {code} in {spec.name}'
                + (f'; its output:\n{tail}' if tail else ''))

    def _restart_change(self, container: str) -> tuple[str, str] | None:
        """(before, after) of the restart policy when the live container's differs."""
        wanted = self.spec.values['restart'] or {'Name': 'no', 'MaximumRetryCount': 0}
        details = self.engine.api.inspect_container(container)
        current = (details.get('HostConfig') or {}).get('RestartPolicy') or {}
        if (current.get('Name') or 'no') != wanted['Name'] or \
                int(current.get('MaximumRetryCount') or 0) != wanted['MaximumRetryCount']:
            def said(policy: Mapping[str, Any]) -> str:
                retries = int(policy.get('MaximumRetryCount') or 0)
                return (policy.get('Name') or 'no') + (f':{retries}' if retries else '')
            return said(current), said(wanted)
        return None

    def _update_in_place(self, container: str) -> None:
        """Options the engine changes on a live container (the restart policy)."""
        wanted = self.spec.values['restart'] or {'Name': 'no', 'MaximumRetryCount': 0}
        self.engine.api.update_container(container, restart_policy=wanted)

    def _anonymous_volumes(self, container: str) -> list[str]:
        """The old container's anonymous volumes, to mount at the same paths in the new one."""
        details = self.engine.inspect('containers', container) or {}
        taken = {bind['target'] for bind in self.spec.binds()}
        return [f'{mount["Name"]}:{mount["Destination"]}'
                for mount in details.get('Mounts') or []
                if mount.get('Type') == 'volume' and HEX64_RE.match(mount.get('Name') or '')
                and mount['Destination'] not in taken]

    # -- stopping and removing --------------------------------------------------------
    def stop(self, container: str) -> None:
        stop(self.engine, container, self.spec.stop_timeout, self.callbacks)

    def remove(self, container: str) -> None:
        remove(self.engine, container, self.spec.stop_timeout, self.callbacks)

    def _discard(self, container: str, quiet: bool = False) -> None:
        """Remove a container whose setup failed, without callbacks (its setup never finished)."""
        if not quiet:
            self.log.info('removing %s again: its setup failed', self.spec.name)
        try:
            self.engine.api.remove_container(container, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            self.log.warning('could not remove %s: %s', self.spec.name, exc.explanation or exc)
        self.engine.forget('containers')

    # -- objects for callbacks ------------------------------------------------------
    def _model(self, container: str) -> docker.models.containers.Container:
        return self.engine.client.containers.get(container)

    def _planned_model(self, kwargs: dict[str, Any]) -> docker.models.containers.Container:
        attrs = {'Id': None, 'Name': f'/{self.spec.name}',
                 'Config': {k: v for k, v in kwargs.items() if k != 'host_config'}}
        return docker.models.containers.Container(attrs=attrs, client=self.engine.client,
                                                  collection=self.engine.client.containers)


# -- replacing ---------------------------------------------------------------------------
#: What the engine says when it refuses an option, and the option.
REFUSALS = (
    (re.compile(r'capabilit', re.I), 'cap-add'),
    (re.compile(r'network .* not found|no such network', re.I), 'networks'),
    (re.compile(r'volumes?[ -]from|no such container', re.I), 'volumes-from'),
    (re.compile(r'could not get container for|link', re.I), 'links'),
    (re.compile(r'unable to find user|no users found|no matching entries in passwd', re.I), 'user'),
    (re.compile(r'port is already allocated|address already in use|bind for', re.I), 'ports'),
    (re.compile(r'invalid mount|bind source path|invalid volume', re.I), 'volumes'),
    (re.compile(r'executable file not found|no such file or directory', re.I), 'command'),
)


def next_name(name: str) -> str:
    """The temporary name of a container's replacement until it took over."""
    return f'{name[:240]}.replacement'


def refused(spec: ContainerSpec, exc: docker.errors.APIError, old: str,
            tail: str = '') -> zc.buildout.UserError:
    """One line for a change the engine refused, naming the option when it can be told."""
    said = ' '.join(str(exc.explanation or exc).split())
    option = next((name for pattern, name in REFUSALS if pattern.search(said)), None)
    where = f'option {option}: ' if option else ''
    return zc.buildout.UserError(
        f'{spec.part}: {where}the engine refused the new container {spec.name}: {said} '
        f'(the previous container is {old}){tail}')


# -- module-level acts (also for the uninstall hook, which has no recipe) -----------------
def stop(engine: Engine, container: str, timeout: int, callbacks: Callbacks) -> None:
    """Stop a running container, honouring its stop-timeout, with the stop callbacks."""
    details = engine.inspect('containers', container)
    if details is None or not details['State'].get('Running'):
        return
    callbacks.fire('pre-stop', lambda: engine.client.containers.get(container))
    engine.api.stop(container, timeout=_grace(details, timeout))
    callbacks.fire('post-stop', lambda: engine.client.containers.get(container))


def end_processes(engine: Engine, container: str, timeout: int, callbacks: Callbacks) -> bool:
    """End a container's processes as ``stop`` would; return once its PID 1 has exited.

    The engine's own clean-up after an exit (the task, the mounts, the network
    endpoint) takes most of a ``docker stop``; what depends on the container
    needs only its processes gone. So a teardown in dependency order calls this,
    lets the next container go, and leaves :func:`remove` (which then waits for
    the engine) to run alongside. ``False`` when it did nothing: the engine is
    not on this host, the container is not running, or stop callbacks want to
    see a whole stop.
    """
    if callbacks.wanted('pre-stop') or callbacks.wanted('post-stop'):
        return False
    details = engine.inspect('containers', container)
    if details is None:
        return False
    fd = stopsignal.watch(details)
    if fd is None:
        return False
    try:
        policy = ((details.get('HostConfig') or {}).get('RestartPolicy') or {}).get('Name')
        if policy and policy != 'no':  # else the engine would start it again after the signal
            engine.api.update_container(container, restart_policy={'Name': 'no'})
        timeout = _grace(details, timeout)
        if timeout > 0:
            _kill(engine, container, (details.get('Config') or {}).get('StopSignal') or 'SIGTERM')
            if stopsignal.exited(fd, timeout):
                return True
        _kill(engine, container, 'SIGKILL')
        return stopsignal.exited(fd, 60)
    finally:
        os.close(fd)


def _grace(details: Mapping[str, Any], timeout: int) -> int:
    """The stop-timeout to give: none when PID 1 can never see the stop signal (the
    grace period would end in the same SIGKILL, only later: see stopsignal)."""
    unseen = stopsignal.ignored(details) if timeout > 0 else None
    if not unseen:
        return timeout
    log.info('%s: its main process ignores %s: stopping it at once, not after '
             'stop-timeout (%ds)', str(details.get('Name') or details.get('Id')).lstrip('/'),
             unseen, timeout)
    return 0


def _kill(engine: Engine, container: str, signal_name: str) -> None:
    try:
        engine.api.kill(container, signal=signal_name)
    except docker.errors.APIError as exc:
        if exc.status_code not in (404, 409):  # gone, or not running any more: done
            raise


def remove(engine: Engine, container: str, timeout: int, callbacks: Callbacks) -> None:
    """Stop and remove a container; its volumes stay (named ones, anonymous ones too).

    After :func:`end_processes` the stop only waits for the engine to finish its clean-up
    after the exit: a forced removal racing that clean-up may be what leaves the engine
    counting endpoints of removed containers (moby/moby#17217), so it is not skipped.
    """
    stop(engine, container, timeout, callbacks)
    model: list[docker.models.containers.Container] = []

    def fetched() -> docker.models.containers.Container:
        if not model:
            model.append(engine.client.containers.get(container))
        return model[0]

    callbacks.fire('pre-remove', fetched)
    if callbacks.wanted('post-remove'):
        fetched()
    try:
        engine.api.remove_container(container, v=False, force=True)
    except docker.errors.NotFound:
        pass
    engine.forget('containers')
    callbacks.fire('post-remove', fetched)


def comes_after(options: Mapping[str, str]) -> frozenset[str]:
    """The container names a part's recorded options say it comes after (unreadable lines
    name nothing: they were checked when the part was installed); ``{index}`` stands for
    each replica's number."""
    try:
        replicas = opt.integer(1, opt.MAX_REPLICAS)(options.get('replicas') or '')
    except opt.Invalid:
        replicas = 0
    found: set[str] = set()
    for index in range(1, replicas + 1) if replicas else (None,):
        def value(option: str) -> str:
            raw = options.get(option) or ''
            return raw if index is None else raw.replace('{index}', str(index))
        found.update(opt.words(value('depends')))
        for option, parse in (('links', link_line), ('volumes-from', volumes_from_line)):
            for line in value(option).splitlines():
                with contextlib.suppress(opt.Invalid):
                    if line.strip():
                        found.add(parse(line.strip())[0] if option == 'links'
                                  else parse(line.strip()).split(':')[0])
    return frozenset(found)


def teardown(engine: Engine, directory: str, part: str, options: Mapping[str, str],
             log: logging.Logger,
             defer: Callable[[Callable[[], None]], None] | None = None) -> None:
    """Remove the containers of a part that is gone (unless ``keep``), with its callbacks.

    With ``defer``, it returns once the containers' processes have ended
    (:func:`end_processes`) and hands the rest of each removal to ``defer``.
    """
    try:
        values = opt.parse_options(part, options, tuple(
            o for o in TABLE if o.name in ('keep', 'stop-timeout', 'callbacks')))
    except zc.buildout.UserError as exc:
        log.warning('%s; removing its containers with the defaults', exc)
        values = {'keep': False, 'stop-timeout': 10, 'callbacks': []}
    callbacks = Callbacks(part, directory, values['callbacks'])
    for container in engine.part_objects('containers', directory, part):
        name = container['Names'][0].lstrip('/')
        if values['keep']:
            log.info('keeping container %s (keep = true)', name)
            continue
        timeout = int(math.ceil(values['stop-timeout']))

        def finish(container_id: str = container['Id'], name: str = name) -> None:
            remove(engine, container_id, timeout, callbacks)
            log.info('removed container %s', name)

        if defer is not None and end_processes(engine, container['Id'], timeout, callbacks):
            defer(finish)
        else:
            finish()


# -- the engine's arguments --------------------------------------------------------------
def create_arguments(engine: Engine, spec: ContainerSpec, env: Mapping[str, str],
                     labels: Mapping[str, str], inherited: list[str]) -> dict[str, Any]:
    """``create_container`` keyword arguments for a spec."""
    values = spec.values
    api = engine.api
    binds = [f'{b["source"]}:{b["target"]}:{b["mode"]}' for b in spec.binds()] + inherited
    inherited_paths = {entry.split(':', 1)[1] for entry in inherited}
    anonymous = [v['target'] for v in values['volumes']
                 if v['source'] is None and v['target'] not in inherited_paths]
    port_bindings: dict[str, list[tuple[str, int | None]]] = {}
    for port in values['ports']:
        port_bindings.setdefault(port['container'], []).append((port['ip'], port['host']))
    networks = values['networks']
    host_config = api.create_host_config(
        binds=binds or None,
        port_bindings=port_bindings or None,
        links=[tuple(link) for link in values['links']] or None,
        volumes_from=values['volumes-from'] or None,
        restart_policy=values['restart'],
        cap_add=values['cap-add'] or None,
        cap_drop=values['cap-drop'] or None,
        privileged=values['privileged'],
        init=values['init'] or None,
        network_mode=networks[0] if networks else None,
    )
    networking_config = None
    if spec.user_networks and networks[0] == spec.user_networks[0]:
        networking_config = api.create_networking_config({
            networks[0]: api.create_endpoint_config(aliases=values['network-aliases'] or None)})
    healthcheck = None
    if values['healthcheck']:
        healthcheck = {'test': values['healthcheck']}
        if values['healthcheck'] != ['NONE']:
            healthcheck.update(
                interval=_nanoseconds(values['healthcheck-interval']),
                timeout=_nanoseconds(values['healthcheck-timeout']),
                retries=values['healthcheck-retries'],
                start_period=_nanoseconds(values['healthcheck-start-period']))
    return {
        'image': values['image'],
        'name': spec.name,
        'command': values['command'],
        'entrypoint': values['entrypoint'],
        'environment': dict(env) or None,
        'ports': [tuple(p.split('/')) for p in port_bindings] or None,
        'volumes': [b.split(':')[1] for b in binds] + anonymous or None,
        'hostname': values['hostname'],
        'user': values['user'],
        'working_dir': values['working-dir'],
        'tty': values['tty'],
        'labels': dict(labels),
        'healthcheck': healthcheck,
        'host_config': host_config,
        'networking_config': networking_config,
    }


def _nanoseconds(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def read_env_file(part: str, path: str) -> dict[str, str]:
    """``KEY=VALUE`` lines as ``docker run --env-file`` reads them; a bare KEY comes from our environment."""
    text = readfiles.read_text(part, 'env-file', path)
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        key, sep, value = line.partition('=')
        key = key.strip()
        if not opt.KEY_RE.match(key):
            # The line is not shown: it may hold a secret.
            raise opt.invalid(part, 'env-file', f'KEY=VALUE lines (line {number} of {path} is not one)')
        if sep:
            env[key] = value
        elif key in os.environ:
            env[key] = os.environ[key]
    return env


__all__ = ['TABLE', 'ContainerSpec', 'Runner', 'Plan', 'plan', 'teardown', 'stop', 'remove',
           'Callbacks', 'CallbackFailed', 'JobFailed', 'take_toji_aliases', 'read_env_file']
