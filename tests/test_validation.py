"""Configuration mistakes found when buildout starts, not half-way through a build."""
from __future__ import annotations

from helpers import actions, assert_one_error, buildout_config, error_lines, ids, section, sleeper


def test_image_expose_out_of_range_is_one_line(buildout):
    b = buildout
    for exposes in ('80800', '9000-8000'):
        b.write(f'''
            [buildout]
            parts = img

            [img]
            recipe = dockeroo_nagoya:docker.image
            from = dn-test/busybox:latest
            name = {b.prefix}/img
            exposes = {exposes}
            ''')
        out = b.fail('-N')
        assert f"img: option expose: expected ports such as 80, 8000-8010 or 53/udp (port numbers " \
               f"from 1 to 65535, the lower first), got '{exposes}'" in out, out
        assert 'Traceback' not in out and 'building' not in out


def test_a_plain_secret_is_refused_naming_only_what_the_recipe_takes(buildout, busybox):
    """``token = x`` must not send the user to ``token-env`` where nothing reads it."""
    b = buildout
    refused = {
        ('docker.run', f'image = {busybox}\ncommand = true', 'token'):
            'web: option token: secrets are taken by reference, never as plain options, and '
            'docker.run takes no secret: a container gets secrets from env-file or from a '
            'file in volumes',
        ('docker.volume', '', 'secret'):
            'web: option secret: secrets are taken by reference, never as plain options, and '
            'docker.volume takes no secret',
        ('docker.pull', f'image = {busybox}', 'token'):
            'web: option token: secrets are taken by reference, never as plain options, and '
            'docker.pull takes no token: it takes password-env or password-file',
        ('docker.push', f'image = {busybox}\nregistry = 127.0.0.1:1', 'auth'):
            'web: option auth: secrets are taken by reference, never as plain options, and '
            'docker.push takes no auth: it takes password-env or password-file',
        ('docker.pull', f'image = {busybox}\nusername = u', 'password'):
            'web: option password: secrets are taken by reference, never as plain options: '
            'use password-env (an environment variable) or password-file (a file)',
    }
    for (recipe, body, key), expected in refused.items():
        b.write(f'[buildout]\nparts = web\n\n[web]\nrecipe = dockeroo_nagoya:{recipe}\n'
                f'{body}\n{key} = x\n')
        line = assert_one_error(b.fail('-N'))
        assert line == f'Error: {expected}', line
        if key != 'password':
            assert f'{key}-env' not in line and f'{key}-file' not in line
    # A member of a docker.system says it for the member.
    b.write(f'''
        [buildout]
        parts = sys

        [sys]
        recipe = dockeroo_nagoya:docker.system
        containers = app

        [app]
        image = {busybox}
        private-key = x
        ''')
    assert assert_one_error(b.fail('-N')) == (
        'Error: sys: member app: option private-key: secrets are taken by reference, never as '
        'plain options, and a docker.system member takes no secret: a container gets secrets '
        'from env-file or from a file in volumes')


def test_the_secret_a_refusal_names_is_one_the_recipe_uses(buildout, busybox):
    """Following the line (``password-env`` for docker.pull) is an option buildout does not
    report unused, and two reruns then change nothing."""
    b = buildout
    b.write(buildout_config(['base'], section(
        'base', 'docker.pull', image=busybox, username='u',
        password_env='DN_TEST_REGISTRY_PASSWORD')))
    env = {'DN_TEST_REGISTRY_PASSWORD': 'not-asked-for-with-N'}
    runs = [b.run('-N', env=env) for _ in range(3)]
    assert actions(runs[0].stdout) == ['Installing base.']
    for run in runs:
        assert 'unused option' not in run.stdout + run.stderr, run.stdout + run.stderr
    assert actions(runs[1].stdout) == actions(runs[2].stdout) == []


LINKS_EXPECTED = ("expected a container on the Docker engine{member} or one a part of this "
                  "buildout makes (reference it as ${{part:name}} so that buildout makes it first), "
                  "got '{target}'")


def test_a_link_to_a_container_nobody_makes_is_one_line_before_anything_acts(
        buildout, client, busybox):
    """A link target is a container on the engine, a member of the same system, or one a
    configured part makes; anything else stops buildout in __init__, nothing torn down."""
    b, p = buildout, buildout.prefix
    foreign = client.containers.run(busybox, command='sleep 3600', name=f'{p}-foreign',
                                    init=True, detach=True)

    def config(web_link: str = f'{p}-db:db', member_link: str = 'one') -> str:
        return buildout_config(
            ['db', 'web', 'sys'],
            sleeper('db', busybox, name=f'{p}-db', init='true'),
            sleeper('web', busybox, name=f'{p}-web', init='true',
                    links=f'{web_link}\n{p}-foreign:foreign'),
            section('sys', 'docker.system', containers='one two'),
            section('one', '', image=busybox, name=f'{p}-one', command='sleep 3600',
                    init='true', links='${web:name}:web'),
            section('two', '', image=busybox, name=f'{p}-two', command='sleep 3600',
                    init='true', links=f'{member_link}\n{p}-one:again\n{p}-db:db'))

    try:
        b.write(config())
        first = b.run('-N')
        assert actions(first.stdout) == ['Installing db.', 'Installing web.', 'Installing sys.']
        before = ids(client, b)
        for _ in range(2):
            assert actions(b.run('-N').stdout) == []
            assert ids(client, b) == before
        # Targets nobody has: each is one line, nothing is removed.
        for broken, where, target in ((config(web_link=f'{p}-nope:db'), 'web', f'{p}-nope'),
                                      (config(member_link='three'), 'sys: member two', 'three')):
            b.write(broken)
            out = b.fail('-N')
            member = ', a member of this system' if where.startswith('sys') else ''
            assert error_lines(out) == [f'Error: {where}: option links: ' + LINKS_EXPECTED.format(
                member=member, target=target)], out
            assert actions(out) == []
            assert ids(client, b) == before
        # A container a later part makes, named literally, does not exist yet on a fresh
        # install: the line says to reference it.
        b.write(buildout_config(['early', 'late'], sleeper(
            'early', busybox, name=f'{p}-early', links=f'{p}-late'),
            sleeper('late', busybox, name=f'{p}-late')))
        out = b.fail('-N')
        assert error_lines(out) == [
            f"Error: early: option links: {LINKS_EXPECTED.format(member='', target=f'{p}-late')}"]
        assert actions(out) == []
        assert ids(client, b) == before
        # The configuration again: nothing to do.
        b.write(config())
        assert actions(b.run('-N').stdout) == []
        assert ids(client, b) == before
    finally:
        foreign.remove(force=True)


HOOKS = 'def record(container):\n    pass\n'


def test_a_callback_that_cannot_be_imported_is_one_line_before_anything_acts(
        buildout, client, busybox):
    b, p = buildout, buildout.prefix
    (b.directory / 'hooks.py').write_text(HOOKS)

    def config(web: str, member: str) -> str:
        return buildout_config(
            ['web', 'sys'], sleeper('web', busybox, name=f'{p}-web', init='true',
                                    callbacks=f'pre-start = {web}'),
            section('sys', 'docker.system', containers='one'),
            section('one', '', image=busybox, name=f'{p}-one', command='sleep 3600',
                    init='true', callbacks=f'post_start:{member}'))

    b.write(config('hooks:record', 'hooks.record'))
    assert actions(b.run('-N').stdout) == ['Installing web.', 'Installing sys.']
    before = ids(client, b)
    for _ in range(2):
        assert actions(b.run('-N').stdout) == []
        assert ids(client, b) == before
    cases = {
        ('nohooks:record', 'hooks.record'):
            "web: option callbacks: expected a module that can be imported (from the buildout "
            "directory or the Python path), got 'pre-start = nohooks:record' "
            "(ModuleNotFoundError: No module named 'nohooks')",
        ('hooks:record', 'hooks.missing'):
            "sys: member one: option callbacks: expected a module with a function missing, "
            "got 'post-start = hooks:missing' (hooks has none)",
    }
    for (web, member), expected in cases.items():
        b.write(config(web, member))
        out = b.fail('-N')
        assert error_lines(out) == [f'Error: {expected}'], out
        assert actions(out) == []
        assert ids(client, b) == before
    # The function goes from the module while the configuration stays: the next run says so.
    b.write(config('hooks:record', 'hooks.record'))
    (b.directory / 'hooks.py').write_text('def other(container):\n    pass\n')
    out = b.fail('-N')
    assert "Error: web: option callbacks: expected a module with a function record, got " \
           "'pre-start = hooks:record' (hooks has none)" in out, out
    assert actions(out) == []
    (b.directory / 'hooks.py').write_text(HOOKS)
    assert actions(b.run('-N').stdout) == []
    assert ids(client, b) == before


def test_a_name_that_is_another_objects_short_id_is_free(buildout, client, busybox):
    """Asked for a name no container has, the engine answers with the container whose id
    starts with it (a network likewise), and names such as ``db`` or ``cafe`` are short ids
    too: a part named like another object's short id makes its own, as with any free name
    (it refused: "already exists and was not made by this buildout")."""
    b = buildout
    made, nets = [], []
    try:
        while not made or made[-1].id[0] not in 'abcdef':   # names start with a letter here
            made.append(client.containers.create(busybox, 'true', name=f'{b.prefix}-x{len(made)}'))
        while not nets or nets[-1].id[0] not in 'abcdef':
            nets.append(client.networks.create(f'{b.prefix}-n{len(nets)}'))
        box, net = made[-1].id[:12], nets[-1].id[:12]
        config = buildout_config(['net', 'box'], section('net', 'docker.network', name=net),
                                 sleeper('box', busybox, name=box, init='true',
                                         networks='${net:name}'))
        b.write(config)
        b.run('-N')
        mine = client.api.inspect_container(box)
        assert mine['Name'] == f'/{box}' and mine['Id'] != made[-1].id
        assert client.api.inspect_network(net)['Name'] == net
        before = ids(client, b)
        assert actions(b.run('-N').stdout) == [] and ids(client, b) == before
        b.write('[buildout]\nparts =\n')
        b.run('-N')
        assert client.containers.get(made[-1].id).name == f'{b.prefix}-x{len(made) - 1}'
    finally:
        for container in made:
            container.remove(force=True)
        for network in nets:
            network.remove()
