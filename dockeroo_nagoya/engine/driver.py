"""The one place that talks to the Docker engine.

It connects (host, TLS, timeout, Docker context), labels what this buildout
owns, keeps one labelled listing per kind of object for the whole run (so a
no-op rerun costs one request per kind, not one per part), and turns engine
errors into one-line ``UserError`` messages.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from typing import Any, Callable, Generic, Iterator, Mapping, Protocol, TypeVar

import docker
import docker.errors
import docker.utils
import requests.exceptions
import zc.buildout

from .labels import LABEL_BUILDOUT, LABEL_PART, Owner, labels_of
from .references import with_tag
from .tls import client as tls_client, handshake_failed


class EngineRun(Protocol):
    """What an engine needs of the run that made it (:class:`.runstate.Run`, a layer above
    the driver, which it does not import): whose objects are claimed, and while planning,
    the images earlier parts are planned to make."""

    @property
    def planning(self) -> bool: ...

    @property
    def planned_images(self) -> Mapping[tuple[str, str], str]: ...

    def owner_of(self, directory: str) -> Owner: ...


#: The run an engine belongs to (code above the driver reaches it as ``engine.run``).
RunT = TypeVar('RunT', bound=EngineRun)

KINDS = ('containers', 'images', 'volumes', 'networks')

log = logging.getLogger('dockeroo_nagoya')

#: Where the SDK (and the docker CLI) connect when nothing says otherwise.
DEFAULT_HOST = 'unix:///var/run/docker.sock'


class WriteRefused(RuntimeError):
    """A request that writes, made while planning: a bug, never an effect."""


def read_only(client: docker.DockerClient) -> docker.DockerClient:
    """Make a client refuse every request but GET (and HEAD), before it is sent."""
    api = client.api
    send = api.request

    def request(method: str, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if method.upper() not in ('GET', 'HEAD'):
            raise WriteRefused(f'dockeroo-plan is read-only: refused {method} {url!s}')
        return send(method, url, *args, **kwargs)
    api.request = request  # type: ignore[method-assign]
    return client


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Where the engine is and how to reach it; hashable so clients are shared."""

    host: str | None = None
    #: ``docker-tls-verify`` as said; ``None``: not said, so the engine's certificate is
    #: checked exactly when there is a ``cert_path`` (:attr:`verifies`).
    tls_verify: bool | None = None
    cert_path: str | None = None
    timeout: int = 120
    context: str | None = None

    @property
    def verifies(self) -> bool:
        """Whether the engine's certificate is checked: a directory of certificates means
        it is, as ``docker --tlsverify`` does, unless ``docker-tls-verify = false`` says not."""
        return self.tls_verify if self.tls_verify is not None else bool(self.cert_path)

    def describe(self) -> str:
        """The address in the user's words, for error messages."""
        if self.context:
            return f'Docker context {self.context!r}'
        return self.host or os.environ.get('DOCKER_HOST') or DEFAULT_HOST

    def key(self) -> str:
        """Which engine this is, as what one run records per engine is keyed (:mod:`.identities`).

        An image a part makes on one engine is not on another, so what a run
        knows about images and containers is kept per engine. Two spellings of one
        address are one key: the buildout's default (no ``docker-host``) and
        ``DOCKER_HOST`` or ``unix:///var/run/docker.sock`` written out, a socket
        path through a symbolic link (``/var/run`` is ``/run``), ``tcp://`` and
        ``http://``, a Docker context and its address. Asks no engine (it is used
        in ``__init__`` and on every lookup); TLS settings are not part of it (one
        address, one daemon). Two addresses of one daemon (a socket and a TCP
        port) stay two keys: only the daemon could tell (:attr:`Engine.daemon`).
        """
        # Kept on the instance (a context is read from files), per DOCKER_HOST; not a field.
        known: dict[str | None, str] = self.__dict__.setdefault('_keys', {})
        environment = os.environ.get('DOCKER_HOST')
        found = known.get(environment)
        if found is None:
            found = known[environment] = _address_key(self._address())
        return found

    def _address(self) -> str:
        """The address the client connects to (see :func:`_new_client`)."""
        if self.context:
            with contextlib.suppress(docker.errors.DockerException, OSError, ValueError):
                ctx = docker.ContextAPI.get_context(self.context)
                if ctx is not None and ctx.Host:
                    return str(ctx.Host)
            return f'context:{self.context}'  # no such context: connecting says so
        return self.host or os.environ.get('DOCKER_HOST') or DEFAULT_HOST


def context_exists(name: str) -> bool:
    """Whether ``docker context ls`` lists ``name``: read from the client's files, asking no
    engine, so ``__init__`` can tell (an unreadable context store lists nothing)."""
    with contextlib.suppress(docker.errors.DockerException, OSError, ValueError):
        return docker.ContextAPI.get_context(name) is not None
    return False


def _address_key(address: str) -> str:
    """One spelling of an address: the SDK's own parsing, ``unix://`` with the socket's real
    path, ``tcp://HOST:PORT``; an address the SDK refuses as it is (connecting says why)."""
    try:
        parsed = docker.utils.parse_host(address)
    except docker.errors.DockerException:
        return address
    if isinstance(parsed, bytes):  # types-docker allows it; docker-py 7 returns str
        parsed = parsed.decode()
    scheme, _, rest = parsed.partition('://')
    if scheme in ('http+unix', 'unix'):
        return f'unix://{os.path.realpath(rest)}'
    if scheme in ('http', 'https'):
        return f'tcp://{rest.lower()}'
    return parsed


def identity_hash(value: Any) -> str:
    """A stable short hash of any JSON-able value (sorted keys)."""
    blob = json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


class EngineError(zc.buildout.UserError):
    """An engine failure, already phrased for the user."""


class HostRefused(PermissionError):
    """A host path that a mechanism refuses to write through, its ``strerror`` already
    phrased for the user (:class:`.atomicfile.UntrustedLink` is one).

    Host writes happen inside :func:`engine_errors` (an image streamed from the
    engine into an archive, a container's files copied out), which every
    install, update and removal runs in: it turns this into one line naming the
    part. The refusing mechanism is in a layer above the driver, so it is the one
    that subclasses this, and the driver imports nothing from above.
    """


class NoEngine(EngineError):
    """No engine answers at the address: the hooks that can go on without it tell it apart."""

    def __init__(self, part: str, config: EngineConfig | None, where: str = '') -> None:
        self.address = _address(config)
        super().__init__(f'{part}: no Docker engine answers at {self.address}{where}: start '
                         f'dockerd (Debian: apt-get install docker.io) or set docker-host')


def explain(exc: BaseException) -> str:
    """What the engine said, as text for a message: an API error's explanation (bytes
    decoded), else the exception's own text. Every message that quotes the engine uses it."""
    if isinstance(exc, docker.errors.APIError):
        text = exc.explanation or str(exc)
        if isinstance(text, bytes):
            text = text.decode('utf-8', 'replace')
        return str(text).strip()
    return str(exc).strip()


@contextlib.contextmanager
def engine_errors(part: str, config: EngineConfig | None = None,
                  action: str = '') -> Iterator[None]:
    """Map what the SDK raises to one ``UserError`` line naming the part."""
    where = f' ({action})' if action else ''
    try:
        yield
    except zc.buildout.UserError:
        raise
    except HostRefused as exc:   # a host write of any recipe, refused
        raise zc.buildout.UserError(f'{part}: {exc.strerror}') from None
    except requests.exceptions.SSLError as exc:
        raise EngineError(handshake_failed(part, _address(config), exc, where)) from exc
    except (requests.exceptions.ConnectionError, ConnectionError) as exc:
        raise NoEngine(part, config, where) from exc
    except requests.exceptions.Timeout as exc:
        raise EngineError(f'{part}: the Docker engine did not answer in time{where}: '
                          f'raise the timeout option') from exc
    except docker.errors.DockerException as exc:
        text = explain(exc)
        if 'Error while fetching server API version' in text:
            if isinstance(exc.__cause__, requests.exceptions.SSLError):
                raise EngineError(handshake_failed(part, _address(config), exc, where)) from exc
            raise NoEngine(part, config) from exc
        raise EngineError(f'{part}: Docker engine error{where}: {text}') from exc


def _address(config: EngineConfig | None) -> str:
    return config.describe() if config else 'the Docker engine'


class Engine(Generic[RunT]):
    """A client plus the per-run caches of what this buildout owns; made by its run
    (:meth:`.runstate.Run.engine`), which code that has the engine reaches as ``run``."""

    def __init__(self, config: EngineConfig,
                 client: docker.DockerClient | Callable[[], docker.DockerClient],
                 run: RunT) -> None:
        self.config = config
        self.run = run
        self._daemon: str | None = None
        # A forked engine makes its client when it first talks to the engine: a member
        # whose decision needs only the listings (a no-op rerun) costs no client.
        self._client: docker.DockerClient | None = None
        self._make_client: Callable[[], docker.DockerClient] | None = None
        if callable(client) and not isinstance(client, docker.DockerClient):
            self._make_client = client
        else:
            self._client = client
        self._owned: dict[tuple[str, Owner], list[dict[str, Any]]] = {}
        self._image_ids: dict[str, str] | None = None
        self._images: dict[str, dict[str, Any]] = {}

    @property
    def client(self) -> docker.DockerClient:
        """The SDK's client, made on first use for a forked engine."""
        if self._client is None:
            assert self._make_client is not None
            self._client, self._make_client = self._make_client(), None
        return self._client

    @property
    def api(self) -> docker.APIClient:
        """The SDK's low-level client (``client.api``)."""
        return self.client.api

    # -- owned objects, one labelled list per kind and buildout --------------
    def owned(self, kind: str, directory: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` that this run's configuration of ``directory`` claims
        (:meth:`.labels.Owner.claims`), listed once per run."""
        owner = self.run.owner_of(directory)
        key = (kind, owner)
        if key not in self._owned:
            flt = {'label': f'{LABEL_BUILDOUT}={directory}'}
            if kind == 'containers':
                found = self.api.containers(all=True, filters=flt)
            elif kind == 'images' and self._image_ids is not None:
                # The run's listing of every image (a part's image lookups made it) holds
                # ours too, with their labels: a no-op rerun does not ask again.
                found = [image for image in self._images.values()
                         if labels_of(image).get(LABEL_BUILDOUT) == directory]
            elif kind == 'images':
                found = self.api.images(filters=flt)
            elif kind == 'volumes':
                found = self.api.volumes(filters=flt).get('Volumes') or []
            elif kind == 'networks':
                found = self.api.networks(filters=flt)
            else:
                raise ValueError(kind)
            self._owned[key] = [obj for obj in found if owner.claims(labels_of(obj))]
        return self._owned[key]

    def forget(self, kind: str | None = None) -> None:
        """Drop the cached listings after a change, so the next look is fresh."""
        if kind is None:
            self._owned.clear()
        else:
            for key in [k for k in self._owned if k[0] == kind]:
                del self._owned[key]
        if kind in (None, 'images'):
            self._image_ids = None

    def created(self, kind: str, directory: str, found: dict[str, Any]) -> None:
        """Put an object just made into the run's listing of ``kind`` (when there is one)
        in place of :meth:`forget`: a cold buildout of N volume parts would otherwise list
        its volumes again for every part."""
        owner = self.run.owner_of(directory)
        listed = self._owned.get((kind, owner))
        if listed is not None and owner.claims(labels_of(found)):
            listed.append(found)

    def fork(self, part: str) -> Engine[RunT]:
        """An engine with a client of its own for another thread, starting from this one's listings.

        The SDK's client (a requests session) is not made to be shared between
        threads, and each thread's changes should only drop its own caches.
        Close it with :meth:`close` when the thread is done.
        """
        version, planning = self.api.api_version, self.run.planning
        engine = Engine(self.config,
                        lambda: new_client(self.config, part, version, planning=planning),
                        self.run)
        engine._daemon = self._daemon
        engine._owned = {key: list(found) for key, found in self._owned.items()}
        engine._image_ids = dict(self._image_ids) if self._image_ids is not None else None
        engine._images = dict(self._images)
        return engine

    @property
    def daemon(self) -> str:
        """Which daemon answers: two spellings of one engine (the default socket and
        ``unix:///var/run/docker.sock``, or a socket and a TCP address) are one daemon,
        whose objects one run must sweep and remove once, and a part that changes from
        one to the other stays where it is.

        The daemon's ID with its host name and data root: dockerd before 23 takes its
        ID from ``/etc/docker/key.json``, which every daemon of a machine shares (a
        second dockerd beside the first) and so do machines cloned from one image.
        """
        if self._daemon is None:
            info = self.api.info()
            self._daemon = '|'.join(
                str(info.get(key) or '') for key in ('ID', 'Name', 'DockerRootDir')
            ) if info.get('ID') else str(self.config)
        return self._daemon

    def close(self) -> None:
        """Close its client (a forked engine's when its thread is done; the shared ones when
        their run is: :meth:`.runstate.Run.close`)."""
        if self._client is None:
            return
        with contextlib.suppress(OSError, docker.errors.DockerException):
            self._client.close()

    def part_objects(self, kind: str, directory: str, part: str) -> list[dict[str, Any]]:
        """The objects of one part, from the shared listing."""
        return [obj for obj in self.owned(kind, directory)
                if labels_of(obj).get(LABEL_PART) == part]

    def users(self, kind: str, name: str, running: bool = False) -> list[dict[str, Any]]:
        """The containers (listed, running ones only if ``running``) that use the network
        or volume ``name``; ``kind`` is ``networks`` or ``volumes``."""
        key = {'networks': 'network', 'volumes': 'volume'}[kind]
        return self.api.containers(all=not running, filters={key: name})

    # -- single objects ---------------------------------------------------------
    def inspect(self, kind: str, name: str) -> dict[str, Any] | None:
        """Inspect by name or id; ``None`` when it does not exist."""
        getter = {
            'containers': self.api.inspect_container,
            'images': self.api.inspect_image,
            'volumes': self.api.inspect_volume,
            'networks': self.api.inspect_network,
        }[kind]
        try:
            return getter(name)
        except docker.errors.NotFound:
            return None

    def named(self, kind: str, name: str) -> dict[str, Any] | None:
        """The container, network or volume called ``name``, or ``None``.

        Not :meth:`inspect`: when no container (or network) has the name, the engine
        answers with the one whose id starts with it, and a name such as ``db`` or
        ``cafe`` is a short id too: 1 in 256 containers' ids start with ``db``. A part
        asking whether ``db`` exists would then refuse to make it, as if another part or
        buildout had it."""
        found = self.inspect(kind, name)
        if found is None:
            return None
        own = str(found.get('Name') or '')
        return found if own.lstrip('/') == name else None

    def image_id(self, reference: str) -> str | None:
        """The id of a local image, or ``None``.

        Tags and digests come from one listing of the engine's images per run
        (shared by every part), so a rerun does not ask once per container;
        anything else (an id, a short name the engine completes) is inspected.
        """
        if self.run.planning:
            planned = self.run.planned_images.get((self.config.key(), with_tag(reference)))
            if planned is not None:
                return planned
        found = self.listed_image(reference)
        if found is not None:
            return found['Id']
        inspected = self.inspect('images', reference)
        return inspected['Id'] if inspected else None

    def listed_image(self, reference: str) -> dict[str, Any] | None:
        """The image a tag or digest names, from the run's one listing of images (its
        ``Id``, ``RepoDigests`` and ``Labels``), or ``None``."""
        if self._image_ids is None:
            self._image_ids, self._images = {}, {}
            for image in self.api.images():
                self._images[image['Id']] = image
                for reference_of in (image.get('RepoTags') or []) + (image.get('RepoDigests') or []):
                    self._image_ids[reference_of] = image['Id']
        found = self._image_ids.get(with_tag(reference))
        return self._images.get(found) if found is not None else None


def new_client(config: EngineConfig, part: str, version: str | None = None,
               planning: bool = False) -> docker.DockerClient:
    """A client of its own (``version`` known saves the request that asks the engine);
    read-only while ``planning``. A run's shared ones: :meth:`.runstate.Run.engine`."""
    client = _new_client(config, part, version)
    return read_only(client) if planning else client


def _new_client(config: EngineConfig, part: str, version: str | None = None) -> docker.DockerClient:
    with engine_errors(part, config, 'connecting'):
        kwargs: dict[str, Any] = {'timeout': config.timeout}
        if version:
            kwargs['version'] = version
        if config.context:
            ctx = docker.ContextAPI.get_context(config.context)
            if ctx is None:
                raise zc.buildout.UserError(
                    f'{part}: option machine-name: no Docker context named '
                    f'{config.context!r} (docker context ls lists them)')
            kwargs['base_url'] = ctx.Host
            tls = ctx.TLSConfig
            if tls:
                kwargs['tls'] = tls
            return tls_client(docker.DockerClient, **kwargs)
        env = dict(os.environ)
        if config.host:
            env['DOCKER_HOST'] = config.host
        if config.cert_path:
            env['DOCKER_CERT_PATH'] = config.cert_path
        if config.tls_verify is not None or config.cert_path:
            env['DOCKER_TLS_VERIFY'] = '1' if config.verifies else ''  # '': the SDK's "false"
        elif env.get('DOCKER_CERT_PATH') and not env.get('DOCKER_TLS_VERIFY'):
            # A directory of certificates means checking, there too: the SDK reads an
            # empty DOCKER_TLS_VERIFY as TLS that checks nothing (docker's client as
            # unset); not checking takes docker-tls-verify = false, which says so.
            env['DOCKER_TLS_VERIFY'] = '1'
        return tls_client(docker.from_env, environment=env, **kwargs)
