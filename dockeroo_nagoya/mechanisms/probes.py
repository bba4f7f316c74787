"""Readiness gates: wait until a container does what the next part needs.

A part's ``wait-for`` option holds one gate per line; the container is ready
when every gate has passed, in order, within ``wait-timeout`` (for all of
them together). The kinds of gate:

``tcp:PORT``
    A TCP connection to PORT on the container's address is accepted (the
    port inside the container, not a published one).
``http://[HOST]:PORT/PATH [STATUS [REGEX]]`` (also ``https://``)
    A GET answers with STATUS (``200``, or a class such as ``2xx``; default
    ``2xx``) and, when REGEX is given (the rest of the line), a body in which
    it is found; it may be written between slashes, ``/REGEX/``. The HOST:
    empty (``http://:8080/``) or the container's own name means the
    container's address (what the host reaches it on, its port inside the
    container); any other host is connected to as it is, from the buildout's
    host: ``localhost`` is the host itself, which reaches the container only
    through a port it publishes there. No proxy is used. An ``https`` gate
    checks the certificate, as a browser does: against the system's CAs, or
    the CA file of the part's ``wait-for-tls-ca`` (a service with a CA of its
    own), for the name the URL says (the container's name when its host is
    left empty, though it connects to the container's address). A
    certificate that is not trusted fails the gate at once, in one line;
    ``wait-for-tls-verify = false`` skips the check (the names follow
    ``docker-tls-verify``).
``exec:COMMAND``
    COMMAND (split like a shell would, run without one) exits 0 inside the
    container.
``log:REGEX``
    REGEX is found in the container's output (stdout and stderr).
``healthy``
    The engine's healthcheck reports ``healthy``.

``tcp`` and ``http`` gates connect from the buildout's host to the
container's address on its first network, which works on a local Linux
engine; for a remote engine use ``exec:`` gates.

Gates are polled from about 100 ms on, backing off to half a second, so a
system comes up as fast as its services do. A gate still failing says every
10 s what it tried and what it got. A container that stops while
its gates are polled fails at once, with its exit code and last log lines.
The functions take an engine and a container id, not a recipe, so several
containers can be brought up in parallel threads.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import http.client
import logging
import re
import shlex
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Callable

import zc.buildout

from ..engine.driver import Engine, explain
from ..engine.errors import APIError, DockerException, TransportError
from ..model.options import Invalid, lines, split_url
from ..model.options import port as port_number
from .secrets import masked, secret_env

if TYPE_CHECKING:
    from ..run.runstate import Run

FIRST_DELAY = 0.1
MAX_DELAY = 0.5
BACKOFF = 1.5
LOG_TAIL = 20
#: Characters of one output line shown in an error or the log; a program may print
#: megabytes in one line, and the error must stay one readable message.
LINE_LIMIT = 400
#: Lines of a command's output kept (the last ones), each at most LINE_LIMIT long.
KEPT_LINES = 1000
STATUS_RE = re.compile(r'^[1-5](?:[0-9]{2}|xx)$')
KINDS = 'tcp:PORT, http://…, https://…, exec:COMMAND, log:REGEX or healthy'
#: Seconds between the lines that say a gate is still failing, and why.
REPORT_EVERY = 10.0


class NotReady(zc.buildout.UserError):
    """A gate did not pass in time, or the container stopped while waiting."""


class Hopeless(Exception):
    """A gate that cannot pass however long one waits (said in the message)."""


@dataclasses.dataclass(frozen=True)
class Gate:
    """One readiness gate, parsed; ``text`` is the line as the user wrote it."""

    kind: str
    text: str
    port: int | None = None
    url: str | None = None
    status: str = '2xx'
    pattern: str | None = None
    command: tuple[str, ...] = ()
    #: An ``https`` gate's trust: check the certificate (``wait-for-tls-verify``), against
    #: this CA file (``wait-for-tls-ca``; ``None``: the system's CAs).
    tls_verify: bool = True
    tls_ca: str | None = None

    @functools.cached_property
    def tls_context(self) -> ssl.SSLContext:
        """What an ``https`` gate trusts (see the module's docstring); made once per gate,
        not at every poll (loading the system's CAs takes a while)."""
        if not self.tls_verify:
            return ssl._create_unverified_context()  # noqa: S323  (wait-for-tls-verify = false)
        return ssl.create_default_context(cafile=self.tls_ca)


def trusting(gates: list[Gate], verify: bool, ca: str | None, part: str,
             run: Run | None = None) -> list[Gate]:
    """The gates with the part's ``wait-for-tls-verify`` and ``wait-for-tls-ca``: the one
    place a gate learns them, for a run and for a control script alike. ``https`` gates
    that check nothing are said once per part and ``run``."""
    if not verify and any((gate.url or '').lower().startswith('https:') for gate in gates) \
            and (run is None or run.first_time(('wait-for-tls-verify', part))):
        logging.getLogger(part).warning(
            'wait-for-tls-verify = false: the certificates of its https gates are not checked '
            '(give their CA with wait-for-tls-ca to check them)')
    return [dataclasses.replace(gate, tls_verify=verify, tls_ca=ca) for gate in gates]


def parse_gate(line: str) -> Gate:
    """One ``wait-for`` line; raises :class:`Invalid` saying what is expected."""
    text = line.strip()
    kind, _, rest = text.partition(':')
    kind = kind.lower()
    if kind == 'tcp':
        try:
            return Gate('tcp', text, port=port_number(rest))
        except Invalid:
            raise Invalid('tcp:PORT with a port number from 1 to 65535') from None
    if kind in ('http', 'https'):
        return _parse_http(text)
    if kind == 'exec':
        try:
            command = tuple(shlex.split(rest))
        except ValueError as exc:
            raise Invalid(f'exec:COMMAND with balanced quotes ({exc})') from None
        if not command:
            raise Invalid('exec:COMMAND with a command')
        return Gate('exec', text, command=command)
    if kind == 'log':
        return Gate('log', text, pattern=_regex(rest.strip(), text))
    if text.lower() == 'healthy':
        return Gate('healthy', text)
    raise Invalid(f'wait-for lines {KINDS} (not {kind!r})')


def _parse_http(text: str) -> Gate:
    url, _, rest = text.partition(' ')
    split_url(url, 'a URL with a port number from 1 to 65535')
    status, pattern = '2xx', None
    rest = rest.strip()
    if rest:
        status, _, regex = rest.partition(' ')
        if not STATUS_RE.match(status):
            raise Invalid('URL [STATUS [REGEX]] with a STATUS such as 200 or 2xx')
        pattern = _regex(regex.strip(), text) if regex.strip() else None
    return Gate('http', text, url=url, status=status, pattern=pattern)


def _regex(pattern: str, text: str) -> str:
    if len(pattern) >= 2 and pattern.startswith('/') and pattern.endswith('/'):
        pattern = pattern[1:-1]   # the documented /REGEX/ form
    if not pattern:
        raise Invalid(f'a regular expression after {text!r}')
    try:
        re.compile(pattern)
    except re.error as exc:
        raise Invalid(f'a valid regular expression ({exc})') from None
    return pattern


def parse_gates(raw: str) -> list[Gate]:
    """The ``wait-for`` option: one gate per line."""
    return [parse_gate(line) for line in lines(raw)]


# -- waiting ------------------------------------------------------------------
def wait_until_ready(engine: Engine, container: str, name: str, gates: list[Gate],
                     timeout: float, part: str, log: logging.Logger) -> None:
    """Poll every gate in order until all pass; raise :class:`NotReady` otherwise."""
    started = time.monotonic()
    deadline = started + timeout
    for gate in gates:
        check = CHECKS[gate.kind]
        delay = FIRST_DELAY
        why = 'not checked yet'
        report = time.monotonic() + REPORT_EVERY
        while True:
            state = engine.api.inspect_container(container)
            if not state['State'].get('Running') or state['State'].get('Restarting'):
                # A crash loop under a restart policy reads as running while the engine
                # waits to start it again: its own error is in its log, said now.
                again = ' (the engine is restarting it: restart policy)' \
                    if state['State'].get('Restarting') else ''
                raise NotReady(
                    f'{part}: container {name} exited with code {state["State"].get("ExitCode")}'
                    f'{again} while waiting for {gate.text}{log_tail(engine, container, name)}')
            try:
                passed, why = check(engine, container, state, gate, deadline)
            except Hopeless as exc:
                raise NotReady(f'{part}: option wait-for: {gate.text}: {exc}') from None
            except APIError as exc:
                if exc.status_code != 409:  # 409: it stopped or is restarting: looked at above
                    raise
                passed, why = False, explain(exc)
            if passed:
                log.info('%s: %s passed after %.1fs', name, gate.text, time.monotonic() - started)
                break
            if time.monotonic() >= report:
                log.info('%s: still waiting for %s after %.0fs: %s', name, gate.text,
                         time.monotonic() - started, why)
                report += REPORT_EVERY
            if time.monotonic() + delay > deadline:
                raise NotReady(
                    f'{part}: option wait-for: {gate.text} did not pass within {timeout:g}s '
                    f'({why}){log_tail(engine, container, name)}')
            time.sleep(delay)
            delay = min(delay * BACKOFF, MAX_DELAY)


def log_tail(engine: Engine, container: str, name: str, lines_: int = LOG_TAIL) -> str:
    """The container's last log lines, as an indented block for an error message.

    The values of the secrets the container was given (its ``env-file``) are shown as
    ``***``: its whole log is kept in a file only its owner reads, not on a terminal.
    """
    try:
        raw = engine.api.logs(container, stdout=True, stderr=True, tail=lines_)
        secret = secret_env(engine, engine.inspect('containers', container) or {})
    except (DockerException, TransportError) as exc:
        return f'\n(no log of {name}: {exc})'
    text = raw.decode('utf-8', 'replace').rstrip() if isinstance(raw, bytes) else str(raw)
    text = masked(text, secret.values())
    if not text:
        return f'\n({name} wrote nothing to its log)'
    return f'\nlast log lines of {name}:\n' + '\n'.join(f'  {bounded(line)}'
                                                       for line in text.splitlines()[-lines_:])


def bounded(line: str, limit: int = LINE_LIMIT) -> str:
    """A line cut to ``limit`` characters, saying how many were left out."""
    if len(line) <= limit:
        return line
    return f'{line[:limit]}... [{len(line) - limit} more characters]'


class BoundedLines:
    """Output read chunk by chunk into lines in bounded memory.

    Only the last :data:`KEPT_LINES` lines are kept, each cut to
    :data:`LINE_LIMIT` characters (with the count of what was cut), and a
    line without end is not gathered beyond that: a command that prints
    gigabytes on one line costs no more than one that prints a word.
    """

    def __init__(self, keep: int = KEPT_LINES, limit: int = LINE_LIMIT) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self.limit = limit
        self._pending = ''
        self._dropped = 0

    def feed(self, chunk: bytes | str) -> None:
        text = chunk.decode('utf-8', 'replace') if isinstance(chunk, bytes) else chunk
        *complete, rest = (self._pending + text).split('\n')
        for number, line in enumerate(complete):
            dropped = self._dropped if number == 0 else 0
            self._add(line, dropped)
        if complete:
            self._dropped = 0
        if len(rest) > self.limit:
            self._dropped += len(rest) - self.limit
            rest = rest[:self.limit]
        self._pending = rest

    def _add(self, line: str, dropped: int) -> None:
        line = line.rstrip('\r')
        if dropped or len(line) > self.limit:
            line = f'{line[:self.limit]}... [{dropped + max(0, len(line) - self.limit)} more characters]'
        self.lines.append(line)

    def close(self) -> str:
        """Everything kept, as text."""
        if self._pending or self._dropped:
            self._add(self._pending, self._dropped)
            self._pending, self._dropped = '', 0
        return '\n'.join(self.lines)


def container_address(state: dict[str, Any]) -> str | None:
    """The address the host reaches the container on: its first network's IP."""
    if (state.get('HostConfig') or {}).get('NetworkMode') == 'host':
        return '127.0.0.1'
    settings = state.get('NetworkSettings') or {}
    for network in (settings.get('Networks') or {}).values():
        if network.get('IPAddress'):
            return network['IPAddress']
    return settings.get('IPAddress') or None


Check = Callable[[Engine, str, dict[str, Any], Gate, float], tuple[bool, str]]


def _remaining(deadline: float, cap: float) -> float:
    return max(0.05, min(cap, deadline - time.monotonic()))


def _check_tcp(engine: Engine, container: str, state: dict[str, Any], gate: Gate,
               deadline: float) -> tuple[bool, str]:
    address = container_address(state)
    if address is None:
        return False, 'the container has no IP address'
    try:
        with socket.create_connection((address, gate.port or 0), _remaining(deadline, 1.0)):
            return True, ''
    except OSError as exc:
        return False, f'{address}:{gate.port}: {exc.strerror or exc}'


def _check_http(engine: Engine, container: str, state: dict[str, Any], gate: Gate,
                deadline: float) -> tuple[bool, str]:
    assert gate.url is not None
    parsed = urllib.parse.urlsplit(gate.url)
    host = parsed.hostname
    if not host or host == state.get('Name', '').lstrip('/'):
        address = container_address(state)
        if address is None:
            return False, 'the container has no IP address'
        netloc = f'[{address}]' if ':' in address else address
        if parsed.port:
            netloc += f':{parsed.port}'
        url = urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
        name = host or state.get('Name', '').lstrip('/')
    else:
        url, name = gate.url, host
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _StaysSecure(),
                                         _NamedHTTPSHandler(gate.tls_context, name))
    try:
        with opener.open(url, timeout=_remaining(deadline, 2.0)) as answer:
            status, body, headers = answer.status, answer.read(1 << 20), answer.headers
    except urllib.error.HTTPError as exc:
        status, body, headers = exc.code, exc.read(1 << 20), exc.headers
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, 'reason', exc)
        refused = exc if isinstance(exc, ssl.SSLCertVerificationError) else reason
        if isinstance(refused, ssl.SSLCertVerificationError):  # urllib's URLError or as it is
            raise Hopeless(
                f'the certificate of {url} is not trusted for {name!r} '
                f'({refused.verify_message or refused.reason}): give its CA with '
                f'wait-for-tls-ca, or set wait-for-tls-verify = false') from None
        hint = ''
        if host in ('localhost', '127.0.0.1', '::1') and \
                (state.get('HostConfig') or {}).get('NetworkMode') != 'host':
            hint = (' (localhost is the buildout\'s host, not the container: leave the host '
                    'empty, http://:PORT/, for the container\'s address)')
        return False, f'{url}: {reason}{hint}'
    if not _status_matches(status, gate.status):
        elsewhere = location if 300 <= status < 400 and (location := headers.get('Location')) \
            else None
        sent = f' (a redirect to {elsewhere}: a gate follows none to another host)' \
            if elsewhere else ''
        return False, f'{url} answered {status}{sent}, not {gate.status}'
    if gate.pattern and not re.search(gate.pattern, body.decode('utf-8', 'replace'), re.M):
        return False, f'{url} answered {status} without {gate.pattern!r} in its body'
    return True, ''


class _StaysSecure(urllib.request.HTTPRedirectHandler):
    """Redirects a gate follows: none from ``https`` to another scheme, whose answer would
    come over a connection whose certificate nobody checks (a downgrade the https gate
    exists to rule out); the gate fails at once, saying where it was sent. None to another
    host either: what a container answers must not send the buildout's host to an address
    of the container's choosing (a cloud's metadata service, a host on the LAN); the
    redirect itself is then the answer the gate's status is checked against."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if old.scheme == 'https' and new.scheme != 'https':
            raise Hopeless(f'{req.full_url} redirects to {newurl}: an https gate follows no '
                           f'redirect away from https (make the gate the address it sends to)')
        if (new.hostname or '').lower() != (old.hostname or '').lower():
            return None   # urllib then hands the 3xx over as the answer (an HTTPError)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _NamedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address whose certificate is checked for a name (the container's):
    the gate connects to the container's IP, its certificate is made for its name."""

    def __init__(self, *args: Any, server_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            self.sock, server_hostname=self.server_name or self.host)


class _NamedHTTPSHandler(urllib.request.HTTPSHandler):
    """urllib's HTTPS with :class:`_NamedHTTPSConnection` (a gate's one request)."""

    def __init__(self, context: ssl.SSLContext, server_name: str | None) -> None:
        super().__init__(context=context)
        self._context = context
        self.server_name = server_name

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_NamedHTTPSConnection,
                                              server_name=self.server_name),
                            req, context=self._context)


def _status_matches(status: int, expected: str) -> bool:
    if expected.endswith('xx'):
        return str(status)[0] == expected[0]
    return str(status) == expected


def _check_exec(engine: Engine, container: str, state: dict[str, Any], gate: Gate,
                deadline: float) -> tuple[bool, str]:
    code, output = run_in(engine, container, list(gate.command))
    if code == 0:
        return True, ''
    last = output.strip().splitlines()[-1:] or ['no output']
    return False, f'exit code {code}: {last[0]}'


def _check_log(engine: Engine, container: str, state: dict[str, Any], gate: Gate,
               deadline: float) -> tuple[bool, str]:
    assert gate.pattern is not None
    raw = engine.api.logs(container, stdout=True, stderr=True)
    text = raw.decode('utf-8', 'replace') if isinstance(raw, bytes) else str(raw)
    if re.search(gate.pattern, text, re.M):
        return True, ''
    return False, f'{gate.pattern!r} not in the log yet'


def _check_healthy(engine: Engine, container: str, state: dict[str, Any], gate: Gate,
                   deadline: float) -> tuple[bool, str]:
    health = state['State'].get('Health')
    if not health:
        raise Hopeless('the container has no healthcheck: set the healthcheck option')
    status = health.get('Status')
    if status == 'healthy':
        return True, ''
    return False, f'health is {status}'


CHECKS: dict[str, Check] = {
    'tcp': _check_tcp,
    'http': _check_http,
    'exec': _check_exec,
    'log': _check_log,
    'healthy': _check_healthy,
}


def run_in(engine: Engine, container: str, command: list[str],
           user: str | None = None) -> tuple[int, str]:
    """Run a command in a running container: (exit code, its output, bounded: :class:`BoundedLines`)."""
    exec_id = engine.api.exec_create(container, command, stdout=True, stderr=True,
                                     user=user or '')['Id']
    output = BoundedLines()
    for chunk in engine.api.exec_start(exec_id, stream=True):
        output.feed(chunk)
    code = engine.api.exec_inspect(exec_id).get('ExitCode')
    return (code if code is not None else -1), output.close()
