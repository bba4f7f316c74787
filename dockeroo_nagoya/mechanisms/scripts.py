"""Scripts in the buildout's ``bin``: small Python programs that call into this package.

A script carries the interpreter and the import paths of the buildout run
that wrote it, and a JSON description of what it acts on (never a secret),
so that it keeps working without buildout and reads as what it does.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any, Iterable

from dockeroo_nagoya.mechanisms import atomicfile


#: Modules a script in bin imports, to find the directories it needs on sys.path.
NEEDED_MODULES = ('dockeroo_nagoya', 'docker', 'requests', 'urllib3', 'idna', 'certifi',
                  'charset_normalizer', 'zc.buildout', 'setuptools', 'pip')


def importable_paths(modules: Iterable[str] = NEEDED_MODULES) -> list[str]:
    """The directories this process imports the needed modules from, in sys.path order."""
    found: list[str] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        origin = getattr(module, '__file__', None)
        if not origin:
            continue
        root = os.path.dirname(os.path.abspath(origin))
        depth = name.count('.') + (1 if os.path.basename(origin) == '__init__.py' else 0)
        for _ in range(depth):
            root = os.path.dirname(root)
        if root not in found:
            found.append(root)
    ordered = list(dict.fromkeys(p for p in sys.path if p in found))
    return ordered + [p for p in found if p not in ordered]


def write_script(path: str, function: str, config: dict[str, Any]) -> str:
    """Write an executable script calling ``module:function(config, argv)``."""
    module, name = function.split(':')
    text = (
        f'#!{sys.executable}\n'
        f'"""Made by dockeroo_nagoya; buildout writes it again on each install."""\n'
        'import sys\n'
        f'sys.path[0:0] = {importable_paths()!r}\n'
        f'from {module} import {name}\n'
        'import json\n'
        # What the config names (a part, a container) reaches the script as a Python
        # literal (repr), never spliced into one.
        f'CONFIG = json.loads({json.dumps(config, sort_keys=True)!r})\n'
        f'sys.exit({name}(CONFIG, sys.argv[1:]))\n')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomicfile.write_text(path, text, 0o755)
    return path
