"""The SDK's container objects that users' callbacks are given (nagoya's contract).

A callback (``callbacks`` option, :mod:`..mechanisms.callbacks`) is called with
docker-py's ``Container``; the layers above ask for one here and never build
it themselves.
"""
from __future__ import annotations

from typing import Any, Mapping

from .driver import Engine
from .errors import Container


def container_object(engine: Engine, container: str) -> Container:
    """The SDK's object for an existing container (read from the engine now)."""
    return engine.client.containers.get(container)


def planned_container(engine: Engine, name: str, config: Mapping[str, Any]) -> Container:
    """The object of a container not created yet (``pre-create``): no id, only ``Name`` and
    ``Config`` (the ``create_container`` arguments, the host configuration left out)."""
    attrs = {'Id': None, 'Name': f'/{name}',
             'Config': {k: v for k, v in config.items() if k != 'host_config'}}
    return Container(attrs=attrs, client=engine.client, collection=engine.client.containers)


__all__ = ['container_object', 'planned_container']
