"""Bad configurations: one clear line naming part and option, no traceback, nothing torn down."""
from __future__ import annotations

import configparser

import pytest

CASES = [
    # (id, recipe, options, expected error text)
    ('build-missing-source', 'docker.build', '', 'bad: option source is required but missing'),
    ('build-source-not-a-directory', 'docker.build', 'source = /nonexistent/ctx',
     "bad: option source: expected an existing directory, got '/nonexistent/ctx'"),
    ('build-missing-dockerfile', 'docker.build', 'source = /tmp\ndockerfile = Nope.dockerfile',
     'bad: option dockerfile: expected a readable Dockerfile'),
    ('build-bad-name', 'docker.build', 'source = /tmp\nname = Upper/Case',
     'bad: option name: expected an image reference'),
    ('build-bad-build-args', 'docker.build', 'source = /tmp\nbuild-args = JUST_A_WORD',
     'bad: option build-args: expected KEY=VALUE lines'),
    ('build-image-not-what-name-makes', 'docker.build',
     'source = /tmp\nname = dn/app:1\nimage = dn/app:2',
     "bad: option image: expected dn/app:1 (written by the part from name and tag) or no image "
     "line, got 'dn/app:2'"),
    ('volume-unknown-boolean', 'docker.volume', 'keep = maybe',
     "bad: option keep: expected a boolean (true/false, yes/no, on/off, 1/0), got 'maybe'"),
    ('volume-bad-name', 'docker.volume', 'name = -x',
     'bad: option name: expected a name of letters'),
    ('volume-missing-restore-archive', 'docker.volume', 'restore-from = /nonexistent.tar',
     'bad: option restore-from: expected an existing file'),
    ('network-bad-subnet', 'docker.network', 'subnet = 10.0.0.300/24',
     "bad: option subnet: expected a subnet in CIDR form such as 172.28.0.0/16, got '10.0.0.300/24'"),
    ('network-host-bits-in-subnet', 'docker.network', 'subnet = 10.0.0.1/24',
     'bad: option subnet: expected a subnet in CIDR form'),
    ('network-gateway-outside', 'docker.network', 'subnet = 10.9.0.0/24\ngateway = 10.9.1.1',
     'bad: option gateway: expected an address inside the subnet 10.9.0.0/24'),
    ('network-gateway-without-subnet', 'docker.network', 'gateway = 10.9.1.1',
     'bad: option gateway: expected a subnet to go with it'),
    ('network-range-outside', 'docker.network', 'subnet = 10.9.0.0/24\nip-range = 10.8.0.0/25',
     'bad: option ip-range: expected a range inside the subnet'),
    ('pull-bad-reference', 'docker.pull', 'image = Not An Image',
     'bad: option image: expected an image reference'),
    ('pull-bad-digest', 'docker.pull', 'image = busybox\ndigest = md5:abc',
     'bad: option digest: expected sha256: followed by 64 hex digits'),
    ('pull-plain-password', 'docker.pull', 'image = busybox\nusername = u\npassword = hunter2',
     'bad: option password: secrets are taken by reference'),
    ('pull-password-env-unset', 'docker.pull',
     'image = busybox\nusername = u\npassword-env = DN_TEST_UNSET_VARIABLE',
     'bad: option password-env: the environment variable DN_TEST_UNSET_VARIABLE is not set'),
    ('pull-password-file-missing', 'docker.pull',
     'image = busybox\nusername = u\npassword-file = /nonexistent/pw',
     "bad: option password-file: expected a readable file (there is no such file), got "
     "'/nonexistent/pw'"),
    ('pull-username-without-password', 'docker.pull', 'image = busybox\nusername = u',
     'bad: option username: expected password-env or password-file'),
    ('engine-bad-timeout', 'docker.volume', 'timeout = soon',
     "bad: option timeout: expected a number of seconds of at least 1 and at most 86400, "
     "got 'soon'"),
    ('engine-bad-tls-boolean', 'docker.volume', 'docker-tls-verify = perhaps',
     'bad: option docker-tls-verify: expected a boolean'),
    ('engine-down', 'docker.volume', 'docker-host = unix:///nonexistent/docker.sock',
     'bad: no Docker engine answers at unix:///nonexistent/docker.sock'),
    ('engine-down-tcp', 'docker.pull', 'image = busybox\ndocker-host = tcp://127.0.0.1:1',
     'bad: no Docker engine answers at tcp://127.0.0.1:1'),
]


@pytest.mark.parametrize('recipe, body, expected', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_configuration_is_one_clear_line(buildout, recipe, body, expected):
    b = buildout
    b.write(f'[buildout]\nparts = bad\n\n[bad]\nrecipe = dockeroo_nagoya:{recipe}\n{body}\n')
    out = b.fail('-N')
    assert 'Traceback' not in out
    errors = [line for line in out.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1, out
    assert expected in errors[0], out


def test_bad_configuration_tears_nothing_down(buildout, client):
    """The error comes from __init__, before buildout uninstalls changed parts."""
    b = buildout
    good = f'''
        [buildout]
        parts = data other

        [data]
        recipe = dockeroo_nagoya:docker.volume
        name = {b.prefix}-data
        keep = false

        [other]
        recipe = dockeroo_nagoya:docker.network
        name = {b.prefix}-net
        '''
    b.write(good)
    b.run('-N')
    installed = (b.directory / '.installed.cfg').read_text()
    # The volume part changes (it would be reinstalled) and another part is broken.
    b.write(good.replace('keep = false', 'keep = true').replace(
        f'name = {b.prefix}-net', f'name = {b.prefix}-net\n        subnet = nonsense'))
    out = b.fail('-N')
    assert 'other: option subnet' in out
    assert 'Uninstalling' not in out
    assert sections(b.directory / '.installed.cfg') == sections_text(installed)
    assert client.volumes.get(f'{b.prefix}-data')
    assert client.networks.list(names=[f'{b.prefix}-net'])


def sections_text(text: str) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser(strict=False)
    parser.read_string(text)
    return {name: dict(parser[name]) for name in parser.sections() if name != 'buildout'}


def sections(path) -> dict[str, dict[str, str]]:
    return sections_text(path.read_text())


def test_table_size_is_reported():
    print(f'\n{len(CASES)} malformed configurations checked')
    assert len(CASES) >= 20
