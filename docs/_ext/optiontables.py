"""Option tables rendered from the recipes' own tables, so a page cannot drift from the code.

``.. recipe-options:: docker.run`` renders the table of the class the entry
point names (``:members:`` renders a ``docker.system`` member's table
instead); ``.. engine-options::`` renders the engine options every recipe
takes. The descriptions are the ``doc`` of each :class:`dockeroo_nagoya.model.options.Option`.
"""
from __future__ import annotations

import importlib.metadata
from typing import Any, Iterable

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

COLUMNS = ('Option', 'Default', 'Aliases', 'Description', 'Identity', 'Secret')
WIDTHS = (14, 10, 10, 50, 7, 7)


def recipe_class(entry_point: str) -> Any:
    """The class a ``zc.buildout`` entry point of this package names."""
    for found in importlib.metadata.entry_points(group='zc.buildout'):
        if found.name == entry_point and found.value.startswith('dockeroo_nagoya.'):
            return found.load()
    raise LookupError(f'no recipe {entry_point!r} among dockeroo_nagoya\'s entry points')


def recipe_table(entry_point: str, members: bool = False) -> tuple[Any, ...]:
    """The option table of a recipe (or of a ``docker.system`` member)."""
    if members:
        from dockeroo_nagoya.recipes.system import MEMBER_TABLE
        return MEMBER_TABLE
    return tuple(getattr(recipe_class(entry_point), 'table', ()))


def _paragraph(text: str, literal: bool = False) -> nodes.Node:
    """A cell's text; ``literal`` cells are code, others are parsed for ``inline literals``."""
    para = nodes.paragraph()
    if literal:
        para += nodes.literal(text, text)
        return para
    for index, piece in enumerate(text.split('``')):
        if piece:
            para += nodes.literal(piece, piece) if index % 2 else nodes.Text(piece)
    return para


def default_text(option: Any) -> str:
    if option.required:
        return 'required'
    if option.default is None:
        return ''
    return option.default if option.default != '' else '(empty)'


def table_node(rows: Iterable[tuple[str, ...]], names_column: str = 'literal') -> nodes.table:
    """A docutils table with COLUMNS as header."""
    table = nodes.table(classes=['option-table'])
    group = nodes.tgroup(cols=len(COLUMNS))
    table += group
    for width in WIDTHS:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    row = nodes.row()
    for title in COLUMNS:
        entry = nodes.entry()
        entry += nodes.paragraph(text=title)
        row += entry
    head += row
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row(classes=['option-row'])
        for index, cell in enumerate(cells):
            entry = nodes.entry()
            if cell:
                entry += _paragraph(cell, literal=index in (0, 1, 2) and cell not in ('required', '(empty)'))
            row += entry
        body += row
    return table


def option_rows(table: Iterable[Any]) -> list[tuple[str, ...]]:
    return [(option.name, default_text(option), ', '.join(option.aliases), option.doc,
             'yes' if option.identity else 'no', 'yes' if option.secret else '')
            for option in table]


class RecipeOptions(SphinxDirective):
    """``.. recipe-options:: ENTRY-POINT``: the recipe's options, from its table in code."""

    required_arguments = 1
    option_spec = {'members': directives.flag}

    def run(self) -> list[nodes.Node]:
        entry_point = self.arguments[0]
        try:
            table = recipe_table(entry_point, 'members' in self.options)
        except LookupError as exc:
            raise self.error(str(exc)) from None
        undocumented = [option.name for option in table if not option.doc]
        if undocumented:
            raise self.error(f'{entry_point}: options without a doc in the code: '
                             + ', '.join(undocumented))
        if not table:
            return [nodes.paragraph(text='This recipe takes no options of its own.')]
        return [table_node(option_rows(table))]


class EngineOptions(SphinxDirective):
    """``.. engine-options::``: the options every recipe takes to find its engine."""

    def run(self) -> list[nodes.Node]:
        from dockeroo_nagoya.model.engine_options import DOCKEROO_ALIASES, ENGINE_OPTION_DOCS, ENGINE_OPTIONS
        rows = [(name, ENGINE_OPTION_DOCS[name][0], DOCKEROO_ALIASES.get(name, ''),
                 ENGINE_OPTION_DOCS[name][1], '', '') for name in ENGINE_OPTIONS]
        return [table_node(rows)]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive('recipe-options', RecipeOptions)
    app.add_directive('engine-options', EngineOptions)
    return {'version': '1', 'parallel_read_safe': True}
