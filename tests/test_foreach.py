"""The extension's parts made once per line of a list (dockeroo_nagoya.model.foreach).

Each line is a machine: its parts act on its engine only, so adding a line,
taking one out, or changing one's count touches no other line's containers.
"""
from __future__ import annotations

import pytest

from dockeroo_nagoya.model import foreach
from helpers import actions, buildout_config, ids, section


def machines(b, busybox: str, lines: str, head: str = '') -> None:
    """Sleepers once per line of [machines] hosts, and a container that is no copy."""
    b.write(buildout_config(
        ['alone', 'sleep-*'],
        section('machines', '', hosts=lines),
        section('alone', 'docker.run', name=f'{b.prefix}-alone', image=busybox,
                command='sleep 3600'),
        section('sleep-*', 'docker.run', for_each='machines:hosts',
                for_each_defaults='seconds=3600', engine='{engine}',
                name=f'{b.prefix}-{{host}}', image=busybox, command='sleep {seconds}',
                replicas='{count}', labels='machine={host}'),
        head=f'extensions = dockeroo_nagoya\n{head}'))


def test_lines_make_parts_and_each_line_is_its_own(buildout, busybox):
    b = buildout
    machines(b, busybox, 'one default 2\ntwo default seconds=1800')
    out = b.run()
    assert actions(out.stdout) == ['Installing alone.', 'Installing sleep-one.',
                                   'Installing sleep-two.']
    first = ids(b.client, b)
    assert sorted(first) == sorted(f'container:{b.prefix}-{n}' for n in
                                   ('alone', 'one-1', 'one-2', 'two-1'))
    two = b.client.containers.get(f'{b.prefix}-two-1')
    assert two.attrs['Config']['Cmd'] == ['sleep', '1800']
    assert two.labels['machine'] == 'two'
    for _ in range(2):  # unchanged reruns: nothing installed, the same containers
        out = b.run()
        assert actions(out.stdout) == [], out.stdout
        assert ids(b.client, b) == first

    # A count changed on one line: that line's part alone, one container more.
    machines(b, busybox, 'one default 2\ntwo default 2 seconds=1800')
    out = b.run()
    # (buildout says Uninstalling of a part it installs anew; its containers stay)
    assert actions(out.stdout) == ['Uninstalling sleep-two.', 'Installing sleep-two.'], out.stdout
    after = ids(b.client, b)
    assert set(after) - set(first) == {f'container:{b.prefix}-two-2'}
    assert all(after[key] == value for key, value in first.items())
    assert actions(b.run().stdout) == []

    # A line taken out: its parts uninstalled, the other line's containers untouched.
    machines(b, busybox, 'two default 2 seconds=1800')
    out = b.run()
    assert actions(out.stdout) == ['Uninstalling sleep-one.'], out.stdout
    left = ids(b.client, b)
    assert sorted(left) == sorted(f'container:{b.prefix}-{n}' for n in
                                  ('alone', 'two-1', 'two-2'))
    assert all(left[key] == after[key] for key in left)
    assert actions(b.run().stdout) == []

    # No line: no copy; the plain part stays.
    machines(b, busybox, '')
    out = b.run()
    assert actions(out.stdout) == ['Uninstalling sleep-two.']
    assert sorted(ids(b.client, b)) == [f'container:{b.prefix}-alone']


@pytest.mark.parametrize('lines, expected', [
    ('one', "machines:hosts: line 'one': expected a name and an engine"),
    ('One default', "expected a name of lowercase letters"),
    ('one default 2\none default', "expected a name of its own ('one' is on an earlier line)"),
    ('one tcp//box:2376', "expected an engine URL (tcp://HOST:2376) or a Docker context name"),
    ('one default tls=/etc/x', "no tls= for default"),
    ('one default two', "expected a count, tls=DIR or KEY=VALUE, not 'two'"),
    ('one default host=x', "no host= (the line says its host itself)"),
    ('one default 2 3', "expected one count, not 2 and 3"),
    ('one default 0', "expected a count of at least 1"),
    ('one default secnods=5', "expected KEY=VALUE of what its templates use (seconds), not "
                              "secnods="),
])
def test_a_bad_line_is_one_line_before_anything_acts(buildout, busybox, lines, expected):
    b = buildout
    machines(b, busybox, 'one default')
    b.run()
    before = ids(b.client, b)
    machines(b, busybox, lines)
    out = b.fail()
    errors = [line for line in out.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and expected in errors[0], out
    assert 'Traceback' not in out
    assert ids(b.client, b) == before


def test_a_template_named_without_a_star_or_list_is_refused(buildout, busybox):
    b = buildout
    b.write(buildout_config(['sleep'], section('machines', '', hosts='one default'),
                            section('sleep', 'docker.run', for_each='machines:hosts',
                                    image=busybox),
                            head='extensions = dockeroo_nagoya'))
    out = b.fail()
    assert 'Error: sleep: option for-each: expected a section whose name holds *' in out, out
    b.write(buildout_config(['sleep-*'], section('sleep-*', 'docker.run',
                                                 for_each='machines:hsots', image=busybox),
                            section('machines', '', hosts='one default'),
                            head='extensions = dockeroo_nagoya'))
    out = b.fail()
    assert "Error: sleep-*: option for-each: expected SECTION:OPTION naming the list" in out, out


def test_a_default_that_names_no_macro_is_one_line(buildout, busybox):
    """A misspelt setting that picks a macro (``<= image-by-{transfer}``) names the list,
    the line and the section it sought, not buildout's bare missing section."""
    b = buildout
    b.write(buildout_config(
        ['sleep-*'], section('settings', '', transfer='files', hosts='one default'),
        section('by-file', '', image=busybox),
        section('sleep-*', 'docker.run', for_each='settings:hosts',
                for_each_defaults='transfer=${settings:transfer}', command='sleep 60',
                name=f'{b.prefix}-{{host}}', **{'<': 'by-{transfer}'}),
        head='extensions = dockeroo_nagoya'))
    out = b.fail()
    errors = [line for line in out.splitlines() if line.startswith('Error:')]
    assert errors == ["Error: settings:hosts: line 'one': [sleep-*] takes its options from "
                      "[by-files] (<= by-{transfer}), and there is no such section: check the "
                      "value its placeholders come from"], out


def test_expand_fills_placeholders_and_leaves_other_braces():
    raw = {'settings': {'via': 'file', 'hosts': 'a default 2\nb tcp://box:2376 3 network=host'},
           'by-file': {'recipe': 'dockeroo_nagoya:docker.load'},
           'part-*': {'for-each': 'settings:hosts', 'for-each-defaults':
                      'transfer=${settings:via} network=bridge', '<': 'by-{transfer}',
                      'engine': '{engine}', 'replicas': '{count}', 'hostname': 'b-{index}',
                      'networks': '{network}', 'image': '${image:name}'}}
    made = foreach.expand(raw)
    del raw['by-file']
    assert made == {'settings:hosts': [('part-*', 'part-a'), ('part-*', 'part-b')]}
    assert raw['part-a'] == {'<': 'by-file', 'engine': 'default', 'replicas': '2',
                             'hostname': 'b-{index}', 'networks': 'bridge',
                             'image': '${image:name}'}
    assert raw['part-b']['engine'] == 'tcp://box:2376'
    assert raw['part-b']['networks'] == 'host' and raw['part-b']['replicas'] == '3'
