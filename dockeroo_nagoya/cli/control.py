"""The control script of a ``docker.system`` part: ``bin/<part> COMMAND``.

docker_meta gave every unit of nagoya commands to start, stop, back up and
restore it; this is that, for a system described by its part in
``parts/<part>/system.json`` (written at every buildout run; names, order,
gates and volumes, never an environment value).

Commands act in dependency order, members that do not depend on each other
at the same time: ``start`` (and its gates), ``stop`` (dependents first,
each with its stop-timeout), ``restart``, ``status``, ``logs``, ``exec``,
``backup``, ``restore``, ``remove`` (containers) and ``purge`` (containers,
volumes and the images this buildout built for them).

The members of a ``docker.control`` part may be on several engines (each
part's own ``docker-host``, ``machine-name`` or TLS options, else the
``[buildout]`` ones): each member carries its engine in the description,
each engine gets one client, connected the first time a command needs it,
and a command checks that every engine it needs answers before it acts.
``status`` then has an ENGINE column (``default``: the control part's own
engine, that is the ``[buildout]`` one; else the URL or Docker context).

Exit codes a shell script can rely on: 0 done, 1 failed (one line on stderr
says why), 2 usage error (also: ``purge`` with no terminal to ask on and no
``--yes``), 3 ``status`` found a container not running or not healthy, or an
engine that does not answer while another does (its members are not listed;
one line on stderr per such engine; when no engine answers, 1). The command
of ``exec`` passes its own exit code through.

This module is the command line: every generated script, of this version or an
earlier one, calls :func:`main`. The description is written by
:mod:`.controlscript`; the system and what each command does to it are
:mod:`.controlsystem`'s.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import sys
from typing import Any, Callable

import zc.buildout

from ..mechanisms import logstreams
from ..model import options as opt
from ..engine.driver import engine_errors
from ..mechanisms.controlsystem import ControlError, FAILED, NOT_UP, OK, System, USAGE, utc_now


# -- commands ---------------------------------------------------------------------------------
def cmd_start(system: System, args: argparse.Namespace) -> int:
    system.start()
    return OK


def cmd_stop(system: System, args: argparse.Namespace) -> int:
    system.stop()
    return OK


def cmd_restart(system: System, args: argparse.Namespace) -> int:
    system.stop()
    system.start()
    return OK


def cmd_status(system: System, args: argparse.Namespace) -> int:
    """The table of the members of every engine that answers; one line on stderr for each
    engine that does not (an engine down is not all up: 3), a failure when none answers."""
    engines = system.engines()
    unreachable = system.reach(engines)
    if unreachable and len(unreachable) == len(engines):
        raise ControlError('; '.join(unreachable.values()))
    rows, healthy = system.status_rows(unreachable)
    table = [system.status_header(), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    sys.stdout.flush()
    for failure in unreachable.values():
        print(failure, file=sys.stderr, flush=True)
    return OK if healthy and not unreachable else NOT_UP


def cmd_logs(system: System, args: argparse.Namespace) -> int:
    tail: Any = args.tail if args.tail is not None else 'all'
    out = sys.stdout.buffer
    if args.name:
        member = system.member(args.name)
        api = system.engine_of(member).api
        with engine_errors(system.part, member.engine):
            if system.inspect(member) is None:
                raise ControlError(f'{system.part}: container {member.container} does not exist')
            if args.follow:
                for chunk in api.logs(member.container, stream=True, follow=True, tail=tail,
                                      since=args.since):
                    out.write(chunk)
                    out.flush()
            else:
                out.write(api.logs(member.container, tail=tail, since=args.since))
        return OK
    engines = system.engines()
    system.need(engines)
    sources = []
    for member in system.members.values():
        with engine_errors(system.part, member.engine):
            if system.inspect(member) is not None:
                sources.append((system.run.engine(member.engine, system.part), member.container))
    with engine_errors(system.part, engines[0] if len(engines) == 1 else None):
        for container, line in logstreams.interleaved(sources, tail, args.since, args.follow):
            out.write(container.encode() + b' | ' + line)
            if args.follow:
                out.flush()
    out.flush()
    return OK


def cmd_exec(system: System, args: argparse.Namespace) -> int:
    member = system.member(args.name)
    if not args.command:
        raise ControlError(f'{system.part}: exec needs a command after the NAME', USAGE)
    api = system.engine_of(member).api
    with engine_errors(system.part, member.engine):
        details = system.inspect(member)
        if details is None or not details['State'].get('Running'):
            raise ControlError(f'{system.part}: container {member.container} is not running')
        exec_id = api.exec_create(member.container, args.command, stdout=True, stderr=True,
                                  user=args.user or '', workdir=args.workdir)['Id']
        for out, err in api.exec_start(exec_id, stream=True, demux=True):
            for data, stream in ((out, sys.stdout), (err, sys.stderr)):
                if data:
                    stream.buffer.write(data)
                    stream.buffer.flush()
        code = api.exec_inspect(exec_id).get('ExitCode')
    return code if code is not None else FAILED


def cmd_backup(system: System, args: argparse.Namespace) -> int:
    system.backup(args.directory)
    return OK


def cmd_restore(system: System, args: argparse.Namespace) -> int:
    system.restore(args.directory, args.force)
    return OK


def cmd_remove(system: System, args: argparse.Namespace) -> int:
    system.remove()
    return OK


def cmd_purge(system: System, args: argparse.Namespace) -> int:
    system.need(system.engines())   # every engine answers, or nothing is removed
    images = system.built_images()
    what = ', '.join(
        [f'containers {" ".join(m.container for m in system.members.values())}'] +
        ([f'volumes {" ".join(map(system.placed_name, system.volumes))}']
         if system.volumes else []) +
        ([f'images {" ".join(map(system.placed_name, images))}'] if images else []))
    if not args.yes:
        if not sys.stdin.isatty():
            raise ControlError(f'{system.part}: purge removes {what}; with no terminal to ask '
                               f'on, give --yes', USAGE)
        answer = input(f'purge removes {what}; the data in those volumes is lost. '
                       f'Type yes to go on: ')
        if answer.strip().lower() != 'yes':
            raise ControlError(f'{system.part}: purge cancelled, nothing removed')
    problems = system.purge(images)
    if problems:
        raise ControlError(f'{system.part}: purge left {"; ".join(problems)}')
    return OK


def parser_for(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=f'Control the containers of the system {prog}, in dependency '
        f'order, each on its engine. Exit codes: 0 done, 1 failed, 2 usage error, 3 status '
        f'not all up (or an engine does not answer).')
    parser.add_argument('-q', '--quiet', action='store_true', help='print only errors')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    # The options every command takes, after it as well as before it (bin/sys stop -q).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('-q', '--quiet', action='store_true', default=argparse.SUPPRESS,
                        help='print only errors')

    def command(name: str, function: Callable[[System, argparse.Namespace], int],
                text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text, parents=[common])
        sub.set_defaults(function=function)
        return sub

    command('start', cmd_start, 'start the stopped members in dependency order and wait for '
            'their gates')
    command('stop', cmd_stop, 'stop the members, dependents first, each with its stop-timeout')
    command('restart', cmd_restart, 'stop, then start')
    command('status', cmd_status, 'a table of container (and engine, for members on several '
            'engines), state, health, image, uptime and published ports; exit code 3 when a '
            'member is not running, or not healthy, or an engine does not answer (one line '
            'each on stderr; 1 when none answers)')
    logs = command('logs', cmd_logs, 'the log of one member, or of all of them interleaved '
                   'by time with the container name before each line')
    logs.add_argument('name', nargs='?', metavar='NAME', help='member (section or container name)')
    logs.add_argument('-n', '--tail', type=_count, metavar='N', help='only the last N lines')
    logs.add_argument('-f', '--follow', action='store_true', help='keep printing new lines')
    logs.add_argument('--since', type=logs_since, metavar='WHEN',
                      help='only lines from WHEN on: a duration back from now (10m, 1h30m) or a '
                      'time (2026-01-31T12:00:00, UTC unless it says)')
    run = command('exec', cmd_exec, 'run a command in a running member; exits with its code')
    run.add_argument('-u', '--user', help='user to run it as')
    run.add_argument('-w', '--workdir', help='directory to run it in')
    run.add_argument('name', metavar='NAME', help='member (section or container name)')
    run.add_argument('command', nargs=argparse.REMAINDER, metavar='CMD', help='command and '
                     'arguments')
    backup = command('backup', cmd_backup, 'archive every named volume with a manifest; the '
                     'members that write to a volume are paused during its copy')
    backup.add_argument('directory', nargs='?', metavar='DIR',
                        help='where to write (default: a new directory under the part\'s '
                        'backup-directory)')
    restore = command('restore', cmd_restore, 'check every archive against the manifest, then '
                      'put the volumes back with the members that use them stopped')
    restore.add_argument('directory', nargs='?', metavar='DIR',
                         help='a backup (default: the newest in the backup-directory)')
    restore.add_argument('--force', action='store_true',
                         help='write over volumes that are not empty (files not in the backup '
                         'stay)')
    command('remove', cmd_remove, 'remove the containers (volumes and images stay)')
    purge = command('purge', cmd_purge, 'remove the containers, the named volumes and the '
                    'images this buildout built for them; asks first')
    purge.add_argument('-y', '--yes', action='store_true', help='do not ask')
    return parser


def main(description: str, argv: list[str], prog: str = 'system') -> int:
    """Run one command; return the exit code."""
    args = parser_for(prog).parse_args(argv)
    _log_to_terminal(logging.WARNING if args.quiet else logging.INFO)
    try:
        system = System.load(description)
        if args.quiet:
            system.say = lambda text: None  # type: ignore[method-assign]
        return args.function(system, args)
    except ControlError as exc:
        _error(prog, str(exc))
        return exc.code
    except zc.buildout.UserError as exc:
        _error(prog, str(exc))
        return FAILED
    except KeyboardInterrupt:
        _error(prog, 'interrupted')
        return 130


def _error(prog: str, message: str) -> None:
    """The first line of a message (a log tail is for the buildout's output)."""
    first = message.strip().splitlines()[0] if message.strip() else 'failed'
    first = first.removeprefix(f'{prog}: ')
    print(f'{prog}: error: {first}', file=sys.stderr, flush=True)


def _log_to_terminal(level: int) -> None:
    """Progress (gates that passed) on stdout, warnings on stderr."""
    root = logging.getLogger()
    root.setLevel(level)
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    out.setFormatter(logging.Formatter('%(message)s'))
    err.setFormatter(_PartFormatter('%(message)s'))
    for handler in (out, err):
        root.addHandler(handler)


class _PartFormatter(logging.Formatter):
    """A warning of a part's logger starts with the part's name, as buildout prints it
    (``web: docker-tls-verify = false: ...``); the script's own lines as they are."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.name == 'root' or record.name.startswith('dockeroo_nagoya'):
            return text
        return f'{record.name}: {text}'


#: ``--since``'s durations: up to ten years back (a time is taken for further back).
SINCE = opt.duration_up_to(3650 * 24 * 3600)


def logs_since(raw: str) -> datetime.datetime:
    """``--since``: a duration back from now, or a time (UTC unless it has an offset)."""
    try:
        return utc_now() - datetime.timedelta(seconds=SINCE(raw))
    except opt.Invalid:
        pass
    try:
        when = datetime.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f'a duration such as 10m or a time such as '
                                         f'2026-01-31T12:00:00, not {raw!r}') from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def _count(raw: str) -> int:
    try:
        return opt.integer(0, 10 ** 9)(raw)
    except opt.Invalid as exc:
        raise argparse.ArgumentTypeError(f'a number of lines: {exc}, not {raw!r}') from None


__all__ = ['main', 'cmd_backup', 'cmd_exec', 'cmd_logs', 'cmd_purge', 'cmd_remove', 'cmd_restart',
           'cmd_restore', 'cmd_start', 'cmd_status', 'cmd_stop', 'logs_since', 'parser_for']
