"""Acting on containers by id: stop (with the stop-timeout and callbacks), end their
processes, remove them, and tear down a removed part's; for the recipes, their uninstall
hooks and the control script, which have no spec."""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Callable, Mapping

import zc.buildout

from ..model import options as opt
from . import stopsignal
from ..engine.callbackobjects import container_object
from ..engine.driver import Engine
from ..engine.errors import APIError, Container, NotFound
from .callbacks import Callbacks
from .containerspec import TABLE


log = logging.getLogger('dockeroo_nagoya')


# -- module-level acts (also for the uninstall hook, which has no recipe) -----------------
def stop(engine: Engine, container: str, timeout: int, callbacks: Callbacks) -> None:
    """Stop a running container, honouring its stop-timeout, with the stop callbacks."""
    details = engine.inspect('containers', container)
    if details is None or not details['State'].get('Running'):
        return
    callbacks.fire('pre-stop', lambda: container_object(engine, container))
    engine.api.stop(container, timeout=_grace(details, timeout))
    callbacks.fire('post-stop', lambda: container_object(engine, container))


def end_processes(engine: Engine, container: str, timeout: int, callbacks: Callbacks) -> bool:
    """End a container's processes as ``stop`` would; return once its PID 1 has exited.

    The engine's own clean-up after an exit (the task, the mounts, the network
    endpoint) takes most of a ``docker stop``; what depends on the container
    needs only its processes gone. So a teardown in dependency order calls this,
    lets the next container go, and leaves :func:`remove` (which then waits for
    the engine) to run alongside. ``False`` when it did nothing: the engine is
    not on this host, the container is not running, or stop callbacks want to
    see a whole stop.
    """
    if callbacks.wanted('pre-stop') or callbacks.wanted('post-stop'):
        return False
    details = engine.inspect('containers', container)
    if details is None:
        return False
    fd = stopsignal.watch(details)
    if fd is None:
        return False
    try:
        policy = ((details.get('HostConfig') or {}).get('RestartPolicy') or {}).get('Name')
        if policy and policy != 'no':  # else the engine would start it again after the signal
            # types-docker's restart policy names leave out 'no'.
            engine.api.update_container(container, restart_policy={'Name': 'no'})  # type: ignore[arg-type]
        timeout = _grace(details, timeout)
        if timeout > 0:
            _kill(engine, container, (details.get('Config') or {}).get('StopSignal') or 'SIGTERM')
            if stopsignal.exited(fd, timeout):
                return True
        _kill(engine, container, 'SIGKILL')
        return stopsignal.exited(fd, 60)
    finally:
        os.close(fd)


def _grace(details: Mapping[str, Any], timeout: int) -> int:
    """The stop-timeout to give: none when PID 1 can never see the stop signal (the
    grace period would end in the same SIGKILL, only later: see stopsignal)."""
    unseen = stopsignal.ignored(details) if timeout > 0 else None
    if not unseen:
        return timeout
    log.info('%s: its main process ignores %s: stopping it at once, not after '
             'stop-timeout (%ds)', str(details.get('Name') or details.get('Id')).lstrip('/'),
             unseen, timeout)
    return 0


def _kill(engine: Engine, container: str, signal_name: str) -> None:
    try:
        engine.api.kill(container, signal=signal_name)
    except APIError as exc:
        if exc.status_code not in (404, 409):  # gone, or not running any more: done
            raise


def remove(engine: Engine, container: str, timeout: int, callbacks: Callbacks,
           stopped: bool = False) -> None:
    """Stop and remove a container; its volumes stay (named ones, anonymous ones too).

    After :func:`end_processes` the stop only waits for the engine to finish its clean-up
    after the exit: a forced removal racing that clean-up may be what leaves the engine
    counting endpoints of removed containers (moby/moby#17217), so it is not skipped.
    ``stopped``: the caller's own :func:`stop` returned just now (a replaced container),
    so it is not asked again whether it runs.
    """
    if not stopped:
        stop(engine, container, timeout, callbacks)
    model: list[Container] = []

    def fetched() -> Container:
        if not model:
            model.append(container_object(engine, container))
        return model[0]

    callbacks.fire('pre-remove', fetched)
    if callbacks.wanted('post-remove'):
        fetched()
    try:
        engine.api.remove_container(container, v=False, force=True)
    except NotFound:
        pass
    engine.forget('containers')
    callbacks.fire('post-remove', fetched)


def teardown(engine: Engine, directory: str, part: str, options: Mapping[str, str],
             log: logging.Logger, going: list[tuple[str, str]],
             defer: Callable[[Callable[[], None]], None] | None = None) -> None:
    """Remove the containers ``going`` ((id, name): what the part's removal decided) of
    a part that is gone, each stopped within its ``stop-timeout``, with its callbacks.

    With ``defer``, it returns once the containers' processes have ended
    (:func:`end_processes`) and hands the rest of each removal to ``defer``.
    """
    try:
        values = opt.parse_options(part, options, tuple(
            o for o in TABLE if o.name in ('stop-timeout', 'callbacks')))
    except zc.buildout.UserError as exc:
        log.warning('%s; removing its containers with the defaults', exc)
        values = {'stop-timeout': 10, 'callbacks': []}
    callbacks = Callbacks(part, directory, values['callbacks'])
    for container_id, name in going:
        timeout = int(math.ceil(values['stop-timeout']))

        def finish(container_id: str = container_id, name: str = name) -> None:
            remove(engine, container_id, timeout, callbacks)
            log.info('removed container %s', name)

        if defer is not None and end_processes(engine, container_id, timeout, callbacks):
            defer(finish)
        else:
            finish()


__all__ = ['teardown', 'stop', 'remove', 'end_processes']
