"""Configuration mistakes found when buildout starts, not half-way through a build."""
from __future__ import annotations

from helpers import actions, buildout_config, section


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


def error_line(out: str) -> str:
    errors = [line for line in out.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and 'Traceback' not in out, out
    return errors[0]


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
        line = error_line(b.fail('-N'))
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
    assert error_line(b.fail('-N')) == (
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
