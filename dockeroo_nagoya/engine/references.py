"""Image references as the engine lists them.

The driver finds an image by the reference the engine lists (``NAME:TAG`` or
``NAME@DIGEST``, a missing tag being ``latest``), and the layers above record
and compare references the same way: one reading, in the engine's layer.
(Whether a reference a user wrote is well formed is an option parser's job:
:func:`.options.image_reference`.)
"""
from __future__ import annotations


def with_tag(reference: str) -> str:
    """``NAME`` -> ``NAME:latest``; tags and digests as given (how the engine lists them)."""
    last = reference.rsplit('/', 1)[-1]
    return reference if (':' in last or '@' in reference) else f'{reference}:latest'


def split_reference(reference: str) -> tuple[str, str]:
    """(repository, tag or digest) of a reference; a missing tag is ``latest``."""
    if '@' in reference:
        repository, digest = reference.split('@', 1)
        return repository, digest
    repository, _, tag = with_tag(reference).rpartition(':')
    return repository, tag


__all__ = ['with_tag', 'split_reference']
