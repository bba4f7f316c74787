"""The base recipe: validation and identity in ``__init__``, bookkeeping once.

Buildout calls ``__init__`` for every part before it uninstalls anything, so
all validation happens there. It calls the uninstall hook of a part whose
options changed *before* installing it again; tearing the object down there
would lose what the new install could adopt. So the hook only acts on parts
that are gone from the configuration; a part that is being reinstalled is
left to its ``install()``, which adopts what exists, changes what must
change, and cleans up stale objects of the same part by their labels. A part
reinstalled on another engine has nothing to adopt there, and what it made
on the old engine is out of its install's reach: the hook hands that over to
:mod:`.moves`, which removes it once the part is on the new engine.

The rule every recipe keeps, held by tests/test_reruns.py over every recipe:
an option written in ``__init__`` is known before anything acts and is the
same after acting. zc.buildout 6 records a part's options before it calls
``install()``, so a value written while acting is never recorded, and a
value that acting changes makes the next run reinstall the part and every
part that references it. What a part will make is therefore said as the
identity of its inputs (:mod:`.identities`), never as an engine id that only
acting can tell.
"""
from __future__ import annotations

import contextlib
import functools
import dataclasses
import json
import logging
import os
import re
from typing import Any, Callable, ClassVar, Mapping, MutableMapping

import zc.buildout
import zc.buildout.buildout

from ..model import options as opt
from ..model import decisions
from ..run import identities, ownership, removals, runlock, runstate
from ..mechanisms import moves, orphans, secrets
from ..model.engine_options import (DOCKEROO_ALIASES, ENGINE_OPTIONS, engine_config, engine_move,
                                    reach, record)
from ..engine.errors import APIError, NotFound
from ..engine.driver import Engine, EngineConfig, engine_errors, explain, identity_hash
from ..engine.labels import (labels_of, owner_labels, LABEL_BUILDOUT, LABEL_IDENTITY,
                             LABEL_INPUTS, LABEL_PART)
from ..model.decisions import BY_BUILDOUT
from ..mechanisms.throwaway import ScriptFailed, Throwaway

#: Options that would put a secret into .installed.cfg; refused everywhere.
PLAIN_SECRETS = ('password', 'token', 'secret', 'private-key', 'auth', 'source-password')

#: What a teardown may hand the slow rest of a removal to (:meth:`Recipe.teardown`).
Defer = Callable[[Callable[[], None]], None]


class Recipe:
    """Shared life cycle of every recipe; subclasses declare and do one job.

    Subclasses set ``recipe`` (the entry point name), ``kind`` (the kind of
    engine object they own) and ``table`` (their options), and implement
    :meth:`decide` and :meth:`act` (install and update: :meth:`converge`); removal is
    :meth:`decide_removal` then :meth:`remove`, the recipe saying what it made
    (:meth:`removal_objects`) and any step its kind of object needs
    (:meth:`remove_object`, :meth:`remove_containers`).
    """

    recipe: ClassVar[str]
    kind: ClassVar[str]
    table: ClassVar[tuple[opt.Option, ...]] = ()
    #: Kinds of engine objects a part of this recipe labels as its own (what is left of
    #: them after its removal was kept on purpose). Every kind unless a recipe says.
    owns: ClassVar[tuple[str, ...]] = ('containers', 'images', 'networks', 'volumes')

    def __init__(self, buildout: Mapping[str, Mapping[str, str]], name: str,
                 options: MutableMapping[str, str]) -> None:
        # Before anything acts: the name becomes paths (bin/PART, parts/PART), labels and
        # lines of generated scripts.
        opt.check_part_name(name)
        self.buildout = buildout
        self.name = name
        self.options = options
        self.log = logging.getLogger(name)
        #: What this buildout run knows (:mod:`.runstate`), kept on buildout's ``Buildout``.
        self.run = runstate.of(buildout)
        self.directory = self.run.directory
        #: The configuration this part belongs to: what it makes is labelled as its own.
        self.owner = self.run.owner
        given = set(options.keys())
        runlock.hold(self.run, name)
        for key in PLAIN_SECRETS:
            if key in options:
                raise self.plain_secret_refused(key)
        self.engine_config = engine_config(name, options, buildout['buildout'], run=self.run)
        self.run.configured_engines[name] = self.engine_config
        # Written into the part so the uninstall hook reaches the same engine (it reads
        # them back without [buildout]: engine_config(recorded=True)). What the part says
        # itself stands; a checked engine is always said; the timeout is left as written
        # (written for every part, it would change the options of installed parts).
        for key, value in record(self.engine_config).items():
            said = [key, DOCKEROO_ALIASES[key]] if key == 'docker-tls-verify' else [key]
            if key != 'timeout' and (value == 'true' or not any(k in options for k in said)):
                options[key] = value
        self.values: dict[str, Any] = self.parse_values(options)
        self._engine: Engine | None = None
        self._written: set[str] = set()
        self.configure()
        self._written = set(options.keys()) - given
        self.warn_misspelt(options, self.known_options())
        self.run.configured[name] = self.recipe
        self.run.parts.update((buildout['buildout'].get('parts') or '').split())
        self.run.parts.add(name)

    def parse_values(self, options: Mapping[str, str]) -> dict[str, Any]:
        """The part's options read by its table: one ``UserError`` for the first bad one."""
        return opt.parse_options(self.name, options, self.table)

    #: Options a recipe takes beyond its table (read by hand, or written for later parts).
    extra_options: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def secrets_taken(cls) -> tuple[str, ...]:
        """The secrets this recipe takes, each by reference (``KEY-env`` or ``KEY-file``)."""
        names = opt.known_names(cls.table) | set(cls.extra_options)
        return tuple(key for key in PLAIN_SECRETS if f'{key}-env' in names)

    def plain_secret_refused(self, key: str) -> zc.buildout.UserError:
        """The refusal of the plain secret ``key``, naming only what this recipe takes."""
        return secrets.plain_secret_refused(self.name, key, self.recipe, self.secrets_taken(),
                                            'env-file' in opt.known_names(self.table))

    def known_options(self) -> set[str]:
        """Every option name this part knows: its table (with the secrets it takes by
        reference), the engine's, and what it writes itself (``${part:image}`` and the like)."""
        return (opt.known_names(self.table) | set(ENGINE_OPTIONS) | set(DOCKEROO_ALIASES.values())
                | set(self.extra_options) | {'recipe'})

    def warn_misspelt(self, options: Mapping[str, str], known: set[str], where: str = '') -> None:
        """One warning line per option close to a known one (see :func:`.options.misspelt`);
        options this part wrote itself are known."""
        for key, close in opt.misspelt(options, known | self.written):
            self.log.warning('%sunknown option %r (did you mean %r?)', where, key, close)

    @property
    def written(self) -> set[str]:
        """What this part wrote into its options in ``__init__`` (``name``, ``image-id``...)."""
        return self._written

    # -- hooks for subclasses -----------------------------------------------
    def configure(self) -> None:
        """Cross-option checks and derived options (written into ``options``)."""

    def decide(self, fresh: bool) -> decisions.Decision:
        """What the part's run does to each object the part owns, and why, asking the
        engine only: the one decision the run acts on (:meth:`act`) and ``dockeroo-plan``
        shows. ``fresh``: an install (first, or after a change or a failure), not an update.

        A recipe that does not say yet is one ``unknown`` change: a plan never
        promises that nothing happens when it cannot tell."""
        return decisions.Decision([decisions.Change(
            self.kind.rstrip('s'), self.name, 'unknown',
            [decisions.Reason('recipe', note=f'{self.recipe} does not plan yet')])], fresh=fresh)

    def act(self, decision: decisions.Decision) -> list[str]:
        """Perform ``decision`` (what :meth:`decide` returned) and nothing else; return the
        files created."""
        raise NotImplementedError

    def publish(self, decision: decisions.Decision) -> None:
        """Tell the parts after this one what the decision promises them (:mod:`.identities`),
        in the run as in a plan: they decide on it before this part's acting shows."""
        for promise in decision.promises:
            if isinstance(promise, decisions.ImageChanges):
                identities.will_change_image(self.run, promise.engine, promise.reference,
                                             promise.why, promise.becomes)
            elif isinstance(promise, decisions.ContainerRemoved):
                identities.will_remove_container(self.run, promise.engine, promise.name,
                                                 promise.id, promise.why)
            else:
                identities.will_push_anew(self.run, promise.reference, promise.why)

    def planned(self, fresh: bool) -> decisions.Decision:
        """Decide and publish the promises: the first half of a run, and all of a plan."""
        decision = self.decide(fresh)
        self.publish(decision)
        return decision

    def converge(self, fresh: bool) -> list[str]:
        """Install (``fresh``) or update: decide, publish the promises, act on the decision."""
        return list(self.act(self.planned(fresh)))

    # -- removal: one decision, one executor ------------------------------------
    #: The default of the part's ``keep`` option (``None``: the recipe has none).
    keep_default: ClassVar[bool | None] = None
    #: The kinds of objects (as a :class:`~.decisions.Change` names them) that ``keep =
    #: true`` keeps: the part's product. What else it made (a crash's throwaway
    #: containers) goes anyway.
    kept_kinds: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def decide_removal(cls, engine: Engine, directory: str, part: str,
                       options: Mapping[str, str]) -> list[decisions.Change]:
        """What removing a part gone from the configuration does to each object it made,
        and why: the one decision :meth:`remove` acts on and ``dockeroo-plan`` shows.

        The recipe lists what it would remove (:meth:`removal_objects`); the keep
        rule is applied here, once; the anonymous volumes of the containers that go
        are named, as left (their data is never removed silently); the files buildout
        removes after the hook are named as buildout's."""
        found = [kept(change, 'keep = true')
                 if change.kind in cls.kept_kinds and cls.keeps_all(options) else change
                 for change in cls.removal_objects(engine, directory, part, options)]
        return found + left_volumes(engine, directory, part, found) + \
            installed_files(directory, options)

    @classmethod
    def removal_objects(cls, engine: Engine, directory: str, part: str,
                        options: Mapping[str, str]) -> list[decisions.Change]:
        """Each object the part made, labelled as its own (:attr:`owns`), to remove; a recipe
        whose objects are not labelled (a pulled image, a file, a tag) says its own."""
        found: list[decisions.Change] = []
        for kind in cls.owns:
            for obj in engine.part_objects(kind, directory, part):
                if kind == 'images':
                    names = references_of(obj)
                else:
                    names = [str((obj.get('Names') or [None])[0] or obj.get('Name') or
                                 obj['Id']).lstrip('/')]
                found.extend(decisions.Change(
                    kind.rstrip('s'), name, 'remove', [decisions.state('its part was removed')],
                    obj.get('Id') or obj.get('Name')) for name in names)
        return found

    @classmethod
    def remove(cls, engine: Engine, directory: str, part: str, options: Mapping[str, str],
               decision: list[decisions.Change], log: logging.Logger,
               defer: Defer | None = None) -> None:
        """Act on :meth:`decide_removal`'s decision and on nothing else: say what is
        kept, remove the containers (dependents first where the recipe knows an order),
        then the other objects kind by kind (what uses an object goes before it).

        With ``defer``, the containers' removal returns once their processes ended and
        hands the engine's clean-up to ``defer`` (:mod:`.removals`)."""
        for change in decision:
            if change.action == 'none':
                log.info('keeping %s %s (%s)', change.kind, change.object,
                         ', '.join(r.text() for r in change.reasons))
        doing = [c for c in decision if c.action == 'remove' and c.how != BY_BUILDOUT]
        going = [c for c in doing if c.kind == 'container']
        if going:
            cls.remove_containers(engine, directory, part, options, going, log, defer)
        for kind in REMOVAL_ORDER:
            for change in doing:
                if change.kind == kind:
                    cls.remove_object(engine, directory, part, options, change, log)

    @classmethod
    def remove_containers(cls, engine: Engine, directory: str, part: str,
                          options: Mapping[str, str], going: list[decisions.Change],
                          log: logging.Logger,
                          defer: Defer | None = None) -> None:
        """Remove the decided containers at once (what a crash left: nothing to stop
        gently); a recipe that runs containers stops them its way."""
        for change in going:
            with contextlib.suppress(NotFound):
                engine.api.remove_container(change.id or change.object, v=False, force=True)
            log.info('removed container %s', change.object)

    @classmethod
    def remove_object(cls, engine: Engine, directory: str, part: str,
                      options: Mapping[str, str], change: decisions.Change,
                      log: logging.Logger) -> None:
        """Remove one decided object that is not a container; a recipe whose kind needs
        more (a volume archived first, a service waited for) adds its step."""
        if change.kind in ('image', 'tag'):
            remove_image(engine, change.object, log)
        elif change.kind == 'secret':
            with contextlib.suppress(NotFound):
                engine.api.remove_secret(change.id or change.object)
                log.info('removed Swarm secret %s', change.object)
        elif change.kind == 'file':
            remove_file(change.object, log)
        elif change.kind == 'directory':
            with contextlib.suppress(OSError):
                os.rmdir(change.object)  # only when nothing else is in it
        elif change.kind in ('volume', 'network'):  # a throwaway's, labelled as the part's
            with contextlib.suppress(NotFound):
                getattr(engine.api, f'remove_{change.kind}')(change.id or change.object)
                log.info('removed %s %s', change.kind, change.object)
        else:
            raise NotImplementedError(f'{cls.recipe} cannot remove a {change.kind}')

    # -- shared pieces ----------------------------------------------------------
    def name_from_part(self) -> str:
        """``name`` defaults to the part name; exposed as ``${part:name}``."""
        if self.values.get('name') is None:
            try:
                self.values['name'] = opt.name(self.name)
            except opt.Invalid as exc:
                raise opt.invalid(self.name, 'name', f'{exc} (the part name is not one: set name)',
                                  self.name) from None
        self.options['name'] = self.values['name']
        return self.values['name']

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self.run.engine(self.engine_config, self.name)
        return self._engine

    def identity_values(self) -> dict[str, Any]:
        """The parsed options that define the object (changes mean a new object)."""
        return {o.name: self.values[o.name] for o in self.table if o.identity}

    def identity(self, **extra: Any) -> str:
        return identity_hash({'recipe': self.recipe, 'part': self.name,
                              **self.identity_values(), **extra})

    def labels(self, identity: str, user: Mapping[str, str] | None = None) -> dict[str, str]:
        """User labels plus the ownership labels (ours win)."""
        return {**(user or {}), **owner_labels(self.owner, self.name, identity, self.recipe)}

    def is_ours(self, obj: Mapping[str, Any]) -> bool:
        """Whether this part's configuration made the object (:mod:`.ownership`)."""
        return self.owner.claims(labels_of(dict(obj)))

    def check_ours(self, obj: Mapping[str, Any], what: str, object_name: str) -> None:
        """Refuse to touch an object that another buildout, another configuration of this
        one (another ``installed`` record, another machine) or a person made."""
        labels = labels_of(dict(obj))
        owner = labels.get(LABEL_BUILDOUT)
        if self.owner.claims(labels):
            return
        if owner == self.directory:
            other = ownership.Owner(owner, labels.get(ownership.LABEL_INSTALLED, ''),
                                    labels.get(ownership.LABEL_HOST, ''))
            raise zc.buildout.UserError(
                f'{self.name}: {what} {object_name!r} already exists and belongs to another '
                f'configuration of this buildout: {other.describe()} (part '
                f'{labels.get(LABEL_PART)}); choose another name')
        if owner:
            raise zc.buildout.UserError(
                f'{self.name}: {what} {object_name!r} already exists and belongs to the buildout in '
                f'{owner} (part {labels.get(LABEL_PART)}); choose another name')
        raise zc.buildout.UserError(
            f'{self.name}: {what} {object_name!r} already exists and was not made by this buildout '
            f'(it has no {LABEL_BUILDOUT} label); remove it or choose another name')

    def replaced_in_this_run(self, container: Mapping[str, Any]) -> bool:
        """Whether a container belongs to a part of this configuration: that part is
        installed or updated later in the run and makes it match (replacing it when
        its options changed)."""
        labels = labels_of(dict(container))
        return self.owner.claims(labels) and labels.get(LABEL_PART) in self.run.configured

    def remove_old_name(self, what: str, name: str, remove: Callable[[Engine], None],
                        strict: bool = True) -> None:
        """Remove an object of this part under its old name (its name option changed).

        When the object and the containers using it are renamed together, the old
        containers still use it now: their parts are installed after this one and
        replace them then. So if every user is a container of a part of this
        configuration, ``remove`` runs at the end of the run (a user still left
        then is warned of; the next run tries again). Any other user is
        ``remove``'s to refuse, as for a removed part; ``strict=False`` (a later
        run trying again) makes that refusal a warning.
        """
        users = self.engine.users(self.kind, name)
        if not users or not all(self.replaced_in_this_run(c) for c in users):
            try:
                remove(self.engine)
            except zc.buildout.UserError as exc:
                if strict:
                    raise
                self.log.warning('%s; it is left, the next run tries again', exc)
            return
        self.log.info('%s %s (its old name) is still used by the parts %s; removing it at the '
                      'end of the run, after they replaced their containers', what, name,
                      ', '.join(sorted({str(labels_of(c).get(LABEL_PART)) for c in users})))
        config, log, kind, run = self.engine_config, self.log, self.kind, self.run

        def later() -> None:
            with engine_errors(log.name, config):
                engine = run.engine(config, log.name)
                engine.forget(kind)
                try:
                    remove(engine)
                except zc.buildout.UserError as exc:  # the parts' installs have said why
                    log.warning('%s; it is left, the next run tries again', exc)
        removals.at_end(run, later)

    def decide_old_names(self, name: str, fresh: bool, keep: bool,
                         removal: tuple[decisions.Reason, ...] = ()) -> list[decisions.Change]:
        """The part's objects of its kind under another name than ``name`` (its name option
        changed): ``remove`` (with the ``removal`` reasons), ``none`` with ``keep``.

        Looked for on an install, and on an update unless kept: an old name an
        earlier run could not remove yet (its users were replaced later in that run,
        :meth:`remove_old_name`) is tried again. One rule for volumes and networks.
        """
        if keep and not fresh:
            return []
        what = self.kind.rstrip('s')
        return [decisions.Change(what, old['Name'], 'none' if keep else 'remove', [
            decisions.state(f'the old name of the part\'s {what} ({name} now)'),
            *(() if keep else removal)], old.get('Id') or old['Name'])
            for old in self.engine.part_objects(self.kind, self.directory, self.name)
            if old['Name'] != name]

    def act_on_old_names(self, changes: list[decisions.Change], fresh: bool,
                         remove: Callable[[Engine, decisions.Change], None]) -> None:
        """Keep or remove the objects under old names as :meth:`decide_old_names` decided;
        ``remove`` removes one (refusing when someone else uses it). On an update (a later
        run trying again) a refusal is a warning."""
        what = self.kind.rstrip('s')
        for change in changes:
            if change.action == 'remove':
                self.remove_old_name(what, change.object, strict=fresh,
                                     remove=functools.partial(_swapped, remove, change))
            else:
                self.log.info('keeping %s %s (keep = true)', what, change.object)

    def find_named(self, kind: str, name: str, what: str) -> dict[str, Any] | None:
        """The object called ``name``: from the run's shared listing when it is ours,
        else inspected, and refused when it belongs to someone else."""
        current = next((o for o in self.engine.owned(kind, self.directory)
                        if o.get('Name') == name), None)
        if current is None:
            current = self.engine.named(kind, name)
            if current is not None:
                self.check_ours(current, what, name)
        return current

    def local_image_id(self, option: str, reference: str | None = None) -> str:
        """The id of the local image that ``option`` names (``reference``: one of its
        values), or one line saying it is missing (:meth:`missing_image`).

        While planning, an image an earlier part is planned to make counts
        (:meth:`.driver.Engine.image_id`)."""
        reference = self.values[option] if reference is None else reference
        found = self.engine.image_id(reference)
        if found is None:
            raise self.missing_image(option, reference)
        return found

    def missing_image(self, option: str, reference: str | None = None) -> zc.buildout.UserError:
        """The line for an image an option names that is not on the engine: an image a part
        builds on is never pulled behind the user's back, another part makes it."""
        reference = self.values[option] if reference is None else reference
        return zc.buildout.UserError(
            f'{self.name}: option {option}: image {reference} does not exist (make it with a '
            f'docker.pull, docker.build, docker.image or docker.bootstrap part, or load it)')

    @staticmethod
    def identity_of(obj: Mapping[str, Any]) -> str | None:
        return labels_of(dict(obj)).get(LABEL_IDENTITY)

    def installed_before(self, fresh: bool) -> bool:
        """Whether the part was installed by an earlier run (so a missing object was removed)."""
        return not fresh or self.name in self.run.reinstalling

    def newest(self) -> bool:
        """Buildout's newest mode (off with -N)."""
        return self.buildout['buildout'].get('newest', 'true') == 'true'

    # -- buildout's entry points ------------------------------------------------
    def install(self) -> list[str]:
        return self._install_or_update(fresh=True)

    def update(self) -> list[str]:
        return self._install_or_update(fresh=False)

    def _install_or_update(self, fresh: bool) -> list[str]:
        """What install and update both do first (finish the run's pending removals and
        moves, sweep orphans once), then :meth:`converge`."""
        removals.finish(self.run, raising=False)
        moves.resume(self.run, recipe_class)
        with engine_errors(self.name, self.engine_config):
            orphans.sweep_once(self.engine, self.directory)
            return self.converge(fresh=fresh)

    @classmethod
    def uninstall(cls, name: str, options: Mapping[str, str]) -> None:
        """Buildout's uninstall hook: act only when the part is really gone, or has gone to
        another engine (what it made on the old one goes once it is on the new one:
        :mod:`.moves`). A part gone from the configuration whose engine does not answer is
        said in one line and forgotten: a run that could never reach that engine again
        must not stop every later run."""
        run = runstate.of_options(options)  # a run that only uninstalls made no recipe
        directory = run.directory
        log = logging.getLogger(name)
        runlock.hold(run, name)  # a run that only uninstalls must not interleave either
        moves.resume(run, recipe_class)
        if run.configured.get(name) == cls.recipe:
            move = engine_move(run, name, options)
            if move is None:
                run.reinstalling.add(name)
                run.previous[name] = dict(options)
                log.debug('%s is being reinstalled: its install adopts what exists', name)
            elif move.engine is None:
                moves.say_left(run, name, move.why, move.new.describe())
            else:  # made anew there: neither installed before nor with these options
                moves.leave_behind(run, name, options, move.old, move.new, recipe_class)
            return
        config = engine_config(name, options, recorded=True, run=run)
        order = cls.removal_order(options)
        if order is None:
            removals.finish(run)
        engine, why = reach(run, name, config)
        if engine is None:
            log.warning('%s', left_by_removal(run, name, config, why))
            return
        with engine_errors(name, config):
            orphans.sweep_once(engine, directory)
            decision = cls.decide_removal(engine, directory, name, options)
            if order is not None:
                cls._remove_in_background(engine, directory, name, options, order, decision)
                return
            cls.remove(engine, directory, name, options, decision, log)
            # Lists afresh only what this kind of part changes: the next part reuses it.
            orphans.released(engine, directory, name, kinds=cls.owns,
                             unchanged=not removes_any(decision))

    @classmethod
    def keeps_all(cls, options: Mapping[str, str]) -> bool:
        """The part's ``keep`` as recorded (the recipe's default when it is not said, or
        no longer parses): whether its removal keeps its product (:attr:`kept_kinds`)."""
        return cls.keep_default is not None and opt.saved_flag(options, 'keep', cls.keep_default)

    @classmethod
    def removal_order(cls, options: Mapping[str, str]
                      ) -> tuple[frozenset[str], frozenset[str]] | None:
        """(container names, names they come after) when the removal may run in the
        background (see :mod:`.removals`); ``None`` to tear down before the hook returns."""
        return None

    @classmethod
    def _remove_in_background(cls, engine: Engine, directory: str, name: str,
                              options: Mapping[str, str],
                              order: tuple[frozenset[str], frozenset[str]],
                              decision: list[decisions.Change]) -> None:
        """:meth:`remove` of the decision, in a worker of :mod:`.removals`: after the
        removals of what comes after the part's containers, alongside the others."""
        forked = engine.fork(name)   # here: the shared listings change under this thread
        log = logging.getLogger(name)
        saved = dict(options)

        later: list[Callable[[], None]] = []

        def work() -> Callable[[], None]:
            """Until the processes ended (what depends on them waits for that much)."""
            try:
                with engine_errors(name, engine.config):
                    cls.remove(forked, directory, name, saved, decision, log,
                               defer=later.append)
            except BaseException:
                forked.close()
                raise
            return rest

        def rest() -> None:
            """The engine's clean-up, alongside the next removals."""
            try:
                with engine_errors(name, engine.config):
                    for step in later:
                        step()
                    orphans.released(forked, directory, name, kinds=cls.owns)
            finally:
                forked.close()
        removals.submit(engine.run, name, engine.config.key(), *order, work)


def _swapped(remove: Callable[[Engine, decisions.Change], None], change: decisions.Change,
             engine: Engine) -> None:
    """``remove(engine, change)``, for :meth:`Recipe.act_on_old_names`."""
    remove(engine, change)


#: The order :meth:`Recipe.remove` removes kinds of objects in, after the containers: what
#: uses an object before it (a service before its secrets, a tag before its image).
REMOVAL_ORDER = ('service', 'secret', 'tag', 'image', 'volume', 'network', 'file', 'directory')

#: The name the engine gives an anonymous volume.
ANONYMOUS_VOLUME = re.compile(r'[0-9a-f]{64}')


def kept(change: decisions.Change, why: str) -> decisions.Change:
    """``change`` as kept on removal, and why (``keep = true``): the keep rule's one shape."""
    return dataclasses.replace(change, action='none', reasons=[decisions.state(why)])


def removes_any(decision: list[decisions.Change]) -> bool:
    """Whether a removal decision removes anything on the engine (else the run's listings
    stay valid: a hundred kept volumes would otherwise be listed a hundred times)."""
    return any(c.action == 'remove' and c.how != BY_BUILDOUT for c in decision)


def left_volumes(engine: Engine, directory: str, part: str,
                 decision: list[decisions.Change]) -> list[decisions.Change]:
    """The anonymous volumes of the containers the decision removes: they stay, with
    their data (the engine would remove them with ``v``, silently, and a toji-style data
    container holds its data in them), and are named with the command that removes them."""
    going = {c.id for c in decision if c.kind == 'container' and c.action == 'remove'}
    found: list[decisions.Change] = []
    for container in engine.part_objects('containers', directory, part):
        if container['Id'] not in going:
            continue
        name = str((container.get('Names') or ['?'])[0]).lstrip('/')
        for mount in container.get('Mounts') or []:
            volume = str(mount.get('Name') or '')
            if mount.get('Type') == 'volume' and ANONYMOUS_VOLUME.fullmatch(volume):
                found.append(decisions.Change('volume', volume, 'none', [decisions.state(
                    f'anonymous volume of container {name} at {mount.get("Destination")}: its '
                    f'data stays (docker volume rm {volume} removes it)')], volume))
    return found


def installed_files(directory: str, options: Mapping[str, str]) -> list[decisions.Change]:
    """The files and directories the part installed, which buildout removes after the
    uninstall hook (copies on the host with ``keep = false`` among them)."""
    return [decisions.Change('file', path, 'remove', [decisions.state(
        'buildout removes what the part installed')], how=BY_BUILDOUT)
        for path in (os.path.join(directory, line.strip()) for line in
                     (options.get('__buildout_installed__') or '').splitlines() if line.strip())
        if os.path.lexists(path)]


def reference_removal(engine: Engine, reference: str, why: str,
                      leaving: str | None = None) -> list[decisions.Change]:
    """The removal of an image's name ``reference`` (none when it names nothing): an
    ``image`` when it is the image's only name (the image goes with it), else a ``tag``
    (the image stays under its other names); with ``leaving``, kept for that reason."""
    current = engine.inspect('images', reference)
    if current is None:
        return []
    tags = [t for t in current.get('RepoTags') or [] if t != '<none>:<none>']
    change = decisions.Change('image' if len(tags) <= 1 else 'tag', reference, 'remove',
                              [decisions.state(why)], current['Id'])
    return [kept(change, leaving) if leaving else change]


def remove_file(path: str, log: logging.Logger) -> None:
    """Remove a file a part wrote on the host (a missing one is gone already)."""
    try:
        os.unlink(path)
        log.info('removed %s', path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning('%s not removed: %s', path, exc.strerror)


def left_by_removal(run: runstate.Run, part: str, config: EngineConfig, why: str) -> str:
    """What a part gone from the configuration leaves on an engine it cannot reach
    (``why``), and whether a later run removes it: the orphan sweep of an engine removes
    the containers, images and networks of parts neither installed nor configured (volumes
    it only reports), once a part of the buildout acts there."""
    there = sorted(other for other, on in run.configured_engines.items()
                   if other != part and on.key() == config.key())
    if there:
        later = (f'the first run that reaches that engine removes it (part {there[0]} is on '
                 f'it; volumes are only reported)')
    else:
        later = ('no part of this buildout is on that engine now, so it stays (a run with a '
                 'part there removes it; volumes are only reported)')
    return f'removed from the configuration, but {why}: what it made there is left; {later}'


def uninstaller(cls: type[Recipe]):
    """The module-level function buildout's uninstall entry point names."""
    def uninstall(name: str, options: Mapping[str, str]) -> None:
        cls.uninstall(name, options)
    uninstall.__doc__ = f'Uninstall hook of {cls.recipe}.'
    return uninstall


#: What a candidate image is tagged as while its ``test`` runs: ``NAME:TAG-candidate``.
CANDIDATE_SUFFIX = '-candidate'


def candidate_of(image: str) -> str:
    """The candidate's name of the image ``NAME:TAG`` (see :attr:`ImageRecipe.candidate`)."""
    repository, tag = image.rsplit(':', 1)
    return f'{repository}:{tag[:128 - len(CANDIDATE_SUFFIX)]}{CANDIDATE_SUFFIX}'


def test_commands(raw: str) -> tuple[str, ...]:
    """``test``: one shell command a line, run in order; the first that fails stops."""
    return tuple(opt.lines(raw))


#: The options of an image's self-check; an image recipe adds them to its table.
CANDIDATE_OPTIONS = (
    opt.Option('test', test_commands, default='', identity=False,
               doc=('Self-checks: one shell command a line, run in a throwaway container of the '
                    'new image tagged ``NAME:TAG-candidate``; ``NAME:TAG`` moves only when all '
                    'pass.')),
    opt.Option('test-shell', opt.text, default='/bin/sh', identity=False,
               doc='The shell that runs ``test``.'),
)


class ImageRecipe(Recipe):
    """A recipe whose product is one tagged image, made again exactly when its inputs change.

    ``configure`` calls :meth:`image_from_options`; :meth:`decide` compares
    the identity of :meth:`image_inputs` with the tagged image's; ``act``
    hands the decision and a function that makes an untagged image to
    :meth:`make_image`, which builds when the decision says ``build``, removes
    whatever the part left unfinished when it fails, and tags and tidies up
    when it succeeds.

    With :data:`CANDIDATE_OPTIONS` in the table, a ``test`` makes the new
    image a candidate first (makina-states' candidate, docker_meta's tested
    updates): it is tagged ``NAME:TAG-candidate``, each test command runs in
    a throwaway container of it, and only when all pass does ``NAME:TAG``
    move to it. When one fails, ``NAME:TAG`` stays on the previous image (so
    containers made from it run on, untouched), the candidate keeps its tag
    for inspection until the next run, and buildout stops with the test's
    last output lines.
    """

    kind = 'images'
    keep_default = False
    kept_kinds = ('image',)
    image: str

    @classmethod
    def removal_objects(cls, engine: Engine, directory: str, part: str,
                        options: Mapping[str, str]) -> list[decisions.Change]:
        """The base's, but of its images only the names this part gave (``image``, the
        candidate's, or an untagged image's id): another name of the same image is
        another part's (a docker.load of its saved file) or someone's, for them to
        remove, and the image stays under it."""
        image = options.get('image') or ''
        own = {image, candidate_of(image)} if ':' in image else set()
        return [change for change in super().removal_objects(engine, directory, part, options)
                if change.kind != 'image' or change.object in own or change.object == change.id]
    #: The id ``image`` points at after :meth:`make_image`.
    made_image_id: str | None = None
    #: The identity and labels of the image to make, known in ``configure`` (a recipe
    #: that reads more when it decides says so in :meth:`image_inputs`).
    identity_now: str
    image_labels: dict[str, str]

    def image_from_options(self) -> str:
        """``name`` (the part name by default) with ``tag`` (``latest``), as ``${part:image}``;
        the image is registered as made by this part (:mod:`.identities`)."""
        reference = self.image_named_by_options()
        if identities.maker_of(self.run, self.engine_config, reference) != self.name:
            identities.will_make_image(self.run, self.engine_config, reference, None,
                                       self.name)
        return reference

    def image_named_by_options(self) -> str:
        """``name`` (the part name by default) with ``tag`` (``latest``), as ``${part:image}``,
        for a part that names an image it does not make (docker.save)."""
        given = (self.options.get('name') or '').strip()
        raw = given or self.name
        try:
            reference = opt.image_reference(raw)
        except opt.Invalid as exc:
            hint = '' if given else ' (the part name is not one: set name)'
            raise opt.invalid(self.name, 'name', f'{exc}{hint}', raw) from None
        if '@' in reference:
            raise opt.invalid(self.name, 'name', 'a name to tag, not a digest', raw)
        tag = (self.options.get('tag') or '').strip()
        tagged = ':' in reference.rsplit('/', 1)[-1]
        if tag and tagged:
            raise opt.invalid(self.name, 'tag', 'a tag in name or in tag, not in both', tag)
        if not tagged:
            reference += f':{tag or "latest"}'
        # A configuration may say ${part:image} itself (image = ${:name}), so that a section
        # the part reads can name the image before the part has written it (a profile's
        # settings section does: see profiles/koji.cfg); it must be what the part writes.
        said = self.options.get('image')
        if said is not None and said.strip() != reference:
            raise opt.invalid(self.name, 'image', f'{reference} (written by the part from name '
                              f'and tag) or no image line', said.strip())
        self.image = self.options['image'] = reference
        return reference

    def expose_identity(self, identity: str) -> None:
        """``${part:image-id}``: the identity of the image's inputs, known before anything acts.

        Not the engine's id, which a rebuild only knows afterwards: zc.buildout
        records the options before ``install()``, so a value written then is lost
        and the next run would see a change (see :mod:`.identities`). The identity
        changes exactly when the image is made again, which is what a part that
        references it needs; ``${part:image}`` names the image itself.
        """
        self.options['image-id'] = identity
        identities.will_make_image(self.run, self.engine_config, self.image, identity,
                                   self.name)

    def image_identity(self, **extra: Any) -> tuple[str, dict[str, str]]:
        """The identity of the image to make and the labels that record it."""
        inputs = {**self.identity_values(), **extra}
        identity = self.identity(**extra)
        labels = self.labels(identity)
        labels[LABEL_INPUTS] = json.dumps(
            {key: identity_hash(value)[:8] for key, value in inputs.items()},
            sort_keys=True, separators=(',', ':'))
        return identity, labels

    def image_inputs(self) -> tuple[str, dict[str, str]]:
        """(identity, labels) of the image to make, as :meth:`image_identity` gives them;
        ``identity_now`` and ``image_labels`` unless a recipe reads more."""
        return self.identity_now, self.image_labels

    def decide(self, fresh: bool) -> decisions.Decision:
        """Build when the tagged image's identity is not the inputs' one; a build is
        promised to the parts that start from the image."""
        identity, labels = self.image_inputs()
        return self.decide_image(identity, labels, fresh)

    def decide_image(self, identity: str, labels: dict[str, str],
                     fresh: bool) -> decisions.Decision:
        """The decision of :meth:`decide` for an image of this identity and labels."""
        current, change = self._image_decision(identity, labels)
        promises: list[decisions.Promise] = []
        if change.action != 'none':
            promises.append(decisions.ImageChanges(
                self.engine_config, self.image,
                f'{"rebuilt" if change.id else "built"} by {self.name}: '
                + ', '.join(r.text() for r in change.reasons)))
        return decisions.Decision([change], promises, {
            'current': current, 'identity': identity, 'labels': labels}, fresh)

    def make_image(self, decision: decisions.Decision,
                   build: Callable[[dict[str, str]], str]) -> bool:
        """Make the image with ``build`` (given the labels) when the decision says
        ``build``; True when it was made.

        ``self.made_image_id`` is the id the tag points at afterwards.
        """
        current = decision.found['current']
        labels = decision.found['labels']
        if decision.action() != 'build':
            self.made_image_id = current['Id'] if current is not None else None
            if decision.fresh and current is not None:
                self._remove_stale(current['Id'])
            return False
        if current is not None:
            self.log.info('rebuilding %s: %s', self.image, _why(current, labels))
        else:
            self.log.info('building %s', self.image)
        try:
            image_id = build(labels)
            tests = self.values.get('test')
            if tests:
                self._self_check(image_id, tests, labels)
        except BaseException:
            self.engine.forget()
            self._remove_unfinished()
            raise
        repository, tag = self.image.rsplit(':', 1)
        self.engine.api.tag(image_id, repository, tag, force=True)
        self.made_image_id = image_id
        self.log.info('built %s (%s)', self.image, image_id[:19])
        if self.values.get('test'):
            remove_image(self.engine, self.candidate, self.log, quiet=True)
        if current is not None and current['Id'] != image_id:
            self.retire_image(current['Id'])
        self.engine.forget()
        if decision.fresh:
            self._remove_stale(image_id)
        return True

    def _image_decision(self, identity: str, labels: Mapping[str, str]
                        ) -> tuple[dict[str, Any] | None, decisions.Change]:
        """(the tagged image now, whether to make it anew and why)."""
        current = self.engine.inspect('images', self.image)
        if current is not None:
            self.check_ours(current, 'image', self.image)
            if self.identity_of(current) == identity:
                return current, decisions.Change('image', self.image, 'none', [], current['Id'])
            keys = _changed_keys(current, labels)
            reasons = ([r for key in keys for r in self.explain_inputs(key, current, labels)]
                       if keys else
                       [decisions.state(_why(current, labels))])
            return current, decisions.Change('image', self.image, 'build', reasons, current['Id'])
        return None, decisions.Change('image', self.image, 'build',
                                      [decisions.state('there is no such image yet')])

    def explain_inputs(self, key: str, current: Mapping[str, Any],
                       labels: Mapping[str, str]) -> list[decisions.Reason]:
        """Why an input of the image changed (a recipe that records more says more)."""
        return [decisions.Reason.of(key)]

    def retire_image(self, image_id: str) -> None:
        """Remove the image a new one replaced (see :func:`retire_image`)."""
        retire_image(self.engine, self.log, image_id)

    @property
    def candidate(self) -> str:
        """``NAME:TAG-candidate``: where a new image waits while its tests run."""
        return candidate_of(self.image)

    def _self_check(self, image_id: str, tests: tuple[str, ...], labels: Mapping[str, str]) -> None:
        """Tag the new image as the candidate and run each test command in a container of it."""
        repository, tag = self.candidate.rsplit(':', 1)
        before = self.engine.image_id(self.candidate)
        self.engine.api.tag(image_id, repository, tag, force=True)
        if before and before != image_id:
            remove_image(self.engine, before, self.log, quiet=True)  # an earlier failed candidate
        self.log.info('testing the candidate %s (%s)', self.candidate, image_id[:19])
        with Throwaway(self.engine, image_id, self.name, labels, what='test container',
                       shell=self.values.get('test-shell') or '/bin/sh', log=self.log) as box:
            for number, command in enumerate(tests, 1):
                what = f'test {number}' if len(tests) > 1 else 'test'
                try:
                    box.run(what, command)
                except ScriptFailed as exc:
                    said = ' | '.join(' '.join(line.split()) for line in exc.tail[-3:])
                    kept = (f'{self.image} stays on the previous image' if self.engine.image_id(
                        self.image) else f'{self.image} was not tagged')
                    raise zc.buildout.UserError(
                        f'{self.name}: {what} failed (exit code {exc.code}): {opt.short(command, 60)}'
                        f'{": " + said if said else ""}; {kept}, the new image is kept as '
                        f'{self.candidate} for inspection') from None
        self.log.info('the candidate %s passed %d test%s', self.candidate, len(tests),
                      '' if len(tests) == 1 else 's')

    def _remove_unfinished(self) -> None:
        """Untagged images of this part: what a failed build left."""
        for image in self.engine.api.images(filters={'dangling': True, 'label': [
                f'{LABEL_BUILDOUT}={self.directory}', f'{LABEL_PART}={self.name}']}):
            if self.is_ours(image):
                remove_image(self.engine, image['Id'], self.log, quiet=True)

    def _remove_stale(self, keep_id: str) -> None:
        """Images this part made under an earlier name."""
        if opt.boolean(self.options.get('keep', 'false') or 'false'):
            return
        for image in self.engine.part_objects('images', self.directory, self.name):
            if image['Id'] != keep_id:
                for tag in references_of(image):
                    remove_image(self.engine, tag, self.log, quiet=True)
                self.retire_image(image['Id'])  # still run by containers: at the end of the run


def retire_image(engine: Engine, log: logging.Logger, image_id: str) -> None:
    """Remove an image a new one replaced under its tag; while containers still run it
    (their parts replace them later in the run), at the end of the run, so that no
    untagged image is left for the next run to sweep. Shared by the recipes that move a
    tag to a new image (every image recipe, docker.load)."""
    try:
        engine.api.remove_image(image_id)
        log.info('removed image %s', image_id[:19])
        return
    except NotFound:
        return
    except APIError as exc:
        if exc.status_code != 409:
            log.debug('image %s kept: %s', image_id[:19], explain(exc))
            return
    run = engine.run
    if not run.retiring:
        removals.at_end(run, lambda: _retire_at_end(run))
    run.retiring.append((engine.config, log, image_id))


def retire_untagged(engine: Engine, log: logging.Logger, replaced: str) -> None:
    """Remove an image a part's new one replaced under its name when no tag names it any
    more (one that keeps another tag is someone's: it stays), so that no untagged image
    is left for the next run to sweep (docker.load, and docker.pull of a pushed image:
    parts that bring an image another engine made, which this engine's build parts do
    not retire)."""
    found = engine.inspect('images', replaced)
    if found is not None and not [t for t in found.get('RepoTags') or []
                                  if t != '<none>:<none>']:
        retire_image(engine, log, replaced)


def _retire_at_end(run: runstate.Run) -> None:
    """Remove the replaced images, once their containers were replaced: newest first and
    again while one goes (an image committed from a container of an older one is its child)."""
    pending = list(reversed(run.retiring))
    run.retiring.clear()
    while pending:
        left = []
        for config, log, image_id in pending:
            with engine_errors(log.name, config):
                engine = run.engine(config, log.name)
                try:
                    engine.api.remove_image(image_id)
                    log.info('removed image %s (replaced)', image_id[:19])
                except NotFound:
                    pass
                except APIError as exc:
                    left.append((config, log, image_id, exc))
        if len(left) == len(pending):
            for _, log, image_id, error in left:
                log.debug('image %s kept: %s', image_id[:19], explain(error))
            break
        pending = [entry[:3] for entry in left]


def recipe_class(options: Any) -> type[Recipe] | None:
    """The recipe class an installed part was made with (``None``: not one of ours); what
    :mod:`.moves` is handed to tear down what a part left on an engine."""
    spec, entry = zc.buildout.buildout._recipe(options)
    pkg_resources = zc.buildout.buildout.pkg_resources  # buildout's own (it vendors it)
    try:
        found = pkg_resources.load_entry_point(
            pkg_resources.Requirement.parse(spec).project_name, 'zc.buildout', entry)
    except (ImportError, pkg_resources.DistributionNotFound, ValueError):
        return None
    return found if isinstance(found, type) and issubclass(found, Recipe) else None


def references_of(image: Mapping[str, Any]) -> list[str]:
    """The tags of a listed image, or its id when it has none (the engine lists an
    untagged image as ``<none>:<none>``, which is no reference)."""
    return [tag for tag in image.get('RepoTags') or [] if tag != '<none>:<none>'] or [image['Id']]


def _changed_keys(current: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    """The inputs whose short hash differs (empty: the labels cannot say)."""
    found = labels_of(dict(current))
    if found.get(LABEL_PART) != labels.get(LABEL_PART):
        return []
    try:
        before = json.loads(found.get(LABEL_INPUTS) or '{}')
        now = json.loads(labels.get(LABEL_INPUTS) or '{}')
    except ValueError:
        return []
    return sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))


def _why(current: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """Which inputs differ from the ones the current image was made from."""
    found = labels_of(dict(current))
    if found.get(LABEL_PART) != labels.get(LABEL_PART):
        return f'it was made by part {found.get(LABEL_PART)}'
    try:
        before = json.loads(found.get(LABEL_INPUTS) or '{}')
        now = json.loads(labels.get(LABEL_INPUTS) or '{}')
    except ValueError:
        return 'its inputs changed'
    changed = sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))
    if not changed:
        return 'its inputs changed'
    return 'its inputs changed (' + ', '.join(f'{key} changed' for key in changed) + ')'


def remove_image(engine: Engine, reference: str, log: logging.Logger, quiet: bool = False,
                 why: str = '') -> None:
    """Remove an image by tag or id and say so (``why``: in brackets after it); one that is
    gone already is no failure, one the engine keeps (in use, another tag's child) is said
    (``quiet``: in the debug log only), and the removal goes on. Every recipe's image
    removal goes through here."""
    shown = reference if not reference.startswith('sha256:') else reference[:19]
    because = f' ({why})' if why else ''
    try:
        engine.api.remove_image(reference)
        log.info('removed image %s%s', shown, because)
    except NotFound:
        pass
    except APIError as exc:
        (log.debug if quiet else log.warning)('image %s kept: %s', reference[:40], explain(exc))


__all__ = ['Recipe', 'ImageRecipe', 'uninstaller', 'kept', 'removes_any', 'remove_file', 'remove_image',
           'reference_removal',
           'BY_BUILDOUT', 'engine_config', 'retire_image',
           'retire_untagged', 'left_by_removal',
           'ENGINE_OPTIONS', 'DOCKEROO_ALIASES', 'CANDIDATE_OPTIONS']
