"""Which files of a build context the SDK sends to the engine.

``.dockerignore`` is matched by the SDK's own matcher, so what a build's digest
covers (:mod:`..mechanisms.context`) is what the engine receives, rule for rule.
"""
from __future__ import annotations

from docker.utils.build import exclude_paths


def context_paths(source: str, patterns: list[str], dockerfile: str) -> set[str]:
    """The paths below ``source`` (relative to it) that a build sends: those ``patterns``
    (``.dockerignore``'s lines) let through, with the Dockerfile and ``.dockerignore``
    kept as the SDK keeps them."""
    return set(exclude_paths(source, patterns, dockerfile=dockerfile))


__all__ = ['context_paths']
