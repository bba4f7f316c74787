"""``docker.service``: a replicated service on a Swarm (Docker's own multi-machine engine).

A changed ``replicas`` only scales (the running tasks are left alone); any
other change is a rolling update following ``update-parallelism`` and
``update-delay``. Swarm secrets are made from files: the content goes to the
Swarm, never into options, labels or logs; a changed file makes a new
secret (secrets are immutable) and rolls the service onto it.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any, Mapping

import docker.errors
import docker.types
import zc.buildout

from .. import options as opt
from ..decisions import Change, Reason, state
from ..engine import Engine
from ..recipe import Recipe, uninstaller

SPEC_LABEL = 'io.dockeroo-nagoya.spec'


def secret_lines(raw: str) -> list[tuple[str, str]]:
    """``NAME = /path/to/file`` lines (the name is what the service sees in /run/secrets)."""
    result = []
    for line in opt.lines(raw):
        name, sep, path = line.partition('=')
        if not sep or not opt.NAME_RE.match(name.strip()) or not path.strip():
            raise opt.Invalid('NAME = /path/to/file lines')
        result.append((name.strip(), opt.existing_file(path)))
    return result


def mount_lines(raw: str) -> list[str]:
    """``SOURCE:TARGET[:ro]`` lines (a named volume or an absolute host path)."""
    result = []
    for line in opt.lines(raw):
        parts = line.split(':')
        if len(parts) not in (2, 3) or not parts[1].startswith('/') or \
                (len(parts) == 3 and parts[2] not in ('ro', 'rw')):
            raise opt.Invalid('SOURCE:/TARGET[:ro|rw] lines')
        result.append(line)
    return result


def port_lines(raw: str) -> dict[int, int]:
    result = {}
    for line in opt.lines(raw):
        published, sep, target = line.partition(':')
        if not sep:
            raise opt.Invalid('PUBLISHED:TARGET port lines')
        result[opt.port(published)] = opt.port(target)
    return result


class ServiceRecipe(Recipe):
    """A Swarm service."""

    recipe = 'docker.service'
    kind = 'services'
    table = (
        opt.Option('name', opt.name),
        opt.Option('image', opt.image_reference, required=True),
        opt.Option('replicas', opt.integer(0, opt.MAX_REPLICAS), default='1', identity=False),
        opt.Option('command', opt.text),
        opt.Option('env', opt.key_values, default=''),
        opt.Option('networks', opt.words, default=''),
        opt.Option('mounts', mount_lines, default=''),
        opt.Option('ports', port_lines, default=''),
        opt.Option('constraints', opt.lines, default=''),
        opt.Option('labels', opt.key_values, default=''),
        opt.Option('update-parallelism', opt.integer(0, opt.MAX_REPLICAS), default='1'),
        opt.Option('update-delay', opt.duration, default='0'),
        opt.Option('secrets', secret_lines, default=''),
        opt.Option('stop-timeout', opt.duration, default='10'),
        opt.Option('wait-timeout', opt.duration, default='120', identity=False),
    )

    def configure(self) -> None:
        self.name_from_part()
        # Only a fingerprint of each file goes into the identity, never its content.
        self.secret_files = [(name, path, _fingerprint(path)) for name, path in self.values['secrets']]

    def identity_values(self) -> dict[str, Any]:
        values = super().identity_values()
        values['secrets'] = [(name, digest) for name, _, digest in self.secret_files]
        return values

    # -- install and update -----------------------------------------------------
    def _decision(self) -> tuple[Change, dict[str, Any] | None, str, str]:
        """(create, roll (update), scale (update of replicas) or none; the service now;
        its identity; the identity of its spec with the image's id)."""
        name = self.values['name']
        identity = self.identity()
        image_id = self.engine.image_id(self.values['image']) or self.values['image']
        spec_id = self.identity(image=image_id)
        current = self._find(name)
        replicas = self.values['replicas']
        if current is None:
            return (Change('service', name, 'create', [state(f'{replicas} replicas')]), None,
                    identity, spec_id)
        self.check_ours(current['Spec'], 'service', name)
        if (current['Spec'].get('Labels') or {}).get(SPEC_LABEL) != spec_id:
            change = Change('service', name, 'update', [state(
                'its configuration or image changed: a rolling update')], current['ID'])
        elif _replicas(current) != replicas:
            change = Change('service', name, 'update', [Reason('replicas', str(_replicas(current)),
                                                               str(replicas))], current['ID'])
        else:
            change = Change('service', name, 'none', [], current['ID'])
        return change, current, identity, spec_id

    def decide(self, fresh: bool) -> list[Change]:
        self._require_swarm()
        return [self._decision()[0]]

    def apply(self, fresh: bool) -> list[str]:
        self._require_swarm()
        name = self.values['name']
        change, current, identity, spec_id = self._decision()
        replicas = self.values['replicas']
        rolled = False
        if current is None:
            self.log.info('creating service %s with %d replicas', name, replicas)
            self._create(identity, spec_id)
        elif change.action == 'update':
            if change.reasons[0].input != 'replicas':
                self.log.info('updating service %s: its configuration or image changed '
                              '(rolling, %d at a time)', name, self.values['update-parallelism'])
                self._update(current, identity, spec_id)
                rolled = True
            else:
                self.log.info('scaling service %s from %d to %d replicas', name,
                              _replicas(current), replicas)
                self._scale(current, replicas)
        self._wait_running(name, replicas, rolled)
        self._remove_unused_secrets(name)
        return []

    def _require_swarm(self) -> None:
        info = self.engine.api.info()
        if (info.get('Swarm') or {}).get('LocalNodeState') != 'active':
            raise zc.buildout.UserError(
                f'{self.name}: the engine at {self.engine_config.describe()} is not a Swarm '
                f'manager: run docker swarm init there, or point docker-host at a manager')

    def _find(self, name: str) -> dict[str, Any] | None:
        found = self.engine.api.services(filters={'name': name})
        return next((s for s in found if s['Spec']['Name'] == name), None)

    def _secret_references(self) -> list[docker.types.SecretReference]:
        references = []
        for name, path, digest in self.secret_files:
            secret_name = f"{self.values['name']}-{name}-{digest[:12]}"
            existing = self.engine.api.secrets(filters={'name': secret_name})
            match = next((s for s in existing if s['Spec']['Name'] == secret_name), None)
            if match is None:
                with open(path, 'rb') as handle:
                    created = self.engine.api.create_secret(
                        secret_name, handle.read(), labels=self.labels(digest[:12]))
                secret_id = created['ID']
                self.log.info('made Swarm secret %s from %s', secret_name, path)
            else:
                secret_id = match['ID']
            references.append(docker.types.SecretReference(secret_id, secret_name, filename=name))
        return references

    def _spec(self, identity: str, spec_id: str) -> dict[str, Any]:
        values = self.values
        mounts = [docker.types.Mount.parse_mount_string(m) for m in values['mounts']]
        container = docker.types.ContainerSpec(
            values['image'], command=values['command'].split() if values['command'] else None,
            env=[f'{k}={v}' for k, v in values['env'].items()] or None,
            mounts=mounts or None, secrets=self._secret_references() or None,
            stop_grace_period=int(values['stop-timeout'] * 1e9))
        template = docker.types.TaskTemplate(
            container, placement=docker.types.Placement(constraints=values['constraints'] or None),
            networks=values['networks'] or None)
        labels = self.labels(identity, values['labels'])
        labels[SPEC_LABEL] = spec_id
        return {
            'task_template': template,
            'name': values['name'],
            'labels': labels,
            'mode': docker.types.ServiceMode('replicated', replicas=values['replicas']),
            'update_config': docker.types.UpdateConfig(
                parallelism=values['update-parallelism'],
                delay=int(values['update-delay'] * 1e9), order='stop-first'),
            'endpoint_spec': docker.types.EndpointSpec(ports=values['ports']) if values['ports'] else None,
        }

    def _create(self, identity: str, spec_id: str) -> None:
        self.engine.api.create_service(**self._spec(identity, spec_id))

    def _update(self, current: Mapping[str, Any], identity: str, spec_id: str) -> None:
        spec = self._spec(identity, spec_id)
        self.engine.api.update_service(current['ID'], current['Version']['Index'], **spec)

    def _scale(self, current: Mapping[str, Any], replicas: int) -> None:
        """Send the stored spec back with a new count. The SDK's fetch_current_spec
        adds the engine's defaults, which the Swarm takes for a change of the task
        template and restarts every task; the spec as stored does not."""
        spec = current['Spec']
        self.engine.api.update_service(
            current['ID'], current['Version']['Index'], task_template=spec['TaskTemplate'],
            name=spec['Name'], labels=spec.get('Labels'),
            mode=docker.types.ServiceMode('replicated', replicas=replicas),
            update_config=spec.get('UpdateConfig'), endpoint_spec=spec.get('EndpointSpec'),
            rollback_config=spec.get('RollbackConfig'))

    def _wait_running(self, name: str, replicas: int, rolled: bool = False) -> None:
        """Until ``replicas`` tasks of the current spec run, or the wait-timeout.

        After an update (``rolled``) the old tasks still run until the Swarm
        starts the roll, and the update status is still the last roll's: so the
        roll that counts is one that started after the service was updated.
        """
        started = time.monotonic()
        deadline = started + self.values['wait-timeout']
        delay = 0.1
        while True:
            service = self._find(name)
            assert service is not None
            tasks = self.engine.api.tasks(filters={'service': service['ID'],
                                                   'desired-state': 'running'})
            running = [t for t in tasks if t['Status']['State'] == 'running']
            status = service.get('UpdateStatus') or {}
            update = status.get('State')
            if rolled and _instant(status.get('StartedAt')) < _instant(service.get('UpdatedAt')) \
                    and time.monotonic() < started + ROLL_START_GRACE:
                update = 'not started'  # (a change that restarts no task starts no roll)
            if len(running) == replicas and len(tasks) == replicas and update in (None, 'completed'):
                self.log.info('service %s: %d of %d replicas running', name, len(running), replicas)
                return
            if update in ('paused', 'rollback_completed'):
                raise zc.buildout.UserError(
                    f'{self.name}: the update of service {name} stopped ({update}): '
                    f'{service["UpdateStatus"].get("Message", "")}')
            if time.monotonic() > deadline:
                states = ', '.join(sorted(t['Status']['State'] for t in tasks)) or 'none'
                errors = '; '.join({t['Status'].get('Err', '') for t in tasks
                                    if t['Status'].get('Err')})
                raise zc.buildout.UserError(
                    f'{self.name}: option wait-timeout: service {name} has {len(running)} of '
                    f'{replicas} replicas running after {self.values["wait-timeout"]:g} s '
                    f'(tasks: {states}){"; " + errors if errors else ""}')
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _remove_unused_secrets(self, name: str) -> None:
        """Secrets of earlier file contents, once no task uses them any more."""
        used = {f"{name}-{n}-{d[:12]}" for n, _, d in self.secret_files}
        for secret in _part_secrets(self.engine, self.directory, self.name):
            if secret['Spec']['Name'] not in used:
                try:
                    self.engine.api.remove_secret(secret['ID'])
                except docker.errors.APIError as exc:
                    self.log.debug('secret %s kept for now: %s', secret['Spec']['Name'], exc)

    # -- removal ----------------------------------------------------------------
    @classmethod
    def decide_removal(cls, engine: Engine, directory: str, part: str,
                       options: Mapping[str, str]) -> list[Change]:
        return [Change('service', s['Spec']['Name'], 'remove', [state('its part was removed')],
                       s['ID']) for s in _part_services(engine, directory, part)]

    @classmethod
    def teardown(cls, engine: Engine, directory: str, part: str,
                 options: Mapping[str, str], log: logging.Logger) -> None:
        for service in _part_services(engine, directory, part):
            engine.api.remove_service(service['ID'])
            log.info('removed service %s', service['Spec']['Name'])
            _wait_gone(engine, service['ID'])
        for secret in _part_secrets(engine, directory, part):
            engine.api.remove_secret(secret['ID'])
            log.info('removed Swarm secret %s', secret['Spec']['Name'])


def _part_services(engine: Engine, directory: str, part: str) -> list[dict[str, Any]]:
    found = engine.api.services(filters={'label': f'io.dockeroo-nagoya.part={part}'})
    return [s for s in found
            if (s['Spec'].get('Labels') or {}).get('io.dockeroo-nagoya.buildout') == directory]


def _part_secrets(engine: Engine, directory: str, part: str) -> list[dict[str, Any]]:
    found = engine.api.secrets(filters={'label': f'io.dockeroo-nagoya.part={part}'})
    return [s for s in found
            if (s['Spec'].get('Labels') or {}).get('io.dockeroo-nagoya.buildout') == directory]


#: Seconds an update waits for its roll to start before taking it that none is needed.
ROLL_START_GRACE = 3.0


def _instant(stamp: str | None) -> tuple[str, str]:
    """A Swarm time stamp (RFC 3339, nanoseconds with trailing zeros cut) made comparable."""
    match = re.match(r'^([0-9T:-]+)(?:\.(\d+))?', stamp or '')
    if not match:
        return ('', '')
    return (match.group(1), (match.group(2) or '').ljust(9, '0'))


def _wait_gone(engine: Engine, service_id: str, timeout: float = 60) -> None:
    """Secrets can be removed only when the service's tasks are gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not engine.api.containers(all=True, filters={'label': f'com.docker.swarm.service.id={service_id}'}):
            return
        time.sleep(0.1)


def _replicas(service: Mapping[str, Any]) -> int:
    return int(service['Spec'].get('Mode', {}).get('Replicated', {}).get('Replicas', 0))


def _fingerprint(path: str) -> str:
    sha = hashlib.sha256(b'dockeroo-nagoya secret fingerprint\0')
    with open(path, 'rb') as handle:
        sha.update(handle.read())
    return sha.hexdigest()


uninstall = uninstaller(ServiceRecipe)
