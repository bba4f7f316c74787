"""wait-for gates in the forms docs/recipes/run.rst gives, and a failing gate that says why as it waits."""
from __future__ import annotations

import re

import pytest

from helpers import buildout_config, container_part

pytestmark = pytest.mark.slow


def gate_cfg(b, busybox: str, gates: str, timeout: str = '30s') -> str:
    """A web server that says ``serving``, waited for by ``gates`` (one a line)."""
    return buildout_config(['web'], container_part(
        b, 'web', busybox, init='true', stop_timeout='1',
        command='sh -c \'mkdir -p /www && echo "ready: yes" > /www/index.html && echo serving && '
                'exec httpd -f -p 8080 -h /www\'',
        wait_timeout=timeout, wait_for='\n'.join(line.strip() for line in gates.splitlines())))


def test_every_readme_gate_form_passes(buildout, client, busybox):
    b = buildout
    gates = '\n        '.join([
        '    tcp:8080',
        '    http://:8080/index.html',
        '    http://:8080/index.html 200',
        '    http://:8080/index.html 2xx /ready: y.s/',
        '    http://:8080/index.html 200 ready',
        f'    http://{b.prefix}-web:8080/ 200 /^ready/',
        '    exec:test -e /www/index.html',
        '    log:serv(ing)',
        '    log:/^serving$/',
    ])
    b.write(gate_cfg(b, busybox, gates))
    out = b.run('-N').stdout
    for gate in ('tcp:8080 passed', '2xx /ready: y.s/ passed', "/^ready/ passed",
                 'log:/^serving$/ passed'):
        assert gate in out, out
    first = client.containers.get(f'{b.prefix}-web').id
    for _ in range(2):
        rerun = b.run('-N').stdout
        assert 'Installing' not in rerun and client.containers.get(f'{b.prefix}-web').id == first
    # A REGEX between slashes is matched without them: a wrong one fails.
    b.write(gate_cfg(b, busybox, '    http://:8080/ 200 /not there/', timeout='2s'))
    out = b.fail('-N')
    assert "answered 200 without 'not there' in its body" in out


def test_a_failing_gate_says_every_10s_what_it_tried_and_got(buildout, busybox):
    b = buildout
    b.write(gate_cfg(b, busybox, '    http://localhost:5432/', timeout='11s'))
    out = b.fail('-N')
    still = [line for line in out.splitlines() if 'still waiting for http://localhost:5432/' in line]
    assert len(still) == 1, out
    # the time it says is the time that went by: 10 s, or a little more on a loaded machine
    assert re.search(r'after 1[0-1]s: http://localhost:5432/:', still[0]), still[0]
    assert "localhost is the buildout's host, not the container" in still[0]
    assert 'did not pass within 11s' in out
