"""Scripts in the buildout's ``bin``: small Python programs that call into this package.

A script carries the interpreter and the import paths of the buildout run
that wrote it, and a JSON description of what it acts on (never a secret),
so that it keeps working without buildout and reads as what it does.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import docker

import dockeroo_nagoya
from dockeroo_nagoya import atomicfile


def import_paths() -> list[str]:
    """Where this package and its dependencies were imported from, in this run."""
    paths: list[str] = []
    for module in (dockeroo_nagoya, docker):
        parent = os.path.dirname(os.path.dirname(os.path.abspath(module.__file__ or '')))
        if parent not in paths:
            paths.append(parent)
    for entry in sys.path:
        if entry.endswith('site-packages') and entry not in paths:
            paths.append(entry)
    return paths


def write_script(path: str, function: str, config: dict[str, Any]) -> str:
    """Write an executable script calling ``module:function(config, argv)``."""
    module, name = function.split(':')
    text = (
        f'#!{sys.executable}\n'
        f'"""Made by dockeroo_nagoya; buildout writes it again on each install."""\n'
        'import sys\n'
        f'sys.path[0:0] = {import_paths()!r}\n'
        f'from {module} import {name}\n'
        'import json\n'
        # What the config names (a part, a container) reaches the script as a Python
        # literal (repr), never spliced into one.
        f'CONFIG = json.loads({json.dumps(config, sort_keys=True)!r})\n'
        f'sys.exit({name}(CONFIG, sys.argv[1:]))\n')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomicfile.write_text(path, text, 0o755)
    return path
