"""``docker.command``: a ``bin`` script that runs a command inside a container.

``bin/SCRIPT ARGS`` runs ``COMMAND ARGS`` in ``container`` (as ``user``, in
``working-dir``) and exits with its exit code, so a tool that lives in an
image (a database shell, Koji's CLI) is at hand on the host without being
installed there.
"""
from __future__ import annotations

import os
import shlex
import sys
from typing import Any, Mapping

import zc.buildout

from ..model import options as opt
from ..model.decisions import Decision
from ..engine.driver import engine_errors, new_client
from ..model.engine_options import described, record
from .base import Recipe, uninstaller
from ..mechanisms.scripts import write_script


class CommandRecipe(Recipe):
    """A script in bin that execs a command in a container."""

    recipe = 'docker.command'
    kind = 'containers'
    table = (
        opt.Option('container', opt.name, required=True, doc='The container the command runs in.'),
        opt.Option('command', opt.text, required=True,
                   doc='The command (``bin/SCRIPT ARGS`` runs ``command ARGS``).'),
        opt.Option('script-name', opt.name,
                   doc="The script's name in ``bin`` (default: the part's name)."),
        opt.Option('user', opt.text, doc='The user the command runs as.'),
        opt.Option('working-dir', opt.text, doc="The command's working directory."),
    )

    def configure(self) -> None:
        try:
            self.command = shlex.split(self.values['command'])
        except ValueError as exc:
            raise opt.invalid(self.name, 'command', f'a command line ({exc})',
                              self.values['command']) from None
        self.script = os.path.join(self.buildout['buildout']['bin-directory'],
                                   self.values['script-name'] or self.name)

    def decide(self, fresh: bool) -> Decision:
        """A script, a file of the buildout (written on every run): no engine object."""
        return Decision([], fresh=fresh)

    def act(self, decision: Decision) -> list[str]:
        config = self.engine_config
        write_script(self.script, 'dockeroo_nagoya.recipes.command:run', [{
            'part': self.name, 'container': self.values['container'], 'command': self.command,
            'user': self.values['user'], 'working-dir': self.values['working-dir'],
            'engine': record(config)}],
            f'Runs its arguments in {self.values["container"]} (the docker.command part '
            f'{self.name}, made by buildout).')
        return [self.script]

    @classmethod
    def uninstall(cls, name: str, options: Mapping[str, str]) -> None:
        """Nothing to do on the engine, so no connection either."""


def run(config: dict[str, Any], argv: list[str]) -> int:
    """The script's body: exec the command with ``argv`` appended, stream its output."""
    try:
        engine_config = described(config['part'], config['engine'])
        with engine_errors(config['part'], engine_config, f"running in {config['container']}"):
            engine = new_client(engine_config, config['part'])  # the script's one client
            exec_id = engine.api.exec_create(
                config['container'], config['command'] + argv, user=config['user'] or '',
                workdir=config['working-dir'], tty=False)['Id']
            for out, err in engine.api.exec_start(exec_id, stream=True, demux=True):
                for data, stream in ((out, sys.stdout), (err, sys.stderr)):
                    if data:
                        stream.buffer.write(data)
                        stream.flush()
            return int(engine.api.exec_inspect(exec_id)['ExitCode'] or 0)
    except zc.buildout.UserError as exc:
        print(f'{os.path.basename(sys.argv[0])}: {exc}', file=sys.stderr)
        return 1


uninstall = uninstaller(CommandRecipe)
