"""The package type-checks: mypy, with the project's mypy.ini, reports no error.

This is the CI step: ``make test`` runs it. mypy's cache is kept in the
virtualenv (``.venv/mypy-cache``), so a rerun checks only what changed and
takes well under a second.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_error_in_the_package() -> None:
    cache = Path(sys.prefix) / 'mypy-cache'
    result = subprocess.run(
        [sys.executable, '-m', 'mypy', '--config-file', str(PROJECT / 'mypy.ini'),
         '--cache-dir', str(cache), '--no-error-summary', '--hide-error-context',
         str(PROJECT / 'dockeroo_nagoya')],
        cwd=PROJECT, capture_output=True, text=True, timeout=600)
    assert 'No module named mypy' not in result.stderr, \
        'mypy is a test requirement: pip install -e ".[test]" (make test does)'
    assert result.returncode == 0, \
        f'mypy reports type errors:\n{result.stdout}{result.stderr}'
