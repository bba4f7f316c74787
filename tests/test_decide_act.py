"""The run acts on the decision ``decide()`` returns, for every recipe (issue 23).

``dockeroo-plan`` shows what ``decide()`` returns; these tests hold that the run
does exactly that: with a recipe's ``decide`` patched to return another decision
(tests/decide/sitecustomize.py, on ``PYTHONPATH`` in the buildout process, as
tests/faults/ injects faults), ``bin/buildout`` does the patched thing: nothing
where the configuration would create, a new object where nothing changed.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import docker.errors
import pytest

from helpers import (run_output, buildout_config, busybox_tarball, output, publish, section, sleeper,
                     unpublish)

from dockeroo_nagoya.recipes.base import Recipe

PATCH_DIR = Path(__file__).resolve().parent / 'decide'

#: Entry points that are no recipe of engine objects: nothing to decide.
NOT_DECIDING = {
    'profile-directory': 'computes two paths in __init__, installs nothing',
    'machine.create': 'retired: stops with one line in __init__',
}


def patched(b, spec: str, *args: str, check: bool = True):
    """``bin/buildout`` with ``decide`` patched as ``spec`` says; the parts it was asked for."""
    log = b.directory.parent / 'decided.log'
    log.unlink(missing_ok=True)
    path = os.environ.get('PYTHONPATH')
    result = b.run(*(args or ('-N',)), check=check, env={
        'DN_DECIDE': spec, 'DN_DECIDE_LOG': str(log),
        'PYTHONPATH': str(PATCH_DIR) + (os.pathsep + path if path else '')})
    decided = log.read_text().split('\n') if log.exists() else []
    return result, [line.split()[0] for line in decided if line]


def image_here(client, reference: str) -> bool:
    try:
        client.images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True


def image_from(b, busybox: str) -> str:
    return section('app', 'docker.image', **{'from': busybox}, name=f'{b.prefix}/app')


# -- one case per entry point: a configuration, the patch, what would be made --------
def _volume(b, busybox, **_):
    return buildout_config(['data'], section('data', 'docker.volume', name=f'{b.prefix}-data'))


def _network(b, busybox, **_):
    return buildout_config(['net'], section('net', 'docker.network', name=f'{b.prefix}-net'))


def _run(b, busybox, **_):
    return buildout_config(['app'], sleeper('app', busybox, name=f'{b.prefix}-app'))


def _system(b, busybox, **_):
    return buildout_config(
        ['sys'], section('sys', 'docker.system', containers='db web'),
        section('db', '', name=f'{b.prefix}-db', image=busybox, command='sleep 3600'),
        section('web', '', name=f'{b.prefix}-web', image=busybox, command='sleep 3600',
                links='db'))


def _build(b, busybox, **_):
    (b.directory / 'context').mkdir(exist_ok=True)
    (b.directory / 'context' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo built > /built\n')
    return buildout_config(['app'], section('app', 'docker.build', name=f'{b.prefix}/app',
                                            source='${buildout:directory}/context'))


def _image(b, busybox, **_):
    return buildout_config(['app'], image_from(b, busybox))


def _bootstrap(b, busybox, recipe='docker.bootstrap', **_):
    busybox_tarball(b.directory / 'root.tar', {'etc/release': 'one\n'})
    return buildout_config(['app'], section('app', recipe, name=f'{b.prefix}/app',
                                            archives='root.tar'))


def _assemble(b, busybox, recipe='docker.assemble', **_):
    return buildout_config(['app'], section(
        'app', recipe, name=f'{b.prefix}/app', build_image=busybox, base_image=busybox,
        build_script='echo assembled > "$BUILD_ROOT/assembled"'))


def _diskimage(b, busybox, recipe='docker.diskimage', **_):
    return buildout_config(['disk'], section(
        'disk', recipe, build_image=busybox, base_image=busybox, build_root='/mnt/root',
        image_file='/out/disk.tar', prepare_script='mkdir -p /out',
        build_script='tar -cf "$IMAGE_FILE" -C "$BUILD_ROOT" etc'))


def _commit(b, busybox, recipe='docker.commit', **_):
    return buildout_config(['box', 'app'], sleeper('box', busybox, name=f'{b.prefix}-box',
                                                   volumes='/data'),
                           section('app', recipe, container='${box:name}',
                                   name=f'{b.prefix}/app'))


def _temporary(b, busybox, **_):
    return buildout_config(['app'], section('app', 'docker.temporary', **{'from': busybox},
                                            name=f'{b.prefix}/app', commit='true',
                                            script='echo made > /made'))


def _save(b, busybox, **_):
    return buildout_config(['app', 'tarball'], image_from(b, busybox), section(
        'tarball', 'docker.save', name='${app:image}', path='${buildout:directory}/app.tar'))


def _load(b, busybox, client=None, **_):
    with open(b.directory / 'busybox.tar', 'wb') as out:
        for chunk in client.images.get(busybox).save(named=True):
            out.write(chunk)
    return buildout_config(['app'], section('app', 'docker.load', name=f'{b.prefix}/loaded:v1',
                                            path='${buildout:directory}/busybox.tar'))


def _copy(b, busybox, **_):
    (b.directory / 'conf').mkdir(exist_ok=True)
    (b.directory / 'conf' / 'app.conf').write_text('colour = blue\n')
    return buildout_config(['target', 'copy'], sleeper('target', busybox, name=f'{b.prefix}-target'),
                           section('copy', 'docker.copy', container_to='${target:name}',
                                   paths='conf/app.conf /srv/'))


def _copied(b, client, **_):
    container = client.containers.get(f'{b.prefix}-target')
    return container.exec_run('cat /srv/app.conf').exit_code == 0


def _pull(b, busybox, client=None, registry=None, **_):
    publish(client, busybox, f'{registry}/{b.prefix}/pulled')
    return buildout_config(['app'], section('app', 'docker.pull',
                                            image=f'{registry}/{b.prefix}/pulled:v1', keep='false'))


def _push(b, busybox, registry=None, **_):
    return buildout_config(['app', 'push'], image_from(b, busybox), section(
        'push', 'docker.push', image='${app:image}', registry=registry,
        tags=f'{b.prefix}/pushed:v1'))


def _pushed(b, registry) -> bool:
    try:
        with urllib.request.urlopen(f'http://{registry}/v2/{b.prefix}/pushed/tags/list',
                                    timeout=10) as answer:
            return b'v1' in answer.read()
    except urllib.error.HTTPError:
        return False


def _service(b, busybox, **_):
    return buildout_config(['web'], section('web', 'docker.service', name=f'{b.prefix}-web',
                                            image=busybox, command='sleep 3600',
                                            wait_timeout='60', stop_timeout='1'))


def _service_made(b, client, **_):
    return bool(client.services.list(filters={'name': f'{b.prefix}-web'}))


def _command(b, busybox, **_):
    return buildout_config(['box', 'shell'], sleeper('box', busybox, name=f'{b.prefix}-box'),
                           section('shell', 'docker.command', container='${box:name}',
                                   command='cat /etc/hostname'))


def _control(b, busybox, **_):
    return buildout_config(['app', 'ctl'], sleeper('app', busybox, name=f'{b.prefix}-app'),
                           section('ctl', 'docker.control', parts='app'))


def _container_made(name: str):
    def made(b, client, **_):
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(f'{b.prefix}-{name}')
            return True
        return False
    return made


#: entry point -> (module:Class:action[:kind] that makes the run leave the object alone,
#: the configuration, whether the object the patch leaves out is there).
NONE_CASES: dict[str, tuple[str, Callable[..., str], Callable[..., bool]]] = {
    'docker.volume': ('volume:VolumeRecipe:none', _volume,
                      lambda b, client, **_: bool(b.owned('volumes'))),
    'docker.network': ('network:NetworkRecipe:none', _network,
                       lambda b, client, **_: bool(b.owned('networks'))),
    'docker.run': ('run:RunRecipe:none', _run, _container_made('app')),
    'docker.system': ('system:SystemRecipe:none', _system,
                      lambda b, client, **_: bool(b.owned('containers'))),
    'docker.build': ('build:BuildRecipe:none', _build,
                     lambda b, client, **_: image_here(client, f'{b.prefix}/app')),
    'docker.image': ('image:ImageFromOptionsRecipe:none', _image,
                     lambda b, client, **_: image_here(client, f'{b.prefix}/app')),
    'docker.bootstrap': ('bootstrap:BootstrapRecipe:none', _bootstrap,
                         lambda b, client, **_: image_here(client, f'{b.prefix}/app')),
    'docker.gentoo-bootstrap': ('bootstrap:BootstrapRecipe:none',
                                lambda b, busybox, **kw: _bootstrap(
                                    b, busybox, recipe='docker.gentoo-bootstrap'),
                                lambda b, client, **_: image_here(client, f'{b.prefix}/app')),
    'docker.assemble': ('assemble:AssembleRecipe:none', _assemble,
                        lambda b, client, **_: image_here(client, f'{b.prefix}/app')),
    'docker.gentoo-build': ('assemble:AssembleRecipe:none',
                            lambda b, busybox, **kw: _assemble(b, busybox,
                                                               recipe='docker.gentoo-build'),
                            lambda b, client, **_: image_here(client, f'{b.prefix}/app')),
    'docker.diskimage': ('diskimage:DiskImageRecipe:none', _diskimage,
                         lambda b, client, **_: (b.directory / 'parts/disk/disk.tar').exists()),
    'docker.gentoo-diskimage': ('diskimage:DiskImageRecipe:none',
                                lambda b, busybox, **kw: _diskimage(
                                    b, busybox, recipe='docker.gentoo-diskimage'),
                                lambda b, client, **_:
                                (b.directory / 'parts/disk/disk.tar').exists()),
    'docker.commit': ('commit:CommitRecipe:none', _commit,
                      lambda b, client, **_: image_here(client, f'{b.prefix}/app')),
    'docker.persist': ('persist:PersistRecipe:none',
                       lambda b, busybox, **kw: _commit(b, busybox, recipe='docker.persist'),
                       lambda b, client, **_: image_here(client, f'{b.prefix}/app')),
    'docker.temporary': ('temporary:TemporaryRecipe:none:image', _temporary,
                         lambda b, client, **_: image_here(client, f'{b.prefix}/app')),
    'docker.save': ('save:SaveRecipe:none', _save,
                    lambda b, client, **_: (b.directory / 'app.tar').exists()),
    'docker.load': ('load:LoadRecipe:none', _load,
                    lambda b, client, **_: image_here(client, f'{b.prefix}/loaded:v1')),
    'docker.copy': ('copy:CopyRecipe:none', _copy, _copied),
    'docker.pull': ('pull:PullRecipe:none', _pull,
                    lambda b, client, registry=None, **_:
                    image_here(client, f'{registry}/{b.prefix}/pulled:v1')),
    'docker.push': ('push:PushRecipe:none', _push,
                    lambda b, client, registry=None, **_: _pushed(b, registry)),
    'docker.service': ('service:ServiceRecipe:none', _service,
                       _service_made),
}

#: Recipes whose decision holds no engine object: their act writes their scripts on every
#: run; the run asks their decide all the same.
FILE_CASES: dict[str, tuple[str, Callable[..., str], str]] = {
    'docker.command': ('command:CommandRecipe:none', _command, 'bin/shell'),
    'docker.control': ('control:ControlRecipe:none', _control, 'bin/ctl'),
}


def test_every_entry_point_that_decides_has_a_case():
    """A new recipe gets a case here: every class behind an entry point decides, or says
    why it does not."""
    found = {entry.name: entry.load() for entry in importlib.metadata.entry_points(
        group='zc.buildout') if entry.value.startswith('dockeroo_nagoya.')}
    assert found
    for name, cls in found.items():
        if name in NOT_DECIDING:
            assert not (isinstance(cls, type) and issubclass(cls, Recipe)), name
            continue
        assert issubclass(cls, Recipe), name
        assert 'apply' not in vars(cls), f'{name}: act() performs the decision, apply() is gone'
        assert name in NONE_CASES or name in FILE_CASES, f'{name} has no case here'
        spec = (NONE_CASES.get(name) or FILE_CASES[name])[0]
        module, class_name = spec.split(':')[:2]
        assert cls.__module__ == f'dockeroo_nagoya.recipes.{module}', name
        assert cls.__name__ == class_name, name


@pytest.fixture
def swarm_if_service(request):
    """A Swarm for the service's case only (one test process at a time has it)."""
    if request.node.callspec.params['entry'] == 'docker.service':
        request.getfixturevalue('swarm')


@pytest.mark.parametrize('entry', sorted(NONE_CASES))
def test_a_decision_of_none_makes_nothing_where_the_configuration_would_create(
        entry, buildout, client, busybox, registry, swarm_if_service):
    b = buildout
    spec, config, made = NONE_CASES[entry]
    extra = {'client': client, 'registry': registry}
    b.write(config(b, busybox, **extra))
    try:
        result, decided = patched(b, spec)
        assert decided, f'the run never asked {spec.split(":")[1]}.decide():\n{output(result)}'
        assert not made(b, **extra), f'{entry} made what its decision left out:\n' \
            + output(result)
        # Without the patch, the same configuration makes it (the case is a real one).
        b.run('-N')
        assert made(b, **extra), f'{entry}: the unpatched run made nothing'
    finally:
        if entry == 'docker.pull':
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(f'{registry}/{b.prefix}/pulled:v1', force=True)
            unpublish(registry, f'{b.prefix}/pulled')
        if entry == 'docker.push':
            unpublish(registry, f'{b.prefix}/pushed')
        if entry == 'docker.load':
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(f'{b.prefix}/loaded:v1')
        if entry == 'docker.service':
            for service in client.services.list(filters={'name': f'{b.prefix}-web'}):
                service.remove()


@pytest.mark.parametrize('entry', sorted(FILE_CASES))
def test_a_recipe_of_scripts_is_decided_by_the_run_too(entry, buildout, client, busybox):
    b = buildout
    spec, config, script = FILE_CASES[entry]
    b.write(config(b, busybox))
    result, decided = patched(b, spec)
    assert decided, f'the run never asked {spec.split(":")[1]}.decide():\n{output(result)}'
    assert (b.directory / script).exists()


def test_a_decision_to_recreate_replaces_a_container_nothing_changed_in(buildout, client, busybox):
    b = buildout
    b.write(_run(b, busybox))
    b.run('-N')
    before = client.containers.get(f'{b.prefix}-app').id
    result, decided = patched(b, 'run:RunRecipe:recreate')
    assert decided == ['app']
    assert 'recreating ' in output(result)
    assert client.containers.get(f'{b.prefix}-app').id != before
    result, _ = patched(b, 'run:RunRecipe:none')  # and a no-op decision is one
    assert 'recreating' not in output(result)


def test_a_decision_to_recreate_a_system_member_replaces_it_and_what_links_to_it(
        buildout, client, busybox):
    """The system acts on its decision member by member; a member linked to one made anew
    is decided again with the id that one got (the same decide_member)."""
    b = buildout
    b.write(_system(b, busybox))
    b.run('-N')
    db, web = (client.containers.get(f'{b.prefix}-{n}').id for n in ('db', 'web'))
    result, decided = patched(b, 'system:SystemRecipe:recreate:container')
    assert decided == ['sys']
    assert client.containers.get(f'{b.prefix}-db').id != db
    assert client.containers.get(f'{b.prefix}-web').id != web
    now = {n: client.containers.get(f'{b.prefix}-{n}').id for n in ('db', 'web')}
    b.run('-N')   # the unpatched rerun: nothing to do
    assert {n: client.containers.get(f'{b.prefix}-{n}').id for n in ('db', 'web')} == now


def test_a_decision_to_recreate_a_network_nothing_changed_in_makes_it_anew(buildout, client,
                                                                           busybox):
    b = buildout
    b.write(_network(b, busybox))
    b.run('-N')
    before = client.networks.get(f'{b.prefix}-net').id
    result, decided = patched(b, 'network:NetworkRecipe:recreate')
    assert decided == ['net']
    assert client.networks.get(f'{b.prefix}-net').id != before


def test_a_decision_to_recreate_a_volume_carries_its_content_over(buildout, client, busybox):
    b = buildout
    b.write(_volume(b, busybox))
    b.run('-N')
    name = f'{b.prefix}-data'
    run_output(client, busybox, ['sh', '-c', 'echo kept > /v/file'],
                          volumes={name: {'bind': '/v', 'mode': 'rw'}})
    result, decided = patched(b, 'volume:VolumeRecipe:recreate')
    assert decided == ['data']
    assert f'recreating volume {name}' in output(result)
    assert run_output(client, busybox, ['cat', '/v/file'], volumes={
        name: {'bind': '/v', 'mode': 'rw'}}) == b'kept\n'


def test_a_decision_to_build_an_image_that_is_current_builds_it(buildout, client, busybox):
    b = buildout
    b.write(_image(b, busybox))
    b.run('-N')
    result, decided = patched(b, 'image:ImageFromOptionsRecipe:build')
    assert decided == ['app']
    assert f'rebuilding {b.prefix}/app:latest' in output(result)
