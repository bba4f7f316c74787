"""The layout page rendered from the package itself, so it cannot drift from the tree.

``.. package-layout::`` lists every subpackage of ``dockeroo_nagoya`` (its
layer, in the order of the import rule: a module imports only from its own
layer or the layers listed before it) and, under each, every module with the
first line of its docstring. Reading the files' source (``ast``), not importing
them, keeps the page free of import side effects.
"""
from __future__ import annotations

import ast
import pathlib
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / 'dockeroo_nagoya'


def first_line(path: pathlib.Path) -> str:
    """The first line of a module's docstring ('' when it has none)."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding='utf-8'))) or ''
    return doc.strip().splitlines()[0] if doc.strip() else ''


def groups(package: pathlib.Path = PACKAGE) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(directory, its docstring's first line, [(module path, first line)]) per package
    directory, the top level first, then the subpackages in their layer order (the
    ``LAYERS`` tuple of the package's ``__init__``, when it has one; by name otherwise)."""
    root = package.parent
    order: list[str] = []
    init = package / '__init__.py'
    for node in ast.parse(init.read_text(encoding='utf-8')).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'LAYERS' for t in node.targets):
            order = list(ast.literal_eval(node.value))
    directories = [package] + sorted(
        (d for d in package.iterdir() if (d / '__init__.py').is_file()),
        key=lambda d: (order.index(d.name) if d.name in order else len(order), d.name))
    found = []
    for directory in directories:
        modules = [(str(f.relative_to(root)), first_line(f))
                   for f in sorted(directory.glob('*.py')) if f.name != '__init__.py']
        if directory is package or modules:
            found.append((str(directory.relative_to(root)),
                          first_line(directory / '__init__.py'), modules))
    return found


class PackageLayout(SphinxDirective):
    """``.. package-layout::``: one section per package directory, one entry per module."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        out: list[nodes.Node] = []
        for directory, summary, modules in groups():
            section = nodes.section(ids=[nodes.make_id('layout ' + directory)])
            section += nodes.title(text=directory + '/')
            if summary:
                section += nodes.paragraph(text=summary)
            if modules:
                entries = nodes.definition_list()
                for path, line in modules:
                    item = nodes.definition_list_item()
                    term = nodes.term()
                    term += nodes.literal(path, path)
                    item += term
                    definition = nodes.definition()
                    definition += nodes.paragraph(text=line)
                    item += definition
                    entries += item
                section += entries
            out.append(section)
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive('package-layout', PackageLayout)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
