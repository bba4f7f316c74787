"""``docker.network``: a user-defined network.

Networks are fixed at creation, so a changed option means a new network; our
own containers attached to it are disconnected and connected again (with
their aliases). A foreign container on it stops the change with a clear error.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import docker.types
import zc.buildout

from .. import options as opt
from ..engine import Engine, labels_of, LABEL_BUILDOUT
from ..recipe import Recipe, uninstaller


class NetworkRecipe(Recipe):
    """A Docker network."""

    recipe = 'docker.network'
    kind = 'networks'
    table = (
        opt.Option('name', opt.name),
        opt.Option('driver', opt.text, default='bridge'),
        opt.Option('driver-opts', opt.key_values, default=''),
        opt.Option('subnet', opt.network_address),
        opt.Option('gateway', opt.ip_address),
        opt.Option('ip-range', opt.network_address),
        opt.Option('ipv6', opt.boolean, default='false'),
        opt.Option('internal', opt.boolean, default='false'),
        opt.Option('attachable', opt.boolean, default='false'),
        opt.Option('labels', opt.key_values, default=''),
        opt.Option('keep', opt.boolean, default='false', identity=False),
    )

    def configure(self) -> None:
        self.name_from_part()
        subnet, gateway, ip_range = (self.values[k] for k in ('subnet', 'gateway', 'ip-range'))
        if gateway is not None:
            if subnet is None:
                raise opt.invalid(self.name, 'gateway', 'a subnet to go with it (set subnet)')
            if gateway not in subnet:
                raise opt.invalid(self.name, 'gateway', f'an address inside the subnet {subnet}',
                                  str(gateway))
        if ip_range is not None:
            if subnet is None:
                raise opt.invalid(self.name, 'ip-range', 'a subnet to go with it (set subnet)')
            if ip_range.version != subnet.version or not ip_range.subnet_of(subnet):
                raise opt.invalid(self.name, 'ip-range', f'a range inside the subnet {subnet}',
                                  str(ip_range))

    def identity_values(self) -> dict[str, Any]:
        values = super().identity_values()
        values.pop('name')
        return values

    def apply(self, fresh: bool) -> list[str]:
        name = self.values['name']
        identity = self.identity()
        current = next((n for n in self.engine.owned('networks', self.directory)
                        if n['Name'] == name), None)
        if current is None:
            current = self.engine.inspect('networks', name)
            if current is not None:
                self.check_ours(current, 'network', name)
        if current is None:
            self.log.info('creating network %s', name)
            self._create(identity)
        elif self.identity_of(current) != identity:
            self._recreate(current['Id'], identity)
        if fresh:
            for stale in self.engine.part_objects('networks', self.directory, self.name):
                if stale['Name'] != name:
                    _remove(self.engine, stale, self.values['keep'], self.log)
        self.engine.forget('networks')
        return []

    def _create(self, identity: str) -> None:
        values = self.values
        ipam = None
        if values['subnet'] is not None:
            pool = docker.types.IPAMPool(
                subnet=str(values['subnet']),
                gateway=str(values['gateway']) if values['gateway'] else None,
                iprange=str(values['ip-range']) if values['ip-range'] else None)
            ipam = docker.types.IPAMConfig(pool_configs=[pool])
        self.engine.api.create_network(
            values['name'], driver=values['driver'], options=values['driver-opts'] or None,
            ipam=ipam, internal=values['internal'], attachable=values['attachable'],
            enable_ipv6=values['ipv6'], labels=self.labels(identity, values['labels']),
            check_duplicate=True)

    def _recreate(self, network_id: str, identity: str) -> None:
        name = self.values['name']
        attached = attached_containers(self.engine, name)
        aliases: dict[str, list[str]] = {}
        for container_id in attached:
            container = self.engine.api.inspect_container(container_id)
            if labels_of(container).get(LABEL_BUILDOUT) != self.directory:
                raise zc.buildout.UserError(
                    f'{self.name}: network {name} must be made anew (its options changed) but '
                    f'the container {container["Name"].lstrip("/")} of another owner uses it: '
                    f'disconnect it first')
            endpoint = container['NetworkSettings']['Networks'].get(name) or {}
            short = container_id[:12]
            aliases[container_id] = [a for a in endpoint.get('Aliases') or [] if a != short]
        self.log.info('recreating network %s: its options changed%s', name,
                      f' (reconnecting {len(attached)} containers)' if attached else '')
        for container_id in attached:
            self.engine.api.disconnect_container_from_network(container_id, network_id, force=True)
        self.engine.api.remove_network(network_id)
        self._create(identity)
        for container_id, names in aliases.items():
            self.engine.api.connect_container_to_network(container_id, name, aliases=names or None)

    @classmethod
    def teardown(cls, engine: Engine, directory: str, part: str,
                 options: Mapping[str, str], log: logging.Logger) -> None:
        try:
            keep = opt.boolean(options.get('keep', 'false'))
        except opt.Invalid:
            keep = False
        for network in engine.part_objects('networks', directory, part):
            _remove(engine, network, keep, log)


def _remove(engine: Engine, network: Mapping[str, Any], keep: bool, log: logging.Logger) -> None:
    name = network['Name']
    if keep:
        log.info('keeping network %s (keep = true)', name)
        return
    users = [c['Names'][0].lstrip('/') for c in
             engine.api.containers(all=True, filters={'network': name})]
    if users:
        raise zc.buildout.UserError(
            f'network {name} is still used by the containers {", ".join(sorted(users))}: '
            f'remove or disconnect them first')
    engine.api.remove_network(network['Id'])
    log.info('removed network %s', name)


def attached_containers(engine: Engine, name: str) -> list[str]:
    """Ids of every container on the network, running or not (the filter wants the name)."""
    return [c['Id'] for c in engine.api.containers(all=True, filters={'network': name})]


uninstall = uninstaller(NetworkRecipe)
