"""The SDK's configuration objects of a container to create.

:func:`..mechanisms.runner.create_arguments` says what a container is made with,
in plain values; the SDK's builders turn them into the engine API's shapes (for
the engine's API version). They are called here, so the layers above never
depend on which builder the SDK has or what it returns.
"""
from __future__ import annotations

from typing import Any

from .driver import Engine


def host_config(engine: Engine, **options: Any) -> dict[str, Any]:
    """The ``HostConfig`` of ``create_container``: ``options`` are the SDK's
    ``create_host_config`` keywords (binds, port_bindings, links, restart_policy, ...)."""
    return engine.api.create_host_config(**options)


def networking_config(engine: Engine, network: str, aliases: list[str] | None) -> dict[str, Any]:
    """The ``NetworkingConfig`` that attaches a new container to ``network`` under
    ``aliases`` when it is created."""
    api = engine.api
    # docker-py takes {network: endpoint}; types-docker says one endpoint.
    return api.create_networking_config({  # type: ignore[arg-type]
        network: api.create_endpoint_config(aliases=aliases)})


__all__ = ['host_config', 'networking_config']
