"""The package's imports go down its layers only, in no cycle, and never to a private name.

The layers, lowest first, are ``dockeroo_nagoya.LAYERS``: ``engine`` (the
driver: the only code that uses docker-py), ``model`` (pure data, decisions,
option parsing), ``run`` (what one buildout run knows), ``mechanisms`` (the
shared jobs), ``recipes`` (the base recipe and one module per recipe), ``cli``
(``dockeroo-plan`` and the control scripts, imported by nothing). A module
imports from its own layer and the layers below it.

The import graph is read from the source (``ast``): module-level and
function-level imports, ``TYPE_CHECKING`` ones and ``from . import x``
included. It works on both layouts: in the flat one a module's layer is its
row of :data:`MODULES`; once the modules are in subpackages (the layout move
of issue 23: ``/work/layout-move.py`` reads :data:`MODULES` and moves each
module to the path its row gives), a module's layer is its first
subpackage, and a top-level module whose row's path exists is a thin
compatibility module for installed buildouts (imported by nothing here).
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / 'dockeroo_nagoya'
ROOT = PACKAGE.name


def _layers() -> tuple[str, ...]:
    """``LAYERS`` of the package's ``__init__`` (read, not imported)."""
    for node in ast.parse((PACKAGE / '__init__.py').read_text(encoding='utf-8')).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'LAYERS' for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError(f'{PACKAGE}/__init__.py has no LAYERS')


LAYERS = _layers()

#: Every module of the flat layout -> its place in the layered one, below the package
#: (the first name is the layer). The layout move reads this table: a new flat module
#: needs a row (test_every_module_has_a_layer says so). Recipe modules are in
#: ``recipes/`` already and stay there (``dockeroo_nagoya.recipes.<module>:<Class>`` is
#: what installed buildouts record).
MODULES = {
    # engine: the driver, the only code that uses docker-py.
    'engine': 'engine.driver',
    'tls': 'engine.tls',
    # model: pure data and functions: option tables and parsing, decisions, the graph.
    'options': 'model.options',
    'decisions': 'model.decisions',
    'engine_options': 'model.engine_options',
    'foreach': 'model.foreach',
    'scheduling': 'model.scheduling',
    'dependencies': 'model.dependencies',
    # run: what one buildout run knows.
    'runstate': 'run.runstate',
    'runlock': 'run.runlock',
    'removals': 'run.removals',
    'ownership': 'run.ownership',
    'identities': 'run.identities',
    # mechanisms: the shared jobs, each once.
    'atomicfile': 'mechanisms.atomicfile',
    'members': 'mechanisms.members',
    'archives': 'mechanisms.archives',
    'copying': 'mechanisms.copying',
    'containers': 'mechanisms.containers',
    'containerspec': 'mechanisms.containerspec',
    'containerplan': 'mechanisms.containerplan',
    'callbacks': 'mechanisms.callbacks',
    'runner': 'mechanisms.runner',
    'controlscript': 'mechanisms.controlscript',
    'controlsystem': 'mechanisms.controlsystem',
    'probes': 'mechanisms.probes',
    'snapshots': 'mechanisms.snapshots',
    'sources': 'mechanisms.sources',
    'volumedata': 'mechanisms.volumedata',
    'throwaway': 'mechanisms.throwaway',
    'secrets': 'mechanisms.secrets',
    'readfiles': 'mechanisms.readfiles',
    'context': 'mechanisms.context',
    'resources': 'mechanisms.resources',
    'imagefiles': 'mechanisms.imagefiles',
    'progress': 'mechanisms.progress',
    'stopsignal': 'mechanisms.stopsignal',
    'logstreams': 'mechanisms.logstreams',
    'scripts': 'mechanisms.scripts',
    'orphans': 'mechanisms.orphans',
    'moves': 'mechanisms.moves',
    # recipes: the base every recipe is made on (the recipes are in recipes/ already).
    'recipe': 'recipes.base',
    # cli: the commands; nothing imports them.
    'plan': 'cli.plan',
    'control': 'cli.control',
}

#: The top-level distributions that are docker-py: its SDK and the HTTP library its
#: errors come from.
DOCKER_PY = ('docker', 'requests')

#: What the tests below find today and other work of issue 23 removes (each is an
#: expected failure, strict: the mark must go once the module is clean).
KNOWN_UPWARD: dict[str, str] = {}
KNOWN_DOCKER_PY: dict[str, str] = {}
KNOWN_PRIVATE: dict[str, str] = {}


# -- the graph ------------------------------------------------------------------------------
def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module and package of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        found['.'.join(parts)] = path
    return found


MODULE_FILES = modules()


def short(name: str) -> str:
    """A module's name below the package (``recipes.run``); the package itself is ''."""
    return name[len(ROOT) + 1:] if name != ROOT else ''


@functools.cache
def tree(name: str) -> ast.Module:
    return ast.parse(MODULE_FILES[name].read_text(encoding='utf-8'))


@functools.cache
def imports(name: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import statement of a module,
    at any depth; a ``from`` import of a submodule counts as an import of it."""
    found: list[tuple[str, list[str], int]] = []
    path = MODULE_FILES[name]
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            taken = []
            for alias in node.names:
                if f'{target}.{alias.name}' in MODULE_FILES:
                    found.append((f'{target}.{alias.name}', [], node.lineno))
                else:
                    taken.append(alias.name)
            if taken:
                found.append((target, taken, node.lineno))
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the modules of the package it imports."""
    return {name: {target for target, _, _ in imports(name)
                   if target in MODULE_FILES and target != name}
            for name in MODULE_FILES}


GRAPH = graph()


def compatibility(name: str) -> bool:
    """A top-level module left by the layout move for installed buildouts: its row's new
    path exists."""
    row = MODULES.get(short(name))
    return row is not None and MODULE_FILES[name].parent == PACKAGE and \
        MODULE_FILES[name].name != '__init__.py' and f'{ROOT}.{row}' in MODULE_FILES


def layer(name: str) -> str | None:
    """A module's layer: its first subpackage, or its row in the flat layout (``None``:
    the package itself, or a compatibility module)."""
    below = short(name)
    if not below or compatibility(name):
        return None
    first = below.split('.')[0]
    if '.' in below or (PACKAGE / first / '__init__.py').is_file():
        return first
    row = MODULES.get(below)
    return row.split('.')[0] if row else None


def layered() -> list[str]:
    return [name for name in MODULE_FILES if layer(name) is not None]


# -- the rules ------------------------------------------------------------------------------
#: A module's name in the layered layout -> its name in the flat one (the tables of known
#: failures name modules as they were).
FLAT_NAME = {new: old for old, new in MODULES.items()}


def flat_name(name: str) -> str | None:
    """A module's name in the flat layout (``None``: a package, which has none)."""
    if MODULE_FILES[name].name == '__init__.py':
        return None
    return FLAT_NAME.get(short(name), short(name))


def known(table: dict[str, str], name: str) -> list[pytest.MarkDecorator]:
    reason = table.get(flat_name(name) or '')
    return [pytest.mark.xfail(reason=reason, strict=True)] if reason else []


def per_module(table: dict[str, str]) -> list[object]:
    return [pytest.param(name, id=short(name), marks=known(table, name)) for name in layered()]


def test_the_layers_are_the_issues() -> None:
    assert LAYERS == ('engine', 'model', 'run', 'mechanisms', 'recipes', 'cli')


def test_every_module_has_a_layer() -> None:
    """A new module says where it belongs (a row of MODULES, or a place in a layer)."""
    missing = [short(name) for name in MODULE_FILES if short(name) and
               layer(name) is None and not compatibility(name)]
    assert not missing, f'modules with no row in MODULES (tests/test_layering.py): {missing}'
    unknown = sorted({str(layer(name)) for name in layered()} - set(LAYERS))
    assert not unknown, f'layers that are not in LAYERS: {unknown}'
    rows = [row for row in MODULES.values() if row.split('.')[0] not in LAYERS]
    assert not rows, f'rows of MODULES naming no layer: {rows}'
    stale = [module for module in MODULES if f'{ROOT}.{module}' not in MODULE_FILES
             and f'{ROOT}.{MODULES[module]}' not in MODULE_FILES]
    assert not stale, f'rows of MODULES for modules that are gone: {stale}'


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle of strongly connected modules (Tarjan), each as one closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(path_through(sorted(component), edges))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def path_through(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """One closed path from the component's first module back to it, for the message."""
    start, members = component[0], set(component)
    trail, seen = [start], {start}
    while True:
        ahead = sorted(edges[trail[-1]] & members)
        if start in ahead and len(trail) > 1:
            return [short(m) for m in trail + [start]]
        step = next((m for m in ahead if m not in seen), start)
        if step == start:
            return [short(m) for m in trail + [start]]
        trail.append(step)
        seen.add(step)


def test_cycles_are_found() -> None:
    """The finder itself, on the cycle issue 23 names."""
    recipe, moves, plan, engine = (f'{ROOT}.{m}' for m in ('recipe', 'moves', 'plan', 'engine'))
    edges = {recipe: {moves, engine}, moves: {plan, engine}, plan: {recipe}, engine: set()}
    assert cycles(edges) == [['moves', 'plan', 'recipe', 'moves']]


def test_no_import_cycle() -> None:
    found = cycles(GRAPH)
    assert not found, 'import cycles: ' + '; '.join(' -> '.join(c) for c in found)


@pytest.mark.parametrize('name', per_module(KNOWN_UPWARD))
def test_imports_go_down_the_layers(name: str) -> None:
    """A module imports from its own layer and those below; nothing imports ``cli``."""
    own = LAYERS.index(layer(name) or '')
    upward = sorted(f'{short(t)} ({layer(t)})' for t in GRAPH[name]
                    if layer(t) is not None and LAYERS.index(layer(t) or '') > own)
    into_cli = sorted(short(t) for t in GRAPH[name] if layer(t) == 'cli')
    assert not upward, f'{short(name)} ({layer(name)}) imports above its layer: {upward}'
    assert not into_cli, f'{short(name)} imports the command line: {into_cli}'


def test_compatibility_modules_are_imported_by_nothing() -> None:
    users = sorted(f'{short(m)} -> {short(t)}' for m, targets in GRAPH.items()
                   for t in targets if compatibility(t))
    assert not users, f'modules that import a compatibility module: {users}'


@pytest.mark.parametrize('name', per_module(KNOWN_DOCKER_PY))
def test_only_the_engine_driver_uses_docker_py(name: str) -> None:
    used = sorted({f'{target} (line {line})' for target, _, line in imports(name)
                   if target.split('.')[0] in DOCKER_PY})
    if layer(name) != 'engine':
        assert not used, f'{short(name)} ({layer(name)}) uses docker-py: {used}'


def private_uses(name: str) -> list[str]:
    """Private names (``_x``) a module takes from another module of the package: imported
    by name, or read as an attribute of a module it imported."""
    found = []
    bound: dict[str, str] = {}
    for target, taken, line in imports(name):
        if target in MODULE_FILES and target != name:
            found += [f'{short(target)}.{n} (line {line})' for n in taken
                      if n.startswith('_') and not n.startswith('__')]
    package = name if MODULE_FILES[name].name == '__init__.py' else name.rpartition('.')[0]
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.ImportFrom):
            base = (package.split('.')[:len(package.split('.')) - node.level + 1]
                    if node.level else [])
            target = '.'.join(base + ([node.module] if node.module else []))
            for alias in node.names:
                if f'{target}.{alias.name}' in MODULE_FILES:
                    bound[alias.asname or alias.name] = f'{target}.{alias.name}'
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in bound and bound[node.value.id] != name \
                and node.attr.startswith('_') and not node.attr.startswith('__'):
            found.append(f'{short(bound[node.value.id])}.{node.attr} (line {node.lineno})')
    return sorted(set(found))


@pytest.mark.parametrize('name', per_module(KNOWN_PRIVATE))
def test_no_private_name_is_used_across_modules(name: str) -> None:
    used = private_uses(name)
    assert not used, f'{short(name)} uses private names of other modules: {used}'
