"""What a part's product will be, known in ``__init__``, before anything acts.

zc.buildout 6 records a part's options *before* it calls ``install()``: an
option a recipe writes while acting is never recorded, so the next run finds
another value, reinstalls the part and every part that references it. The
rule every recipe of this package keeps (:class:`~.recipe.Recipe`): an option
written in ``__init__`` is known before anything acts and is the same after.

So ``${part:image-id}`` is not the engine's id of an image that may not exist
yet: it is the identity of the image's inputs, the value of its
``io.dockeroo-nagoya.identity`` label, which changes exactly when the image is
to be made again. To compute it, a part needs to know what the images and
containers it starts from stand for:

- made by another part of this buildout: that part's identity, which its own
  ``__init__`` registered here (buildout initialises a part before the parts
  that reference it, and the part that makes an image before a build that
  names it in ``FROM`` when the build references it);
- from elsewhere: the registry digest (``REPO@sha256:...``, from the local
  image's ``RepoDigests``, or asked from the registry when the image is not
  here yet), a form that pulling the image does not change; the local id for
  an image no registry knows (imported or built by hand).

Everything here is kept per run (:class:`Promises`: one buildout directory's) *and per engine*
(:meth:`.engine.EngineConfig.key`): an image a part makes on one engine is
not on another, so a ``docker.load`` of ``koji/server:fedora`` on a builder
machine's engine says nothing about the image of that name on the local one
(whose containers would otherwise be recreated when a remote part is added),
and a container on the builder's engine may not run an image that only a
part of the local engine makes.

An image carried to another engine in the same run is known here before
it is carried (buildout initialises every part before it installs any): a
file a ``docker.save`` part writes, by its path (:func:`will_write_archive`),
so that a ``docker.load`` of it knows what it will hold before the file
exists; a reference a ``docker.push`` part pushes (:func:`will_push`), so
that a ``docker.pull`` of it knows what it will hold before the registry has
it. A registry is no engine: what a push sends is keyed by the reference
alone (its registry is in its name), and the pull registers the image it
makes on its own engine.

Nothing here writes to the engine: a plan may call all of it.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Protocol

from ..engine.errors import APIError
from ..engine.references import split_reference, with_tag as normalised
from ..engine.driver import Engine, EngineConfig
from ..engine.labels import LABEL_BUILDOUT, LABEL_IDENTITY, labels_of



class Run(Protocol):
    """What the promises need of a buildout run (:class:`.runstate.Run`, which holds them
    and imports this module): the promises, and while planning the images' planned ids."""

    @property
    def promises(self) -> Promises: ...

    @property
    def planning(self) -> bool: ...

    @property
    def planned_images(self) -> dict[tuple[str, str], str]: ...

@dataclasses.dataclass(frozen=True)
class Carried:
    """An image a part of this run carries away from its engine (a ``docker.save`` into a
    file, a ``docker.push`` to a registry), known in that part's ``__init__``."""

    part: str
    #: The engine the image is carried from, and the image (as the part names it there).
    engine: EngineConfig
    reference: str
    #: What the file or the pushed reference holds (:func:`carried_term`): it changes
    #: exactly when the image is made again (for an image whose identity is known before
    #: anything acts).
    term: str


@dataclasses.dataclass
class Promises:
    """What the parts of one run promise each other before anything acts; one run's
    (:attr:`.runstate.Run.promises`), so nothing of another buildout is seen."""

    #: (engine key, normalised image reference) -> (identity, part) of the image a part
    #: makes there.
    images: dict[tuple[str, str], tuple[str | None, str]] = dataclasses.field(
        default_factory=dict)
    #: (engine key, container name) -> what the configuration says the container is.
    containers: dict[tuple[str, str], Callable[[], str]] = dataclasses.field(
        default_factory=dict)
    #: (engine key, normalised image reference) -> why a part of this run makes (or pulls)
    #: it anew.
    changing: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    #: (engine key, container name) -> (its id, why a part before its own removes it).
    removing: dict[tuple[str, str], tuple[str, str]] = dataclasses.field(default_factory=dict)
    #: Real path of a file -> what a part writes into it.
    archives: dict[str, Carried] = dataclasses.field(default_factory=dict)
    #: Normalised pushed reference -> what a part pushes there.
    pushes: dict[str, Carried] = dataclasses.field(default_factory=dict)
    #: Normalised pushed reference -> why a part of this run pushes it anew.
    pushing: dict[str, str] = dataclasses.field(default_factory=dict)


def will_change_image(run: Run, engine: EngineConfig, reference: str, why: str,
                      becomes: str | None = None) -> None:
    """A part decided to make or pull ``reference`` anew on ``engine``; while planning, the
    parts after it see the image there as changed (:attr:`.runstate.Run.planned_images`), as they
    will in the run: as ``becomes`` when the deciding part knows the image's id (a pull
    of an image another engine has), else as an id no image has."""
    run.promises.changing[(engine.key(), normalised(reference))] = why
    if run.planning:
        run.planned_images[(engine.key(), normalised(reference))] = \
            becomes or f'planned:{normalised(reference)}'


def planned_change(run: Run, engine: EngineConfig, reference: str) -> str | None:
    """Why the image ``reference`` is made anew on ``engine`` in this run (``None``: it is not)."""
    return run.promises.changing.get((engine.key(), normalised(reference)))


def will_remove_container(run: Run, engine: EngineConfig, name: str, container_id: str,
                          why: str) -> None:
    """A part decided to remove a container that its own part makes again later in the
    run (a volume made anew removes its users first)."""
    run.promises.removing[(engine.key(), name)] = (container_id, why)


def planned_removal(run: Run, engine: EngineConfig, name: str) -> tuple[str, str] | None:
    """(id, why) of a container on ``engine`` an earlier part removes in this run (``None``:
    none does)."""
    return run.promises.removing.get((engine.key(), name))


def repository_of(reference: str) -> str:
    """The repository part of a reference (no tag, no digest)."""
    return split_reference(reference)[0]


def will_make_image(run: Run, engine: EngineConfig, reference: str, identity: str | None,
                    part: str) -> None:
    """The part ``part`` of this run makes ``reference`` on ``engine`` with this identity
    (``None``: a recipe whose identity is only known as it acts; the image is looked up then)."""
    run.promises.images[(engine.key(), normalised(reference))] = (identity, part)


def will_run_container(run: Run, engine: EngineConfig, name: str,
                       identity: Callable[[], str]) -> None:
    """A part of this run keeps the container ``name`` on ``engine``; ``identity`` says what
    it is."""
    run.promises.containers[(engine.key(), name)] = identity


def will_have_container(run: Run, engine: EngineConfig, name: str) -> bool:
    """Whether a part configured in this run (initialised before the asking one: one it
    references, or one before it in ``parts``) keeps the container ``name`` on ``engine``."""
    return (engine.key(), name) in run.promises.containers


def made_image(run: Run, engine: EngineConfig, reference: str) -> str | None:
    """The identity of the image a configured part makes under this reference on ``engine``."""
    found = run.promises.images.get((engine.key(), normalised(reference)))
    return found[0] if found else None


def maker_of(run: Run, engine: EngineConfig, reference: str) -> str | None:
    """The configured part that makes (or pulls) the image ``reference`` on ``engine``."""
    found = run.promises.images.get((engine.key(), normalised(reference)))
    return found[1] if found else None


def will_write_archive(run: Run, path: str, archive: Carried) -> None:
    """A ``docker.save`` part of this run writes ``archive``'s image into the file ``path``."""
    run.promises.archives[os.path.realpath(path)] = archive


def archive_writer(run: Run, path: str) -> Carried | None:
    """What a part of this run (initialised before the asking one: the one whose
    ``${part:path}`` it references) writes into the file ``path``; ``None``: none does."""
    return run.promises.archives.get(os.path.realpath(path))


def will_push(run: Run, reference: str, pushed: Carried) -> None:
    """A ``docker.push`` part of this run pushes ``pushed``'s image as ``reference``."""
    run.promises.pushes[normalised(reference)] = pushed


def pusher_of(run: Run, reference: str) -> Carried | None:
    """What a part of this run (initialised before the asking one: the one whose
    ``${part:name}`` or ``${part:pushed}`` it references) pushes as ``reference``;
    ``None``: none does (a pinned digest is never pushed by a tag's push)."""
    if '@' in reference:
        return None
    return run.promises.pushes.get(normalised(reference))


def will_push_anew(run: Run, reference: str, why: str) -> None:
    """A push part decided to push ``reference`` (planning: a pull of it follows)."""
    run.promises.pushing[normalised(reference)] = why


def planned_push(run: Run, reference: str) -> str | None:
    """Why ``reference`` is pushed in this run (``None``: it is not, or not known to be)."""
    return run.promises.pushing.get(normalised(reference))


def local_term(image: Mapping[str, Any], reference: str, directory: str) -> str:
    """What a local image stands for, in a form that pulling it again does not change."""
    labels = labels_of(dict(image))
    if labels.get(LABEL_BUILDOUT) == directory and labels.get(LABEL_IDENTITY):
        return f'made:{labels[LABEL_IDENTITY]}'
    repository = repository_of(reference)
    for digest in image.get('RepoDigests') or []:
        if digest.split('@', 1)[0] == repository:
            return f'{repository}@{digest.split("@", 1)[1]}'
    return image['Id']


def remote_digest(engine: Engine, reference: str, auth: Mapping[str, str] | None = None
                  ) -> str | None:
    """The registry's digest of a reference (a read), or ``None`` when it cannot say."""
    try:
        answer = engine.api.inspect_distribution(normalised(reference), auth_config=auth)
    except APIError:
        return None
    return (answer.get('Descriptor') or {}).get('digest')


def image_term(engine: Engine, directory: str, reference: str,
               auth: Mapping[str, str] | None = None) -> str:
    """What an image a part starts from on ``engine`` stands for, before anything acts.

    An image no part makes there and no registry answers for is ``absent:REFERENCE``:
    acting cannot make it appear (a build that starts from it fails).
    """
    made = made_image(engine.run, engine.config, reference)
    if made is not None:
        return f'made:{made}'
    if '@' in reference:
        return reference
    local = engine.listed_image(normalised(reference))
    if local is None:
        inspected = engine.inspect('images', reference)  # an id, or a name the engine completes
        if inspected is not None:
            return local_term(inspected, reference, directory)
        digest = remote_digest(engine, reference, auth)
        return f'{repository_of(reference)}@{digest}' if digest else f'absent:{reference}'
    return local_term(local, reference, directory)


def carried_term(engine: Engine, directory: str, reference: str) -> str:
    """What a file a part saves the image ``reference`` into, or a reference a part pushes
    it as, will hold, before anything acts: the image's :func:`image_term`, except for an
    image a part makes whose identity is only known as it acts (docker.temporary,
    docker.assemble, docker.bootstrap): then that part. Its term would be the image the
    engine has before the run (``absent:`` on the first), so a part taking it as its own
    identity would change one run after the image; a load reads what the file holds,
    and a pull compares with the pushed image, as they act anyway."""
    maker = maker_of(engine.run, engine.config, reference)
    if maker is not None and made_image(engine.run, engine.config, reference) is None:
        return f'part:{maker}:{normalised(reference)}'
    return image_term(engine, directory, reference)


def container_term(engine: Engine, directory: str, name: str) -> str:
    """What a container a part saves stands for: the identity its part gives it, else
    the live container's id and identity label."""
    configured = engine.run.promises.containers.get((engine.config.key(), name))
    if configured is not None:
        return f'part:{configured()}'
    current = engine.inspect('containers', name)
    if current is None:
        return f'absent:{name}'
    return f'{current["Id"]}:{labels_of(current).get(LABEL_IDENTITY) or current.get("Created")}'


__all__ = ['will_change_image', 'planned_change', 'will_remove_container', 'planned_removal',
           'normalised', 'repository_of', 'will_make_image', 'will_run_container',
           'will_have_container', 'made_image', 'maker_of', 'image_term', 'container_term',
           'remote_digest', 'local_term', 'Carried', 'Promises', 'will_write_archive', 'archive_writer',
           'will_push', 'pusher_of', 'will_push_anew', 'planned_push', 'carried_term']
