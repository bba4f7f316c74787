"""Build contexts named by URL, as ``docker build`` takes them: a git repository or a tarball.

dockeroo passed ``source`` to ``docker build`` as it was, so a buildout may
name a git repository (``git@host:repo.git``, ``https://host/repo.git``,
``git://``, ``ssh://``, ``github.com/owner/repo``, ``git+file://`` ...; a
``#REF[:SUBDIR]`` fragment picks the branch, tag or commit and the context's
directory inside it) or a tarball (``http(s)://.../ctx.tar.gz``). Here the
context is fetched onto the host first, into ``var/sources``, so that its
content is known before anything is built: the image is then made again
exactly when what the URL names changes (the commit a ref points at, the
tarball's sha256), and the build itself reads a local directory.

With buildout's ``-N`` (or ``offline``) a source fetched before is not asked
again: the recorded commit or tarball stands.

Nothing in ``source`` reaches git as an option: a URL, host, ref or directory
starting with ``-`` is refused, and git gets ``--`` before its positional
arguments. Credentials for an http(s) source come by reference, as every
secret of this package (:mod:`.secrets`): ``source-username`` with
``source-password-env`` (or ``source-password-file``), or a netrc file
(``source-netrc``). They go to the download as a header and to git through
its environment (never its command line), and are never printed nor
recorded; a URL that carries them (``https://user:pw@host/...``) is refused.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import netrc
import os
import re
import shutil
import subprocess
import urllib.parse
from typing import TYPE_CHECKING, Mapping, MutableMapping

import zc.buildout

from . import archives, members, secrets
from ..model import options as opt

if TYPE_CHECKING:
    from ..run.runstate import Run

GIT_RE = re.compile(r'^(?:git@|git://|ssh://|git\+[a-z]+://|github\.com/)')
TARBALL_RE = re.compile(r'\.(?:tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz)$')
SCP_HOST_RE = re.compile(r'^[^/@:]*@([^/:]*):')
COMMIT_RE = re.compile(r'^[0-9a-f]{40,64}$')
#: How to give credentials, said where a source needs or has them.
BY_REFERENCE = ('source-username with source-password-env (an environment variable) or '
                'source-password-file (a file), or source-netrc (a netrc file)')

log = logging.getLogger('dockeroo_nagoya')


def is_url(raw: str) -> bool:
    """Whether ``source`` names a remote context rather than a directory."""
    text = raw.strip()
    return bool(GIT_RE.match(text) or re.match(r'^[a-z][a-z0-9+.-]*://', text))


def source_option(raw: str) -> str:
    """``source``: an existing directory, or a URL (fetched when the part is configured)."""
    if is_url(raw):
        text = raw.strip()
        if _credentials_in(text):
            return text  # refused by credentials(), in a line that does not repeat them
        if not (is_git(text) or TARBALL_RE.search(urllib.parse.urlparse(text).path)):
            raise opt.Invalid('a directory, a git repository URL (git@..., https://....git, '
                              'git://..., ssh://...) or the URL of a tarball (.tar, .tar.gz, '
                              '.tgz, .tar.bz2, .tar.xz)')
        remote, ref, subdir = split_source(text)
        for what, value in (('URL', remote), ('host', _host(remote)), ('ref', ref),
                            ('directory', subdir)):
            if value.startswith('-'):
                raise opt.Invalid(f'a {what} that does not start with - (git would take it '
                                  f'for an option)')
        return text
    return opt.existing_directory(raw)


def split_source(source: str) -> tuple[str, str, str]:
    """(the URL git or the download is given, the ``#REF``, the ``:SUBDIR``)."""
    url, _, fragment = source.partition('#')
    ref, _, subdir = fragment.partition(':')
    if url.startswith('git+'):
        url = url[4:]
    elif url.startswith('github.com/'):
        url = f'https://{url}'
    return url, ref, subdir


def _credentials_in(source: str) -> bool:
    """Whether a source URL carries a password, or a user name for http(s) (often a token)."""
    try:
        parts = urllib.parse.urlsplit(split_source(source)[0])
        return parts.password is not None or \
            (parts.scheme in ('http', 'https') and bool(parts.username))
    except ValueError:
        return False


def _host(url: str) -> str:
    scp = SCP_HOST_RE.match(url) if '://' not in url else None
    if scp:
        return scp.group(1)
    try:
        return urllib.parse.urlsplit(url).hostname or ''
    except ValueError:
        return ''


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A user name and password for an http(s) source; the password is never shown."""

    username: str
    password: str = dataclasses.field(repr=False)

    def authorization(self) -> str:
        """The value of an HTTP ``Authorization`` header (basic authentication)."""
        pair = f'{self.username}:{self.password}'.encode()
        return f'Basic {base64.b64encode(pair).decode()}'


def credentials(part: str, source: str, options: Mapping[str, str]) -> Credentials | None:
    """The credentials the options give ``source`` by reference; ``None`` when none.

    A URL that carries credentials itself is refused: buildout would record it
    in ``.installed.cfg`` and this package print it.
    """
    if is_url(source) and _credentials_in(source):
        raise zc.buildout.UserError(
            f'{part}: option source: expected a URL without credentials in it (they would be '
            f'recorded and printed): give them by reference with {BY_REFERENCE}')
    given = [name for name in ('source-username', 'source-password-env', 'source-password-file',
                               'source-netrc') if (options.get(name) or '').strip()]
    if not given:
        return None
    try:
        parts = urllib.parse.urlsplit(split_source(source)[0] if is_url(source) else '')
    except ValueError:
        parts = urllib.parse.urlsplit('')
    if parts.scheme not in ('http', 'https'):
        raise zc.buildout.UserError(
            f'{part}: option {given[0]}: expected an http(s) source for credentials (git over '
            f'ssh uses the user\'s ssh keys), got source {source!r}')
    netrc_file = (options.get('source-netrc') or '').strip()
    if netrc_file:
        if given[0] != 'source-netrc':
            raise zc.buildout.UserError(f'{part}: options source-netrc and {given[0]}: expected '
                                        f'one of them, not both')
        return _from_netrc(part, netrc_file, parts.hostname or '')
    found = secrets.login(part, options, 'source-')
    return Credentials(*found) if found else None


def _from_netrc(part: str, path: str, host: str) -> Credentials:
    """The login and password of ``host`` (or the default entry) in a netrc file."""
    try:
        entry = netrc.netrc(os.path.expanduser(path)).authenticators(host)
    except OSError as exc:
        raise zc.buildout.UserError(f'{part}: option source-netrc: expected a readable netrc '
                                    f'file, got {path!r} ({exc.strerror})') from None
    except netrc.NetrcParseError as exc:  # its message may quote a password: only the line
        raise zc.buildout.UserError(f'{part}: option source-netrc: expected a netrc file, '
                                    f'{path!r} does not parse at line {exc.lineno}') from None
    if entry is None:
        raise zc.buildout.UserError(f'{part}: option source-netrc: {path} has no machine '
                                    f'{host} (nor a default)')
    login, _, password = entry
    return Credentials(login, password or '')


def is_git(url: str) -> bool:
    without_fragment = url.split('#', 1)[0]
    return bool(GIT_RE.match(url)) or without_fragment.endswith('.git')


def local_context(part: str, source: str, buildout: Mapping[str, str], run: Run,
                  options: MutableMapping[str, str] | None = None) -> str:
    """The directory to build from: ``source`` itself, or what its URL names, fetched.

    ``options`` gives the credentials (:func:`credentials`) and gets
    ``source-revision`` (``git:COMMIT`` or ``sha256:DIGEST``).
    """
    auth = credentials(part, source, options or {})
    if not is_url(source):
        return source
    fetcher = Fetcher(part, buildout, run, auth)
    context, revision = (fetcher.git(source) if is_git(source) else fetcher.tarball(source))
    if options is not None:
        options['source-revision'] = revision
    return context


class Fetcher:
    """Fetches sources into ``var/sources`` (one directory per URL and revision).

    A plan (:attr:`.runstate.Run.planning`) reads what a run fetched before when the run
    would use it as it is, and fetches anything else into a scratch directory (the
    plan's own: :meth:`.runstate.Run.scratch`).
    """

    def __init__(self, part: str, buildout: Mapping[str, str], run: Run,
                 auth: Credentials | None = None) -> None:
        self.part = part
        self.auth = auth
        self.run = run
        self.kept = os.path.join(run.directory, 'var', 'sources')
        self.root = os.path.join(run.scratch(), 'sources') if run.planning else self.kept
        self.buildout = buildout
        self.directory = run.directory
        self.again = (buildout.get('newest', 'true') == 'true'
                      and buildout.get('offline', 'false') != 'true')

    def _key(self, url: str) -> str:
        return hashlib.sha256(url.encode()).hexdigest()[:16]

    def _record(self, url: str) -> dict[str, str]:
        try:
            with open(os.path.join(self.kept, f'{self._key(url)}.json'), encoding='utf-8') as f:
                found = json.load(f)
            return found if isinstance(found, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save(self, url: str, record: dict[str, str]) -> None:
        """The record of a source (its URL, never with credentials), readable by its owner
        only all the same."""
        os.makedirs(self.root, exist_ok=True)
        path = os.path.join(self.root, f'{self._key(url)}.json')
        secrets.write_private(path, json.dumps({'url': url, **record}).encode())

    def _tidy(self, url: str, keep: str) -> None:
        """Remove the other exports of the same URL (an older commit or tarball)."""
        prefix = f'{self._key(url)}-'
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            if name.startswith(prefix) and path != keep and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)

    # -- git ------------------------------------------------------------------------------
    def git(self, source: str) -> tuple[str, str]:
        url, ref, subdir = split_source(source)
        ref = ref or 'HEAD'
        record = self._record(source)
        commit = record.get('commit')
        if not COMMIT_RE.match(str(commit or '')):
            commit = None  # a record someone else wrote: fetched again
        export = os.path.join(self.kept, f'{self._key(source)}-{(commit or "")[:12]}')
        if self.run.planning and not self.again and commit and os.path.isdir(export):
            return self._inside(export, subdir, source), f'git:{commit}'  # read, as the run would
        export = os.path.join(self.root, f'{self._key(source)}-{(commit or "")[:12]}')
        if self.again or not commit or not os.path.isdir(export):
            commit = self._fetch(url, ref, source)
            export = os.path.join(self.root, f'{self._key(source)}-{commit[:12]}')
        if not os.path.isdir(export):
            log.info('%s: checking out %s at %s', self.part, source, commit[:12])
            partial = f'{export}.part'
            shutil.rmtree(partial, ignore_errors=True)
            os.makedirs(partial)
            self._run_git(['--work-tree', partial, 'checkout', '-f', commit, '--', '.'], source)
            try:   # git writes a repository's links as stored: held to the host's rules
                members.check_links(partial)
            except members.ArchiveError as exc:
                shutil.rmtree(partial, ignore_errors=True)
                raise zc.buildout.UserError(f'{self.part}: option source: {source}: '
                                            f'{exc}') from None
            os.replace(partial, export)
        self._save(source, {'commit': commit})
        self._tidy(source, export)
        return self._inside(export, subdir, source), f'git:{commit}'

    def _fetch(self, url: str, ref: str, source: str) -> str:
        if shutil.which('git') is None:
            raise zc.buildout.UserError(f'{self.part}: option source: {source} is a git '
                                        f'repository and git is not installed (apt-get install git)')
        if not os.path.isdir(self._bare(source)):
            os.makedirs(self._bare(source))
            self._run_git(['init', '--quiet', '--bare'], source)
        log.info('%s: fetching %s (%s)', self.part, url, ref)
        self._run_git(['fetch', '--quiet', '--force', '--no-tags', '--', url, ref], source,
                      self._auth_environment(url))
        return self._run_git(['rev-parse', '--verify', 'FETCH_HEAD^{commit}'], source).strip()

    def _auth_environment(self, url: str) -> dict[str, str]:
        """The credentials as git configuration in its environment (``GIT_CONFIG_COUNT``,
        git 2.31 and later), never on its command line: an ``Authorization`` header for
        requests to ``url`` only."""
        if self.auth is None:
            return {}
        try:
            count = int(os.environ.get('GIT_CONFIG_COUNT') or 0)
        except ValueError:
            count = 0
        return {'GIT_CONFIG_COUNT': str(count + 1),
                f'GIT_CONFIG_KEY_{count}': f'http.{url}.extraHeader',
                f'GIT_CONFIG_VALUE_{count}': f'Authorization: {self.auth.authorization()}'}

    def _bare(self, source: str) -> str:
        return os.path.join(self.root, f'{self._key(source)}.git')

    def _run_git(self, args: list[str], source: str, env: Mapping[str, str] | None = None) -> str:
        result = subprocess.run(['git', '--git-dir', self._bare(source), *args],
                                capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                env={**os.environ, 'GIT_TERMINAL_PROMPT': '0', **(env or {})})
        if result.returncode != 0:
            said = [line for line in result.stderr.splitlines() if line.strip()]
            raise zc.buildout.UserError(
                f'{self.part}: option source: git {args[0]} of {source} failed: '
                f'{said[-1].strip() if said else "exit code " + str(result.returncode)}')
        return result.stdout

    # -- tarballs ----------------------------------------------------------------------------
    def tarball(self, url: str) -> tuple[str, str]:
        downloads = archives.Downloads(self.buildout, self.directory)
        if self.run.planning:  # what the run would use as it is is read; the rest fetched aside
            cached = downloads.cached_path(url)
            if os.path.exists(cached) and (not self.again or downloads.offline):
                digest = archives.file_sha256(cached)
                export = os.path.join(self.kept, f'{self._key(url)}-{digest[:12]}')
                if os.path.isdir(export):
                    return export, f'sha256:{digest}'
            else:
                downloads.cache = os.path.join(self.run.scratch(), 'downloads')
        try:
            path = downloads.fetch(url, again=self.again, authorization=self.auth.authorization()
                                   if self.auth else None)
        except archives.ArchiveError as exc:
            raise zc.buildout.UserError(f'{self.part}: option source: {exc}') from None
        digest = archives.file_sha256(path)
        export = os.path.join(self.root, f'{self._key(url)}-{digest[:12]}')
        if not os.path.isdir(export):
            partial = f'{export}.part'
            shutil.rmtree(partial, ignore_errors=True)
            os.makedirs(partial)
            try:
                archives.extract(path, partial)
            except archives.ArchiveError as exc:
                raise zc.buildout.UserError(f'{self.part}: option source: {url}: {exc}') from None
            os.replace(partial, export)
        self._tidy(url, export)
        return export, f'sha256:{digest}'

    def _inside(self, export: str, subdir: str, source: str) -> str:
        if not subdir:
            return export
        path = os.path.realpath(os.path.join(export, subdir))
        if not path.startswith(os.path.realpath(export) + os.sep) or not os.path.isdir(path):
            raise zc.buildout.UserError(f'{self.part}: option source: {source}: the repository '
                                        f'has no directory {subdir}')
        return path


__all__ = ['source_option', 'local_context', 'is_url', 'credentials', 'Credentials']
