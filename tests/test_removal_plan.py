"""Removing parts: dockeroo-plan says, object by object, what the run then does.

A buildout with a part of every entry point (each recipe with a ``keep``
option twice, ``keep = true`` and ``keep = false``) is installed; then every
part is removed from the configuration, the removal is planned (``--json``)
and run. What the plan said it removes is exactly what went (containers, image
tags, volumes, networks, Swarm services and secrets, files on the host), and
what it said it keeps is exactly what stayed, the anonymous volumes of the
removed containers among them: they keep their data, and the run's log names
each with the command that removes it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import docker
import pytest

from helpers import (MKE2FS, buildout_config, busybox_tarball, plan, publish, section, sleeper,
                     timed)

pytestmark = pytest.mark.slow


def every_entry_point(b, busybox: str, debian: str, registry: str) -> str:
    p = b.prefix
    base = publish(b.client, busybox, f'{registry}/{p}/base', 'v1')
    other = publish(b.client, busybox, f'{registry}/{p}/base', 'v2')
    busybox_tarball(b.directory / 'root.tar', {'etc/release': 'one\n'})
    (b.directory / 'ctx').mkdir()
    (b.directory / 'ctx' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo built > /built\n')
    (b.directory / 'files').mkdir()
    (b.directory / 'files' / 'hello.txt').write_text('hello\n')
    (b.directory / 'token').write_text('swarm-token\n')
    os.chmod(b.directory / 'token', 0o600)
    parts = ['vol-keep', 'vol', 'net-keep', 'net', 'pulled-keep', 'pulled', 'img', 'moromi',
             'web', 'web-keep', 'saved', 'persisted', 'base', 'gbase', 'built', 'gbuilt', 'tmp',
             'tmp-keep', 'disk', 'gdisk', 'sys', 'svc', 'push', 'copy', 'tool', 'ctl',
             'save', 'save-keep', 'load', 'load-keep']
    disk = dict(build_image=debian, base_image='${base:image}', build_root='/mnt/root',
                image_file='/out/disk.ext4', prepare_script='mkdir -p /out',
                build_script=MKE2FS.replace('64M', '4M'))
    return buildout_config(
        parts,
        section('vol-keep', 'docker.volume', name=f'{p}-vol-keep'),
        section('vol', 'docker.volume', name=f'{p}-vol', keep='false', archive='false'),
        section('net-keep', 'docker.network', name=f'{p}-net-keep', keep='true',
                subnet=f'{b.subnet_base}.0/25'),
        section('net', 'docker.network', name=f'{p}-net', subnet=f'{b.subnet_base}.128/25'),
        section('pulled-keep', 'docker.pull', image=base),
        section('pulled', 'docker.pull', image=other, keep='false'),
        section('img', 'docker.build', name=f'{p}/img', source='${buildout:directory}/ctx'),
        section('moromi', 'docker.image', name=f'{p}/moromi', keep='true',
                **{'from': busybox}, command='sleep 3600'),
        sleeper('web', '${img:image}', name=f'{p}-web', networks='${net:name}',
                volumes='${vol:name}:/data\n/anon'),
        sleeper('web-keep', busybox, name=f'{p}-web-keep', keep='true',
                networks='${net-keep:name}', volumes='${vol-keep:name}:/data'),
        section('saved', 'docker.commit', name=f'{p}/saved', container='${web:name}'),
        section('persisted', 'docker.persist', name=f'{p}/persisted', container='${web:name}',
                keep='true'),
        section('base', 'docker.bootstrap', name=f'{p}/base', archives='root.tar'),
        section('gbase', 'docker.gentoo-bootstrap', name=f'{p}/gbase', archives='root.tar',
                keep='true'),
        section('built', 'docker.assemble', name=f'{p}/built', build_image=busybox, keep='true',
                build_script='echo assembled > "$BUILD_ROOT/assembled"'),
        section('gbuilt', 'docker.gentoo-build', name=f'{p}/gbuilt', build_image=busybox,
                build_script='echo assembled > "$BUILD_ROOT/assembled"'),
        section('tmp', 'docker.temporary', **{'from': busybox}, name=f'{p}/tmp', commit='true',
                script='echo made > /made'),
        section('tmp-keep', 'docker.temporary', **{'from': busybox}, name=f'{p}/tmp-keep',
                commit='true', script='echo made > /made', keep='true'),
        section('disk', 'docker.diskimage', **disk),
        section('gdisk', 'docker.gentoo-diskimage', **disk),
        section('sys', 'docker.system', containers='sys-a sys-b'),
        section('sys-a', '', image=busybox, name=f'{p}-sys-a', command='sleep 3600', keep='true'),
        section('sys-b', '', image=busybox, name=f'{p}-sys-b', command='sleep 3600',
                volumes='/anon', links='sys-a'),
        section('svc', 'docker.service', name=f'{p}-svc', image=busybox, command='sleep 3600',
                replicas='1', secrets='token = ${buildout:directory}/token', stop_timeout='1'),
        section('push', 'docker.push', image='${img:image}', name=f'{registry}/{p}/pushed:v1'),
        section('copy', 'docker.copy', container_to='${web-keep:name}',
                paths='${buildout:directory}/files/ /srv/files/'),
        section('tool', 'docker.command', container='${web-keep:name}', command='ls /srv'),
        section('ctl', 'docker.control', parts='web web-keep', script_name='ctl'),
        section('save', 'docker.save', name='${built:image}', path='${buildout:directory}/a.tar'),
        section('save-keep', 'docker.save', name='${gbuilt:image}', keep='true',
                path='${buildout:directory}/b.tar'),
        section('load', 'docker.load', name=f'{p}/loaded', path='${save:path}'),
        section('load-keep', 'docker.load', name=f'{p}/loaded-keep', keep='true',
                path='${save-keep:path}'),
    )


def engine_state(b, client: docker.DockerClient, anonymous: set[str]) -> set[tuple[str, str]]:
    """(kind, name) of what the buildout has on the engine: containers, image names,
    volumes (its own and the anonymous ones of its containers), networks, services and
    Swarm secrets. An image name is the plan's ``image`` or ``tag``: both are ``image``.
    ``anonymous`` collects the anonymous volumes seen: they outlive their containers."""
    found = set()
    for container in client.api.containers(all=True, filters={'label': b.label}):
        found.add(('container', container['Names'][0].lstrip('/')))
        anonymous.update(m['Name'] for m in container.get('Mounts') or []
                         if m.get('Type') == 'volume' and len(m['Name']) == 64)
    found.update(('volume', v['Name']) for v in client.api.volumes()['Volumes'] or []
                 if v['Name'] in anonymous)
    for image in client.api.images():
        found.update(('image', tag) for tag in image.get('RepoTags') or []
                     if b.prefix in tag)
    found.update(('volume', v.name) for v in b.owned('volumes'))
    found.update(('network', n.name) for n in b.owned('networks'))
    found.update(('service', s.name) for s in client.services.list(filters={'label': b.label}))
    found.update(('secret', s.name) for s in client.secrets.list(filters={'label': b.label}))
    return found


def files(b) -> set[str]:
    """Every file and directory in the buildout's directory (buildout's own aside)."""
    found = set()
    for root, dirs, names in os.walk(b.directory):
        dirs[:] = [d for d in dirs if d not in ('eggs', 'develop-eggs')]
        found.update(os.path.join(root, name) for name in dirs + names)
    return found - {os.path.join(b.directory, '.installed.cfg')}


def as_removed(change: dict) -> tuple[str, str]:
    kind = {'tag': 'image', 'directory': 'file'}.get(change['kind'], change['kind'])
    return kind, change['object']


def test_removing_every_entry_point_does_what_its_plan_says(
        buildout, client, busybox, debian, registry, swarm):
    b = buildout
    b.write(every_entry_point(b, busybox, debian, registry))
    timed('installing every entry point', b.run, '-N')
    anonymous: set[str] = set()
    engine_state(b, client, anonymous)
    try:
        b.write(buildout_config([]))
        result = timed('planning the removal', plan, b, '--json')
        assert result.returncode == 2, result.stdout + result.stderr
        planned = [c for c in json.loads(result.stdout)['changes']]
        before, files_before = engine_state(b, client, anonymous), files(b)
        out = timed('removing', b.run, '-N')
        after, files_after = engine_state(b, client, anonymous), files(b)
        said = out.stdout + out.stderr

        # Every object the plan names is one the buildout had; what it removes went,
        # what it keeps stayed; and nothing went that the plan did not say (a file inside
        # a removed directory goes with it). Every disagreement is listed, by part.
        wrong = []
        for change in planned:
            kind, name = as_removed(change)
            was, now = (files_before, files_after) if kind == 'file' else (before, after)
            key = name if kind == 'file' else (kind, name)
            if key not in was:
                wrong.append(f'{change["part"]}: planned {change["action"]} {kind} {name}, '
                             f'which does not exist')
            elif (key in now) != (change['action'] == 'none'):
                wrong.append(f'{change["part"]}: planned {change["action"]} {kind} {name}, but '
                             f'it {"stayed" if key in now else "went"}')
        removed = {as_removed(c) for c in planned if c['action'] == 'remove'}
        wrong.extend(f'{kind} {name} went without a plan' for kind, name in
                     sorted(before - after - removed))
        removed_paths = {name for kind, name in removed if kind == 'file'}
        wrong.extend(f'file {path} went without a plan' for path in sorted(
            files_before - files_after) if not any(
                path == p or path.startswith(p + os.sep) for p in removed_paths))
        assert not wrong, '\n'.join(wrong) + f'\n\n{said}'

        # Per recipe: keep = true keeps (with the product named), keep = false removes.
        by_part: dict[str, set[tuple[str, str, str]]] = {}
        for change in planned:
            by_part.setdefault(change['part'], set()).add(
                (change['kind'], change['object'], change['action']))
        p = b.prefix
        expected = {
            'vol-keep': {('volume', f'{p}-vol-keep', 'none')},
            'vol': {('volume', f'{p}-vol', 'remove')},
            'net-keep': {('network', f'{p}-net-keep', 'none')},
            'net': {('network', f'{p}-net', 'remove')},
            'moromi': {('image', f'{p}/moromi:latest', 'none')},
            'img': {('image', f'{p}/img:latest', 'remove')},
            'persisted': {('image', f'{p}/persisted:latest', 'none')},
            'saved': {('image', f'{p}/saved:latest', 'remove')},
            'base': {('image', f'{p}/base:latest', 'remove')},
            'gbase': {('image', f'{p}/gbase:latest', 'none')},
            'built': {('image', f'{p}/built:latest', 'none')},
            'gbuilt': {('image', f'{p}/gbuilt:latest', 'remove')},
            'tmp': {('image', f'{p}/tmp:latest', 'remove')},
            'tmp-keep': {('image', f'{p}/tmp-keep:latest', 'none')},
            'web-keep': {('container', f'{p}-web-keep', 'none')},
            'svc': {('service', f'{p}-svc', 'remove'), ('secret', f'{p}-svc-token', 'remove')},
            'save-keep': {('file', str(b.directory / 'b.tar'), 'none')},
            'save': {('file', str(b.directory / 'a.tar'), 'remove')},
            'push': {('tag', f'{registry}/{p}/pushed:v1', 'remove')},
            'load': {('tag', f'{p}/loaded:latest', 'remove')},
            'load-keep': {('tag', f'{p}/loaded-keep:latest', 'none')},
            'pulled': {('tag', f'{registry}/{p}/base:v2', 'remove')},  # v1 names it too
            'sys': {('container', f'{p}-sys-a', 'none'), ('container', f'{p}-sys-b', 'remove')},
        }
        for part, wanted in expected.items():
            found = {(kind, name.rsplit('-', 1)[0] if kind == 'secret' else name, action)
                     for kind, name, action in by_part.get(part, set())}
            assert wanted <= found, f'{part}: {sorted(found)}'
        assert not [c for c in planned if c['part'] == 'pulled-keep' and c['action'] != 'none']
        # The anonymous volumes of the removed containers stay, named with their removal.
        left = {c['object'] for c in planned if c['kind'] == 'volume' and c['action'] == 'none'
                and len(c['object']) == 64}
        assert left and left <= anonymous, planned
        for volume in left:
            assert f'docker volume rm {volume}' in said, said
            assert ('volume', volume) in after
    finally:
        for volume in anonymous:
            try:
                client.volumes.get(volume).remove(force=True)
            except docker.errors.APIError:
                pass
        for image in client.api.images():
            for tag in image.get('RepoTags') or []:
                if b.prefix in tag:
                    try:
                        client.images.remove(tag, force=True)
                    except docker.errors.APIError:
                        pass
