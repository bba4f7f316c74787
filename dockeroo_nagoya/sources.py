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
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import atexit
import subprocess
import tempfile
import urllib.parse
from typing import Mapping

import zc.buildout

from . import archives, runlock
from . import options as opt

GIT_RE = re.compile(r'^(?:git@|git://|ssh://|git\+[a-z]+://|github\.com/)')
TARBALL_RE = re.compile(r'\.(?:tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz)$')

log = logging.getLogger('dockeroo_nagoya')


def is_url(raw: str) -> bool:
    """Whether ``source`` names a remote context rather than a directory."""
    text = raw.strip()
    return bool(GIT_RE.match(text) or re.match(r'^[a-z][a-z0-9+.-]*://', text))


def source_option(raw: str) -> str:
    """``source``: an existing directory, or a URL (fetched when the part is configured)."""
    if is_url(raw):
        text = raw.strip()
        if not (is_git(text) or TARBALL_RE.search(urllib.parse.urlparse(text).path)):
            raise opt.Invalid('a directory, a git repository URL (git@..., https://....git, '
                              'git://..., ssh://...) or the URL of a tarball (.tar, .tar.gz, '
                              '.tgz, .tar.bz2, .tar.xz)')
        return text
    return opt.existing_directory(raw)


def is_git(url: str) -> bool:
    without_fragment = url.split('#', 1)[0]
    return bool(GIT_RE.match(url)) or without_fragment.endswith('.git')


def local_context(part: str, source: str, buildout: Mapping[str, str], directory: str,
                  options: dict[str, str] | None = None) -> str:
    """The directory to build from: ``source`` itself, or what its URL names, fetched.

    ``options`` gets ``source-revision`` (``git:COMMIT`` or ``sha256:DIGEST``).
    """
    if not is_url(source):
        return source
    fetcher = Fetcher(part, buildout, directory)
    context, revision = (fetcher.git(source) if is_git(source) else fetcher.tarball(source))
    if options is not None:
        options['source-revision'] = revision
    return context


_SCRATCH: list[str] = []


def _scratch() -> str:
    """Where a plan fetches what the buildout has not fetched yet: a directory of its own,
    removed when the plan ends (a plan writes no file of the buildout directory)."""
    if not _SCRATCH:
        _SCRATCH.append(tempfile.mkdtemp(prefix='dockeroo-plan-sources-'))
        atexit.register(shutil.rmtree, _SCRATCH[0], True)
    return _SCRATCH[0]


class Fetcher:
    """Fetches sources into ``var/sources`` (one directory per URL and revision).

    A plan (:data:`.runlock.PLANNING`) reads what a run fetched before when the run
    would use it as it is, and fetches anything else into a scratch directory.
    """

    def __init__(self, part: str, buildout: Mapping[str, str], directory: str) -> None:
        self.part = part
        self.kept = os.path.join(directory, 'var', 'sources')
        self.root = os.path.join(_scratch(), 'sources') if runlock.PLANNING else self.kept
        self.buildout = buildout
        self.directory = directory
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
        os.makedirs(self.root, exist_ok=True)
        path = os.path.join(self.root, f'{self._key(url)}.json')
        with open(f'{path}.tmp', 'w', encoding='utf-8') as out:
            json.dump({'url': url, **record}, out)
        os.replace(f'{path}.tmp', path)

    def _tidy(self, url: str, keep: str) -> None:
        """Remove the other exports of the same URL (an older commit or tarball)."""
        prefix = f'{self._key(url)}-'
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            if name.startswith(prefix) and path != keep and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)

    # -- git ------------------------------------------------------------------------------
    def git(self, source: str) -> tuple[str, str]:
        url, _, fragment = source.partition('#')
        ref, _, subdir = fragment.partition(':')
        if url.startswith('git+'):
            url = url[4:]
        elif url.startswith('github.com/'):
            url = f'https://{url}'
        ref = ref or 'HEAD'
        record = self._record(source)
        commit = record.get('commit')
        export = os.path.join(self.kept, f'{self._key(source)}-{(commit or "")[:12]}')
        if runlock.PLANNING and not self.again and commit and os.path.isdir(export):
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
        self._run_git(['fetch', '--quiet', '--force', '--no-tags', url, ref], source)
        return self._run_git(['rev-parse', 'FETCH_HEAD^{commit}'], source).strip()

    def _bare(self, source: str) -> str:
        return os.path.join(self.root, f'{self._key(source)}.git')

    def _run_git(self, args: list[str], source: str) -> str:
        result = subprocess.run(['git', '--git-dir', self._bare(source), *args],
                                capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                env={**os.environ, 'GIT_TERMINAL_PROMPT': '0'})
        if result.returncode != 0:
            said = [line for line in result.stderr.splitlines() if line.strip()]
            raise zc.buildout.UserError(
                f'{self.part}: option source: git {args[0]} of {source} failed: '
                f'{said[-1].strip() if said else "exit code " + str(result.returncode)}')
        return result.stdout

    # -- tarballs ----------------------------------------------------------------------------
    def tarball(self, url: str) -> tuple[str, str]:
        downloads = archives.Downloads(self.buildout, self.directory)
        if runlock.PLANNING:  # what the run would use as it is is read; the rest fetched aside
            cached = downloads.cached_path(url)
            if os.path.exists(cached) and (not self.again or downloads.offline):
                digest = archives.file_sha256(cached)
                export = os.path.join(self.kept, f'{self._key(url)}-{digest[:12]}')
                if os.path.isdir(export):
                    return export, f'sha256:{digest}'
            else:
                downloads.cache = os.path.join(_scratch(), 'downloads')
        try:
            path = downloads.fetch(url, again=self.again)
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


__all__ = ['source_option', 'local_context', 'is_url']
