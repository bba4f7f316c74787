"""One container's options: the table docker.run and a system's members share, its parsers,
and the spec that checks how they go together (:class:`ContainerSpec`)."""
from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
from typing import TYPE_CHECKING, Any

from . import copying, readfiles
from ..run import identities
from ..model.dependencies import link_line, volumes_from_line
from ..model import options as opt
from . import probes
from ..engine.driver import Engine, identity_hash
from .callbacks import Callbacks, EVENTS

if TYPE_CHECKING:
    from ..run.runstate import Run


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


__all__ = ['TABLE', 'ContainerSpec', 'take_toji_aliases', 'read_env_file', 'callback_line',
           'capabilities', 'command_line', 'healthcheck_test', 'port_line', 'restart_policy',
           'volume_line']
