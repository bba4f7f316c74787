"""Hostile names and values that need more than one part to show (issue 22).

A part name that is not a plain name (a path, quotes) is refused in one line
before anything acts, whatever made it (a section, a for-each copy, a system's
member); a count in another script's digits, a damaged state file (in the run
and in dockeroo-plan) and a control script's ``--since 1e400`` are one line
each. Every run is bounded by a timeout (Buildout.run's, helpers' plan and
control), and each test checks that nothing was left running.
"""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from conftest import BUILDOUT
from helpers import assert_one_error, buildout_config, control, plan, section

#: Seconds a refused run may take: it stops before anything acts, in about one second.
RUN_TIMEOUT = 120


def bounded_fail(b) -> str:
    """bin/buildout expected to fail, within RUN_TIMEOUT (a run that lays out millions of
    sections or waits without end fails the test instead of hanging it)."""
    try:
        result = subprocess.run([str(BUILDOUT), '-c', 'buildout.cfg'], cwd=b.directory,
                                capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f'bin/buildout did not end within {RUN_TIMEOUT} s')
    assert result.returncode != 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _ran_nothing(b) -> None:
    """Nothing of the buildout's on the engine, no script written."""
    assert b.owned('containers') == [] and b.owned('volumes') == []
    assert not [p for p in (b.directory / 'bin').glob('*') if p.name not in ('buildout',)] \
        if (b.directory / 'bin').is_dir() else True


@pytest.mark.parametrize('part', ['../../tmp/{tag}', 'a"""b', "it's", 'a\\b'])
def test_a_part_name_that_is_no_plain_name_is_refused_before_anything_acts(buildout, busybox,
                                                                           part):
    """``[../../tmp/x]`` (docker.command) wrote /tmp/tmp/x; a name with ``\"\"\"`` in a
    docker.control part put code into the control script. Both are one line now."""
    b = buildout
    tag = f'dn-values-{uuid.uuid4().hex[:8]}'
    part = part.format(tag=tag)
    b.write(buildout_config(
        ['app', part],
        section('app', 'docker.run', name=f'{b.prefix}-app', image=busybox,
                command='sleep 600', stop_timeout='1'),
        section(part, 'docker.command', container='${app:name}', command='true')))
    out = bounded_fail(b)
    line = assert_one_error(out)
    assert f'part {part!r}: expected a part name' in line, out
    assert not os.path.exists(f'/tmp/tmp/{tag}') and not os.path.exists(f'/tmp/{tag}')
    assert 'Installing app' not in out and f'Installing {part}' not in out, out
    _ran_nothing(b)
    # The same name as a docker.control part.
    b.write(buildout_config(
        ['app', part],
        section('app', 'docker.run', name=f'{b.prefix}-app', image=busybox,
                command='sleep 600', stop_timeout='1'),
        section(part, 'docker.control', parts='app')))
    out = bounded_fail(b)
    assert f'part {part!r}: expected a part name' in assert_one_error(out), out
    _ran_nothing(b)


def test_a_for_each_copy_and_a_member_need_plain_names_too(buildout, busybox):
    b = buildout
    b.write(buildout_config(
        ['x/*'], section('machines', '', hosts='one default'),
        section('x/*', 'docker.run', for_each='machines:hosts', image=busybox,
                name=f'{b.prefix}-{{host}}', command='sleep 600'),
        head='extensions = dockeroo_nagoya'))
    out = bounded_fail(b)
    assert "machines:hosts: line 'one': copy of [x/*]: part 'x/one': expected a part name" in \
        assert_one_error(out), out
    _ran_nothing(b)
    b.write(buildout_config(
        ['sys'], section('sys', 'docker.system', containers='../m'),
        section('../m', '', image=busybox, name=f'{b.prefix}-m', command='sleep 600')))
    out = bounded_fail(b)
    assert "sys: option containers: section '../m': expected a part name" in \
        assert_one_error(out), out
    _ran_nothing(b)


@pytest.mark.parametrize('count', ['\u0663', '\u00b2', '5000000'])
def test_a_for_each_count_is_ascii_digits_and_bounded(buildout, busybox, count):
    """``٣`` was taken as 3 and ``²`` was a traceback (both are ``isdigit()``); a count of
    millions laid out millions of sections."""
    b = buildout
    b.write(buildout_config(
        ['sleep-*'], section('machines', '', hosts=f'one default {count}'),
        section('sleep-*', 'docker.run', for_each='machines:hosts', image=busybox,
                name=f'{b.prefix}-{{host}}', command='sleep 600', replicas='{count}'),
        head='extensions = dockeroo_nagoya'))
    out = bounded_fail(b)
    assert "machines:hosts: line 'one default" in assert_one_error(out), out
    assert 'expected a count of at least 1 and at most 1000' in out, out
    _ran_nothing(b)


def test_a_damaged_copy_record_is_one_line_in_the_run_and_the_plan(buildout, busybox):
    b = buildout
    (b.directory / 'conf.txt').write_text('one\n')
    b.write(buildout_config(
        ['app', 'copy'],
        section('app', 'docker.run', name=f'{b.prefix}-app', image=busybox,
                command='sleep 600', stop_timeout='1'),
        section('copy', 'docker.copy', container_to='${app:name}',
                paths='conf.txt /tmp/conf.txt')))
    b.run()
    record = b.directory / 'parts' / 'copy' / 'copied.json'
    assert record.is_file()
    before = {c.name: c.id for c in b.owned('containers')}
    for damage in (b'{"conf.txt": ', b'\xff\xfe not text'):
        record.write_bytes(damage)
        out = bounded_fail(b)
        line = assert_one_error(out)
        assert line.startswith(f'Error: copy: its state file {record} cannot be read'), out
        assert 'remove it and run again (every line is copied again)' in line, out
        result = plan(b)
        assert result.returncode != 0, result.stdout + result.stderr
        assert_one_error(result.stdout + result.stderr, 'copy: its state file')
        assert {c.name: c.id for c in b.owned('containers')} == before
    record.unlink()
    b.run()   # as the line says: the copy is made again


def test_logs_since_a_number_beyond_floats_is_one_line(buildout, busybox):
    b = buildout
    b.write(buildout_config(
        ['sys'], section('sys', 'docker.system', containers='m'),
        section('m', '', image=busybox, name=f'{b.prefix}-m', command='sleep 600',
                stop_timeout='1')))
    b.run()
    for since in ('1e400', 'inf', 'nan'):
        result = control(b, 'logs', '--since', since)
        assert result.returncode != 0, result.stdout
        assert 'Traceback' not in result.stderr, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) <= 2 and 'error:' in lines[-1] and since in lines[-1], result.stderr
    result = control(b, 'logs', '--since', '48h')   # far back is still a duration
    assert result.returncode == 0, result.stderr


def test_a_bad_number_on_an_installed_part_tears_nothing_down(buildout, busybox):
    """``stop-timeout = inf`` was accepted and failed only at removal, naming no part and
    leaving the container running; now the change is refused before anything acts."""
    b = buildout
    config = buildout_config(['app'], section(
        'app', 'docker.run', name=f'{b.prefix}-app', image=busybox, command='sleep 600',
        stop_timeout='1'))
    b.write(config)
    b.run()
    before = {c.name: c.id for c in b.owned('containers')}
    for bad in ('stop-timeout = inf', 'stop-timeout = 1e400', 'stop-timeout = nan'):
        b.write(config.replace('stop-timeout = 1', bad))
        out = bounded_fail(b)
        assert 'app: option stop-timeout: expected a duration' in assert_one_error(out), out
        assert 'Uninstalling' not in out
        assert {c.name: c.id for c in b.owned('containers')} == before
    # Removing the part with the good value stops it within its stop-timeout.
    b.write(buildout_config([]))
    b.run()
    assert b.owned('containers') == []
