"""Many short buildout runs, each a fork of one process that has buildout and the recipes imported.

A run that stops at a configuration error spends nearly all its time
importing zc.buildout, setuptools and the recipes (0.6 s); forked from a
process that did that once, it takes 50 ms. Each run is still buildout's own
``main`` (what ``bin/buildout`` calls) in a process of its own, in its own
directory, with fresh state: the parent never runs a buildout.

Protocol: one buildout directory per line on stdin; for each, after the run,
one JSON line on stdout ``{"directory": ..., "code": ...}``; the run's output
is in ``DIRECTORY/buildout-output.txt``. Arguments are buildout's (``-N``).
"""
from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys

import zc.buildout.buildout

import dockeroo_nagoya.recipes

OUTPUT = 'buildout-output.txt'


def preload() -> None:
    """Import every recipe module, so the children find them imported."""
    for module in pkgutil.iter_modules(dockeroo_nagoya.recipes.__path__):
        importlib.import_module(f'dockeroo_nagoya.recipes.{module.name}')


def run(directory: str, args: list[str]) -> int:
    pid = os.fork()
    if pid == 0:
        code: object = 1
        try:
            os.chdir(directory)
            fd = os.open(OUTPUT, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.argv = ['buildout', *args]
            try:
                code = zc.buildout.buildout.main()
            except SystemExit as exc:
                code = exc.code
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code if isinstance(code, int) else (0 if code is None else 1))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main() -> None:
    preload()
    args = sys.argv[1:]
    for line in sys.stdin:
        directory = line.strip()
        if directory:
            code = run(directory, args)
            print(json.dumps({'directory': directory, 'code': code}), flush=True)


if __name__ == '__main__':
    main()
