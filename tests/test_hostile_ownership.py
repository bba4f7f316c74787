"""Ownership that tells configurations apart (issue 22, finding 5).

Two configurations in one buildout directory (``[buildout] installed =
.installed-a.cfg`` and ``.installed-b.cfg``), or two machines running the same
path against one engine, each make objects labelled with that directory. A
run of one must not take the other's running containers for its own orphans;
it still sweeps its own. Objects made before configurations were labelled
(the directory label alone) are adopted as they are, with no recreate, and
only the default configuration sweeps them.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import uuid

import docker
import pytest

from conftest import BUILDOUT
from helpers import actions, buildout_config, plan, sleeper

INSTALLED = 'io.dockeroo-nagoya.installed'
HOST = 'io.dockeroo-nagoya.host'
BUILDOUT_LABEL = 'io.dockeroo-nagoya.buildout'
PART = 'io.dockeroo-nagoya.part'


@pytest.fixture
def image(client: docker.DockerClient, busybox: str):
    """busybox under a tag of this test's own: another test session on the engine removes
    the shared tag when it ends, and the image must stay for this test's runs."""
    tag = uuid.uuid4().hex[:12]
    client.images.get(busybox).tag('dn-test/ownership', tag)
    try:
        yield f'dn-test/ownership:{tag}'
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(f'dn-test/ownership:{tag}')


def running_id(client: docker.DockerClient, name: str) -> str:
    """The id of the container ``name``, which must be running."""
    container = client.containers.get(name)
    assert container.status == 'running', f'{name} is {container.status}'
    return container.id


def exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.containers.get(name)
        return True
    except docker.errors.NotFound:
        return False


def configuration(b, image: str, installed: str | None, *parts: str) -> str:
    """A configuration of sleepers named ``PREFIX-PART``, recorded in ``installed``."""
    head = f'installed = {installed}\n' if installed else ''
    return buildout_config(list(parts), *(sleeper(part, image, name=f'{b.prefix}-{part}',
                                                  stop_timeout='1') for part in parts),
                           head=head)


def forget(b, record: str, *parts: str) -> None:
    """What buildout writes when a part's update fails: the record's ``parts`` without it
    (appended, the last ``[buildout]`` wins), so only the orphan sweep can remove it."""
    with open(b.directory / record, 'a', encoding='utf-8') as out:
        out.write(f'\n[buildout]\nparts = {" ".join(parts)}\n')


def test_two_configurations_in_one_directory_sweep_only_their_own(buildout, client, image):
    b = buildout
    b.write(configuration(b, image, '.installed-a.cfg', 'a-web', 'a-old'), 'a.cfg')
    b.write(configuration(b, image, '.installed-b.cfg', 'b-web'), 'b.cfg')
    b.run('-N', config='a.cfg')
    a_web, a_old = running_id(client, f'{b.prefix}-a-web'), running_id(client, f'{b.prefix}-a-old')

    out = b.run('-N', config='b.cfg')
    said = out.stdout + out.stderr
    assert 'neither installed nor configured' not in said, said
    assert running_id(client, f'{b.prefix}-a-web') == a_web
    assert running_id(client, f'{b.prefix}-a-old') == a_old
    b_web = running_id(client, f'{b.prefix}-b-web')

    out = b.run('-N', config='a.cfg')
    assert actions(out.stdout + out.stderr) == [], out.stdout + out.stderr
    assert running_id(client, f'{b.prefix}-b-web') == b_web
    assert running_id(client, f'{b.prefix}-a-web') == a_web

    # a-old's update failed (buildout forgot it), then it left a's configuration: only
    # a's sweep can tell it is an orphan; b's runs leave it.
    forget(b, '.installed-a.cfg', 'a-web')
    b.write(configuration(b, image, '.installed-a.cfg', 'a-web'), 'a.cfg')
    b.run('-N', config='b.cfg')
    assert running_id(client, f'{b.prefix}-a-old') == a_old
    out = b.run('-N', config='a.cfg')
    said = out.stdout + out.stderr
    assert f'removed container {b.prefix}-a-old: its part a-old is neither installed nor ' \
        f'configured' in said, said
    assert not exists(client, f'{b.prefix}-a-old')
    assert running_id(client, f'{b.prefix}-a-web') == a_web
    assert running_id(client, f'{b.prefix}-b-web') == b_web
    labels = client.containers.get(f'{b.prefix}-a-web').labels
    assert labels[INSTALLED] == '.installed-a.cfg'
    assert labels[BUILDOUT_LABEL] == os.path.realpath(b.directory)


def test_removing_a_part_of_one_configuration_leaves_the_same_part_of_the_other(
        buildout, client, image):
    """Two configurations may have a part of the same name (objects of other names): the
    removal of one's part removes what that configuration made, not the other's."""
    b = buildout
    for name in ('a', 'b'):
        b.write(buildout_config(['web'], sleeper('web', image, name=f'{b.prefix}-{name}-web',
                                                 stop_timeout='1'),
                                head=f'installed = .installed-{name}.cfg\n'), f'{name}.cfg')
        b.run('-N', config=f'{name}.cfg')
    b_web = running_id(client, f'{b.prefix}-b-web')
    b.write(buildout_config([], head='installed = .installed-a.cfg\n'), 'a.cfg')
    planned = plan(b, '-c', 'a.cfg')
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert f'remove container {b.prefix}-a-web' in planned.stdout, planned.stdout
    assert f'{b.prefix}-b-web' not in planned.stdout, planned.stdout
    out = b.run('-N', config='a.cfg')
    assert actions(out.stdout + out.stderr) == ['Uninstalling web.'], out.stdout + out.stderr
    assert not exists(client, f'{b.prefix}-a-web')
    assert running_id(client, f'{b.prefix}-b-web') == b_web


def test_a_name_another_configuration_uses_is_refused_in_one_line(buildout, client, image):
    """A container of the same name in another configuration of the directory is not
    this one's to adopt or replace."""
    b = buildout
    for name, part in (('a', 'web'), ('b', 'site')):
        b.write(buildout_config([part], sleeper(part, image, name=f'{b.prefix}-web'),
                                head=f'installed = .installed-{name}.cfg\n'), f'{name}.cfg')
    b.run('-N', config='a.cfg')
    web = running_id(client, f'{b.prefix}-web')
    out = b.run('-N', config='b.cfg', check=False)
    said = out.stdout + out.stderr
    assert out.returncode == 1, said
    errors = [line for line in said.splitlines() if line.startswith('Error:')]
    assert errors == [f"Error: site: container '{b.prefix}-web' already exists and belongs to "
                      f"another configuration of this buildout: the buildout in "
                      f"{os.path.realpath(b.directory)} (.installed-a.cfg, host "
                      f"{socket.gethostname()}) (part web); choose another name"], said
    assert 'Traceback' not in said
    assert running_id(client, f'{b.prefix}-web') == web


def _another_machine(directory: str, files: str, host: str) -> list[str]:
    """A command prefix that runs as another machine would: its own host name (a UTS
    namespace) and its own files at the same path (a mount namespace with ``files``
    bound over ``directory``), against the same engine."""
    return ['unshare', '--uts', '--mount', 'sh', '-c',
            'mount --bind "$1" "$2" && hostname "$3" && cd "$2" && shift 3 && exec "$@"',
            'sh', files, directory, host]


@pytest.fixture
def can_unshare() -> None:
    probe = subprocess.run(['unshare', '--uts', '--mount', 'true'], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f'cannot make namespaces here: {probe.stderr.decode().strip()}')


def test_two_machines_running_the_same_path_against_one_engine(buildout, client, image,
                                                                tmp_path, can_unshare):
    b = buildout
    directory = os.path.realpath(b.directory)
    b.write(configuration(b, image, None, 'here'))
    b.run('-N')
    here = running_id(client, f'{b.prefix}-here')

    there = tmp_path / 'other-machine'
    there.mkdir()
    (there / 'buildout.cfg').write_text(configuration(b, image, None, 'there'))
    command = _another_machine(directory, str(there), 'dn-other-machine') + \
        [str(BUILDOUT), '-c', 'buildout.cfg', '-N']
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'neither installed nor configured' not in out.stdout + out.stderr
    assert (there / '.installed.cfg').exists() and not (b.directory / 'there').exists()
    assert running_id(client, f'{b.prefix}-here') == here
    made_there = running_id(client, f'{b.prefix}-there')
    labels = client.containers.get(made_there).labels
    assert labels[HOST] == 'dn-other-machine' and labels[BUILDOUT_LABEL] == directory

    out = b.run('-N')
    assert actions(out.stdout + out.stderr) == [], out.stdout + out.stderr
    assert running_id(client, f'{b.prefix}-there') == made_there
    assert running_id(client, f'{b.prefix}-here') == here


def _as_main_labels_it(client: docker.DockerClient, name: str, **labels: str) -> str:
    """Make the container ``name`` anew as the code before configurations were labelled
    made it: the same image, command and ownership labels, but no configuration or machine
    label (``labels`` replace some); started. Its id."""
    old = client.api.inspect_container(name)
    kept = {key: value for key, value in old['Config']['Labels'].items()
            if key not in (INSTALLED, HOST)}
    client.api.remove_container(old['Id'], force=True)
    made = client.api.create_container(
        old['Config']['Image'], command=old['Config']['Cmd'], name=name,
        labels={**kept, **labels},
        host_config=client.api.create_host_config(init=old['HostConfig'].get('Init')))
    client.api.start(made['Id'])
    return made['Id']


def test_objects_labelled_before_configurations_are_adopted_and_swept_by_the_default(
        buildout, client, image):
    """The upgrade: a container with the directory label alone is its part's, with no
    recreate; one whose part is gone is an orphan of the default configuration only."""
    b = buildout
    b.write(configuration(b, image, None, 'web', 'gone'))
    b.run('-N')
    web = _as_main_labels_it(client, f'{b.prefix}-web')
    gone = _as_main_labels_it(client, f'{b.prefix}-gone')
    forget(b, '.installed.cfg', 'web')   # buildout forgot it; then it left the configuration
    b.write(configuration(b, image, None, 'web'))
    assert INSTALLED not in client.containers.get(web).labels

    # Another configuration of the directory: neither the adopted container nor the
    # unlabelled orphan is its own.
    b.write(configuration(b, image, '.installed-other.cfg', 'other'), 'other.cfg')
    out = b.run('-N', config='other.cfg')
    assert 'neither installed nor configured' not in out.stdout + out.stderr, out.stdout
    assert running_id(client, f'{b.prefix}-web') == web
    assert running_id(client, f'{b.prefix}-gone') == gone
    other = running_id(client, f'{b.prefix}-other')

    out = b.run('-N')
    said = out.stdout + out.stderr
    assert actions(said) == [], said
    assert running_id(client, f'{b.prefix}-web') == web        # adopted, not recreated
    assert f'removed container {b.prefix}-gone: its part gone is neither' in said, said
    assert not exists(client, f'{b.prefix}-gone')
    assert running_id(client, f'{b.prefix}-other') == other
