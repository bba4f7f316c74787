"""Secrets by reference: an environment variable or a file, read into memory only.

The option holds the variable's name or the file's path, never the secret,
so nothing secret reaches ``.installed.cfg``. The value itself is read when
needed and handed to the SDK in memory (never a docker config on disk).

A container's environment from ``env-file`` is secret too: the container
carries the *names* of those variables in a label (:data:`LABEL_SECRET_ENV`),
so that an image committed from it resets them (:func:`secret_env`) and its
printed log lines show ``***`` for their values (:func:`masked`).
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping

import zc.buildout

from . import atomicfile
from ..model import options as opt
from . import readfiles
from ..engine.driver import Engine
from ..engine.labels import LABEL, LABEL_INPUTS

#: The names (never the values) of a container's environment variables that came from
#: a secret reference (``env-file``), as a JSON list.
LABEL_SECRET_ENV = f'{LABEL}.secret-env'

#: What a secret value is shown as.
MASK = '***'

#: A registry login, the password by reference (docker.pull and docker.push take it).
CREDENTIAL_OPTIONS = (
    opt.Option('username', opt.text, identity=False,
               doc="The registry user (else the user's docker config)."),
    opt.Option('password-env', opt.text, identity=False, secret=True,
               doc='The environment variable holding the password.'),
    opt.Option('password-file', opt.text, identity=False, secret=True,
               doc='The file holding the password.'),
)


def secret(part: str, options: Mapping[str, str], key: str = 'password') -> str | None:
    """The secret named by ``KEY-env`` or ``KEY-file``; ``None`` when neither is set."""
    env_name = (options.get(f'{key}-env') or '').strip()
    file_name = (options.get(f'{key}-file') or '').strip()
    if env_name and file_name:
        raise zc.buildout.UserError(
            f'{part}: options {key}-env and {key}-file: expected one of them, not both')
    if env_name:
        value = os.environ.get(env_name)
        if value is None:
            raise zc.buildout.UserError(
                f'{part}: option {key}-env: the environment variable {env_name} is not set')
        return value
    if file_name:
        return readfiles.read_text(part, f'{key}-file', os.path.expanduser(file_name)
                                   ).rstrip('\r\n')
    return None


def plain_secret_refused(part: str, key: str, recipe: str, taken: tuple[str, ...],
                         container: bool = False) -> zc.buildout.UserError:
    """The one line refusing a plain secret option ``key``.

    It names only options the recipe takes (``taken``: the secrets it takes by
    reference), so following it never leads to an option buildout reports unused.
    ``container``: the part configures a container, which gets secrets from files.
    """
    head = f'{part}: option {key}: secrets are taken by reference, never as plain options'
    if key in taken:
        return zc.buildout.UserError(
            f'{head}: use {key}-env (an environment variable) or {key}-file (a file)')
    if taken:
        return zc.buildout.UserError(
            f'{head}, and {recipe} takes no {key}: it takes '
            + ', '.join(f'{other}-env or {other}-file' for other in taken))
    hint = ': a container gets secrets from env-file or from a file in volumes' if container else ''
    return zc.buildout.UserError(f'{head}, and {recipe} takes no secret{hint}')


def registry_auth(part: str, options: Mapping[str, str]) -> dict[str, str] | None:
    """The SDK's ``auth_config`` from ``username`` and a password by reference.

    ``None`` lets the SDK use the user's own docker config.
    """
    found = login(part, options)
    if found is None:
        return None
    return {'username': found[0], 'password': found[1]}


def login(part: str, options: Mapping[str, str], prefix: str = '') -> tuple[str, str] | None:
    """(user, password) from ``PREFIXusername`` and ``PREFIXpassword-env`` or
    ``-file`` (:func:`secret`); ``None`` when neither is given, one line when only one is:
    a registry's login and an http(s) source's are read the same way."""
    username = (options.get(f'{prefix}username') or '').strip()
    password = secret(part, options, f'{prefix}password')
    if username and password is None:
        raise zc.buildout.UserError(
            f'{part}: option {prefix}username: expected {prefix}password-env or '
            f'{prefix}password-file to go with it')
    if password is not None and not username:
        raise zc.buildout.UserError(
            f'{part}: option {prefix}username: required when a password is given')
    return (username, password) if password is not None else None


def write_private(path: str, data: bytes) -> None:
    """Write a file only its owner can read (mode 0600), atomically."""
    atomicfile.write_bytes(path, data, 0o600)


def secret_env_label(names: Iterable[str]) -> dict[str, str]:
    """The label naming a container's secret environment variables (none: no label)."""
    found = sorted(set(names))
    return {LABEL_SECRET_ENV: json.dumps(found)} if found else {}


def secret_env(engine: Engine, container: Mapping[str, Any]) -> dict[str, str]:
    """Name -> value of the inspected ``container``'s environment variables that came from
    a secret reference.

    A container made before :data:`LABEL_SECRET_ENV` existed says only (in its inputs
    label) that it had an ``env-file``: then every variable its image does not set to the
    same value is taken for a secret, the safe side.
    """
    config = container.get('Config') or {}
    labels = config.get('Labels') or {}
    env = dict(entry.partition('=')[::2] for entry in config.get('Env') or [])
    said = labels.get(LABEL_SECRET_ENV)
    if said is not None:
        try:
            names = json.loads(said or '[]')
        except ValueError:
            names = None
        if isinstance(names, list):
            return {name: env[name] for name in names if isinstance(name, str) and name in env}
    try:
        inputs = json.loads(labels.get(LABEL_INPUTS) or '{}')
    except ValueError:
        inputs = {}
    if said is None and not (isinstance(inputs, dict) and 'env-file' in inputs):
        return {}
    image = engine.inspect('images', str(container.get('Image') or '')) or {}
    own = set((image.get('Config') or {}).get('Env') or [])
    return {name: value for name, value in env.items() if f'{name}={value}' not in own}


def masked(text: str, values: Iterable[str]) -> str:
    """``text`` with each secret value replaced by :data:`MASK` (the longest first, so a
    secret that holds another is masked whole)."""
    for value in sorted({v for v in values if v}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
