"""Bringing one container to its spec: a spec to an identity, an identity to a plan, a plan to acts.

Shared by every recipe that runs containers (``docker.run`` has one per
part; a system recipe has many). The steps, as docker compose does them:

1. :data:`.containerspec.TABLE` parses one container's options;
   :meth:`.containerspec.ContainerSpec.from_values` checks how they go together.
2. :meth:`Runner.identity` hashes the options that need a new container,
   plus what they point at, read now: the image's id (a rebuilt image makes a
   new identity), the content of ``env-file`` (never stored, only hashed)
   and of ``layout``. The hash is the ``io.dockeroo-nagoya.identity`` label;
   a short hash per option goes in ``io.dockeroo-nagoya.inputs`` so that a
   recreate can say which option changed.
3. :func:`.containerplan.plan` compares that with the container found in the buildout's one
   labelled listing (no request per container on a rerun) and decides:
   keep, create, recreate or start, with the reason it logs.
4. :meth:`Runner.act` acts: create (callbacks, layout), start, then a
   job is waited for, a service is gated (:mod:`.probes`) and its script run.

Jobs (``job = true``) keep their exited container as the record that they
ran: exit code 0 with an unchanged identity means done, so a rerun does not
run the job again, and ``docker logs`` still shows what it did. Removing
that container (by hand or with ``docker container prune``) runs the job
again, as does any other exit code.

A new container whose setup fails (layout, start, script or a callback) is
removed again, so the next run starts clean; one that fails a readiness gate
is kept for inspection and gated again on the next run. A run killed half-way
is finished by the next: a container never started is made anew, as is one
with a script when the run that made it did not finish (the script runs once
its gates passed), and a job still running is waited for. Named and anonymous
volumes are never removed; a recreated container gets its predecessor's
anonymous volumes back at the same paths.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any, Mapping, Protocol

import zc.buildout

from . import copying
from ..model import decisions
from ..run import identities
from . import probes
from .secrets import masked, secret_env_label, write_private
from ..engine.callbackobjects import container_object, planned_container
from ..engine.containerconfig import host_config, networking_config
from ..engine.driver import Engine, explain, identity_hash
from ..engine.labels import LABEL_IDENTITY, LABEL_INPUTS, labels_of, owner_of
from ..engine.errors import (APIError, ConnectionFailed, Container, DockerException, NotFound,
                             TransportError)
from .containerplan import changed_inputs, encode_hashes, option_hashes, plan
from .containers import remove, stop
from .containerspec import DEFAULT_WAIT_TIMEOUT, read_env_file

if TYPE_CHECKING:
    from .containerplan import Plan
    from .containerspec import ContainerSpec


HEX64_RE = re.compile(r'^[0-9a-f]{64}$')
JOB_WAIT_CHUNK = 30.0


# -- acting on one container -----------------------------------------------------------
class JobFailed(zc.buildout.UserError):
    """A job exited with another code than 0, or did not finish in time."""


class Part(Protocol):
    """What a runner needs of the part it runs a container for (a recipe is one): its
    name, log, directory and engine, and what it says about ownership.

    A protocol, not the recipe class: the runner is a mechanism, below the recipes."""

    @property
    def name(self) -> str: ...

    @property
    def log(self) -> logging.Logger: ...

    @property
    def directory(self) -> str: ...

    @property
    def engine(self) -> Engine: ...

    def labels(self, identity: str, user: Mapping[str, str] | None = None) -> dict[str, str]:
        """The labels of an object of this part: ``user``'s plus the ownership labels."""

    def is_ours(self, obj: Mapping[str, Any]) -> bool:
        """Whether this part's configuration made the object."""

    def check_ours(self, obj: Mapping[str, Any], what: str, object_name: str) -> None:
        """Refuse (a user error) an object another owner made."""

    def installed_before(self, fresh: bool) -> bool:
        """Whether an earlier run installed the part (a missing object was removed)."""


class Runner:
    """Brings one container of a recipe to its spec (one runner per container).

    ``part`` is the part it runs for (:class:`Part`: a recipe). A recipe with
    several containers (a system) gives each runner the engine of the thread it
    runs in and the labels that say which member it is; ``spec.part`` is then
    the name errors use (``system: member db``), while the ownership labels keep
    the recipe's part.
    """

    def __init__(self, part: Part, spec: ContainerSpec, engine: Engine | None = None,
                 labels: Mapping[str, str] | None = None) -> None:
        self.part = part
        self.engine: Engine = engine or part.engine
        self.spec = spec
        self.log: logging.Logger = part.log
        self.callbacks = spec.callbacks()
        self.env: dict[str, str] = {}
        #: The names in :attr:`env` whose values come from env-file (secrets).
        self.secret_names: set[str] = set()
        self.extra_labels: dict[str, str] = dict(labels or {})
        #: A new container made by :meth:`create_ahead`, still to be brought up.
        self.ahead: str | None = None
        #: Set by a recipe whose one listing by name (:func:`absent_names`) found no container
        #: of this name: :meth:`find` then asks nothing more.
        self.absent = False

    # -- finding and identity -----------------------------------------------------
    def find(self) -> dict[str, Any] | None:
        """The container of this name from the shared listing; refuse one of another owner."""
        name = self.spec.name
        for listed in self.engine.owned('containers', self.part.directory):
            if f'/{name}' in (listed.get('Names') or []):
                _, part = owner_of(listed)
                if part != self.part.name:
                    raise zc.buildout.UserError(
                        f'{self.spec.part}: container {name} belongs to part {part} of this '
                        f'buildout: give one of them another name')
                return listed
        if self.absent:
            return None
        found = self.engine.named('containers', name)
        if found is not None:
            self.part.check_ours(found, 'container', name)
        return None

    def identity(self, extra: Mapping[str, Any] | None = None) -> tuple[str, dict[str, str]]:
        """(identity hash, per-option hashes), with the image and env-file read now.

        ``extra`` adds what else needs a new container (a system adds the ids
        of the members this one links to or takes volumes from).
        """
        spec = self.spec
        image_id = self.engine.image_id(spec.values['image'])
        if image_id is None:
            maker = identities.maker_of(self.engine.run, self.engine.config, spec.values['image'])
            if maker is not None:  # bin/buildout install PART, on a buildout not installed yet
                raise zc.buildout.UserError(
                    f'{spec.part}: option image: no image {spec.values["image"]} yet: part '
                    f'{maker} makes it and is not installed: run bin/buildout (or bin/buildout '
                    f'install {maker} {spec.part.split(":")[0]})')
            raise zc.buildout.UserError(
                f'{spec.part}: option image: no image {spec.values["image"]} on the Docker '
                f'engine: build it with a docker.build part or fetch it with a docker.pull part')
        env_file_digest = None
        if spec.values['env-file']:
            file_env = read_env_file(spec.part, spec.values['env-file'])
            env_file_digest = identity_hash(file_env)
            self.env = {**file_env, **spec.values['env']}
            self.secret_names = set(file_env) - set(spec.values['env'])
        else:
            self.env = dict(spec.values['env'])
            self.secret_names = set()
        values = spec.identity_values(image_id, env_file_digest)
        values.update({key: value for key, value in (extra or {}).items() if value})
        return identity_hash(values), option_hashes(values)

    def labels(self, identity: str, hashes: Mapping[str, str]) -> dict[str, str]:
        user = {**self.spec.values['labels'], LABEL_INPUTS: encode_hashes(hashes)}
        # The names of the variables from env-file: a commit resets them, a log masks them.
        return {**self.part.labels(identity, user), **secret_env_label(self.secret_names),
                **self.extra_labels}

    # -- the plan, carried out ------------------------------------------------------
    def act(self, step: Plan, change: decisions.Change, fresh: bool) -> str | None:
        """Do what ``change`` (:meth:`change` of ``step``, or what a recipe's decision made of
        it) says, with what deciding read (``step``): the container's id, ``None`` when the
        decision leaves no container (``none`` for one that does not exist).

        ``fresh``: an install (first, or after a change or a failure), whose kept container
        also gets its gates checked. A container :meth:`create_ahead` made is brought up."""
        current, identity, hashes = step.current, step.identity, step.hashes
        name, action = self.spec.name, change.action
        self.env, self.secret_names = dict(step.env), set(step.secret_names)
        if self.ahead is not None and action in ('create', 'recreate'):
            container, self.ahead = self.ahead, None
            self._bring_up(container, new=True)
            return container
        if action in ('none', 'update') and current is None:
            return None
        if action == 'none' and step.action == 'wait':  # never started again: it may end
            assert current is not None                  # while we look
            self.log.info('waiting for job %s: %s', name, step.reason)
            self._await_job(current['Id'])
            return current['Id']
        if action in ('none', 'update'):
            assert current is not None
            self.log.debug('%s: %s', name, step.reason)
            if action == 'update':
                self.log.info('updating %s in place: restart changed', self.spec.name)
                self._update_in_place(current['Id'])
            if fresh:
                if current.get('State') == 'running' and self.spec.values['wait-for']:
                    self._wait_ready(current['Id'])
            return current['Id']
        if action == 'start':
            assert current is not None
            self.log.info('starting %s: %s', name, step.reason)
            self._bring_up(current['Id'], new=False)
            return current['Id']
        if action == 'recreate' and current is not None:
            self.log.info('recreating %s: %s', name, step.reason or ', '.join(
                r.text() for r in change.reasons))
            if self.spec.job:  # a job's old container is only the record of its last run
                inherited = self._anonymous_volumes(current)
                self.remove(current['Id'])
                container = self._create(self.labels(identity, hashes), inherited)
                self._bring_up(container, new=True)
                return container
            return self._replace(current, self.labels(identity, hashes))
        if action not in ('create', 'recreate'):
            raise ValueError(f'{name}: a container cannot {action}')
        self._say_creating(step)
        container = self._create(self.labels(identity, hashes), [])
        self._bring_up(container, new=True)
        return container

    def decide(self, fresh: bool, expected: bool | None = None,
               extra_identity: Mapping[str, Any] | None = None,
               restart_unchanged: bool = False) -> Plan:
        """What :meth:`act` will do, and why: the one decision for a run and a plan.

        Reads only: the shared listing, the image's id, the env-file, and for a
        kept container of an install its restart policy, unless ``restart_unchanged``:
        the last successful install left the container with the ``restart`` it has
        now (an install updates it in place when it differs, so its record says what
        the engine has), and a system's install, which every member's change makes,
        need not ask the engine about each member it keeps."""
        current = self.find()
        if current is not None and identities.planned_removal(self.engine.run,
                                                              self.engine.config, self.spec.name):
            current = None  # a part before this one removes it (see Runner.change)
        identity, hashes = self.identity(extra_identity)
        if expected is None:
            expected = self.part.installed_before(fresh)
        step = plan(self.spec, current, identity, hashes, expected=expected)
        restart = None
        if step.action == 'keep' and fresh and current is not None and not restart_unchanged:
            restart = self._restart_change(current['Id'])
        return dataclasses.replace(step, identity=identity, hashes=hashes, restart=restart,
                                   env=dict(self.env), secret_names=frozenset(self.secret_names))

    def change(self, step: Plan) -> decisions.Change:
        """A decision as data: the action in the plan's words, with its reasons."""
        current, name = step.current, self.spec.name
        found = current['Id'] if current is not None else None
        removed = identities.planned_removal(self.engine.run, self.engine.config, name)
        if step.action == 'create' and removed is not None:
            return decisions.Change('container', name, 'recreate', [decisions.state(
                f'removed first: {removed[1]}')], removed[0])
        if step.action == 'keep':
            if step.restart is not None:
                return decisions.Change('container', name, 'update', [decisions.Reason.of(
                    'restart', *step.restart)], found)
            return decisions.Change('container', name, 'none', [], found)
        if step.action == 'wait':
            return decisions.Change('container', name, 'none', [decisions.state(step.reason)], found)
        reasons: list[decisions.Reason] = []
        if step.action == 'recreate' and current is not None and \
                labels_of(dict(current)).get(LABEL_IDENTITY) != step.identity:
            changed = changed_inputs(current, step.hashes)
            for key in changed or ():
                if key == 'image-id':
                    why = identities.planned_change(self.engine.run, self.engine.config,
                                                    self.spec.values['image'])
                    reasons.append(decisions.Reason(f'image {self.spec.values["image"]}',
                                                    follows=why, note=None if why else
                                                    'rebuilt or pulled anew'))
                else:
                    reasons.append(decisions.Reason.of(key))
            if not reasons:
                reasons.append(decisions.state(step.reason))
        elif step.reason:
            reasons.append(decisions.state(step.reason))
        return decisions.Change('container', name, step.action, reasons, found)

    def _replace(self, current: Mapping[str, Any], labels: dict[str, str]) -> str:
        """Replace a container so that a refused change never leaves the user without it.

        The new container is created first, under a temporary name: a create the
        engine refuses (a capability, network or container it does not know)
        leaves the old one running, untouched. Then the old one is stopped (the
        two never run at once: they may share host ports, aliases or a
        database's files), the new one started and gated; only then is the old
        one removed and the new one given the name. When a step fails, the new
        container goes and the old one is started again (same id, gates passed),
        and the error says which option the engine refused when that is known.
        """
        spec, old = self.spec, current['Id']
        was_running = current.get('State') in ('running', 'restarting', 'paused')
        temporary = next_name(spec.name)
        # An interrupted replacement is ours, so in the listing; anyone else's under that
        # name makes the create below fail, and is said.
        leftover = next((c for c in self.engine.owned('containers', self.part.directory)
                         if f'/{temporary}' in (c.get('Names') or [])), None)
        if leftover is not None:
            self._discard(leftover['Id'], quiet=True)
        inherited = self._anonymous_volumes(current)
        try:
            container = self._create(labels, inherited, name=temporary)
        except APIError as exc:
            raise refused(spec, exc, 'kept') from None
        self.stop(old)
        try:
            self._bring_up(container, new=True, discard=False)
        except BaseException as exc:
            tail = probes.log_tail(self.engine, container, spec.name) \
                if not isinstance(exc, (probes.NotReady, zc.buildout.UserError)) else ''
            if 'wrote nothing to its log' in tail or 'no log of' in tail:
                tail = ''
            self._discard(container, quiet=True)
            if was_running:
                self.log.info('starting the previous %s again: its replacement failed', spec.name)
                self.engine.api.start(old)
                self.engine.forget('containers')
                self._wait_ready(old)
            if isinstance(exc, APIError):
                raise refused(spec, exc, 'running again' if was_running else 'kept',
                              tail) from None
            if isinstance(exc, zc.buildout.UserError):
                kept = ('the previous container is running again' if was_running
                        else 'the previous container is kept')
                raise type(exc)(f'{exc}\n({kept}; the new one was removed)') from None
            raise
        self.remove(old, stopped=True)
        self.engine.api.rename(container, spec.name)
        self.engine.forget('containers')
        return container

    def create_ahead(self, step: Plan) -> None:
        """Create the new container the decision ``step`` plans, before its turn to start.

        Creating needs nothing else to be up (starting does): a system creates
        its new members at the same time, and each member's turn is then only
        its start. What :meth:`act` would create is made from the same decision
        (identity, labels, environment), so nothing is looked up again here.
        Members with create callbacks are created in their turn.
        """
        if self.callbacks.wanted('pre-create') or self.callbacks.wanted('post-create'):
            return
        if step.current is not None or step.action != 'create':
            return
        self.env, self.secret_names = dict(step.env), set(step.secret_names)
        self._say_creating(step)
        self.ahead = self._create(self.labels(step.identity, step.hashes), [])

    def _say_creating(self, step: Plan) -> None:
        name = self.spec.name
        self.log.info('creating %s%s', f'{name} again: ' if step.reason else name, step.reason)

    def discard_ahead(self) -> None:
        """A container made ahead whose turn never came (something before it failed)."""
        if self.ahead is not None:
            container, self.ahead = self.ahead, None
            self._discard(container)

    def _create(self, labels: dict[str, str], inherited: list[str], name: str | None = None) -> str:
        kwargs = create_arguments(self.engine, self.spec, self.env, labels, inherited)
        if name is not None:
            kwargs['name'] = name
        self.callbacks.fire('pre-create', lambda: self._planned_model(kwargs))
        container = self.engine.api.create_container(**kwargs)['Id']
        self.engine.forget('containers')
        try:
            for network in self.spec.user_networks[1:]:
                self.engine.api.connect_container_to_network(
                    container, network, aliases=self.spec.values['network-aliases'] or None)
            self.callbacks.fire('post-create', lambda: self._model(container))
        except Exception:
            self._discard(container)
            raise
        return container

    def _bring_up(self, container: str, new: bool, discard: bool = True) -> None:
        """Layout, start, then wait for a job or gate a service and run its script.

        A new container whose setup fails is removed again unless ``discard`` is
        false (the caller does it, with more to undo)."""
        spec = self.spec
        try:
            if new and spec.values['layout']:
                members = copying.layout_members(spec.values['layout'])
                copying.write_container(self.engine, container, members)
            if not spec.values['start']:
                return
            self.callbacks.fire('pre-start', lambda: self._model(container))
            self.engine.api.start(container)
            self.engine.forget('containers')
            if spec.job:
                self._await_job(container)
            else:
                self._wait_ready(container)
                if new and spec.values['script']:
                    self._run_script(container)
            self.callbacks.fire('post-start', lambda: self._model(container))
        except (probes.NotReady, JobFailed):
            raise
        except Exception:
            if new and discard:
                self._discard(container)
            raise

    def _wait_ready(self, container: str) -> None:
        gates = self.spec.values['wait-for']
        if gates:
            timeout = self.spec.values['wait-timeout'] or DEFAULT_WAIT_TIMEOUT
            probes.wait_until_ready(self.engine, container, self.spec.name, gates, timeout,
                                    self.spec.part, self.log)

    def _await_job(self, container: str) -> None:
        """Wait for the job to exit; fail with its code and log tail unless it is 0."""
        spec = self.spec
        self.log.info('running job %s', spec.name)
        started = time.monotonic()
        limit = spec.values['wait-timeout']
        while True:
            chunk = JOB_WAIT_CHUNK if limit is None else \
                max(0.1, min(JOB_WAIT_CHUNK, started + limit - time.monotonic()))
            try:
                # docker-py passes the float on to requests; types-docker says int.
                code = self.engine.api.wait(container, timeout=chunk)['StatusCode']  # type: ignore[arg-type]
                break
            except ConnectionFailed:
                # The SDK reports a wait that outlasted its timeout this way; a gone
                # engine fails the inspect below with its own message.
                self.engine.api.inspect_container(container)
            if limit is not None and time.monotonic() - started >= limit:
                self.stop(container)
                raise self._job_failed(container, f'did not finish within {limit:g}s '
                                                  f'(wait-timeout); it was stopped')
        if code != 0:
            raise self._job_failed(container, f'exited with code {code}')
        self.log.info('job %s done in %.1fs', spec.name, time.monotonic() - started)

    def _job_failed(self, container: str, what: str) -> JobFailed:
        """The failure of a job, said with its last log lines; its container removed.

        Buildout forgets a part whose install failed, so nothing would remove the
        container once the part leaves the configuration (when no other part of
        the buildout is left, no code of this package runs at all). Its whole log
        is kept in ``var/log/NAME.log`` instead (mode 0600: a job's output may be
        secret); the next run runs the job again."""
        spec = self.spec
        tail = probes.log_tail(self.engine, container, spec.name)
        path = os.path.join(self.part.directory, 'var', 'log', f'{spec.name}.log')
        kept = ''
        try:
            log = self.engine.api.logs(container, stdout=True, stderr=True, timestamps=True)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_private(path, log if isinstance(log, bytes) else str(log).encode())
            kept = f'; its whole log is in {os.path.relpath(path, self.part.directory)}'
        except (DockerException, TransportError, OSError) as exc:
            self.log.warning('the log of job %s is not kept: %s', spec.name, exc)
        self._discard(container, quiet=True)
        self.log.info('removed job %s: its run failed%s', spec.name, kept)
        return JobFailed(f'{spec.part}: job {spec.name} {what}{tail}')

    def _run_script(self, container: str) -> None:
        spec = self.spec
        self.log.info('running the script of %s', spec.name)
        command = [spec.values['script-shell'], '-c', spec.values['script']]
        code, output = probes.run_in(self.engine, container, command, spec.values['script-user'])
        output = masked(output, (self.env[name] for name in self.secret_names))
        for line in output.splitlines():
            self.log.debug('%s script: %s', spec.name, line)
        if code != 0:
            tail = '\n'.join(f'  {line}' for line in output.rstrip().splitlines()[-probes.LOG_TAIL:])
            raise zc.buildout.UserError(
                f'{spec.part}: option script: exited with code {code} in {spec.name}'
                + (f'; its output:\n{tail}' if tail else ''))

    def _restart_change(self, container: str) -> tuple[str, str] | None:
        """(before, after) of the restart policy when the live container's differs."""
        wanted = self.spec.values['restart'] or {'Name': 'no', 'MaximumRetryCount': 0}
        details = self.engine.api.inspect_container(container)
        current = (details.get('HostConfig') or {}).get('RestartPolicy') or {}
        if (current.get('Name') or 'no') != wanted['Name'] or \
                int(current.get('MaximumRetryCount') or 0) != wanted['MaximumRetryCount']:
            def said(policy: Mapping[str, Any]) -> str:
                retries = int(policy.get('MaximumRetryCount') or 0)
                return (policy.get('Name') or 'no') + (f':{retries}' if retries else '')
            return said(current), said(wanted)
        return None

    def _update_in_place(self, container: str) -> None:
        """Options the engine changes on a live container (the restart policy)."""
        wanted = self.spec.values['restart'] or {'Name': 'no', 'MaximumRetryCount': 0}
        # types-docker's restart policy names leave out 'no' and 'unless-stopped'.
        self.engine.api.update_container(container, restart_policy=wanted)  # type: ignore[arg-type]

    def _anonymous_volumes(self, current: Mapping[str, Any]) -> list[str]:
        """The old container's anonymous volumes, to mount at the same paths in the new one
        (its mounts as listed: a mount never changes, so no request)."""
        taken = {bind['target'] for bind in self.spec.binds()}
        return [f'{mount["Name"]}:{mount["Destination"]}'
                for mount in current.get('Mounts') or []
                if mount.get('Type') == 'volume' and HEX64_RE.match(mount.get('Name') or '')
                and mount['Destination'] not in taken]

    # -- stopping and removing --------------------------------------------------------
    def stop(self, container: str) -> None:
        stop(self.engine, container, self.spec.stop_timeout, self.callbacks)

    def remove(self, container: str, stopped: bool = False) -> None:
        remove(self.engine, container, self.spec.stop_timeout, self.callbacks, stopped)

    def _discard(self, container: str, quiet: bool = False) -> None:
        """Remove a container whose setup failed, without callbacks (its setup never finished)."""
        if not quiet:
            self.log.info('removing %s again: its setup failed', self.spec.name)
        try:
            self.engine.api.remove_container(container, force=True)
        except NotFound:
            pass
        except APIError as exc:
            self.log.warning('could not remove %s: %s', self.spec.name, explain(exc))
        self.engine.forget('containers')

    # -- objects for callbacks ------------------------------------------------------
    def _model(self, container: str) -> Container:
        return container_object(self.engine, container)

    def _planned_model(self, kwargs: dict[str, Any]) -> Container:
        return planned_container(self.engine, self.spec.name, kwargs)


def absent_names(engine: Engine, directory: str, names: list[str]) -> set[str]:
    """The ``names`` no container has, in one listing: each would otherwise be inspected by
    name (:meth:`Runner.find`), one round trip per container of a cold system. Names in the
    buildout's own listing ask nothing (a rerun makes no request here)."""
    listed = {name.lstrip('/') for found in engine.owned('containers', directory)
              for name in found.get('Names') or ()}
    wanted = [name for name in names if name not in listed]
    if not wanted:
        return set()
    taken = {name.lstrip('/') for found in engine.api.containers(all=True, filters={'name': wanted})
             for name in found.get('Names') or ()}
    return set(wanted) - taken


# -- replacing ---------------------------------------------------------------------------
#: What the engine says when it refuses an option, and the option.
REFUSALS = (
    (re.compile(r'capabilit', re.I), 'cap-add'),
    (re.compile(r'network .* not found|no such network', re.I), 'networks'),
    (re.compile(r'volumes?[ -]from|no such container', re.I), 'volumes-from'),
    (re.compile(r'could not get container for|link', re.I), 'links'),
    (re.compile(r'unable to find user|no users found|no matching entries in passwd', re.I), 'user'),
    (re.compile(r'port is already allocated|address already in use|bind for', re.I), 'ports'),
    (re.compile(r'invalid mount|bind source path|invalid volume', re.I), 'volumes'),
    (re.compile(r'executable file not found|no such file or directory', re.I), 'command'),
)


def next_name(name: str) -> str:
    """The temporary name of a container's replacement until it took over."""
    return f'{name[:240]}.replacement'


def refused(spec: ContainerSpec, exc: APIError, old: str,
            tail: str = '') -> zc.buildout.UserError:
    """One line for a change the engine refused, naming the option when it can be told."""
    said = ' '.join(explain(exc).split())
    option = next((name for pattern, name in REFUSALS if pattern.search(said)), None)
    where = f'option {option}: ' if option else ''
    return zc.buildout.UserError(
        f'{spec.part}: {where}the engine refused the new container {spec.name}: {said} '
        f'(the previous container is {old}){tail}')


# -- the engine's arguments --------------------------------------------------------------
def create_arguments(engine: Engine, spec: ContainerSpec, env: Mapping[str, str],
                     labels: Mapping[str, str], inherited: list[str]) -> dict[str, Any]:
    """``create_container`` keyword arguments for a spec."""
    values = spec.values
    binds = [f'{b["source"]}:{b["target"]}:{b["mode"]}' for b in spec.binds()] + inherited
    inherited_paths = {entry.split(':', 1)[1] for entry in inherited}
    anonymous = [v['target'] for v in values['volumes']
                 if v['source'] is None and v['target'] not in inherited_paths]
    port_bindings: dict[str, list[tuple[str, int | None]]] = {}
    for port in values['ports']:
        port_bindings.setdefault(port['container'], []).append((port['ip'], port['host']))
    networks = values['networks']
    host = host_config(
        engine,
        binds=binds or None,
        port_bindings=port_bindings or None,
        links=[tuple(link) for link in values['links']] or None,
        volumes_from=values['volumes-from'] or None,
        restart_policy=values['restart'],
        cap_add=values['cap-add'] or None,
        cap_drop=values['cap-drop'] or None,
        privileged=values['privileged'],
        init=values['init'] or None,
        network_mode=networks[0] if networks else None,
    )
    networking = None
    if spec.user_networks and networks[0] == spec.user_networks[0]:
        networking = networking_config(engine, networks[0], values['network-aliases'] or None)
    healthcheck = None
    if values['healthcheck']:
        healthcheck = {'test': values['healthcheck']}
        if values['healthcheck'] != ['NONE']:
            healthcheck.update(
                interval=_nanoseconds(values['healthcheck-interval']),
                timeout=_nanoseconds(values['healthcheck-timeout']),
                retries=values['healthcheck-retries'],
                start_period=_nanoseconds(values['healthcheck-start-period']))
    return {
        'image': values['image'],
        'name': spec.name,
        'command': values['command'],
        'entrypoint': values['entrypoint'],
        'environment': dict(env) or None,
        'ports': [tuple(p.split('/')) for p in port_bindings] or None,
        'volumes': [b.split(':')[1] for b in binds] + anonymous or None,
        'hostname': values['hostname'],
        'user': values['user'],
        'working_dir': values['working-dir'],
        'tty': values['tty'],
        'labels': dict(labels),
        'healthcheck': healthcheck,
        'host_config': host,
        'networking_config': networking,
    }


def _nanoseconds(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


__all__ = ['Runner', 'Part', 'JobFailed', 'absent_names', 'create_arguments', 'next_name',
           'refused']
