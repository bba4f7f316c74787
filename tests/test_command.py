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
