"""docker.command: a bin script that runs a command inside a container."""
from __future__ import annotations

import subprocess


def test_bin_script_runs_in_the_container_and_keeps_its_exit_code(buildout, busybox):
    b = buildout
    b.write(f'''
        [buildout]
        parts = box tool

        [box]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-box
        image = {busybox}
        command = sleep 3600
        init = true
        stop-timeout = 1
        env =
            GREETING=hello
            EXIT=0

        [tool]
        recipe = dockeroo_nagoya:docker.command
        container = ${{box:name}}
        command = sh -c 'echo "$GREETING $*"; exit $EXIT' tool
        script-name = boxsh
        ''')
    b.run('-N')
    script = b.directory / 'bin' / 'boxsh'
    done = subprocess.run([str(script), 'from', 'inside'], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == 'hello from inside\n'
    b.write((b.directory / 'buildout.cfg').read_text().replace('EXIT=0', 'EXIT=3'))
    b.run('-N')
    assert subprocess.run([str(script)], capture_output=True).returncode == 3
    b.write('[buildout]\nparts =\n')
    b.run('-N')
    assert not script.exists()


def test_a_no_op_rerun_leaves_the_bin_script_as_it_was(buildout):
    """bin scripts are written by one writer (mechanisms.scripts), whole and only when their
    text changed: a no-op rerun does not replace the file (one read, no sync to disk), a
    changed command does; quotes in the command reach the script as a literal."""
    import ast
    b = buildout
    config = f'''
        [buildout]
        parts = tool

        [tool]
        recipe = dockeroo_nagoya:docker.command
        container = {b.prefix}-none
        command = sh -c 'echo "it'"'"'s"; exit 0' x
        '''
    b.write(config)
    b.run('-N')
    script = b.directory / 'bin' / 'tool'
    before = script.stat()
    ast.parse(script.read_text())   # valid Python whatever the quotes
    b.run('-N')
    after = script.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    b.write(config.replace('exit 0', 'exit 4'))
    b.run('-N')
    assert script.stat().st_mtime_ns != before.st_mtime_ns and 'exit 4' in script.read_text()
    assert (script.stat().st_mode & 0o777) == 0o755
