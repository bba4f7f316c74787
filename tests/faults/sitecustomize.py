"""Fault injection for real ``bin/buildout`` runs, without touching the package.

Put this directory on ``PYTHONPATH`` of a buildout subprocess and set
``DN_FAULT``; Python imports this module at start-up and patches the Docker
SDK's ``APIClient`` so that one chosen engine call fails. Rules, separated by
``;``::

    METHOD PATH_REGEX[#N]:ACTION[@K|@upK]

METHOD
    ``GET``, ``POST``, ``PUT``, ``DELETE`` or ``*``.
PATH_REGEX
    Searched in the request's path without the ``/v1.41`` prefix, e.g.
    ``/containers/create``, ``/containers/[^/]+/start$``, ``/build``.
N
    Which matching call (1 = the first, the default).
ACTION
    ``error``: raise the SDK's ``APIError`` (a 500) instead of sending;
    ``endpoints``: answer as a loaded engine sometimes does when a network's
    last containers were removed a moment ago (a 403, "has active endpoints");
    ``lost``: send, then raise a lost connection (the engine did it, the
    answer never came); ``kill``: SIGKILL the process instead of sending;
    ``killafter``: send, then SIGKILL (between two engine calls).
K
    With ``@K`` the action happens in the middle of the call, after the K-th
    piece of the response stream (build, push, pull, archives going out);
    with ``@upK`` (``kill`` only), before the K-th chunk of the request's
    body is sent (``put_archive``, imports; bytes are sent 64 KiB a chunk).

Every fault that fires is appended to ``DN_FAULT_LOG`` (one line each,
written and synced before a kill), so a test can count what it injected.
Nothing is patched when ``DN_FAULT`` is unset.
"""
from __future__ import annotations

import os
import re
import signal
import threading
import urllib.parse
from typing import Any, Callable, Iterable, Iterator

CHUNK = 64 * 1024
VERSION_RE = re.compile(r'^/v\d+\.\d+')
RULE_RE = re.compile(r'^\s*(?P<method>[A-Z]+|\*)\s+(?P<path>\S+?)(?:#(?P<nth>\d+))?'
                     r':(?P<action>error|endpoints|lost|kill|killafter)(?:@(?P<up>up)?(?P<at>\d+))?\s*$')


class Rule:
    """One ``DN_FAULT`` rule and how often its calls were seen."""

    def __init__(self, text: str) -> None:
        match = RULE_RE.match(text)
        if not match:
            raise SystemExit(f'DN_FAULT: cannot read the rule {text!r}')
        self.text = text.strip()
        self.method = match['method']
        self.path = re.compile(match['path'])
        self.nth = int(match['nth'] or 1)
        self.action = match['action']
        self.at = int(match['at']) if match['at'] else None
        self.upload = bool(match['up'])
        if self.upload and self.action != 'kill':
            raise SystemExit(f'DN_FAULT: @up is for kill only, in {text!r}')
        self.seen = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ('*', method)) and bool(self.path.search(path))


_LOCK = threading.Lock()
_RULES: list[Rule] = []


def _record(rule: Rule, where: str) -> None:
    """One line per fired fault, on disk before anything else happens."""
    log = os.environ.get('DN_FAULT_LOG')
    if not log:
        return
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f'{rule.text} | {where} | pid {os.getpid()}\n'.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _api_error(rule: Rule, path: str) -> Exception:
    import docker.errors
    import requests

    response = requests.models.Response()
    response.status_code = 500
    response._content = b'{"message": "injected fault"}'
    response.url = path
    return docker.errors.APIError(f'500 Server Error: injected fault ({rule.text})',
                                  response=response,
                                  explanation=f'injected fault ({rule.text})')


def _endpoints(rule: Rule, path: str) -> Exception:
    import docker.errors
    import requests

    text = (f'error while removing network: network {path.rsplit("/", 1)[-1]} has active '
            f'endpoints (injected: {rule.text})')
    response = requests.models.Response()
    response.status_code = 403
    response._content = ('{"message": "%s"}' % text).encode()
    response.url = path
    return docker.errors.APIError(f'403 Client Error: Forbidden ("{text}")', response=response,
                                  explanation=text)


def _lost(rule: Rule) -> Exception:
    import requests.exceptions
    return requests.exceptions.ConnectionError(
        f'injected fault: the connection was lost after the request ({rule.text})')


def _fire(rule: Rule, path: str, where: str) -> None:
    """Act now: raise the rule's error or kill the process."""
    _record(rule, where)
    if rule.action in ('kill', 'killafter'):
        _die()
    if rule.action == 'lost':
        raise _lost(rule)
    if rule.action == 'endpoints':
        raise _endpoints(rule, path)
    raise _api_error(rule, path)


def _due(method: str, path: str) -> Rule | None:
    """The rule whose N-th call this is, if any (counted once per call)."""
    with _LOCK:
        due = None
        for rule in _RULES:
            if rule.matches(method, path):
                rule.seen += 1
                if rule.seen == rule.nth and due is None:
                    due = rule
        return due


def _body(rule: Rule, path: str, data: Any) -> Iterator[bytes]:
    """The request body in chunks; the rule fires before the K-th one."""
    assert rule.at is not None
    if isinstance(data, (bytes, bytearray)):
        chunks: Iterable[bytes] = (bytes(data[i:i + CHUNK]) for i in range(0, len(data), CHUNK))
    elif hasattr(data, 'read'):
        chunks = iter(lambda: data.read(CHUNK), b'')
    else:
        chunks = data
    for number, chunk in enumerate(chunks, 1):
        if number == rule.at:
            _record(rule, f'{path} before body chunk {number}')
            _die()
        yield chunk


def _watch_stream(rule: Rule, path: str, response: Any) -> None:
    """Fire after the K-th piece of the response body (read, or yielded by ``stream``)."""
    raw = response.raw
    original_read, original_stream = raw.read, raw.stream
    pieces = [0]
    inside_stream = [False]

    def count(data: Any) -> None:
        if data:
            pieces[0] += 1
            if pieces[0] == rule.at:
                _fire(rule, path, f'{path} after piece {pieces[0]} of the response')

    def read(*args: Any, **kwargs: Any) -> Any:
        data = original_read(*args, **kwargs)
        if not inside_stream[0]:
            count(data)
        return data

    def stream(*args: Any, **kwargs: Any) -> Iterator[bytes]:
        inside_stream[0] = True
        try:
            for data in original_stream(*args, **kwargs):
                count(data)
                yield data
        finally:
            inside_stream[0] = False

    raw.read = read
    raw.stream = stream


def _wrap(method: str, send: Callable[..., Any]) -> Callable[..., Any]:
    def patched(self: Any, url: str, *args: Any, **kwargs: Any) -> Any:
        path = VERSION_RE.sub('', urllib.parse.urlsplit(url).path)
        rule = _due(method, path)
        if rule is None:
            return send(self, url, *args, **kwargs)
        if rule.at is not None:
            if rule.upload:
                if kwargs.get('data') is None:
                    raise SystemExit(f'DN_FAULT: {rule.text}: {method} {path} has no body')
                kwargs['data'] = _body(rule, path, kwargs['data'])
                return send(self, url, *args, **kwargs)
            response = send(self, url, *args, **kwargs)
            _watch_stream(rule, path, response)
            return response
        if rule.action in ('error', 'endpoints', 'kill'):
            _fire(rule, path, f'{method} {path} before sending')
        response = send(self, url, *args, **kwargs)
        _fire(rule, path, f'{method} {path} after sending')
        return response
    patched.__wrapped__ = send  # type: ignore[attr-defined]
    return patched


def install(spec: str) -> None:
    """Parse the rules and patch the SDK's request methods."""
    import docker.api.client

    _RULES.extend(Rule(text) for text in spec.split(';') if text.strip())
    client = docker.api.client.APIClient
    for name, method in (('_get', 'GET'), ('_post', 'POST'), ('_put', 'PUT'),
                         ('_delete', 'DELETE')):
        setattr(client, name, _wrap(method, getattr(client, name)))


if os.environ.get('DN_FAULT'):
    try:
        install(os.environ['DN_FAULT'])
    except ImportError:
        pass  # a Python without the SDK (a command buildout runs): nothing to break there
