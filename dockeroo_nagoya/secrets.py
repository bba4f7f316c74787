"""Secrets by reference: an environment variable or a file, read into memory only.

The option holds the variable's name or the file's path, never the secret,
so nothing secret reaches ``.installed.cfg``. The value itself is read when
needed and handed to the SDK in memory (never a docker config on disk).
"""
from __future__ import annotations

import os
import stat
from typing import Mapping

import zc.buildout

from . import readfiles


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
    username = (options.get('username') or '').strip()
    password = secret(part, options, 'password')
    if username and password is None:
        raise zc.buildout.UserError(
            f'{part}: option username: expected password-env or password-file to go with it')
    if password is not None and not username:
        raise zc.buildout.UserError(
            f'{part}: option username: required when a password is given')
    if not username:
        return None
    return {'username': username, 'password': password or ''}


def write_private(path: str, data: bytes) -> None:
    """Write a file only its owner can read (mode 0600), atomically."""
    tmp = f'{path}.tmp{os.getpid()}'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)
    os.replace(tmp, path)
