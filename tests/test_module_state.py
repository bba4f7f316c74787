"""No module of the package keeps mutable state: what a run knows is its Run's.

What one buildout run learns (the parts configured, the promises between
parts, the removals under way, the engine clients, the lock, the planning
flag) lives in :class:`dockeroo_nagoya.run.runstate.Run`; a module-level list,
dict or set, a ``global`` statement or a module attribute set from outside
would be run state hidden in the process, shared by every run in it (a
plan beside a run, two buildouts in one test). This reads the package's
source (no import) and names each such place.

Constants stay: a table written once in UPPER_CASE that no code of the package
changes (``ENGINE_OPTION_DOCS``, ``CHECKS``), compiled patterns, frozensets,
loggers and the like.
"""
from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / 'dockeroo_nagoya'

#: Calls whose result cannot change: what a module-level name may be bound to.
IMMUTABLE_CALLS = frozenset({
    're.compile', 'frozenset', 'tuple', 'str', 'bytes', 'int', 'float', 'object',
    'logging.getLogger', 'TypeVar', 'typing.TypeVar', 'namedtuple',
    'collections.namedtuple', 'typing.NamedTuple',
    # They return functions: a parser of a duration, a recipe's uninstall hook.
    'opt.duration_up_to', 'duration_up_to', 'uninstaller',
})

#: Methods that change a list, dict or set in place.
MUTATORS = frozenset({'append', 'extend', 'insert', 'add', 'update', 'setdefault', 'pop',
                      'popitem', 'clear', 'remove', 'discard', 'sort', 'reverse',
                      '__setitem__', '__delitem__'})

#: Module-level caches allowed, with why: (module path, function name) -> reason. None is:
#: a cache of the process outlives the run that filled it.
ALLOWED_CACHES: dict[tuple[str, str], str] = {}

DISPLAYS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f'{_dotted(node.value)}.{node.attr}'
    return ''


def _constant(name: str) -> bool:
    """A constant's name: UPPER_CASE, or a dunder such as ``__all__``."""
    return name.isupper() or (name.startswith('__') and name.endswith('__'))


def _module_statements(body: list[ast.stmt]):
    """The statements run at import (into if/try/with blocks, never into a def or class)."""
    for node in body:
        yield node
        for field in ('body', 'orelse', 'finalbody', 'handlers'):
            inner = getattr(node, field, None)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                break
            if isinstance(inner, list):
                yield from _module_statements(
                    [n for n in inner if isinstance(n, ast.stmt)] +
                    [s for h in inner if isinstance(h, ast.ExceptHandler) for s in h.body])


def _sources() -> dict[str, ast.Module]:
    return {str(path.relative_to(PACKAGE)): ast.parse(path.read_text(), str(path))
            for path in sorted(PACKAGE.rglob('*.py'))}


def _mutated_names(trees: dict[str, ast.Module]) -> set[str]:
    """Names (bare, or as a module's attribute) that some code changes in place."""
    found: set[str] = set()

    def name_of(node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute):
            return node.attr
        return None

    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
                name = name_of(node.value)
            elif isinstance(node, ast.AugAssign):
                name = name_of(node.target)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in MUTATORS:
                name = name_of(node.func.value)
            else:
                continue
            if name:
                found.add(name)
    return found


def _imported_modules(tree: ast.Module) -> set[str]:
    """The names a module binds to modules of the package (``from . import engine as _e``)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level and node.module is None:
            found.update(alias.asname or alias.name for alias in node.names)
    return found


def module_state(trees: dict[str, ast.Module]) -> list[str]:
    """Every place that keeps or changes mutable state at module level, as path:line: why."""
    mutated = _mutated_names(trees)
    problems = []
    for path, tree in trees.items():
        modules = _imported_modules(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Global, ast.Nonlocal)):
                kind = 'global' if isinstance(node, ast.Global) else 'nonlocal'
                problems.append(f'{path}:{node.lineno}: {kind} {", ".join(node.names)}')
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                            and target.value.id in modules:
                        problems.append(f'{path}:{node.lineno}: sets the module attribute '
                                        f'{target.value.id}.{target.attr}')
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.Assign, ast.AnnAssign)) and \
                            isinstance(item.value, DISPLAYS):
                        problems.append(f'{path}:{item.lineno}: class attribute of {node.name} '
                                        f'holds a {type(item.value).__name__.lower()} every '
                                        f'instance shares')
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for decorator in node.decorator_list:
                    called = decorator.func if isinstance(decorator, ast.Call) else decorator
                    if _dotted(called).split('.')[-1] in ('lru_cache', 'cache') and \
                            (path, node.name) not in ALLOWED_CACHES:
                        problems.append(f'{path}:{node.lineno}: {node.name} caches in the '
                                        f'process ({_dotted(called)})')
        for node in _module_statements(tree.body):
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            else:
                continue
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            label = ', '.join(names) or ast.unparse(targets[0])
            if isinstance(value, DISPLAYS):
                changed = [name for name in names if name in mutated]
                if not all(_constant(name) for name in names) or changed:
                    why = f'changed in place ({", ".join(changed)})' if changed else \
                        'not an UPPER_CASE constant'
                    problems.append(f'{path}:{node.lineno}: {label} = a '
                                    f'{type(value).__name__.lower()}, {why}')
            elif isinstance(value, ast.Call) and _dotted(value.func) not in IMMUTABLE_CALLS:
                problems.append(f'{path}:{node.lineno}: {label} = {_dotted(value.func) or "a call"}'
                                f'(...), which may be mutable')
    return problems


def test_no_module_level_mutable_state():
    """The package keeps no state in its modules: one run's knowledge is its Run's."""
    problems = module_state(_sources())
    assert not problems, 'module-level mutable state:\n' + '\n'.join(problems)


def test_the_scan_sees_each_kind_of_module_state():
    """The scan itself: each way of keeping state at module level is named."""
    source = '''
from . import engine
import functools
import threading
_SEEN: set[str] = set()
CACHE = {}
TABLE = {'a': 1}
_LOCK = threading.Lock()
PATTERN = re.compile('x')
def f():
    global _SEEN
    engine.PLANNING = True
    CACHE['k'] = 1
@functools.lru_cache(maxsize=None)
def g():
    pass
class Registry:
    known = {}
'''
    found = module_state({'m.py': ast.parse(source)})
    said = '\n'.join(found)
    for expected in ('_SEEN = set(...)', 'CACHE = a dict, changed in place', '_LOCK = threading.Lock',
                     'global _SEEN', 'sets the module attribute engine.PLANNING',
                     'g caches in the process', 'class attribute of Registry'):
        assert expected in said, said
    assert 'TABLE' not in said and 'PATTERN' not in said, said
