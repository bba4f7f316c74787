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
import json
import logging
from typing import Any, Callable, ClassVar, Mapping, MutableMapping

import docker.errors
import zc.buildout

from . import options as opt
from . import (decisions, identities, moves, orphans, ownership, removals, runlock, runstate,
               secrets)
from .engine_options import (DOCKEROO_ALIASES, ENGINE_OPTIONS, engine_config, engine_move,
                             reach)
from .engine import (Engine, EngineConfig, engine_errors, identity_hash,
                     labels_of, owner_labels, LABEL_BUILDOUT, LABEL_IDENTITY, LABEL_INPUTS,
                     LABEL_PART)
from .throwaway import ScriptFailed, Throwaway

#: Options that would put a secret into .installed.cfg; refused everywhere.
PLAIN_SECRETS = ('password', 'token', 'secret', 'private-key', 'auth', 'source-password')

class Recipe:
    """Shared life cycle of every recipe; subclasses declare and do one job.

    Subclasses set ``recipe`` (the entry point name), ``kind`` (the kind of
    engine object they own) and ``table`` (their options), and implement
    :meth:`apply` (install and update) and :meth:`teardown` (removal).
    """

    recipe: ClassVar[str]
    kind: ClassVar[str]
    table: ClassVar[tuple[opt.Option, ...]] = ()
    #: Kinds of engine objects a part of this recipe labels as its own (what is left of
    #: them after its teardown was kept on purpose). Every kind unless a recipe says.
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
        for key, value in (('docker-host', self.engine_config.host),
                           ('docker-cert-path', self.engine_config.cert_path),
                           ('machine-name', self.engine_config.context)):
            # Written into the part so the uninstall hook reaches the same engine (it reads
            # them back without [buildout]: engine_config(recorded=True)).
            if value and key not in options:
                options[key] = value
        if self.engine_config.tls_verify:
            options['docker-tls-verify'] = 'true'
        elif self.engine_config.tls_verify is False and self.engine_config.cert_path and \
                not any(key in options for key in ('docker-tls-verify', 'engine-tls-verify')):
            # Not checking is said where the uninstall hook reads it; a directory alone
            # (nothing written) is read back as checking, as before.
            options['docker-tls-verify'] = 'false'
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

    def apply(self, fresh: bool) -> list[str]:
        """Make the engine match the configuration; return files created."""
        raise NotImplementedError

    def decide(self, fresh: bool) -> list[decisions.Change]:
        """What :meth:`apply` would do to each object the part owns, and why, asking the
        engine only (``fresh`` as for :meth:`apply`); the decision ``apply`` acts on.

        A recipe that does not say yet is one ``unknown`` change: a plan never
        promises that nothing happens when it cannot tell."""
        return [decisions.Change(self.kind.rstrip('s'), self.name, 'unknown', [decisions.Reason(
            'recipe', note=f'{self.recipe} does not plan yet')])]

    @classmethod
    def decide_removal(cls, engine: Engine, directory: str, part: str,
                       options: Mapping[str, str]) -> list[decisions.Change]:
        """What the uninstall hook does to a part gone from the configuration: its
        objects removed (left when ``keep``: :meth:`keeps_all`)."""
        kept = cls.keeps_all(options)
        found = []
        for kind in cls.owns:
            for obj in engine.part_objects(kind, directory, part):
                name = (obj.get('Names') or [None])[0] or obj.get('Name') or \
                    next(iter(obj.get('RepoTags') or []), None) or obj.get('Id')
                found.append(decisions.Change(
                    kind.rstrip('s'), str(name).lstrip('/'), 'none' if kept else 'remove',
                    [decisions.state('kept (keep = true)' if kept else 'its part was removed')],
                    obj.get('Id') or obj.get('Name')))
        return found

    @classmethod
    def teardown(cls, engine: Engine, directory: str, part: str,
                 options: Mapping[str, str], log: logging.Logger) -> None:
        """Remove what the part made (the part is gone from the configuration)."""
        raise NotImplementedError

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

    def find_named(self, kind: str, name: str, what: str) -> dict[str, Any] | None:
        """The object called ``name``: from the run's shared listing when it is ours,
        else inspected, and refused when it belongs to someone else."""
        current = next((o for o in self.engine.owned(kind, self.directory)
                        if o.get('Name') == name), None)
        if current is None:
            current = self.engine.inspect(kind, name)
            if current is not None:
                self.check_ours(current, what, name)
        return current

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
        removals.finish(self.run, raising=False)
        moves.resume(self.run)
        with engine_errors(self.name, self.engine_config):
            orphans.sweep_once(self.engine, self.directory)
            return list(self.apply(fresh=True))

    def update(self) -> list[str]:
        removals.finish(self.run, raising=False)
        moves.resume(self.run)
        with engine_errors(self.name, self.engine_config):
            orphans.sweep_once(self.engine, self.directory)
            return list(self.apply(fresh=False))

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
        moves.resume(run)
        if run.configured.get(name) == cls.recipe:
            move = engine_move(run, name, options)
            if move is None:
                run.reinstalling.add(name)
                run.previous[name] = dict(options)
                log.debug('%s is being reinstalled: its install adopts what exists', name)
            elif move.engine is None:
                moves.say_left(run, name, move.why, move.new.describe())
            else:  # made anew there: neither installed before nor with these options
                moves.leave_behind(run, name, options, move.old, move.new)
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
            if order is not None:
                cls._remove_in_background(engine, directory, name, options, order)
                return
            cls.teardown(engine, directory, name, options, log)
            # Lists afresh only what this kind of part changes: the next part reuses it.
            orphans.released(engine, directory, name, kinds=cls.owns,
                             unchanged=cls.keeps_all(options))

    #: The default of a ``keep`` option that keeps the part's one object on removal.
    keep_default: ClassVar[bool | None] = None

    @classmethod
    def keeps_all(cls, options: Mapping[str, str]) -> bool:
        """Whether the teardown removes nothing (``keep = true``): the run's listings stay
        valid (a hundred kept volumes would otherwise be listed a hundred times)."""
        return cls.keep_default is not None and opt.saved_flag(options, 'keep', cls.keep_default)

    @classmethod
    def removal_order(cls, options: Mapping[str, str]
                      ) -> tuple[frozenset[str], frozenset[str]] | None:
        """(container names, names they come after) when the teardown may run in the
        background (see :mod:`.removals`); ``None`` to tear down before the hook returns."""
        return None

    @classmethod
    def _remove_in_background(cls, engine: Engine, directory: str, name: str,
                              options: Mapping[str, str],
                              order: tuple[frozenset[str], frozenset[str]]) -> None:
        engine.part_objects(cls.kind, directory, name)  # listed now, shared with the thread
        forked = engine.fork(name)   # here: the shared listings change under this thread
        log = logging.getLogger(name)
        saved = dict(options)

        later: list[Callable[[], None]] = []

        def work() -> Callable[[], None]:
            """Until the processes ended (what depends on them waits for that much)."""
            try:
                with engine_errors(name, engine.config):
                    cls.teardown(forked, directory, name, saved, log, defer=later.append)
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

    ``configure`` calls :meth:`image_from_options`; ``apply`` gets the
    identity and labels from :meth:`image_identity` and hands a function that
    makes an untagged image to :meth:`make_image`, which skips it when the
    tagged image already has that identity, removes whatever the part left
    unfinished when it fails, and tags and tidies up when it succeeds.

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
    image: str
    #: The id ``image`` points at after :meth:`make_image`.
    image_id: str | None = None

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

    def make_image(self, identity: str, labels: Mapping[str, str], fresh: bool,
                   build: Callable[[], str]) -> bool:
        """Make the image with ``build`` unless it is current; True when it was made.

        ``self.image_id`` is the id the tag points at afterwards.
        """
        current, change = self._image_decision(identity, labels)
        if change.action == 'none':
            assert current is not None
            self.image_id = current['Id']
            if fresh:
                self._remove_stale(current['Id'])
            return False
        if current is not None:
            self.log.info('rebuilding %s: %s', self.image, _why(current, labels))
        else:
            self.log.info('building %s', self.image)
        try:
            image_id = build()
            tests = self.values.get('test')
            if tests:
                self._self_check(image_id, tests, labels)
        except BaseException:
            self.engine.forget()
            self._remove_unfinished()
            raise
        repository, tag = self.image.rsplit(':', 1)
        self.engine.api.tag(image_id, repository, tag, force=True)
        self.image_id = image_id
        self.log.info('built %s (%s)', self.image, image_id[:19])
        if self.values.get('test'):
            _remove_image(self.engine, self.candidate, self.log, quiet=True)
        if current is not None and current['Id'] != image_id:
            self.retire_image(current['Id'])
        self.engine.forget()
        if fresh:
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

    def decide_image(self, identity: str, labels: Mapping[str, str]) -> list[decisions.Change]:
        """:meth:`make_image`'s decision; a build is told to the parts that use the image."""
        change = self._image_decision(identity, labels)[1]
        if change.action != 'none':
            identities.will_change_image(
                self.run, self.engine_config, self.image,
                f'{"rebuilt" if change.id else "built"} by {self.name}: '
                + ', '.join(r.text() for r in change.reasons))
        return [change]

    def retire_image(self, image_id: str) -> None:
        """Remove the image a new one replaced (see :func:`retire_image`)."""
        retire_image(self.engine, self.log, image_id)

    @property
    def candidate(self) -> str:
        """``NAME:TAG-candidate``: where a new image waits while its tests run."""
        repository, tag = self.image.rsplit(':', 1)
        return f'{repository}:{tag[:128 - len(CANDIDATE_SUFFIX)]}{CANDIDATE_SUFFIX}'

    def _self_check(self, image_id: str, tests: tuple[str, ...], labels: Mapping[str, str]) -> None:
        """Tag the new image as the candidate and run each test command in a container of it."""
        repository, tag = self.candidate.rsplit(':', 1)
        before = self.engine.image_id(self.candidate)
        self.engine.api.tag(image_id, repository, tag, force=True)
        if before and before != image_id:
            _remove_image(self.engine, before, self.log, quiet=True)  # an earlier failed candidate
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
                _remove_image(self.engine, image['Id'], self.log, quiet=True)

    def _remove_stale(self, keep_id: str) -> None:
        """Images this part made under an earlier name."""
        if opt.boolean(self.options.get('keep', 'false') or 'false'):
            return
        for image in self.engine.part_objects('images', self.directory, self.name):
            if image['Id'] != keep_id:
                for tag in references_of(image):
                    _remove_image(self.engine, tag, self.log, quiet=True)
                self.retire_image(image['Id'])  # still run by containers: at the end of the run

    @classmethod
    def teardown(cls, engine: Engine, directory: str, part: str,
                 options: Mapping[str, str], log: logging.Logger) -> None:
        for container in engine.part_objects('containers', directory, part):
            with contextlib.suppress(docker.errors.NotFound):
                engine.api.remove_container(container['Id'], force=True)
        keep = opt.saved_flag(options, 'keep', False)
        if keep:
            log.info('keeping image %s (keep = true)', options.get('image'))
            return
        for image in engine.part_objects('images', directory, part):
            for tag in references_of(image):
                _remove_image(engine, tag, log)


def retire_image(engine: Engine, log: logging.Logger, image_id: str) -> None:
    """Remove an image a new one replaced under its tag; while containers still run it
    (their parts replace them later in the run), at the end of the run, so that no
    untagged image is left for the next run to sweep. Shared by the recipes that move a
    tag to a new image (every image recipe, docker.load)."""
    try:
        engine.api.remove_image(image_id)
        log.info('removed image %s', image_id[:19])
        return
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            log.debug('image %s kept: %s', image_id[:19], exc.explanation or exc)
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
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    left.append((config, log, image_id, exc))
        if len(left) == len(pending):
            for _, log, image_id, exc in left:
                log.debug('image %s kept: %s', image_id[:19], exc.explanation or exc)
            break
        pending = [entry[:3] for entry in left]


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


def _remove_image(engine: Engine, reference: str, log: logging.Logger, quiet: bool = False) -> None:
    try:
        engine.api.remove_image(reference)
        log.info('removed image %s', reference if not reference.startswith('sha256:')
                 else reference[:19])
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        (log.debug if quiet else log.warning)('image %s kept: %s', reference[:40],
                                              exc.explanation or exc)


__all__ = ['Recipe', 'ImageRecipe', 'uninstaller', 'engine_config', 'retire_image',
           'retire_untagged', 'left_by_removal', 'ENGINE_OPTIONS', 'DOCKEROO_ALIASES', 'CANDIDATE_OPTIONS']
