"""The base recipe: validation and identity in ``__init__``, bookkeeping once.

Buildout calls ``__init__`` for every part before it uninstalls anything, so
all validation happens there. It calls the uninstall hook of a part whose
options changed *before* installing it again; tearing the object down there
would lose what the new install could adopt. So the hook only acts on parts
that are gone from the configuration; a part that is being reinstalled is
left to its ``install()``, which adopts what exists, changes what must
change, and cleans up stale objects of the same part by their labels.
"""
from __future__ import annotations

import logging
import os
from typing import Any, ClassVar, Mapping, MutableMapping

import zc.buildout

from . import options as opt
from . import runlock
from .engine import (Engine, EngineConfig, connect, engine_errors, identity_hash,
                     labels_of, owner_labels, LABEL_BUILDOUT, LABEL_IDENTITY, LABEL_PART)

#: Options every recipe takes: where the engine is.
ENGINE_OPTIONS = ('docker-host', 'docker-tls-verify', 'docker-cert-path', 'timeout', 'machine-name')

#: dockeroo's names for the engine options, accepted so its buildouts migrate as they are.
DOCKEROO_ALIASES = {'docker-host': 'engine-url', 'docker-tls-verify': 'engine-tls-verify',
                    'docker-cert-path': 'engine-tls-cert-path'}

#: Options that would put a secret into .installed.cfg; refused everywhere.
PLAIN_SECRETS = ('password', 'token', 'secret', 'private-key', 'auth')

#: (buildout directory, part) -> recipe, for every part configured in this run.
CONFIGURED: dict[tuple[str, str], str] = {}


def engine_config(part: str, options: Mapping[str, str],
                  defaults: Mapping[str, str] | None = None) -> EngineConfig:
    """The engine options of a part, falling back to the ``[buildout]`` section."""
    def get(key: str) -> str | None:
        for source in (options, defaults or {}):
            for name in (key, DOCKEROO_ALIASES.get(key)):
                value = source.get(name) if name else None
                if value and value.strip():
                    return value.strip()
        return None

    try:
        tls = opt.boolean(get('docker-tls-verify') or 'false')
    except opt.Invalid as exc:
        raise opt.invalid(part, 'docker-tls-verify', str(exc), get('docker-tls-verify')) from None
    try:
        timeout = opt.integer(1)(get('timeout') or '120')
    except opt.Invalid as exc:
        raise opt.invalid(part, 'timeout', 'a number of seconds of at least 1', get('timeout')) from None
    cert_path = get('docker-cert-path')
    if cert_path and not os.path.isdir(os.path.expanduser(cert_path)):
        raise opt.invalid(part, 'docker-cert-path', 'a directory holding ca.pem, cert.pem and key.pem',
                          cert_path)
    return EngineConfig(host=get('docker-host'), tls_verify=tls,
                        cert_path=cert_path and os.path.expanduser(cert_path),
                        timeout=timeout, context=get('machine-name'))


class Recipe:
    """Shared life cycle of every recipe; subclasses declare and do one job.

    Subclasses set ``recipe`` (the entry point name), ``kind`` (the kind of
    engine object they own) and ``table`` (their options), and implement
    :meth:`apply` (install and update) and :meth:`teardown` (removal).
    """

    recipe: ClassVar[str]
    kind: ClassVar[str]
    table: ClassVar[tuple[opt.Option, ...]] = ()

    def __init__(self, buildout: Mapping[str, Mapping[str, str]], name: str,
                 options: MutableMapping[str, str]) -> None:
        self.buildout = buildout
        self.name = name
        self.options = options
        self.log = logging.getLogger(name)
        self.directory = os.path.realpath(buildout['buildout']['directory'])
        runlock.hold(self.directory, name)
        for key in PLAIN_SECRETS:
            if key in options:
                raise zc.buildout.UserError(
                    f'{name}: option {key}: secrets are taken by reference, never as plain '
                    f'options: use {key}-env (an environment variable) or {key}-file (a file)')
        self.engine_config = engine_config(name, options, buildout['buildout'])
        for key, value in (('docker-host', self.engine_config.host),
                           ('docker-cert-path', self.engine_config.cert_path),
                           ('machine-name', self.engine_config.context)):
            # Written into the part so the uninstall hook reaches the same engine.
            if value and key not in options:
                options[key] = value
        if self.engine_config.tls_verify:
            options['docker-tls-verify'] = 'true'
        self.values: dict[str, Any] = opt.parse_options(name, options, self.table)
        self._engine: Engine | None = None
        self.configure()
        CONFIGURED[(self.directory, name)] = self.recipe

    # -- hooks for subclasses -----------------------------------------------
    def configure(self) -> None:
        """Cross-option checks and derived options (written into ``options``)."""

    def apply(self, fresh: bool) -> list[str]:
        """Make the engine match the configuration; return files created."""
        raise NotImplementedError

    @classmethod
    def teardown(cls, engine: Engine, directory: str, part: str,
                 options: Mapping[str, str], log: logging.Logger) -> None:
        """Remove what the part made (the part is gone from the configuration)."""
        raise NotImplementedError

    # -- shared pieces ----------------------------------------------------------
    def name_from_part(self) -> str:
        """``name`` defaults to the part name; exposed as ``${part:name}``."""
        if self.values.get('name') is None:
            try:
                self.values['name'] = opt.name(self.name)
            except opt.Invalid as exc:
                raise opt.invalid(self.name, 'name', f'{exc} (the part name is not one: set name)',
                                  self.name) from None
        self.options['name'] = self.values['name']
        return self.values['name']

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = connect(self.engine_config, self.name)
        return self._engine

    def identity_values(self) -> dict[str, Any]:
        """The parsed options that define the object (changes mean a new object)."""
        return {o.name: self.values[o.name] for o in self.table if o.identity}

    def identity(self, **extra: Any) -> str:
        return identity_hash({'recipe': self.recipe, 'part': self.name,
                              **self.identity_values(), **extra})

    def labels(self, identity: str, user: Mapping[str, str] | None = None) -> dict[str, str]:
        """User labels plus the ownership labels (ours win)."""
        return {**(user or {}), **owner_labels(self.directory, self.name, identity, self.recipe)}

    def is_ours(self, obj: Mapping[str, Any]) -> bool:
        return labels_of(dict(obj)).get(LABEL_BUILDOUT) == self.directory

    def check_ours(self, obj: Mapping[str, Any], what: str, object_name: str) -> None:
        """Refuse to touch an object that another buildout or a person made."""
        labels = labels_of(dict(obj))
        owner = labels.get(LABEL_BUILDOUT)
        if owner == self.directory:
            return
        if owner:
            raise zc.buildout.UserError(
                f'{self.name}: {what} {object_name!r} already exists and belongs to the buildout in '
                f'{owner} (part {labels.get(LABEL_PART)}); choose another name')
        raise zc.buildout.UserError(
            f'{self.name}: {what} {object_name!r} already exists and was not made by this buildout '
            f'(it has no {LABEL_BUILDOUT} label); remove it or choose another name')

    @staticmethod
    def identity_of(obj: Mapping[str, Any]) -> str | None:
        return labels_of(dict(obj)).get(LABEL_IDENTITY)

    def newest(self) -> bool:
        """Buildout's newest mode (off with -N)."""
        return self.buildout['buildout'].get('newest', 'true') == 'true'

    # -- buildout's entry points ------------------------------------------------
    def install(self) -> list[str]:
        with engine_errors(self.name, self.engine_config):
            return list(self.apply(fresh=True))

    def update(self) -> list[str]:
        with engine_errors(self.name, self.engine_config):
            return list(self.apply(fresh=False))

    @classmethod
    def uninstall(cls, name: str, options: Mapping[str, str]) -> None:
        """Buildout's uninstall hook: act only when the part is really gone."""
        directory = os.path.realpath(os.getcwd())
        log = logging.getLogger(name)
        if CONFIGURED.get((directory, name)) == cls.recipe:
            log.debug('%s is being reinstalled: its install adopts what exists', name)
            return
        config = engine_config(name, options)
        with engine_errors(name, config):
            engine = connect(config, name)
            cls.teardown(engine, directory, name, options, log)
            engine.forget()


def uninstaller(cls: type[Recipe]):
    """The module-level function buildout's uninstall entry point names."""
    def uninstall(name: str, options: Mapping[str, str]) -> None:
        cls.uninstall(name, options)
    uninstall.__doc__ = f'Uninstall hook of {cls.recipe}.'
    return uninstall


__all__ = ['Recipe', 'uninstaller', 'engine_config', 'CONFIGURED']
