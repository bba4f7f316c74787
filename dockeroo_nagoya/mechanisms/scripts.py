"""Scripts in the buildout's ``bin``: small Python programs that call into this package.

A script carries the interpreter and the import paths of the buildout run
that wrote it, and what it acts on as literals (never a secret): a
docker.command's container and command, a control script's description
file. So it keeps working without buildout and reads as what it does. One
writer (:func:`write_script`) makes every one of them.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Iterable, Mapping, Sequence

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


def script_text(function: str, arguments: Sequence[Any], doc: str,
                keywords: Mapping[str, Any] | None = None) -> str:
    """A script that runs ``sys.exit(function(*arguments, sys.argv[1:], **keywords))``.

    ``function`` is ``module:name``; the script starts with the buildout's Python
    and puts the directories this process imports the package and its
    requirements from first on ``sys.path``, so it runs without buildout.
    ``arguments`` and ``keywords`` are JSON data (a part's name, a container's, a
    path): each reaches the script as a Python literal (``repr``), never spliced
    into one, whatever the configuration names.
    """
    module, name = function.split(':')
    paths = ''.join(f'    {path!r},\n' for path in importable_paths())
    given = [repr(value) for value in arguments] + ['sys.argv[1:]'] + \
        [f'{key}={value!r}' for key, value in (keywords or {}).items()]
    return (f'#!{sys.executable}\n'
            f'{doc!r}\n'
            'import sys\n'
            f'sys.path[0:0] = [\n{paths}]\n\n'
            f'from {module} import {name}\n\n'
            "if __name__ == '__main__':\n"
            f'    sys.exit({name}({", ".join(given)}))\n')


def write_script(path: str, function: str, arguments: Sequence[Any], doc: str,
                 keywords: Mapping[str, Any] | None = None) -> str:
    """Write :func:`script_text` as the executable ``path`` (its directory made when missing).

    Written whole (the script may be running while buildout writes it again), by
    :mod:`.atomicfile`, and only when its text changed, so a no-op rerun costs one
    read. Every script in ``bin`` is written here.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomicfile.write_text_if_changed(path, script_text(function, arguments, doc, keywords), 0o755)
    return path
