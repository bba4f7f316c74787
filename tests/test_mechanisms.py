"""Each shared mechanism once: the dependency rules, engine errors, the helper image, engine
options, image removal; and the control script of an older version still runs."""
from __future__ import annotations

from helpers import assert_one_error, buildout_config, section, sleeper


def control_config(b, busybox: str, parts: str) -> str:
    """db, and web after it (and after a path, which is no container); ctl over ``parts``."""
    return buildout_config(
        ['db', 'web', 'ctl'],
        sleeper('db', busybox, name=f'{b.prefix}-db', init='true', stop_timeout='1'),
        sleeper('web', busybox, name=f'{b.prefix}-web', init='true', stop_timeout='1',
                depends='${db:name}\n${buildout:directory}/not-a-container'),
        section('ctl', 'docker.control', parts=parts))


def test_control_refuses_a_depends_on_a_container_it_leaves_out(buildout, busybox, client):
    """docker.system refuses a depends on no member; docker.control refused nothing: its
    script started web without the db web depends on. Both refuse now, in one line, by
    the same rules (a depends on something that is no container only orders parts)."""
    b = buildout
    b.write(control_config(b, busybox, 'web'))
    out = b.fail('-N')
    assert_one_error(out, f'ctl: member web: option depends: expected containers of the parts '
                     f'in parts (add the part that runs {b.prefix}-db to parts), got '
                     f"'{b.prefix}-db'")
    assert 'Traceback' not in out
    assert not client.containers.list(all=True, filters={'name': f'{b.prefix}-'})

    b.write(control_config(b, busybox, 'web db'))
    b.run('-N')
    ctl = (b.directory / 'parts' / 'ctl' / 'control.json').read_text()
    assert '"levels": [\n    [\n      "db"\n    ],\n    [\n      "web"' in ctl


def test_every_empty_image_comes_from_one_maker(client, buildout):
    """The volume helper and the scratch root were two makers with two tarballs; one now,
    with what each image needs said as Dockerfile changes."""
    import os

    from dockeroo_nagoya.mechanisms import throwaway, volumedata
    from dockeroo_nagoya.engine.driver import EngineConfig
    from dockeroo_nagoya.engine.labels import LABEL_HELPER
    from dockeroo_nagoya.run.ownership import Owner
    from dockeroo_nagoya.run.runstate import Run
    engine = Run(Owner(os.getcwd())).engine(EngineConfig(), 'test')
    reference = f'{buildout.prefix}/empty:test'
    try:
        assert throwaway.empty_image(engine, reference, [f'LABEL {LABEL_HELPER}=1']) == reference
        made = client.api.inspect_image(reference)
        assert made['Config']['Labels'] == {LABEL_HELPER: '1'}
        engine.forget()
        assert throwaway.empty_image(engine, reference) == reference     # once per engine
        assert client.api.inspect_image(reference)['Id'] == made['Id']
        assert volumedata.helper_image(engine) == volumedata.HELPER_IMAGE
        assert throwaway.scratch_image(engine) == throwaway.SCRATCH_IMAGE
        assert LABEL_HELPER not in (client.api.inspect_image(throwaway.SCRATCH_IMAGE)
                                    ['Config'].get('Labels') or {})
    finally:
        client.api.remove_image(reference, force=True)


def test_engine_errors_are_said_by_one_function():
    """pull, orphans and control each had their own reading of an engine error's text."""
    import docker.errors
    from dockeroo_nagoya.engine.driver import explain
    response = type('Response', (), {'status_code': 409, 'reason': 'Conflict', 'url': ''})()
    error = docker.errors.APIError('409', response, explanation=b' conflict: in use \n')
    assert explain(error) == 'conflict: in use'
    assert explain(docker.errors.NotFound('gone')) == 'gone'
    assert explain(ValueError(' said ')) == 'said'


def test_engine_options_are_written_one_way_and_read_back_one_way():
    """A part's recorded options, a control description, a backup manifest and a command
    script held an engine in two forms read by two readers; one form now, and the form
    earlier versions wrote into descriptions is still read the same."""
    import dataclasses
    from dockeroo_nagoya.engine.driver import EngineConfig
    from dockeroo_nagoya.model.engine_options import described, engine_config, record
    for config in (EngineConfig(), EngineConfig(host='tcp://box:2376', timeout=30),
                   EngineConfig(host='unix:///var/run/docker.sock', tls_verify=True),
                   EngineConfig(context='nowhere-context')):
        assert described('p', record(config)) == config
        assert engine_config('p', record(config), recorded=True) == config
        assert described('p', dataclasses.asdict(config)) == config    # a script of before
    assert record(EngineConfig(host='tcp://box:2376', timeout=30)) == {
        'docker-host': 'tcp://box:2376', 'timeout': '30'}


#: bin/<part> as the version before control.py's split wrote it (control.script_text of
#: 476b3e6), with the engine in its description as that version wrote it (every
#: EngineConfig field): installed buildouts keep such scripts until their next run.
OLD_SCRIPT = '''#!{python}
'Control script of the docker.system part sys (made by buildout: bin/sys --help).'
import sys
sys.path[0:0] = [
{paths}]

from dockeroo_nagoya.cli import control

if __name__ == '__main__':
    sys.exit(control.main({description!r}, sys.argv[1:], prog='sys'))
'''
OLD_ENGINE = {'host': None, 'tls_verify': None, 'cert_path': None, 'timeout': 120,
              'context': None}


def test_a_control_script_written_by_the_previous_version_still_runs(buildout, busybox):
    import json
    import subprocess
    import sys
    from dockeroo_nagoya.mechanisms.scripts import importable_paths
    b = buildout
    b.write(buildout_config(
        ['sys'], section('sys', 'docker.system', containers='web'),
        section('web', '', name=f'{b.prefix}-web', image=busybox, init='true',
                stop_timeout='1', command='sleep 3600')))
    b.run('-N')
    description = b.directory / 'parts' / 'sys' / 'system.json'
    old = json.loads(description.read_text())
    old['engine'] = OLD_ENGINE
    description.write_text(json.dumps(old))
    script = b.directory / 'bin' / 'sys'
    script.write_text(OLD_SCRIPT.format(
        python=sys.executable, description=str(description),
        paths=''.join(f'    {path!r},\n' for path in importable_paths())))

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120)

    assert ctl('stop').stdout.splitlines() == [f'stopped {b.prefix}-web']
    assert ctl('status').returncode == 3
    assert ctl('start').stdout.splitlines() == [f'started {b.prefix}-web']
    status = ctl('status')
    assert status.returncode == 0 and f'{b.prefix}-web' in status.stdout, status.stderr
