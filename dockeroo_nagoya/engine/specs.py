"""The bodies of engine requests that the SDK builds from its own types, made from plain data.

A network's address pool and a Swarm service's spec are ``docker.types`` objects:
dicts under the engine's own keys (``TaskTemplate``, ``ContainerSpec``, ...) that
the SDK checks and fills in. The recipes give plain values (strings, numbers,
lists, dicts) to the functions here and pass what they return to the driver's
calls, and may read it as the engine would store it (a service's spec is compared
key by key with the one the engine holds); no layer above builds an SDK object.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence, cast

import docker.types

#: A Swarm secret as a service's tasks see it (:func:`secret_reference`).
SecretReference = docker.types.SecretReference
#: How a roll replaces a task: the new one first, or the old one stopped first.
Order = Literal['start-first', 'stop-first']
#: What the Swarm does when a task of a roll fails (``rollback``: for an update only).
FailureAction = Literal['pause', 'continue', 'rollback']


def ipam(subnet: str, gateway: str | None = None, ip_range: str | None = None
         ) -> docker.types.IPAMConfig:
    """A network's address management: one pool, the subnet with its gateway and the range
    containers' addresses are taken from (``None``: the engine's choice)."""
    pool = docker.types.IPAMPool(subnet=subnet, gateway=gateway, iprange=ip_range)
    return docker.types.IPAMConfig(pool_configs=[pool])


def secret_reference(secret_id: str, secret_name: str, filename: str) -> SecretReference:
    """A Swarm secret as a service's tasks see it: ``/run/secrets/<filename>``."""
    return docker.types.SecretReference(secret_id, secret_name, filename=filename)


def replicated(replicas: int) -> docker.types.ServiceMode:
    """A service's mode: ``replicas`` tasks spread over the Swarm."""
    return docker.types.ServiceMode('replicated', replicas=replicas)


def roll_config(step: str, parallelism: int, delay: int, failure_action: FailureAction,
                monitor: int, max_failure_ratio: float, order: Order
                ) -> docker.types.UpdateConfig:
    """How the Swarm rolls a service's tasks over for an update (``step`` ``update``) or back
    (``rollback``); ``delay`` and ``monitor`` in nanoseconds."""
    kind = docker.types.UpdateConfig if step == 'update' else docker.types.RollbackConfig
    return kind(parallelism=parallelism, delay=delay, failure_action=failure_action,
                monitor=monitor, max_failure_ratio=max_failure_ratio, order=order)


def service_spec(name: str, image: str, *, command: Sequence[str] | None,
                 env: Sequence[str], mounts: Sequence[str],
                 secrets: Sequence[SecretReference], stop_grace_period: int,
                 constraints: Sequence[str], networks: Sequence[str],
                 labels: Mapping[str, str], replicas: int,
                 update_config: Mapping[str, Any], rollback_config: Mapping[str, Any],
                 ports: Mapping[int, Any]) -> dict[str, Any]:
    """The arguments of ``create_service`` and ``update_service`` for a replicated service.

    ``mounts``: ``SOURCE:/TARGET[:ro]`` strings; ``secrets``: :func:`secret_reference`\\ s;
    ``stop_grace_period`` in nanoseconds; ``ports``: published port -> the target port, or
    (target, protocol, ``host``) for a port published on the task's node only;
    ``update_config``, ``rollback_config``: :func:`roll_config`\\ s. An empty value is
    left out, for the engine's default. The keys are the SDK's arguments; each value is
    what the engine stores under the matching key of the service's ``Spec``.
    """
    container = docker.types.ContainerSpec(
        image, command=list(command) if command is not None else None, env=list(env) or None,
        mounts=[docker.types.Mount.parse_mount_string(m) for m in mounts] or None,
        secrets=list(secrets) or None, stop_grace_period=stop_grace_period)
    template = docker.types.TaskTemplate(
        container, placement=docker.types.Placement(constraints=list(constraints) or None),
        networks=list(networks) or None)
    return {
        'task_template': template,
        'name': name,
        'labels': dict(labels),
        'mode': replicated(replicas),
        'update_config': update_config,
        'rollback_config': rollback_config,
        # (The stubs want text keys; the SDK takes the port numbers as they are.)
        'endpoint_spec': docker.types.EndpointSpec(ports=cast(Any, dict(ports))) if ports
        else None,
    }


__all__ = ['SecretReference', 'Order', 'FailureAction', 'ipam', 'secret_reference', 'replicated', 'roll_config', 'service_spec']
