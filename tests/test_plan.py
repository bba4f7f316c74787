"""dockeroo-plan says what the next bin/buildout run changes, and changes nothing itself.

Each scenario plans, then runs bin/buildout, and compares the objects the plan
said would change with the objects the run changed (by engine id: a new id
under a name is a recreate, a new name a create, a name gone a remove, an
exited container running again a start).
"""
from __future__ import annotations

import fcntl
import sys
from pathlib import Path

import docker

from helpers import (buildout_config, git, image_part, n_containers_config, plan, plan_json, section,
                     sleeper)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'bench'))
from countproxy import CountingProxy  # noqa: E402

SECRET = 's3cr3t-value-'


def snapshot(b, client: docker.DockerClient) -> dict[str, tuple[str, str]]:
    """kind:name -> (id, state) of what the buildout owns, and of the pushed tags."""
    found = {}
    for container in b.owned('containers'):
        found[f'container:{container.name}'] = (container.id, container.status)
    for image in client.api.images():  # one listing: other tests remove images meanwhile
        for tag in image.get('RepoTags') or []:
            if tag.startswith(b.prefix) or f'/{b.prefix}/' in tag:
                found[f'image:{tag}'] = (image['Id'], '')
    for network in b.owned('networks'):
        found[f'network:{network.name}'] = (network.id, '')
    for volume in b.owned('volumes'):
        found[f'volume:{volume.name}'] = (volume.attrs['Labels'].get('io.dockeroo-nagoya.identity'), '')
    return found


def changed(before: dict, after: dict) -> set[tuple[str, str]]:
    """(kind:name, create|recreate|remove|start) of what a run changed."""
    found = set()
    for key in set(before) | set(after):
        if key not in before:
            found.add((key, 'create'))
        elif key not in after:
            found.add((key, 'remove'))
        elif before[key][0] != after[key][0]:
            found.add((key, 'recreate'))
        elif before[key][1] != after[key][1] and after[key][1] == 'running':
            found.add((key, 'start'))
    return found


def predicted(found: dict, before: dict) -> set[tuple[str, str]]:
    """The plan's changes in the same terms (a build or push makes a tag new or moves it)."""
    said = set()
    for change in found['changes']:
        action, kind = change['action'], change['kind']
        if action in ('none', 'update'):
            continue
        if kind == 'pushed':
            kind = 'image'
        key = f'{kind}:{change["object"]}'
        if action in ('build', 'pull', 'push'):
            action = 'recreate' if key in before else 'create'
        said.add((key, action))
    return said


def config(b, busybox: str, registry: str, env: str = '1', replicas: int = 2,
           parts: tuple[str, ...] = ('tool',), labels: str = '', net: str = 'net') -> str:
    p = b.prefix
    sections = [
        section('vol', 'docker.volume', name=f'{p}-vol', labels=labels),
        section('net', 'docker.network', name=f'{p}-{net}'),
        section('app', 'docker.build', name=f'{p}/app', source='${buildout:directory}/context'),
        sleeper('web', '${app:image}', name=f'{p}-web', env=f'TOKEN={SECRET}{env}',
                networks='${net:name}', volumes='${vol:name}:/data'),
        sleeper('worker', busybox, name=f'{p}-worker', replicas=str(replicas)),
        sleeper('tool', busybox, name=f'{p}-tool'),
        sleeper('extra', busybox, name=f'{p}-extra'),
        section('sys', 'docker.system', containers='db cache'),
        section('db', '', name=f'{p}-db', image=busybox, command='sleep 3600'),
        section('cache', '', name=f'{p}-cache', image=busybox, command='sleep 3600', links='db'),
        section('publish', 'docker.push', image='${app:image}', registry=registry),
    ]
    return buildout_config(['vol', 'net', 'app', 'web', 'worker', *parts, 'sys', 'publish'],
                           *sections)


def recorded(b) -> dict[str, bytes]:
    """.installed.cfg and every file under parts/, byte for byte."""
    files = {'.installed.cfg': (b.directory / '.installed.cfg').read_bytes()}
    for path in sorted((b.directory / 'parts').rglob('*')):
        if path.is_file():
            files[str(path.relative_to(b.directory))] = path.read_bytes()
    return files


def test_plan_predicts_what_the_next_run_changes(buildout, client, busybox, registry):
    b = buildout
    context = b.directory / 'context'
    context.mkdir()
    (context / 'Dockerfile').write_text(f'FROM {busybox}\nCOPY hello.conf /hello.conf\n')
    (context / 'hello.conf').write_text('one\n')

    def scenario(config_text: str, expected_status: int = 2, before_plan=None) -> dict:
        b.write(config_text)
        if before_plan:
            before_plan()
        installed = recorded(b) if (b.directory / '.installed.cfg').exists() else None
        listing = sorted(b.directory.rglob('*'))
        found = plan_json(b, expected_status, secrets=(SECRET,))
        assert sorted(b.directory.rglob('*')) == listing  # the plan wrote nothing, not even eggs/
        if installed is not None:
            assert recorded(b) == installed
        before = snapshot(b, client)
        b.run('-N')
        after = snapshot(b, client)
        assert predicted(found, before) == changed(before, after), (found, before, after)
        return found

    # Everything from nothing.
    first = scenario(config(b, busybox, registry))
    assert first['totals']['create'] >= 8
    # (a) nothing changed: nothing to do, and the exit status says so.
    found = scenario(config(b, busybox, registry), expected_status=0)
    assert plan(b).stdout.strip().endswith('No changes.')
    # (b) one env value: web is recreated, and the value is never shown.
    found = scenario(config(b, busybox, registry, env='2'))
    [web] = [c for c in found['changes'] if c['action'] != 'none']
    assert (web['object'], web['action'], web['reasons']) == (
        f'{b.prefix}-web', 'recreate', [{'input': 'env'}])
    # (c) a context file: the image is rebuilt, web recreated because of it, the image pushed.
    (context / 'hello.conf').write_text('two\n')
    out = plan(b).stdout
    assert f'build image {b.prefix}/app:latest: context file hello.conf changed' in out
    assert (f'recreate container {b.prefix}-web: image {b.prefix}/app:latest changed (rebuilt by '
            f'app: context file hello.conf changed)') in out
    found = scenario(config(b, busybox, registry, env='2'))
    assert {c['action'] for c in found['changes'] if c['action'] != 'none'} == {
        'build', 'recreate', 'push'}
    # (d) a part added and one removed.
    found = scenario(config(b, busybox, registry, env='2', parts=('extra',)))
    assert {(p['part'], p['action']) for p in found['parts'] if p['action'] != 'update'} == {
        ('extra', 'install'), ('tool', 'uninstall')}
    # (e) a container stopped by hand is started.
    found = scenario(config(b, busybox, registry, env='2', parts=('extra',)),
                     before_plan=lambda: client.containers.get(f'{b.prefix}-worker-1').stop(timeout=0))
    [start] = [c for c in found['changes'] if c['action'] != 'none']
    assert (start['object'], start['action']) == (f'{b.prefix}-worker-1', 'start')
    # (f) replicas raised: one more container, the others untouched.
    found = scenario(config(b, busybox, registry, env='2', replicas=3, parts=('extra',)))
    assert [(c['object'], c['action']) for c in found['changes'] if c['action'] != 'none'] == [
        (f'{b.prefix}-worker-3', 'create')]
    assert found['totals']['create'] == 1
    # (g) a volume made anew: its user web is removed first and made again.
    found = scenario(config(b, busybox, registry, env='2', replicas=3, parts=('extra',),
                            labels='tier=data'))
    assert {(c['object'], c['action']) for c in found['changes'] if c['action'] != 'none'} == {
        (f'{b.prefix}-vol', 'recreate'), (f'{b.prefix}-web', 'recreate')}
    # (h) a network renamed: the new one made, web moved onto it, the old one removed.
    found = scenario(config(b, busybox, registry, env='2', replicas=3, parts=('extra',),
                            labels='tier=data', net='net2'))
    assert {(c['object'], c['action']) for c in found['changes'] if c['action'] != 'none'} == {
        (f'{b.prefix}-net2', 'create'), (f'{b.prefix}-net', 'remove'),
        (f'{b.prefix}-web', 'recreate')}
    # Even at -vvv, neither the text nor the JSON holds an env value.
    b.write(config(b, busybox, registry, env='3', replicas=3, parts=('extra',),
                   labels='tier=data', net='net2'))
    for args in (('-vvv',), ('-vvv', '--json')):
        result = plan(b, *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert SECRET not in result.stdout + result.stderr
        assert 'TOKEN' not in result.stdout + result.stderr


def test_plan_only_reads_and_takes_no_lock(buildout, busybox, tmp_path):
    b = buildout
    p = b.prefix
    b.write(buildout_config(['vol', 'net', 'web'],
                            section('vol', 'docker.volume', name=f'{p}-vol'),
                            section('net', 'docker.network', name=f'{p}-net'),
                            sleeper('web', busybox, name=f'{p}-web', networks='${net:name}',
                                    volumes='${vol:name}:/data')))
    b.run('-N')
    b.write(buildout_config(['vol', 'net', 'web'],
                            section('vol', 'docker.volume', name=f'{p}-vol', labels='a=b'),
                            section('net', 'docker.network', name=f'{p}-net2'),
                            section('web', 'docker.run', image=busybox, name=f'{p}-web',
                                    networks='${net:name}', command='sleep 3601',
                                    volumes='${vol:name}:/data')))
    installed = recorded(b)
    listing = sorted(str(path) for path in b.directory.rglob('*'))
    socket = str(tmp_path / 'engine.sock')
    with CountingProxy(socket) as proxy:
        result = plan(b, env={'DOCKER_HOST': f'unix://{socket}'})
        counts = dict(proxy.counts)
    assert result.returncode == 2, result.stdout + result.stderr
    assert 'recreate volume' in result.stdout and 'create network' in result.stdout
    assert counts and not [k for k in counts if not k.startswith('GET ')], counts
    assert recorded(b) == installed
    assert sorted(str(path) for path in b.directory.rglob('*')) == listing
    # The plan takes no lock: it plans while another process holds the directory's.
    with open(b.directory / '.dockeroo-nagoya.lock', 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = plan(b)
        assert held.returncode == 2 and held.stdout == result.stdout, held.stdout + held.stderr
    b.run('-N')
    assert plan(b).returncode == 0


def test_a_configuration_mistake_is_buildouts_own_line(buildout, busybox):
    b = buildout
    b.write(buildout_config(['web'], sleeper('web', busybox, name=f'{b.prefix}-web',
                                             ports='99999')))
    result = plan(b)
    run = b.run('-N', check=False)
    assert result.returncode == 1 == run.returncode
    [error] = [line for line in result.stderr.splitlines() if line.startswith('Error:')]
    assert error in run.stderr.splitlines()


def test_plan_requests_do_not_grow_with_the_number_of_containers(make_buildout, busybox,
                                                                 tmp_path):
    counts = {}
    for n in (2, 6):
        b = make_buildout(f'plan{n}')
        b.write(n_containers_config(b, busybox, n, 'system' if n == 6 else 'parts'))
        b.run('-N')
        socket = str(tmp_path / f'engine-{n}.sock')
        with CountingProxy(socket) as proxy:
            result = plan(b, env={'DOCKER_HOST': f'unix://{socket}'})
            counts[n] = dict(proxy.counts)
        assert result.returncode == 0, result.stdout + result.stderr
    assert counts[2] == counts[6], counts
    assert not [k for k in counts[6] if not k.startswith('GET ')], counts


def test_a_saved_image_is_planned_after_its_build(buildout, busybox):
    b = buildout
    context = b.directory / 'context'
    context.mkdir()
    (context / 'Dockerfile').write_text(f'FROM {busybox}\nCOPY a /a\n')
    (context / 'a').write_text('one\n')
    b.write(buildout_config(['app', 'tarball'],
                            section('app', 'docker.build', name=f'{b.prefix}/app',
                                    source='${buildout:directory}/context'),
                            section('tarball', 'docker.save', name='${app:image}',
                                    path='${buildout:directory}/app.tar')))
    found = plan_json(b, 2, secrets=(SECRET,))
    assert [(c['kind'], c['action']) for c in found['changes']] == [('image', 'build'),
                                                                   ('file', 'create')]
    b.run('-N')
    plan_json(b, 0, secrets=(SECRET,))
    (context / 'a').write_text('two\n')
    out = plan(b).stdout
    assert f'update file {b.directory}/app.tar: image {b.prefix}/app:latest changed (rebuilt by ' \
        f'app: context file a changed)' in out, out
    before = (b.directory / 'app.tar').stat().st_mtime_ns
    b.run('-N')
    assert (b.directory / 'app.tar').stat().st_mtime_ns != before
    plan_json(b, 0, secrets=(SECRET,))


def test_a_service_is_planned_created_scaled_rolled_and_removed(buildout, busybox, swarm):
    b = buildout

    def service(replicas: int, role: str = 'web') -> str:
        return buildout_config(['web'], section(
            'web', 'docker.service', name=f'{b.prefix}-svc', image=busybox, command='sleep 3600',
            replicas=str(replicas), env=f'ROLE={role}{SECRET}', wait_timeout='60',
            stop_timeout='1'))

    def changes(config_text: str) -> list[tuple[str, str, str]]:
        b.write(config_text)
        found = plan_json(b, 2, secrets=(SECRET,))
        b.run('-N')
        plan_json(b, 0, secrets=(SECRET,))
        return [(c['object'], c['action'], ' '.join(r.get('input', '') for r in c['reasons']))
                for c in found['changes'] if c['action'] != 'none']

    name = f'{b.prefix}-svc'
    try:
        assert changes(service(1)) == [(name, 'create', 'state')]
        assert changes(service(2)) == [(name, 'update', 'replicas')]
        assert changes(service(2, role='db')) == [(name, 'update', 'env')]
        b.write(buildout_config([]))
        assert [c['action'] for c in plan_json(b, 2, secrets=(SECRET,))['changes']] == ['remove']
        b.run('-N')
    finally:
        for found in b.client.services.list(filters={'name': name}):
            found.remove()


def test_a_temporary_system_is_planned_as_the_images_it_saves(buildout, busybox):
    b = buildout

    def config(text: str) -> str:
        return buildout_config(['made'], section('made', 'docker.temporary', name=f'{b.prefix}/made',
                                                 script=f'echo {text} > /made', commit='true',
                                                 **{'from': busybox}))
    b.write(config('one'))
    assert [(c['object'], c['action']) for c in plan_json(b, 2, secrets=(SECRET,))['changes']] == [
        (f'{b.prefix}/made:latest', 'build')]
    b.run('-N')
    plan_json(b, 0, secrets=(SECRET,))
    b.write(config('two'))
    [change] = plan_json(b, 2, secrets=(SECRET,))['changes']
    before = b.client.images.get(f'{b.prefix}/made:latest').id
    b.run('-N')
    assert (change['action'], change['id']) == ('build', before)
    assert b.client.images.get(f'{b.prefix}/made:latest').id != before
    plan_json(b, 0, secrets=(SECRET,))


def test_a_source_url_is_planned_without_writing_the_buildout(buildout, busybox, tmp_path):
    """A build whose source is a git URL: the plan fetches what the run has not fetched
    yet into a scratch directory of its own, and reads what the run fetched before."""
    b = buildout
    repo = tmp_path / 'repo'
    repo.mkdir()
    git('init', '-q', '-b', 'main', cwd=repo)
    (repo / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo one > /version\n')
    git('add', '.', cwd=repo)
    git('commit', '-q', '-m', 'one', cwd=repo)
    b.write(buildout_config(['app'], image_part(b, 'app', 'docker.build',
                                                source=f'git+file://{repo}#main')))

    def listing() -> list[str]:
        return sorted(str(p.relative_to(b.directory)) for p in b.directory.rglob('*'))

    before = listing()
    first = plan(b)
    assert first.returncode == 2, first.stdout + first.stderr
    assert listing() == before
    assert not (b.directory / 'var').exists()
    b.run('-N')
    assert plan(b).returncode == 0
    kept = listing()
    (repo / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo two > /version\n')
    git('commit', '-q', '-am', 'two', cwd=repo)
    again = plan(b, offline=False)  # newest on: the run would fetch again, so does the plan
    assert again.returncode == 2 and 'app' in again.stdout, again.stdout + again.stderr
    assert listing() == kept
