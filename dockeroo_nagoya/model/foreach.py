"""Parts made once per line of a list: the buildout extension ``dockeroo_nagoya``.

A Koji installation outgrows one machine through its builders: one line per
builder machine, each line the same few parts on that machine's engine.
Buildout has no loop, so this extension (``[buildout] extensions =
dockeroo_nagoya``) writes them before buildout reads any part. A *template*
is a section whose name holds ``*`` and that has ``for-each =
SECTION:OPTION``, the list::

    [koji]
    builder-hosts =
        box2 tcp://box2.example.org:2376 tls=/etc/koji/box2 2
        box3 buildbox 1 network=host

    [koji-builder-*]
    for-each = koji:builder-hosts
    for-each-defaults = network=bridge
    recipe = dockeroo_nagoya:docker.run
    engine = {engine}
    replicas = {count}
    networks = {network}

Each line is ``NAME ENGINE [tls=DIR] [COUNT] [KEY=VALUE ...]``: the engine is
an engine phrase (:func:`.options.engine_spec`: ``default``, a URL or a Docker
context), ``COUNT`` a whole number (1 when left out). For each line, each
template is copied as a section named with ``NAME`` for ``*``, its values
with ``{host}`` replaced by ``NAME``, ``{engine}`` by the engine phrase, ``{count}`` by the
count and ``{KEY}`` by each ``KEY=VALUE`` of the line, else of
``for-each-defaults`` (whose ``${section:option}`` of a settings section are
read at once, so that a default may pick a macro: ``<= NAME-{transfer}``). Other braces
(``{index}`` of replicas) are left as they are.

The copies' names, line by line in template order, are written into the
list's section as ``OPTION-parts`` (``${koji:builder-hosts-parts}``), and the
lines' names as ``OPTION-names``; a template's ``for-each-parts = KEY``
writes its own copies' names there as ``KEY`` (the parts a control script
lists). A template named in ``[buildout] parts`` is replaced there by its
copies (see :func:`extension`).
A line taken out takes its copies out of ``parts``, so buildout uninstalls
them: the parts of the other lines are not touched, and since each copy is
its own part, a change of one line's count reinstalls only that line's.

Only sections and options are written here, from the configuration alone:
no engine is asked, so a machine that does not answer is said by the part
that needs it, in one line, before anything acts.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, MutableMapping

import zc.buildout

from . import options as opt

#: The placeholder of a template's name (buildout allows no braces in a section's name):
#: each copy's name has the line's NAME there.
HOST = '*'
#: A template's own options, not copied.
CONTROL = ('for-each', 'for-each-defaults', 'for-each-parts')
_PLACEHOLDER = re.compile(r'\{([a-z][a-z0-9-]*)\}')
_NAME = re.compile(r'[a-z0-9][a-z0-9_.-]*')


@dataclasses.dataclass(frozen=True)
class Line:
    """One line of a list: a name, an engine and what the templates fill in."""

    name: str
    engine: str
    count: int
    values: dict[str, str]

    def placeholders(self, defaults: dict[str, str]) -> dict[str, str]:
        return {**defaults, **self.values, 'host': self.name, 'engine': self.engine,
                'count': str(self.count)}


def parse_lines(where: str, raw: str) -> list[Line]:
    """The lines of a list, each checked (one ``UserError`` line naming it)."""
    found: list[Line] = []
    for text in raw.splitlines():
        text = text.split('#', 1)[0].strip()
        if not text:
            continue
        words = text.split()

        def bad(expected: str) -> zc.buildout.UserError:
            return zc.buildout.UserError(
                f'{where}: line {text!r}: expected {expected} '
                f'(NAME ENGINE [tls=DIR] [COUNT] [KEY=VALUE ...])')
        if len(words) < 2:
            raise bad('a name and an engine')
        name, engine_words, count, values = words[0], [words[1]], 1, {}
        if not _NAME.fullmatch(name):
            raise bad(f'a name of lowercase letters, digits, ".", "_" and "-", not {name!r}')
        counted = False
        for word in words[2:]:
            key, sep, value = word.partition('=')
            if word.isdigit():
                # isdigit() is true of any script's digits (٣, ²): the count parser takes
                # ASCII digits only, bounded as every count is.
                if counted:
                    raise bad(f'one count, not {count} and {word}')
                try:
                    count, counted = opt.integer(1, opt.MAX_REPLICAS)(word), True
                except opt.Invalid:
                    raise bad(f'a count of at least 1 and at most {opt.MAX_REPLICAS} in '
                              f'digits 0-9, not {word!r} (take the line out for none)') from None
            elif key == 'tls' and sep:
                engine_words.append(word)
            elif sep and value and _PLACEHOLDER.fullmatch('{' + key + '}'):
                if key in ('host', 'engine', 'count'):
                    raise bad(f'no {key}= (the line says its {key} itself)')
                values[key] = value
            else:
                raise bad(f'a count, tls=DIR or KEY=VALUE, not {word!r}')
        engine = ' '.join(engine_words)
        try:
            opt.engine_spec(engine)
        except opt.Invalid as exc:
            raise bad(str(exc)) from None
        if any(line.name == name for line in found):
            raise bad(f'a name of its own ({name!r} is on an earlier line)')
        found.append(Line(name, engine, count, values))
    return found


def fill(value: str, placeholders: dict[str, str]) -> str:
    """``{KEY}`` replaced where the line or the defaults say it; other braces kept."""
    return _PLACEHOLDER.sub(lambda m: placeholders.get(m.group(1), m.group(0)), value)


_REFERENCE = re.compile(r'\$\{([^:${}]+):([^${}]+)\}')


def resolve(raw: MutableMapping[str, dict[str, str]], value: str, depth: int = 0) -> str:
    """A default's ``${section:option}`` read now from a section with no recipe (a
    settings section, as ``[koji]``), so that it may name a macro in ``<=`` (which buildout
    reads unsubstituted); a reference to a part is left for buildout."""
    def one(match: re.Match[str]) -> str:
        section = raw.get(match.group(1))
        if section is None or 'recipe' in section or match.group(2) not in section:
            return match.group(0)
        return resolve(raw, section[match.group(2)], depth + 1) if depth < 10 else match.group(0)
    return _REFERENCE.sub(one, value)


def expand(raw: MutableMapping[str, dict[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """Write every template's copies into buildout's raw sections, and the list's
    ``OPTION-parts``, ``OPTION-names`` and each ``for-each-parts``; return, for each list
    (``SECTION:OPTION``), its (template, copy) names: line by line, each line's copies
    in the templates' order, so that a line's parts stay together."""
    groups: dict[str, list[tuple[str, dict[str, str], dict[str, str]]]] = {}
    for name, section in list(raw.items()):
        if 'for-each' not in section:
            continue
        if HOST not in name:
            raise zc.buildout.UserError(
                f'{name}: option for-each: expected a section whose name holds {HOST} (each '
                f'line\'s copy is named after it), got [{name}]')
        source = section['for-each'].strip()
        list_section, sep, list_option = source.partition(':')
        if not sep or list_option not in raw.get(list_section, {}):
            raise zc.buildout.UserError(
                f'{name}: option for-each: expected SECTION:OPTION naming the list of a '
                f'section of this configuration, got {source!r}')
        defaults = {}
        for word in section.get('for-each-defaults', '').split():
            key, sep, value = word.partition('=')
            if not sep or not _PLACEHOLDER.fullmatch('{' + key + '}'):
                raise opt.invalid(name, 'for-each-defaults', 'KEY=VALUE words', word)
            defaults[key] = value
        defaults = {key: resolve(raw, value) for key, value in defaults.items()}
        groups.setdefault(source, []).append((name, section, defaults))
    made: dict[str, list[tuple[str, str]]] = {}
    for source, group in groups.items():
        list_section, list_option = source.split(':', 1)
        if list_section == 'buildout':
            raise zc.buildout.UserError(
                f'buildout: option {list_option}: a list for for-each belongs in a section of '
                f'its own, not in [buildout] (buildout reads it before any extension runs)')
        copies = made[source] = []
        lines = parse_lines(source, raw[list_section][list_option])
        # A line's KEY=VALUE that no template of the list uses is a misspelt one
        # (netwrok=host): refused, not silently ignored.
        used = {key for _, section, defaults in group for value in section.values()
                for key in _PLACEHOLDER.findall(value)} | \
            {key for _, _, defaults in group for key in defaults}
        for line in lines:
            unknown = sorted(set(line.values) - used)
            if unknown:
                raise zc.buildout.UserError(
                    f'{source}: line {line.name!r}: expected KEY=VALUE of what its templates '
                    f'use ({", ".join(sorted(used - {"host", "engine", "count", "index"})) or "none"}),'
                    f' not {unknown[0]}=')
        for line in lines:
            for name, section, defaults in group:
                copy = opt.check_part_name(name.replace(HOST, line.name),
                                           f'{source}: line {line.name!r}: copy of [{name}]')
                if copy in raw:
                    raise zc.buildout.UserError(
                        f'{source}: line {line.name!r}: its copy of [{name}] would be '
                        f'[{copy}], a section the configuration has already')
                values = line.placeholders(defaults)
                raw[copy] = {key: fill(value, values) for key, value in section.items()
                             if key not in CONTROL}
                for macro in raw[copy].get('<', '').split():
                    if macro not in raw:
                        raise zc.buildout.UserError(
                            f'{source}: line {line.name!r}: [{name}] takes its options from '
                            f'[{macro}] (<= {section["<"].strip()}), and there is no such '
                            f'section: check the value its placeholders come from')
                copies.append((name, copy))
        raw[list_section][f'{list_option}-parts'] = ' '.join(copy for _, copy in copies)
        raw[list_section][f'{list_option}-names'] = ' '.join(line.name for line in lines)
        for name, section, _ in group:
            published = section.get('for-each-parts', '').strip()
            if published:
                raw[list_section][published] = ' '.join(
                    copy for made_from, copy in copies if made_from == name)
    return made


def extension(buildout: Any) -> None:
    """The ``zc.buildout.extension`` entry point: copies written, parts listed.

    ``[buildout] parts`` is read before extensions run, so it cannot reference
    a list's parts: a template named there is replaced by its copies, in line
    order. The copies of a template it does not name are installed when a part
    references them, as any section with a recipe (so ``parts =`` empty
    installs none of them). Buildout
    calls every installed extension when a configuration names any, so a
    configuration without templates is left exactly as it is.
    """
    raw = buildout._raw  # buildout's sections before substitution (it has no public API)
    made = expand(raw)
    if not made:
        return
    parts = buildout['buildout']['parts'].split()
    for template in [name for name, section in raw.items() if 'for-each' in section]:
        if template in parts:
            at = parts.index(template)
            parts[at:at + 1] = [copy for copies in made.values()
                                for made_from, copy in copies if made_from == template]
    buildout['buildout']['parts'] = '\n'.join(parts)


__all__ = ['Line', 'parse_lines', 'fill', 'expand', 'extension']
