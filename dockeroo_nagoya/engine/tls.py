"""TLS to an engine: checked against ``docker-cert-path``'s CA, failures said as such.

The SDK hands ``ca.pem`` to its requests session, but requests lets
``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` (common where a proxy inspects
HTTPS) replace a session's CA request by request: the engine's certificate
would then be checked against the wrong CAs and refused. The docker CLI
always uses ``ca.pem``; so does a client made by :func:`client`, from its
very first request (the one that asks the engine's API version).

A refused handshake is a requests ``SSLError``, which is a ``ConnectionError``
too; :func:`handshake_failed` says what it is instead of "no engine answers".

A directory of client certificates means the engine is checked, as ``docker
--tlsverify`` does: TLS that checks nothing sends every request, registry
passwords included, to whoever answers at the address. Not checking takes an
explicit ``docker-tls-verify = false`` and is said on every run
(:func:`warn_unverified`). A ``key.pem`` others can read is refused, as ssh
refuses such a key (:func:`exposed_key`).
"""
from __future__ import annotations

import logging
import os
import re
import stat
from typing import Any, Callable

import docker
import docker.constants
import docker.errors
import requests.exceptions

SSL_REASON_RE = re.compile(r"\[SSL: [A-Z0-9_]+\][^'\"()]*|EOF occurred in violation of protocol"
                           r"|certificate verify failed[^'\"()]*")


def client(make: Callable[..., docker.DockerClient], **kwargs: Any) -> docker.DockerClient:
    """``make(**kwargs)`` (``docker.from_env`` or ``docker.DockerClient``) with its CA kept.

    Without a ``version`` the engine is asked for it, as the SDK's ``auto``
    does, but only once the CA is in place.
    """
    ask = not kwargs.get('version')
    made = make(**{**kwargs, 'version': kwargs.get('version')
                   or docker.constants.MINIMUM_DOCKER_API_VERSION})
    keep_ca(made.api)
    if ask:
        # The SDK has no setter: its own __init__ sets _version so when it asks the engine.
        made.api._version = server_version(made.api)  # type: ignore[attr-defined]
    return made


def keep_ca(api: docker.APIClient) -> None:
    """Make every request of ``api`` check the engine against the session's own CA file."""
    if not isinstance(api.verify, str):
        return
    merge = api.merge_environment_settings

    def merge_keeping_ca(url: str, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict:
        settings = merge(url, proxies, stream, verify, cert)
        settings['verify'] = api.verify
        return settings

    api.merge_environment_settings = merge_keeping_ca  # type: ignore[method-assign]


def server_version(api: docker.APIClient) -> str:
    """The engine's API version, failing as the SDK's own look-up does."""
    try:
        return api.version(api_version=False)['ApiVersion']
    except KeyError as exc:
        raise docker.errors.DockerException(
            'Invalid response from docker daemon: key "ApiVersion" is missing.') from exc
    except (requests.exceptions.RequestException, docker.errors.APIError) as exc:
        raise docker.errors.DockerException(
            f'Error while fetching server API version: {exc}') from exc


def handshake_failed(part: str, address: str, exc: BaseException, where: str = '') -> str:
    """The one line for a refused TLS handshake, with the TLS library's reason."""
    found = SSL_REASON_RE.search(str(exc))
    reason = ' '.join(found.group(0).split()) if found else type(exc).__name__
    return (f'{part}: the TLS handshake with {address} failed{where}: {reason}; check '
            f'docker-cert-path (ca.pem must be the CA of the engine\'s certificate, cert.pem '
            f'and key.pem a client certificate the engine trusts)')


def exposed_key(directory: str) -> str | None:
    """What is wrong with the directory's ``key.pem`` when group or others may read it
    (``None``: only its owner can, or it is not there: that is said elsewhere)."""
    key = os.path.join(os.path.expanduser(directory), 'key.pem')
    try:
        mode = stat.S_IMODE(os.stat(key).st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (f'a directory whose key.pem only its owner can read ({key} is mode {mode:04o}: '
            f'chmod 600 it; ssh refuses such a key too)')


def warn_unverified(part: str, address: str, directory: str) -> None:
    """The line every run prints for a part whose engine's certificate is not checked
    (once per part and run: :func:`.engine_options.trusted` asks the run)."""
    logging.getLogger(part).warning(
        'docker-tls-verify = false: the certificate of the engine at %s is not checked '
        'against %s, so whoever answers there gets this part\'s requests and credentials '
        '(remove docker-tls-verify = false to check it)',
        address, os.path.join(directory, 'ca.pem'))


__all__ = ['client', 'keep_ca', 'server_version', 'handshake_failed', 'exposed_key',
           'warn_unverified']
