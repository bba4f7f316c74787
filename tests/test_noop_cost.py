"""What a no-op rerun costs besides its engine requests (issue 25): it writes nothing.

A docker.system part rewrites its control script and its description at every
run; when they already are what it would write, a no-op rerun leaves them
alone (no temporary file, no sync to disk), and when they are not (another
mode, a link planted in their place, other content) it writes them anew.
"""
from __future__ import annotations

import os

from helpers import n_containers_config


def _files(b) -> dict[str, os.stat_result]:
    return {name: os.lstat(b.directory / name)
            for name in ('bin/sys', 'parts/sys/system.json')}


def test_noop_rerun_leaves_the_control_script_and_description_untouched(buildout, busybox):
    b = buildout
    b.write(n_containers_config(b, busybox, 2, 'system'))
    b.run('-N')
    before = _files(b)
    b.run('-N')
    after = _files(b)
    assert {name: (s.st_ino, s.st_mtime_ns) for name, s in after.items()} == \
        {name: (s.st_ino, s.st_mtime_ns) for name, s in before.items()}


def test_control_script_not_as_written_is_written_again(buildout, busybox, tmp_path):
    b = buildout
    b.write(n_containers_config(b, busybox, 2, 'system'))
    b.run('-N')
    script, description = b.directory / 'bin/sys', b.directory / 'parts/sys/system.json'
    text = script.read_text()
    script.chmod(0o700)
    elsewhere = tmp_path / 'elsewhere.json'
    elsewhere.write_text(description.read_text())
    description.unlink()
    description.symlink_to(elsewhere)   # the same bytes, behind a link
    b.run('-N')
    assert script.read_text() == text and script.stat().st_mode & 0o7777 == 0o755
    assert not description.is_symlink() and description.read_text() == elsewhere.read_text()
