"""Parsing of option values into Python values.

Every recipe declares its options as a table of :class:`Option`; the table
drives parsing, defaults and which values make up an object's identity. A
parser raises :class:`Invalid` with what it expected; :func:`parse_options`
turns that into one ``UserError`` line naming the part and the option.
"""
from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
import urllib.parse
from typing import Any, Callable, Mapping

import zc.buildout

TRUE = frozenset({'true', 'yes', 'on', '1'})
FALSE = frozenset({'false', 'no', 'off', '0'})

NAME_RE = re.compile(r'^[a-zA-Z0-9][a-zA-Z0-9_.-]*$')
#: A part's (a section's) name as it may become a file's name (``bin/PART``,
#: ``parts/PART``), a label and a line of a generated script: ASCII letters, digits and
#: ``_ . - + @``, starting with a letter, a digit or ``_``; so no path separator, no
#: ``..``, no quote, no space and no control character.
PART_NAME_RE = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.+@-]*', re.ASCII)
IMAGE_RE = re.compile(
    r'^(?:(?P<registry>[a-zA-Z0-9.-]+(?::[0-9]+)?)/)?'
    r'(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)'
    r'(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?'
    r'(?:@(?P<digest>sha256:[a-f0-9]{64}))?$')
KEY_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_.\-/]*$')
SIZE_RE = re.compile(r'^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$', re.I | re.ASCII)
DURATION_PART_RE = re.compile(r'(\d+(?:\.\d+)?)(ms|s|m|h)', re.ASCII)
#: A whole number as a user writes it: ASCII digits only (``int()`` also takes ``٣`` and ``1_0``).
INTEGER_RE = re.compile(r'[+-]?[0-9]+', re.ASCII)
#: A number of seconds as a user writes it (``float()`` also takes ``inf``, ``nan``, ``1e400``).
SECONDS_RE = re.compile(r'[0-9]+(?:\.[0-9]+)?', re.ASCII)
UNITS = {'': 1, 'k': 1024, 'm': 1024 ** 2, 'g': 1024 ** 3, 't': 1024 ** 4}
SECONDS = {'ms': 0.001, 's': 1, 'm': 60, 'h': 3600}

#: The longest duration any option takes: a day. Every duration ends up as a wait (a
#: stop, a gate, a health check's period); an unbounded one (``inf``, ``1e400``) would
#: hang a run or overflow where the engine or a socket is given it, long after the
#: configuration was accepted.
MAX_DURATION = 24 * 3600
#: The most containers one part or one line of a list makes (``replicas``, a count):
#: what one engine can run, and a bound on what ``__init__`` lays out for them.
MAX_REPLICAS = 1000
#: The largest id a uid or gid takes (2**32 - 2: -1 is "none").
MAX_ID = 2 ** 32 - 2


class Invalid(ValueError):
    """A value that does not parse; the message says what was expected."""


Parser = Callable[[str], Any]


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of a recipe: how to parse it and whether it is identity."""

    name: str
    parse: Parser = lambda raw: raw.strip()  # noqa: E731 - a default parser
    default: str | None = None
    required: bool = False
    identity: bool = True
    #: Older names accepted for the option (dockeroo's), e.g. ``build-script`` for ``script``.
    aliases: tuple[str, ...] = ()
    #: The value names a secret (a variable or a file) rather than holding it: never shown.
    secret: bool = False
    #: What the option means, for the recipe's page (docs/_ext/optiontables.py renders it).
    doc: str = ''


def parse_options(part: str, options: Mapping[str, str],
                  table: tuple[Option, ...]) -> dict[str, Any]:
    """Parse every declared option; one ``UserError`` for the first bad one."""
    values: dict[str, Any] = {}
    for option in table:
        raw = options.get(option.name)
        for alias in option.aliases:
            if options.get(alias) is not None:
                if raw is not None:
                    raise zc.buildout.UserError(
                        f'{part}: option {alias} is the old name of {option.name}: give only one')
                raw = options[alias]
        if raw is None or (not raw.strip() and option.required):
            if option.required:
                raise zc.buildout.UserError(
                    f'{part}: option {option.name} is required but missing')
            raw = option.default
        if raw is None:
            values[option.name] = None
            continue
        try:
            values[option.name] = option.parse(raw)
        except Invalid as exc:
            raise invalid(part, option.name, str(exc), raw) from None
    return values


#: How alike an unknown option's name must be to a known one to be called a misspelling
#: (``comand`` / ``command`` is 0.92; ``app-port`` / ``ports`` 0.62 stays silent).
CLOSE_ENOUGH = 0.8


def misspelt(options: Mapping[str, str], known: set[str]) -> list[tuple[str, str]]:
    """(option, the known name it is close to) for each option of a section that its
    recipe does not know but that is close to one it knows.

    Buildout's own "unused option" warning is only given on a part's first install and
    never for a system's member sections, so a typo on an installed part would go
    unsaid and the option silently unused. An option far from every known name stays
    silent: buildouts keep their own values in parts, as ``${:variables}``.
    """
    found = []
    for key in options:
        if key in known or key.startswith('_'):
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=CLOSE_ENOUGH)
        if close:
            found.append((key, close[0]))
    return found


def known_names(table: tuple[Option, ...]) -> set[str]:
    """Every name a table takes, old names included."""
    return {name for option in table for name in (option.name, *option.aliases)}


def invalid(part: str, option: str, expected: str, raw: str | None = None) -> zc.buildout.UserError:
    """The one-line error for a bad value."""
    got = '' if raw is None else f', got {short(raw)!r}'
    return zc.buildout.UserError(f'{part}: option {option}: expected {expected}{got}')


def short(raw: str, limit: int = 80) -> str:
    """A value cut to a readable length for an error line."""
    raw = raw.strip()
    return raw if len(raw) <= limit else raw[:limit] + '...'


# -- scalar parsers ---------------------------------------------------------
def text(raw: str) -> str:
    return raw.strip()


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise Invalid('a boolean (true/false, yes/no, on/off, 1/0)')


def integer(minimum: int, maximum: int) -> Parser:
    """A whole number in ``minimum`` .. ``maximum``: every count has its bound, so that a
    typo of a few digits is said here, not found as a run that never ends."""
    def parse(raw: str) -> int:
        value = raw.strip()
        if not INTEGER_RE.fullmatch(value) or not minimum <= int(value) <= maximum:
            raise Invalid(_range_text('an integer', minimum, maximum))
        return int(value)
    return parse


def _range_text(what: str, minimum: int, maximum: int) -> str:
    return f'{what} of at least {minimum} and at most {maximum}'


def port(raw: str) -> int:
    value = raw.strip()
    if not INTEGER_RE.fullmatch(value) or not 1 <= int(value) <= 65535:
        raise Invalid('a port number from 1 to 65535')
    return int(value)


def size(raw: str) -> int:
    """Bytes from ``512``, ``64k``, ``10M``, ``2GiB``."""
    match = SIZE_RE.match(raw.strip())
    if not match:
        raise Invalid('a size such as 512, 64k, 10M or 2G')
    number, unit = match.groups()
    value = float(number) * UNITS[unit.lower()]
    if not math.isfinite(value):
        raise Invalid('a size such as 512, 64k, 10M or 2G')
    return int(value)


def duration_up_to(maximum: int) -> Parser:
    """A parser of durations from 0 to ``maximum`` seconds (see :func:`duration`)."""
    longest = f'{maximum // 3600}h' if maximum % 3600 == 0 else f'{maximum}s'
    expected = f'a duration such as 30, 30s, 500ms, 1m30s or 2h, from 0 to {longest}'

    def parse(raw: str) -> float:
        value = raw.strip().lower()
        if value.startswith('-'):
            raise Invalid(f'{expected} (not negative)')
        if SECONDS_RE.fullmatch(value):
            seconds = float(value)
        else:
            pos, seconds = 0, 0.0
            for match in DURATION_PART_RE.finditer(value):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * SECONDS[match.group(2)]
                pos = match.end()
            if pos != len(value) or not value:
                raise Invalid(expected)
        if not math.isfinite(seconds) or not 0 <= seconds <= maximum:
            raise Invalid(expected)
        return seconds
    return parse


#: Seconds from ``30``, ``30s``, ``500ms``, ``1m30s``, ``2h``: finite, from 0 to a day
#: (:data:`MAX_DURATION`); ``inf``, ``nan`` and ``1e400`` are not durations. What every
#: duration option takes.
duration: Parser = duration_up_to(MAX_DURATION)


def name(raw: str) -> str:
    """A name the engine accepts for a container, volume or network.

    The engine wants at least two characters for containers and volumes, and
    a volume's name is a directory's name (255 bytes at most); checked here so
    that it is a configuration error, found before anything is torn down.
    """
    value = raw.strip()
    if not NAME_RE.match(value) or not 2 <= len(value.encode()) <= 255:
        raise Invalid('a name of letters, digits, "_", "." and "-", starting with a letter or '
                      'digit, 2 to 255 characters long')
    return value


def part_name(raw: str) -> str:
    """A part's name, checked before it becomes a path, a label or part of a script (see
    :data:`PART_NAME_RE`); not stripped: a name is what buildout read."""
    if not PART_NAME_RE.fullmatch(raw) or len(raw.encode()) > 200:
        raise Invalid('a part name of letters, digits, "_", ".", "-", "+" and "@", '
                      'starting with a letter, digit or "_", at most 200 characters (it '
                      'becomes a file name)')
    return raw


def check_part_name(raw: str, where: str = '', what: str = 'part') -> str:
    """A part's (or a member section's) name, or one ``UserError`` line saying why not:
    the name is shown with ``repr`` (it may hold a control character), ``where`` names
    what made it or names it (a for-each list, a system's ``containers``)."""
    try:
        return part_name(raw)
    except Invalid as exc:
        raise zc.buildout.UserError(
            f'{where + ": " if where else ""}{what} {raw!r}: expected {exc}') from None


def image_reference(raw: str) -> str:
    value = raw.strip()
    if not IMAGE_RE.match(value):
        raise Invalid('an image reference such as name, name:tag, registry:5000/name:tag '
                      'or name@sha256:DIGEST (lower case)')
    return value


def network_address(raw: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(raw.strip(), strict=True)
    except ValueError:
        raise Invalid('a subnet in CIDR form such as 172.28.0.0/16') from None


def ip_address(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(raw.strip())
    except ValueError:
        raise Invalid('an IP address such as 172.28.0.1') from None


def existing_directory(raw: str) -> str:
    path = os.path.abspath(os.path.expanduser(raw.strip()))
    if not os.path.isdir(path):
        raise Invalid('an existing directory')
    if not os.access(path, os.R_OK | os.X_OK):
        raise Invalid('a directory this user can read')
    return path


def existing_file(raw: str) -> str:
    path = os.path.abspath(os.path.expanduser(raw.strip()))
    if not os.path.isfile(path):
        raise Invalid('an existing file')
    if not os.access(path, os.R_OK):
        raise Invalid('a file this user can read')
    return path


def path(raw: str) -> str:
    return os.path.abspath(os.path.expanduser(raw.strip()))


def split_url(raw: str, expected: str) -> urllib.parse.SplitResult:
    """A URL split into its parts, its port read: ``urlsplit`` and ``.port`` raise
    ``ValueError`` for ``tcp://[::1`` or ``http://h:99999/``, which would otherwise come
    out as a traceback when the URL is first used. ``expected`` says what was wanted."""
    try:
        parts = urllib.parse.urlsplit(raw.strip())
        port = parts.port
    except ValueError as exc:
        raise Invalid(f'{expected} ({exc})') from None
    if port == 0:
        raise Invalid(f'{expected} (port 0)')
    return parts


# -- multi-line parsers -----------------------------------------------------
def lines(raw: str) -> list[str]:
    """Non-empty, stripped lines; ``#`` starts a comment line."""
    return [line.strip() for line in raw.splitlines()
            if line.strip() and not line.strip().startswith('#')]


#: What ``default`` names in an engine spec: the buildout's own engine (its ``[buildout]``
#: engine options, else the environment's DOCKER_HOST, else the local socket).
DEFAULT_ENGINE = 'default'


def engine_spec(raw: str) -> dict[str, str]:
    """An engine in one phrase, as the engine options it stands for.

    ``default`` (the buildout's own engine: no option of its own), a URL
    (``unix://``, ``tcp://``, ``ssh://``: ``docker-host``) or a Docker
    context's name (``machine-name``), then optionally ``tls=DIR``: a
    directory with ``ca.pem``, ``cert.pem`` and ``key.pem`` (docker's own
    names), the engine's certificate checked against ``ca.pem``
    (``docker-tls-verify`` and ``docker-cert-path``). One phrase, so that a
    line of a list can name an engine (a builder machine, a copy's source).
    """
    words_ = raw.split()
    if not words_:
        raise Invalid('an engine: default, a URL (tcp://HOST:2376, unix:///PATH, ssh://HOST) '
                      'or a Docker context name, optionally followed by tls=DIR')
    where, rest = words_[0], words_[1:]
    found: dict[str, str] = {}
    if '://' in where:
        found['docker-host'] = engine_url(where)
    elif where != DEFAULT_ENGINE:
        if not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9_.+-]*', where):
            raise Invalid(f'an engine URL (tcp://HOST:2376) or a Docker context name, not {where!r}')
        found['machine-name'] = where
    for word in rest:
        key, sep, value = word.partition('=')
        if key != 'tls' or not sep or not value:
            raise Invalid(f'tls=DIR after the engine (a directory with ca.pem, cert.pem and '
                          f'key.pem), not {word!r}')
        if where == DEFAULT_ENGINE:
            raise Invalid('no tls= for default: the buildout\'s own engine has its own options')
        found['docker-tls-verify'] = 'true'
        found['docker-cert-path'] = value
    return found


def engine_url(raw: str) -> str:
    """An engine's URL (``docker-host``, an engine phrase's first word): a scheme the
    Docker SDK speaks, and a URL that parses."""
    where = raw.strip()
    if where.split('://', 1)[0] not in ('unix', 'tcp', 'ssh', 'npipe', 'http', 'https'):
        raise Invalid(f'an engine URL of unix://, tcp:// or ssh://, not {where!r}')
    split_url(where, f'an engine URL such as tcp://HOST:2376, not {where!r}')
    return where


def words(raw: str) -> list[str]:
    """Whitespace-separated words over all lines."""
    return raw.split()


def key_values(raw: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (also ``KEY: VALUE``) into an ordered dict."""
    result: dict[str, str] = {}
    for line in lines(raw):
        key, sep, value = line.partition('=')
        if not sep:
            raise Invalid('KEY=VALUE lines')
        key = key.strip()
        if not KEY_RE.match(key):
            raise Invalid('KEY=VALUE lines with keys of letters, digits, "_", ".", "-" or "/"')
        result[key] = value.strip()
    return result


def each(parse: Parser) -> Parser:
    """Apply a single-value parser to every line."""
    def parse_lines(raw: str) -> list[Any]:
        return [parse(line) for line in lines(raw)]
    return parse_lines


def one_of(*choices: str) -> Parser:
    def parse(raw: str) -> str:
        value = raw.strip()
        if value not in choices:
            raise Invalid('one of ' + ', '.join(choices))
        return value
    return parse


def saved_flag(options: Mapping[str, str], key: str, default: bool) -> bool:
    """A boolean from a removed part's saved options; its default when unreadable.

    Uninstall hooks read what ``.installed.cfg`` kept; a value that no longer
    parses must not stop a removal, so the recipe's default stands in.
    """
    try:
        return boolean(options.get(key) or str(default))
    except Invalid:
        return default
