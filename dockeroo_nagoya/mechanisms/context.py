"""What a build depends on, as one digest: context files, Dockerfile, base images.

The digest covers what the engine would see: the files of the build context
that ``.dockerignore`` lets through (the SDK's own matcher), by sorted path,
with their content, executable bit and link targets, never their mtimes.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat

from ..engine.context import context_paths
from .readfiles import text_of

FROM_RE = re.compile(r'^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?', re.I | re.M)
ARG_RE = re.compile(r'^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?', re.I)
VAR_RE = re.compile(r'\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)')


def dockerignore_patterns(source: str) -> list[str]:
    """The patterns of ``.dockerignore``, read as the SDK reads them."""
    try:
        text = text_of(os.path.join(source, '.dockerignore'))
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith('#')]


def context_digests(source: str, dockerfile: str) -> tuple[str, dict[str, str]]:
    """(sha256 over the build context as the engine would receive it, a short hash per
    path): a rebuild can say which file changed."""
    digest = hashlib.sha256()
    files: dict[str, str] = {}
    included = context_paths(source, dockerignore_patterns(source), dockerfile)
    for relative in sorted(included):
        path = os.path.join(source, relative)
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            entry = b'L' + os.readlink(path).encode()
        elif stat.S_ISDIR(info.st_mode):
            entry = b'D'
        else:
            executable = b'x' if info.st_mode & 0o111 else b'-'
            entry = b'F' + executable + file_sha256(path).encode()
        digest.update(relative.encode() + b'\0' + entry + b'\n')
        files[relative] = hashlib.sha256(entry).hexdigest()[:8]
    return digest.hexdigest(), files


def file_sha256(path: str) -> str:
    """The sha256 of a file's bytes, read a megabyte at a time (the one place that does it)."""
    sha = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            sha.update(block)
    return sha.hexdigest()


def base_images(dockerfile_text: str, build_args: dict[str, str]) -> list[str]:
    """The images a Dockerfile starts from (not ``scratch``, not earlier stages)."""
    args: dict[str, str] = {}
    for line in dockerfile_text.splitlines():
        if re.match(r'^\s*FROM\s', line, re.I):
            break
        match = ARG_RE.match(line)
        if match:
            args[match.group(1)] = match.group(2) or ''
    args.update(build_args)

    def expand(value: str) -> str:
        def one(match: re.Match[str]) -> str:
            key = match.group(1) or match.group(3)
            return args.get(key) or (match.group(2) or '')
        return VAR_RE.sub(one, value)

    stages: set[str] = set()
    bases: list[str] = []
    for match in FROM_RE.finditer(dockerfile_text):
        image = expand(match.group(1))
        if image.lower() != 'scratch' and image.lower() not in stages and image not in bases:
            bases.append(image)
        if match.group(2):
            stages.add(match.group(2).lower())
    return bases
