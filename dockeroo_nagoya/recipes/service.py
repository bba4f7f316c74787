"""``docker.service``: a replicated service on a Swarm (Docker's own multi-machine engine).

A changed ``replicas`` only scales, and changed ``update-*``/``rollback-*``
settings only change the settings (the running tasks are left alone); any
other change is a rolling update following ``update-parallelism`` and
``update-delay``. The update and rollback settings are set explicitly, never
left to the SDK's defaults (``continue`` on failure, ``stop-first``): a task
that fails during an update rolls the service back to its previous spec
(``rollback`` after ``update-monitor``, a failure ratio of 0), and a
replacement task starts before the old one stops (``start-first``) unless the
service publishes a host-mode port. A run whose update was rolled back fails
with the task errors the Swarm recorded.

What changed is read from the service as the engine returns it
(:func:`spec_view`), so the plan names every changed option and a setting the
engine already holds is never sent again.

Swarm secrets are made from files: the content goes to the Swarm, never into
options, labels or logs; a changed file makes a new secret (secrets are
immutable) and rolls the service onto it.
"""
from __future__ import annotations

import collections
import hashlib
import logging
import re
import time
from typing import Any, Callable, Mapping

import zc.buildout

from ..model import options as opt
from ..model.decisions import Change, Decision, Reason, state
from ..engine.errors import APIError, NotFound
from ..engine import specs
from ..engine.driver import Engine
from ..engine.labels import LABEL_PART
from .base import Recipe, uninstaller

SPEC_LABEL = 'io.dockeroo-nagoya.spec'
#: Labels of ours on a service (not the user's ``labels``).
OWN_LABELS = 'io.dockeroo-nagoya.'


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


def port_lines(raw: str) -> dict[int, int | tuple[int, str, str]]:
    """``PUBLISHED:TARGET`` lines (on every node, through the Swarm's routing mesh), or
    ``PUBLISHED:TARGET:host`` (on the node that runs the task only)."""
    result: dict[int, int | tuple[int, str, str]] = {}
    for line in opt.lines(raw):
        parts = line.split(':')
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].strip() != 'host'):
            raise opt.Invalid('PUBLISHED:TARGET port lines (or PUBLISHED:TARGET:host)')
        target = opt.port(parts[1])
        # (A plain line stays a number: the identity of existing services keeps its hash.)
        result[opt.port(parts[0])] = (target, 'tcp', 'host') if len(parts) == 3 else target
    return result


def ratio(raw: str) -> float:
    """A share of the tasks, from 0 to 1."""
    try:
        value = float(raw.strip())
    except ValueError:
        raise opt.Invalid('a number from 0 to 1') from None
    if not 0 <= value <= 1:
        raise opt.Invalid('a number from 0 to 1')
    return value


ORDERS = ('start-first', 'stop-first')


def _roll_options(step: str, actions: tuple[str, ...], parallelism: str) -> tuple[opt.Option, ...]:
    """The options of one of the Swarm's two rolls (``update`` or ``rollback``). They are
    compared with what the engine holds (:func:`spec_view`), and a change of them alone
    changes the settings without replacing a task. Not part of the identity, but for
    ``update-parallelism`` and ``update-delay``, which always were: taking them out would
    change every existing service's identity, and the next run would roll it needlessly."""
    what = 'an update' if step == 'update' else 'a rollback (back to the previous spec)'
    return (
        opt.Option(f'{step}-parallelism', opt.integer(0, opt.MAX_REPLICAS), default=parallelism,
                   identity=step == 'update',
                   doc=f'Tasks {what} replaces at a time (0: all at once).'),
        opt.Option(f'{step}-delay', opt.duration, default='0', identity=step == 'update',
                   doc=f'Pause between two batches of {what}.'),
        opt.Option(f'{step}-order', opt.one_of(*ORDERS), identity=False,
                   doc=(f'``start-first`` (the default: in {what} the new task runs before '
                        'the old one stops) or ``stop-first`` (the default, and the only '
                        'choice, when a port is published in host mode).')),
        opt.Option(f'{step}-failure-action', opt.one_of(*actions), default=actions[0],
                   identity=False,
                   doc=(f'What a failed task of {what} does: '
                        + ', '.join(f'``{a}``' for a in actions)
                        + ('; ``rollback`` puts the previous spec back and the run fails '
                           'naming the task errors.' if step == 'update' else '.'))),
        opt.Option(f'{step}-monitor', opt.duration, default='5s', identity=False,
                   doc=f'How long each new task of {what} is watched for a failure.'),
        opt.Option(f'{step}-max-failure-ratio', ratio, default='0', identity=False,
                   doc=f'Share of the tasks of {what} that may fail (0 to 1).'),
    )


#: The options that are the Swarm's update and rollback settings, and where the engine
#: keeps each (``UpdateConfig`` or ``RollbackConfig``, and the key there).
ROLL_SETTINGS = {f'{step}-{key}': (config, field)
                 for step, config in (('update', 'UpdateConfig'), ('rollback', 'RollbackConfig'))
                 for key, field in (('parallelism', 'Parallelism'), ('delay', 'Delay'),
                                    ('order', 'Order'), ('failure-action', 'FailureAction'),
                                    ('monitor', 'Monitor'),
                                    ('max-failure-ratio', 'MaxFailureRatio'))}
#: Where the engine keeps what :meth:`ServiceRecipe._spec` gives create_service.
STORED_AS = {'task_template': 'TaskTemplate', 'name': 'Name', 'labels': 'Labels', 'mode': 'Mode',
             'update_config': 'UpdateConfig', 'rollback_config': 'RollbackConfig',
             'endpoint_spec': 'EndpointSpec'}
#: Options whose change makes new tasks (a rolling update); the others leave them running.
TASK_OPTIONS = ('image', 'command', 'env', 'mounts', 'secrets', 'stop-timeout',
                'constraints', 'networks', 'ports', 'labels')


class ServiceRecipe(Recipe):
    """A Swarm service."""

    recipe = 'docker.service'
    kind = 'services'
    table = (
        opt.Option('name', opt.name, doc="The service's name (default: the part's name)."),
        opt.Option('image', opt.image_reference, required=True,
                   doc="The image; reachable from every node (a registry's reference)."),
        opt.Option('replicas', opt.integer(0, opt.MAX_REPLICAS), default='1', identity=False,
                   doc='Tasks to run; a change scales without restarting the running ones.'),
        opt.Option('command', opt.text, doc="The tasks' command."),
        opt.Option('env', opt.key_values, default='', doc='``KEY=VALUE`` lines.'),
        opt.Option('networks', opt.words, default='', doc='Overlay networks to join.'),
        opt.Option('mounts', mount_lines, default='', doc='``SOURCE:/TARGET[:ro]`` lines.'),
        opt.Option('ports', port_lines, default='',
                   doc=('``PUBLISHED:TARGET`` lines (every node, through the routing mesh), '
                        'or ``PUBLISHED:TARGET:host`` (the task\'s node only).')),
        opt.Option('constraints', opt.lines, default='',
                   doc='Placement constraints, e.g. ``node.labels.role == builder``.'),
        opt.Option('labels', opt.key_values, default='',
                   doc='``KEY=VALUE`` labels of the service.'),
        *_roll_options('update', ('rollback', 'pause', 'continue'), parallelism='1'),
        *_roll_options('rollback', ('pause', 'continue'), parallelism='1'),
        opt.Option('secrets', secret_lines, default='',
                   secret=True,
                   doc=('``NAME = /path/to/file`` lines: Swarm secrets the tasks see as '
                        '``/run/secrets/NAME``; only a fingerprint is kept.')),
        opt.Option('stop-timeout', opt.duration, default='10',
                   doc="Time a task's stop waits before SIGKILL."),
        opt.Option('wait-timeout', opt.duration, default='120', identity=False,
                   doc='How long install waits for the wanted replicas to run.'),
    )

    def configure(self) -> None:
        self.name_from_part()
        # Only a fingerprint of each file goes into the identity, never its content.
        self.secret_files = [(name, path, _fingerprint(path)) for name, path in self.values['secrets']]
        host_ports = [p for p, target in self.values['ports'].items() if isinstance(target, tuple)]
        for step in ('update', 'rollback'):
            key = f'{step}-order'
            if self.values[key] is None:
                # Two copies of a task side by side cannot both hold a host-mode port.
                # (Not written into the options: an existing part's recorded options stay
                # as they were, and buildout does not reinstall it after an upgrade.)
                self.values[key] = 'stop-first' if host_ports else 'start-first'
            elif self.values[key] == 'start-first' and host_ports:
                raise opt.invalid(self.name, key, f'stop-first: the service publishes port '
                                  f'{host_ports[0]} in host mode, which the new task cannot '
                                  f'take while the old one holds it', self.options[key])

    def identity_values(self) -> dict[str, Any]:
        values = super().identity_values()
        values['secrets'] = [(name, digest) for name, _, digest in self.secret_files]
        return values

    # -- install and update -----------------------------------------------------
    def decide(self, fresh: bool) -> Decision:
        """create; update (``how``: a rolling update, a scale, or new update settings); or
        none; with the service now, its identity and the identity of its spec with the
        image's id. The reasons are every option whose value differs from what the engine
        holds (:func:`spec_view`), secret values hidden."""
        self._require_swarm()
        name = self.values['name']
        identity = self.identity()
        image_id = self.engine.image_id(self.values['image']) or self.values['image']
        spec_id = self.identity(image=image_id)
        current = self._find(name)
        replicas = self.values['replicas']
        found = {'current': current, 'identity': identity, 'spec-id': spec_id}
        if current is None:
            return Decision([Change('service', name, 'create', [state(f'{replicas} replicas')])],
                            found=found, fresh=fresh)
        self.check_ours(current['Spec'], 'service', name)
        before = spec_view(current['Spec'], self._network_name)
        wanted = self._spec(identity, spec_id, self._secret_references(make=False))
        after = spec_view({STORED_AS[key]: value for key, value in wanted.items()},
                          self._network_name)
        rolling = (current['Spec'].get('Labels') or {}).get(SPEC_LABEL) != spec_id
        reasons = [Reason.of(key, before[key], after[key]) for key in after
                   if before[key] != after[key] and (rolling or key not in TASK_OPTIONS)]
        if rolling and not {r.input for r in reasons} & set(self.identity_values()):
            # (The identity changed and no option did: the image behind the same name.)
            reasons.insert(0, state(f'the image {self.values["image"]} is another one now'))
        if _replicas(current) != replicas:
            reasons.append(Reason('replicas', str(_replicas(current)), str(replicas)))
        if rolling:
            how = 'rolling update'
        elif _replicas(current) != replicas:
            how = 'scale'
        elif reasons:
            how = 'new update settings'
        else:
            return Decision([Change('service', name, 'none', [], current['ID'])], found=found,
                            fresh=fresh)
        return Decision([Change('service', name, 'update', reasons, current['ID'], how=how)],
                        found=found, fresh=fresh)

    def act(self, decision: Decision) -> list[str]:
        name = self.values['name']
        change = decision.changes[0]
        current = decision.found['current']
        identity, spec_id = decision.found['identity'], decision.found['spec-id']
        replicas = self.values['replicas']
        if current is None and change.action != 'create':
            return []  # no service, and none to make
        if change.action == 'create':
            self.log.info('creating service %s with %d replicas', name, replicas)
            self.engine.api.create_service(**self._spec(identity, spec_id, self._secret_references()))
        elif change.action == 'update' and change.how == 'rolling update':
            self.log.info('%s (%d at a time, %s, on failure: %s)', change.text(),
                          self.values['update-parallelism'], self.values['update-order'],
                          self.values['update-failure-action'])
            self.engine.api.update_service(
                current['ID'], current['Version']['Index'],
                **self._spec(identity, spec_id, self._secret_references()))
        elif change.action == 'update' and change.how == 'scale':
            others = ', '.join(r.text() for r in change.reasons if r.input != 'replicas')
            self.log.info('scaling service %s from %d to %d replicas%s', name,
                          _replicas(current), replicas, f' ({others})' if others else '')
            self._update_in_place(current, replicas)
        elif change.action == 'update':
            self.log.info('%s', change.text())
            self._update_in_place(current, replicas)
        self._wait_running(name, replicas, current['UpdatedAt'] if current else '',
                           changed=change.changes, rolled=change.how == 'rolling update')
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

    def _network_name(self, target: str) -> str:
        """A network's name from what a spec holds (the Swarm keeps ids)."""
        try:
            return str(self.engine.api.inspect_network(target)['Name'])
        except NotFound:
            return target

    def _secret_references(self, make: bool = True) -> list[specs.SecretReference]:
        """The service's secrets, made in the Swarm when missing (``make``; otherwise, as
        for a plan, by name only)."""
        references = []
        for name, path, digest in self.secret_files:
            secret_name = f"{self.values['name']}-{name}-{digest[:12]}"
            existing = self.engine.api.secrets(filters={'name': secret_name})
            match = next((s for s in existing if s['Spec']['Name'] == secret_name), None)
            if match is not None:
                secret_id = match['ID']
            elif not make:
                secret_id = ''
            else:
                with open(path, 'rb') as handle:
                    created = self.engine.api.create_secret(
                        secret_name, handle.read(), labels=self.labels(digest[:12]))
                secret_id = created['ID']
                self.log.info('made Swarm secret %s from %s', secret_name, path)
            references.append(specs.secret_reference(secret_id, secret_name, filename=name))
        return references

    def _roll_config(self, step: str) -> dict[str, Any]:
        """The Swarm's settings for one roll (``update`` or ``rollback``), all explicit."""
        values = self.values
        return specs.roll_config(step, parallelism=values[f'{step}-parallelism'],
                                 delay=int(values[f'{step}-delay'] * 1e9),
                                 failure_action=values[f'{step}-failure-action'],
                                 monitor=int(values[f'{step}-monitor'] * 1e9),
                                 max_failure_ratio=values[f'{step}-max-failure-ratio'],
                                 order=values[f'{step}-order'])

    def _spec(self, identity: str, spec_id: str,
              secrets: list[specs.SecretReference]) -> dict[str, Any]:
        values = self.values
        labels = self.labels(identity, values['labels'])
        labels[SPEC_LABEL] = spec_id
        return specs.service_spec(
            values['name'], values['image'],
            command=values['command'].split() if values['command'] else None,
            env=[f'{k}={v}' for k, v in values['env'].items()], mounts=values['mounts'],
            secrets=secrets, stop_grace_period=int(values['stop-timeout'] * 1e9),
            constraints=values['constraints'], networks=values['networks'], labels=labels,
            replicas=values['replicas'], update_config=self._roll_config('update'),
            rollback_config=self._roll_config('rollback'), ports=values['ports'])

    def _update_in_place(self, current: Mapping[str, Any], replicas: int) -> None:
        """Send the stored spec back with the new count and update settings. The SDK's
        fetch_current_spec adds the engine's defaults, which the Swarm takes for a change
        of the task template and restarts every task; the spec as stored does not."""
        spec = current['Spec']
        self.engine.api.update_service(
            current['ID'], current['Version']['Index'], task_template=spec['TaskTemplate'],
            name=spec['Name'], labels=spec.get('Labels'),
            mode=specs.replicated(replicas),
            update_config=self._roll_config('update'), endpoint_spec=spec.get('EndpointSpec'),
            rollback_config=self._roll_config('rollback'))

    def _wait_running(self, name: str, replicas: int, since: str, changed: bool,
                      rolled: bool = False) -> None:
        """Until ``replicas`` tasks of the current spec run, saying every
        :data:`PROGRESS_EVERY` seconds what the tasks do; a failure early, when a task
        error cannot heal or the Swarm rolled the update back.

        ``since`` is the service's ``UpdatedAt`` before this run changed it: only tasks made
        after it, and a roll started after it, count (the update status stays the last
        roll's until the Swarm starts the next, and a change that restarts no task starts
        none). Not the time read after the change: the Swarm moves ``UpdatedAt`` again
        just after it starts the roll, which would make the roll look older. After a
        change (``changed``) the same tasks must run for :data:`STEADY` seconds.
        """
        started = time.monotonic()
        deadline = started + self.values['wait-timeout']
        said = started
        delay = 0.1
        steady: tuple[frozenset[str], float] | None = None
        while True:
            service = self._find(name)
            assert service is not None
            tasks = self.engine.api.tasks(filters={'service': service['ID']})
            wanted = [t for t in tasks if t['DesiredState'] == 'running']
            running = [t for t in wanted if t['Status']['State'] == 'running']
            recent = [t for t in tasks if _instant(t.get('CreatedAt')) > _instant(since)]
            status = service.get('UpdateStatus') or {}
            update = status.get('State') if _instant(status.get('StartedAt')) > _instant(since) \
                else None
            if rolled and update is None and time.monotonic() < started + ROLL_START_GRACE:
                update = 'not started'
            now = time.monotonic()
            all_running = len(running) == replicas and len(wanted) == replicas
            if update == 'rollback_completed' and (all_running or now > deadline):
                raise zc.buildout.UserError(
                    f'{self.name}: the update of service {name} failed and the Swarm rolled '
                    f'it back to its previous spec ({len(running)} of {replicas} replicas '
                    f'running): {self._errors(recent) or status.get("Message", "")}')
            if all_running and update in (None, 'completed'):
                # The same tasks still running a moment later: a command that exits at once
                # is running for an instant too.
                ids = frozenset(t['ID'] for t in running)
                if not changed or (steady and steady[0] == ids and now - steady[1] >= STEADY):
                    self.log.info('service %s: %d of %d replicas running', name, len(running),
                                  replicas)
                    return
                if not steady or steady[0] != ids:
                    steady = (ids, now)
            else:
                steady = None
            if update in ('paused', 'rollback_paused'):
                raise zc.buildout.UserError(
                    f'{self.name}: the update of service {name} stopped ({update}): '
                    f'{self._errors(recent) or status.get("Message", "")}')
            # A failed update the Swarm rolls back is left to its rollback; otherwise an
            # error no retry heals ends the wait now.
            if update in (None, 'completed') or (
                    update == 'updating' and self.values['update-failure-action'] != 'rollback'):
                hopeless = _hopeless(recent)
                if hopeless:
                    raise zc.buildout.UserError(
                        f'{self.name}: service {name} cannot run its tasks ({len(running)} of '
                        f'{replicas} replicas running): {self._errors(hopeless)}')
            if now > deadline:
                raise zc.buildout.UserError(
                    f'{self.name}: option wait-timeout: service {name} has {len(running)} of '
                    f'{replicas} replicas running after {self.values["wait-timeout"]:g} s '
                    f'({self._progress(wanted, recent, update)})')
            if now - said >= PROGRESS_EVERY:
                said = now
                self.log.info('service %s: %d of %d replicas running (%s)', name, len(running),
                              replicas, self._progress(wanted, recent, update))
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _progress(self, wanted: list[dict[str, Any]], recent: list[dict[str, Any]],
                  update: str | None) -> str:
        """The tasks' states, the update's, and the errors recorded: what a waiting user
        wants to know."""
        counted = collections.Counter(t['Status']['State'] for t in wanted)
        said = 'tasks: ' + (', '.join(f'{n} {s}' for s, n in sorted(counted.items())) or 'none')
        if update:
            said += f'; update {update}'
        errors = self._errors(recent)
        return said + (f'; errors: {errors}' if errors else '')

    def _errors(self, tasks: list[dict[str, Any]]) -> str:
        """The first distinct task errors the Swarm recorded, each with its node."""
        nodes = {n['ID']: n['Description'].get('Hostname', n['ID'][:12])
                 for n in self.engine.api.nodes()}
        found: dict[str, str] = {}
        for task in sorted(tasks, key=lambda t: _instant(t.get('CreatedAt'))):
            error = task['Status'].get('Err')
            if error and error not in found:
                node = nodes.get(task.get('NodeID', ''))  # (none yet: a task not placed)
                found[error] = f'{error} (on {node})' if node else error
        return '; '.join(list(found.values())[:SHOWN_ERRORS])

    def _remove_unused_secrets(self, name: str) -> None:
        """Secrets of earlier file contents, once no task uses them any more."""
        used = {f"{name}-{n}-{d[:12]}" for n, _, d in self.secret_files}
        for secret in _part_secrets(self.engine, self.directory, self.name):
            if secret['Spec']['Name'] not in used:
                try:
                    self.engine.api.remove_secret(secret['ID'])
                except APIError as exc:
                    self.log.debug('secret %s kept for now: %s', secret['Spec']['Name'], exc)

    # -- removal ----------------------------------------------------------------
    @classmethod
    def removal_objects(cls, engine: Engine, directory: str, part: str,
                        options: Mapping[str, str]) -> list[Change]:
        """The part's services, then the Swarm secrets it made for them."""
        why = [state('its part was removed')]
        return [Change('service', s['Spec']['Name'], 'remove', why, s['ID'])
                for s in _part_services(engine, directory, part)] + \
            [Change('secret', s['Spec']['Name'], 'remove', why, s['ID'])
             for s in _part_secrets(engine, directory, part)]

    @classmethod
    def remove_object(cls, engine: Engine, directory: str, part: str,
                      options: Mapping[str, str], change: Change, log: logging.Logger) -> None:
        """A service is waited for until its tasks are gone (its secrets go after it)."""
        if change.kind != 'service':
            super().remove_object(engine, directory, part, options, change, log)
            return
        engine.api.remove_service(change.id)
        log.info('removed service %s', change.object)
        _wait_gone(engine, str(change.id))


def _part_services(engine: Engine, directory: str, part: str) -> list[dict[str, Any]]:
    found = engine.api.services(filters={'label': f'{LABEL_PART}={part}'})
    owner = engine.run.owner_of(directory)
    return [s for s in found if owner.claims(s['Spec'].get('Labels') or {})]


def _part_secrets(engine: Engine, directory: str, part: str) -> list[dict[str, Any]]:
    found = engine.api.secrets(filters={'label': f'{LABEL_PART}={part}'})
    owner = engine.run.owner_of(directory)
    return [s for s in found if owner.claims(s['Spec'].get('Labels') or {})]


#: Seconds an update waits for its roll to start before taking it that none is needed.
ROLL_START_GRACE = 3.0
#: Seconds the same tasks must be running after a change before the wait takes them as up.
STEADY = 1.5
#: Seconds between the lines that say what a wait sees.
PROGRESS_EVERY = 10.0
#: How many distinct task errors a message shows.
SHOWN_ERRORS = 3
#: Task errors no retry heals: the image is not there.
IMAGE_MISSING = re.compile(r'No such image|manifest unknown|not found|pull access denied|'
                           r'repository does not exist|invalid reference format', re.I)
#: How many tasks may fail (a command that exits) before the wait stops hoping.
FAILURES_GIVING_UP = 3


def _hopeless(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks whose errors tell that no retry will run the service: an image the node
    cannot get, or a command that failed :data:`FAILURES_GIVING_UP` times."""
    failed = [t for t in tasks if t['Status']['State'] in ('failed', 'rejected')
              and t['Status'].get('Err')]
    missing = [t for t in failed if IMAGE_MISSING.search(t['Status']['Err'])]
    if missing:
        return missing
    return failed if len(failed) >= FAILURES_GIVING_UP else []


def spec_view(spec: Mapping[str, Any], network_name: Callable[[str], str]) -> dict[str, str]:
    """A service spec, as the engine returns it or as the recipe sends it, as the text of
    the options it comes from: what a plan shows and what tells a change. Values the
    engine leaves out when zero count as zero, so that what the engine holds compares
    equal to what was sent."""
    template = spec.get('TaskTemplate') or {}
    container = template.get('ContainerSpec') or {}
    ports = (spec.get('EndpointSpec') or {}).get('Ports') or []
    view = {
        'image': container.get('Image', ''),
        'command': ' '.join(container.get('Command') or []),
        'env': ' '.join(sorted(container.get('Env') or [])),
        'mounts': ' '.join(f"{m.get('Source', '')}:{m['Target']}{':ro' if m.get('ReadOnly') else ''}"
                           for m in container.get('Mounts') or []),
        'secrets': ' '.join(sorted(s['SecretName'] for s in container.get('Secrets') or [])),
        'stop-timeout': _seconds(container.get('StopGracePeriod')),
        'constraints': ' '.join((template.get('Placement') or {}).get('Constraints') or []),
        'networks': ' '.join(sorted(network_name(n['Target']) for n in template.get('Networks')
                                    or spec.get('Networks') or [])),
        'ports': ' '.join(sorted(f"{p.get('PublishedPort')}:{p.get('TargetPort')}"
                                 f"{':host' if p.get('PublishMode') == 'host' else ''}"
                                 for p in ports)),
        'labels': ' '.join(sorted(f'{k}={v}' for k, v in (spec.get('Labels') or {}).items()
                                  if not k.startswith(OWN_LABELS))),
    }
    for option, (config, field) in ROLL_SETTINGS.items():
        value = (spec.get(config) or {}).get(field)
        if field in ('Delay', 'Monitor'):
            view[option] = _seconds(value)
        elif field in ('Parallelism', 'MaxFailureRatio'):
            view[option] = f'{float(value or 0):g}'
        else:
            view[option] = str(value or 'unset')
    return view


def _seconds(nanoseconds: int | None) -> str:
    return f'{(nanoseconds or 0) / 1e9:g}s'


def _instant(stamp: str | None) -> tuple[str, str]:
    """A Swarm time stamp (RFC 3339, nanoseconds with trailing zeros cut) made comparable."""
    match = re.match(r'^([0-9T:-]+)(?:\.(\d+))?', stamp or '')
    if not match:
        return ('', '')
    return (match.group(1), (match.group(2) or '').ljust(9, '0'))


def _wait_gone(engine: Engine, service_id: str, timeout: float = 60) -> None:
    """Secrets and networks can be removed only when the service's tasks are gone: on every
    node (the Swarm's tasks) and on the manager itself (its containers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # (All tasks: a filter by a service that is gone is refused.)
        if not any(t['ServiceID'] == service_id for t in engine.api.tasks()) and \
                not engine.api.containers(all=True, filters={
                    'label': f'com.docker.swarm.service.id={service_id}'}):
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
