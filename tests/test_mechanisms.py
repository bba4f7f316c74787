"""Each shared mechanism once: the dependency rules, engine errors, the helper image, engine
options, image removal; and the control script of an older version still runs."""
from __future__ import annotations

from helpers import assert_one_error


def control_config(b, busybox: str, parts: str) -> str:
    return f'''
        [buildout]
        parts = db web ctl

        [db]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-db
        image = {busybox}
        init = true
        stop-timeout = 1
        command = sleep 3600

        [web]
        recipe = dockeroo_nagoya:docker.run
        name = {b.prefix}-web
        image = {busybox}
        init = true
        stop-timeout = 1
        command = sleep 3600
        depends =
            ${{db:name}}
            ${{buildout:directory}}/not-a-container

        [ctl]
        recipe = dockeroo_nagoya:docker.control
        parts = {parts}
    '''


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
    from dockeroo_nagoya import throwaway, volumedata
    from dockeroo_nagoya.engine import LABEL_HELPER, EngineConfig, connect
    engine = connect(EngineConfig(), 'test')
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
    from dockeroo_nagoya.engine import explain
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
    from dockeroo_nagoya.engine import EngineConfig
    from dockeroo_nagoya.engine_options import described, engine_config, record
    for config in (EngineConfig(), EngineConfig(host='tcp://box:2376', timeout=30),
                   EngineConfig(host='unix:///var/run/docker.sock', tls_verify=True),
                   EngineConfig(context='nowhere-context')):
        assert described('p', record(config)) == config
        assert engine_config('p', record(config), recorded=True) == config
        assert described('p', dataclasses.asdict(config)) == config    # a script of before
    assert record(EngineConfig(host='tcp://box:2376', timeout=30)) == {
        'docker-host': 'tcp://box:2376', 'timeout': '30'}
