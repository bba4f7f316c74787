"""Which engine a part is on: its engine options, said once, read back the same way.

A part names its engine with the individual options (``docker-host``,
``docker-tls-verify``, ``docker-cert-path``, ``machine-name``, dockeroo's
``engine-*`` names, ``timeout``) or in one phrase, ``engine`` (``default``, a
URL or a Docker context, ``tls=DIR``: :func:`.options.engine_spec`); either may
be set in ``[buildout]`` as the default of every part. One function reads the
phrase wherever it is written (a part's ``engine``, ``[buildout]``'s, a copy's
``from-engine``), so a misspelt context or a ``tls=DIR`` without its files is
said in ``__init__``, before anything acts, under the option the user wrote.

A part's ``__init__`` writes the engine it is on into its options
(:class:`~.recipe.Recipe`), so ``.installed.cfg`` says it without
``[buildout]``: its uninstall hook reads them back with ``recorded=True``,
which checks nothing but what :func:`trusted` checks of every configuration
(an engine that cannot be reached any more is said when connecting:
:func:`reach`) and so always reaches the engine the part was installed on,
whatever ``[buildout]`` and the files say by then.

A directory of certificates (``docker-cert-path``, ``tls=DIR``) means the
engine's certificate is checked against its ``ca.pem``; only an explicit
``docker-tls-verify = false`` skips that, and every run says so
(:func:`trusted`, which every reading passes).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Hashable, Mapping, Protocol

import zc.buildout

from . import options as opt
from ..engine import tls
from ..engine.driver import (Engine, EngineConfig, EngineError, NoEngine, context_exists,
                             engine_errors)
from ..engine.errors import FAILURES


class Run(Protocol):
    """What the engine options need of a buildout run (:class:`.runstate.Run`, a layer
    above this one, which they do not import): its one client of each engine, the engines
    its parts are configured on, and what it said once already."""

    @property
    def configured_engines(self) -> Mapping[str, EngineConfig]: ...

    def engine(self, config: EngineConfig, part: str) -> Engine: ...

    def first_time(self, key: Hashable) -> bool: ...

#: Options every recipe takes: where the engine is.
ENGINE_OPTIONS = ('engine', 'docker-host', 'docker-tls-verify', 'docker-cert-path', 'timeout',
                  'machine-name')

#: What each engine option means and its default, for the engine options' page (docs/engine.rst).
ENGINE_OPTION_DOCS = {
    'engine': ('', 'The engine in one phrase: ``default`` (the buildout\'s own engine), a URL '
               '(``tcp://box2:2376``, ``unix:///PATH``, ``ssh://box2``) or a Docker context\'s '
               'name, then optionally ``tls=DIR`` (``ca.pem``, ``cert.pem``, ``key.pem``).'),
    'docker-host': ('DOCKER_HOST, else the local socket',
                    'The engine\'s URL; dockeroo\'s ``engine-url`` too.'),
    'docker-tls-verify': ('DOCKER_TLS_VERIFY', 'Check the engine\'s certificate against '
                          '``ca.pem`` of ``docker-cert-path`` (``false`` is warned of on every '
                          'run); dockeroo\'s ``engine-tls-verify`` too.'),
    'docker-cert-path': ('DOCKER_CERT_PATH', 'A directory with ``ca.pem``, ``cert.pem`` and '
                         '``key.pem``; dockeroo\'s ``engine-tls-cert-path`` too.'),
    'timeout': ('120', 'Seconds an engine request may take.'),
    'machine-name': ('the context DOCKER_MACHINE_NAME names', 'A Docker context\'s name.'),
}

#: The options that say where the engine is and how to trust it (``engine`` says them all).
LOCATION_OPTIONS = ('docker-host', 'docker-tls-verify', 'docker-cert-path', 'machine-name')

#: dockeroo's names for the engine options, accepted so its buildouts migrate as they are.
DOCKEROO_ALIASES = {'docker-host': 'engine-url', 'docker-tls-verify': 'engine-tls-verify',
                    'docker-cert-path': 'engine-tls-cert-path'}

def _first(options: Mapping[str, str], key: str) -> str | None:
    value = options.get(key)
    return value.strip() if value and value.strip() else None


def _given(options: Mapping[str, str], key: str) -> str | None:
    """An engine option as written, under its name or dockeroo's."""
    found = _first(options, key)
    alias = DOCKEROO_ALIASES.get(key)
    return found if found is not None or alias is None else _first(options, alias)


def engine_config(part: str, options: Mapping[str, str],
                  defaults: Mapping[str, str] | None = None,
                  recorded: bool = False, run: Run | None = None) -> EngineConfig:
    """The engine a part's options name; ``defaults`` is the ``[buildout]`` section.

    The part's own options win, each falling back to ``[buildout]``'s (whose
    ``engine`` phrase stands for its options). A part's ``engine`` says them
    all: ``default`` is the ``[buildout]`` engine, and an engine option of the
    part beside the phrase that says otherwise is a contradiction.

    ``recorded``: ``options`` are a part's as ``.installed.cfg`` holds them (see
    the module's docstring): nothing is checked but the key (:func:`trusted`), and
    ``[buildout]`` is not read. ``run``: the run that reads them (its warnings are
    said once: :func:`trusted`).
    """
    if recorded:
        return _recorded(part, options, run)
    base = buildout_engine(part, defaults or {})
    phrase = _first(options, 'engine')
    if phrase is None:
        return _config_of(part, {key: _given(options, key) or base.get(key)
                                 for key in (*LOCATION_OPTIONS, 'timeout')}, run=run)
    spoken = spoken_engine(part, 'engine', phrase)
    meant = spoken or {key: base[key] for key in LOCATION_OPTIONS if key in base}
    _refuse_contradictions(part, options, phrase, meant)
    return _config_of(part, {**meant, 'timeout': _given(options, 'timeout') or base.get('timeout')},
                      run=run)


def buildout_engine(part: str, buildout: Mapping[str, str]) -> dict[str, str]:
    """The ``[buildout]`` section's engine options, its ``engine`` phrase said as them (the
    default of every part); ``engine = default`` there is its other options, as without it."""
    found = {key: value for key in (*LOCATION_OPTIONS, 'timeout')
             if (value := _given(buildout, key)) is not None}
    phrase = _first(buildout, 'engine')
    spoken = spoken_engine(part, 'engine of [buildout]', phrase) if phrase else {}
    if not spoken:
        return found
    _refuse_contradictions(part, buildout, phrase or '', spoken, ' of [buildout]')
    return {**spoken, **({'timeout': found['timeout']} if 'timeout' in found else {})}


def _refuse_contradictions(part: str, options: Mapping[str, str], phrase: str,
                           meant: Mapping[str, str], where: str = '') -> None:
    """An engine option beside ``engine`` must say what the phrase says (the same
    directory, ``~`` or not), or be left out."""
    for key in LOCATION_OPTIONS:
        given = _given(options, key)
        if given is not None and not _same(key, given, meant.get(key)):
            raise opt.invalid(part, f'{key}{where}', f'no {key} beside engine = {phrase} (engine '
                              f'says where the engine is: keep one of them)', given)


def _same(key: str, given: str, meant: str | None) -> bool:
    """Whether an engine option says what the phrase does."""
    if key == 'docker-tls-verify':
        with contextlib.suppress(opt.Invalid):
            return opt.boolean(given) == opt.boolean(meant or 'false')
        return False
    if meant is None:
        return False
    if key == 'docker-cert-path':
        return os.path.normpath(os.path.expanduser(given)) == \
            os.path.normpath(os.path.expanduser(meant))
    return given == meant


def spoken_engine(part: str, option: str, phrase: str) -> dict[str, str]:
    """The engine options a phrase stands for (``{}``: ``default``), checked now: the one
    reading of an engine phrase, wherever it is written (``option``)."""
    try:
        spec = opt.engine_spec(phrase)
    except opt.Invalid as exc:
        raise opt.invalid(part, option, str(exc), phrase) from None
    check_spoken(part, option, spec)
    return spec


def check_spoken(part: str, option: str, spec: Mapping[str, str]) -> None:
    """A parsed phrase's ``tls=DIR`` holds its files and its context exists, said under
    ``option`` (as the user wrote it), before anything acts."""
    cert_path = spec.get('docker-cert-path')
    problem = cert_path and tls_directory_problem(cert_path, verify=True)
    if problem:
        raise opt.invalid(part, option, f'tls=DIR naming {problem}', cert_path)
    context = spec.get('machine-name')
    if context and not context_exists(context):
        raise zc.buildout.UserError(
            f'{part}: option {option}: no Docker context named {context!r} (docker context ls '
            f'lists them; {opt.DEFAULT_ENGINE} is the buildout\'s own engine, tcp://HOST:2376 or '
            f'unix:///PATH an engine by its address)')


def engine_of_spec(part: str, option: str, spec: Mapping[str, str],
                   buildout: Mapping[str, str], timeout: int | None = None,
                   run: Run | None = None) -> EngineConfig:
    """The engine an option names in one phrase (``spec`` as :func:`.options.engine_spec`
    parsed it), for a part that reaches an engine besides its own.

    ``default`` (an empty spec) is the buildout's own engine, the ``[buildout]``
    section's engine options, never the part's. Checked as a part's ``engine``
    is (:func:`check_spoken`). ``timeout`` is the part's own (one part, one patience).
    """
    check_spoken(part, option, spec)
    base = buildout_engine(part, buildout) if not spec else {}
    meant = dict(spec) or {key: base[key] for key in LOCATION_OPTIONS if key in base}
    return _config_of(part, {**meant, 'timeout': str(timeout) if timeout is not None
                             else base.get('timeout')}, run=run)


def _config_of(part: str, values: Mapping[str, str | None],
               recorded: bool = False, run: Run | None = None) -> EngineConfig:
    """The engine options (as written: strings), checked: booleans, the timeout, the TLS
    directory, the context. The one reading of engine options, live and recorded.

    ``recorded``: options written by an earlier run (:func:`record`); a value that
    cannot be read is its default (it was checked when it was written), the context
    is left to connecting, and only :func:`trusted`'s checks are made.
    """
    verify = values.get('docker-tls-verify')
    tls_verify: bool | None = None
    timeout = 120
    try:
        tls_verify = opt.boolean(verify) if verify else None
    except opt.Invalid as exc:
        if not recorded:
            raise opt.invalid(part, 'docker-tls-verify', str(exc), verify) from None
    try:
        timeout = opt.integer(1, opt.MAX_DURATION)(values.get('timeout') or '120')
    except opt.Invalid:
        if not recorded:
            raise opt.invalid(part, 'timeout', 'a number of seconds of at least 1 and at most '
                              f'{opt.MAX_DURATION}', values.get('timeout')) from None
    cert_path = values.get('docker-cert-path')
    context = values.get('machine-name')
    host = values.get('docker-host')
    if not recorded:
        if context and not context_exists(context):
            raise zc.buildout.UserError(
                f'{part}: option machine-name: no Docker context named {context!r} '
                f'(docker context ls lists them)')
        if host:
            try:
                opt.split_url(host, 'an engine URL such as tcp://HOST:2376')
            except opt.Invalid as exc:
                raise opt.invalid(part, 'docker-host', str(exc), host) from None
        context = context or machine_from_environment(part, host)
    return trusted(part, 'docker-cert-path', EngineConfig(
        host=host, tls_verify=tls_verify, cert_path=cert_path and os.path.expanduser(cert_path),
        timeout=timeout, context=context), complete=not recorded, run=run)


def _recorded(part: str, options: Mapping[str, str], run: Run | None = None) -> EngineConfig:
    """The engine a part was installed on, from its recorded options: its phrase when it
    names an engine (the options written beside it are the phrase's), else the options
    ``__init__`` wrote (``engine = default`` included: ``[buildout]``'s then)."""
    phrase = _first(options, 'engine')
    spoken: dict[str, str] = {}
    if phrase:
        with contextlib.suppress(opt.Invalid):
            spoken = opt.engine_spec(phrase)
    values = spoken or {key: value for key in LOCATION_OPTIONS
                        if (value := _given(options, key)) is not None}
    return _config_of(part, {**values, 'timeout': _given(options, 'timeout')}, recorded=True,
                      run=run)


def record(config: EngineConfig) -> dict[str, str]:
    """``config`` as engine options (what :func:`engine_config` reads back): the one way an
    engine is written down, into a part's options for its uninstall hook, a control
    script's description, a backup's manifest, a command script. Defaults are left out
    (``docker-tls-verify = false`` means something only beside a directory)."""
    verify = {True: 'true', False: 'false' if config.cert_path else None, None: None}
    found = {'docker-host': config.host, 'docker-tls-verify': verify[config.tls_verify],
             'docker-cert-path': config.cert_path, 'machine-name': config.context,
             'timeout': str(config.timeout) if config.timeout != 120 else None}
    return {key: value for key, value in found.items() if value}


def trusted(part: str, option: str, config: EngineConfig, complete: bool = True,
            run: Run | None = None) -> EngineConfig:
    """``config``, once its certificates may be used: the one gate of every engine
    configuration, however it was read (a part's options in ``__init__``, from
    ``[buildout]``, a phrase or a builder line; the options ``.installed.cfg``
    recorded, for an uninstall; the description a control or command script reads).

    A ``key.pem`` group or others can read is refused in one line naming ``option`` (or
    ``DOCKER_CERT_PATH``, when the SDK would take the directory from the environment);
    an engine whose certificate is not checked (``docker-tls-verify = false`` beside
    a directory) is said in one warning per part and run (``run``; without one, such as a
    script's one command, at every reading). ``complete``: the directory
    must also hold its files (a recorded or described one is left to connecting,
    which says what is wrong with it).
    """
    if not config.cert_path:
        environment = os.environ.get('DOCKER_CERT_PATH', '').strip()
        problem = tls.exposed_key(environment) if environment and not config.context else None
        if problem:   # the SDK takes its key from there (the driver has it checked, too)
            raise zc.buildout.UserError(f'{part}: DOCKER_CERT_PATH in the environment: '
                                        f'expected {problem}, got {environment!r}')
        return config
    problem = tls_directory_problem(config.cert_path, config.verifies) if complete \
        else tls.exposed_key(config.cert_path)
    if problem:
        raise opt.invalid(part, option, problem, config.cert_path)
    if not config.verifies and (run is None or run.first_time(
            ('docker-tls-verify', part, config.describe(), config.cert_path))):
        tls.warn_unverified(part, config.describe(), config.cert_path)
    return config


def described(part: str, recorded: Mapping[str, object]) -> EngineConfig:
    """An engine as a generated script's description or a backup's manifest holds it
    (:func:`record`; those of earlier versions hold its ``EngineConfig``'s fields, and a
    script written then still runs), read as a part's recorded options are and so
    checked as every configuration is (:func:`trusted`) before the script connects: its
    key may have been opened up, or its checking turned off, since."""
    if {'host', 'tls_verify'} <= set(recorded):   # every field, as earlier versions wrote it
        old = {key: recorded.get(field) for key, field in (
            ('docker-host', 'host'), ('docker-cert-path', 'cert_path'),
            ('machine-name', 'context'), ('timeout', 'timeout'), ('docker-tls-verify', 'tls_verify'))}
        recorded = {key: str(value).lower() for key, value in old.items() if value is not None}
    return _recorded(part, {key: str(value) for key, value in recorded.items()})


def machine_from_environment(part: str, host: str | None) -> str | None:
    """dockeroo's default of ``machine-name``: ``DOCKER_MACHINE_NAME``, as a Docker context.

    Only when no ``docker-host`` is configured. docker-machine's environment sets
    ``DOCKER_HOST`` beside it, so a name that is no context then leaves the engine
    to ``DOCKER_HOST``; with neither, it is a mistake said in one line.
    """
    machine = os.environ.get('DOCKER_MACHINE_NAME', '').strip()
    if not machine or host:
        return None
    if context_exists(machine):
        return machine
    if os.environ.get('DOCKER_HOST'):
        return None
    raise zc.buildout.UserError(
        f'{part}: option machine-name: its default, DOCKER_MACHINE_NAME={machine!r}, names no '
        f'Docker context (docker context ls lists them): create one, set machine-name or '
        f'docker-host, or unset DOCKER_MACHINE_NAME')


def tls_directory_problem(path: str, verify: bool) -> str | None:
    """What a directory of client certificates should be, when it is not (``None``: it is);
    ``ca.pem`` is needed only to check the engine's certificate (``verify``), and
    ``key.pem`` must be its owner's alone (:func:`.tls.exposed_key`)."""
    missing = [name for name in ('ca.pem', 'cert.pem', 'key.pem')[0 if verify else 1:]
               if not os.path.isfile(os.path.join(os.path.expanduser(path), name))]
    if os.path.isdir(os.path.expanduser(path)) and not missing:
        return tls.exposed_key(path)
    return 'a directory holding ca.pem, cert.pem and key.pem' + (
        f' ({", ".join(missing)} missing)' if missing else '')


def reach(run: Run, part: str, config: EngineConfig) -> tuple[Engine | None, str]:
    """(the engine, '') when it answers, else (``None``, why not in a few words): for the
    hooks that can go on without it (a part gone from the configuration, or gone to
    another engine), which say what is left there."""
    try:
        with engine_errors(part, config, 'connecting'):
            return run.engine(config, part), ''
    except NoEngine as exc:
        return None, f'no Docker engine answers at {exc.address}'
    except EngineError as exc:
        return None, str(exc).removeprefix(f'{part}: ')


def same_daemon(first: Engine, second: Engine) -> bool:
    """Whether two addresses reach one daemon (a socket and a TCP port of one engine, a
    socket through two links): asked only when their keys differ."""
    try:
        return first.daemon == second.daemon
    except FAILURES:
        return False


@dataclasses.dataclass(frozen=True)
class Move:
    """A reinstalled part whose options now name another engine than the one it is on."""

    old: EngineConfig
    new: EngineConfig
    #: The old engine, when it answers; else why not (``why``).
    engine: Engine | None
    why: str = ''


def engine_move(run: Run, part: str, options: Mapping[str, str]) -> Move | None:
    """Whether a part buildout reinstalls leaves the engine its recorded ``options`` name
    (``None``: it stays, and its install adopts what is there).

    Another key is another engine unless both answer with one daemon's ID (a socket
    and a TCP port of one dockerd): then it stays. Its install makes it anew on
    the new engine; what it made on the old one is left to :mod:`.moves`.
    """
    new = run.configured_engines.get(part)
    if new is None:
        return None
    old = engine_config(part, options, recorded=True, run=run)
    if old.key() == new.key():
        return None
    engine, why = reach(run, part, old)
    if engine is not None:
        there, _ = reach(run, part, new)
        if there is not None and same_daemon(engine, there):
            return None
    return Move(old, new, engine, why)


__all__ = ['Move', 'engine_move', 'ENGINE_OPTIONS', 'LOCATION_OPTIONS', 'DOCKEROO_ALIASES',
           'engine_config', 'buildout_engine', 'spoken_engine', 'check_spoken', 'engine_of_spec',
           'trusted', 'described', 'record',
           'machine_from_environment', 'tls_directory_problem', 'reach',
           'same_daemon']
