"""``docker.network``: a user-defined network.

Networks are fixed at creation, so a changed option means a new network; our
own containers attached to it are disconnected and connected again (with
their aliases). A foreign container on it stops the change with a clear error.
Until they are connected again, the containers and their aliases are written
down (``var/reconnect/NAME.json``), so that a run interrupted in between is
finished by the next one instead of leaving them off the network.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from typing import Any, Mapping

import zc.buildout

from ..mechanisms import atomicfile
from ..model import options as opt
from ..mechanisms import readfiles
from ..model.decisions import Change, Decision, state
from ..engine.errors import APIError, NotFound
from ..engine import specs
from ..engine.driver import Engine, explain
from .base import Recipe, uninstaller

#: Seconds a removal waits for the engine to forget the endpoints of removed containers.
STALE_ENDPOINTS_WAIT = 10.0


class NetworkRecipe(Recipe):
    """A Docker network."""

    recipe = 'docker.network'
    kind = 'networks'
    owns = ('networks',)
    keep_default = False
    kept_kinds = ('network',)
    table = (
        opt.Option('name', opt.name,
                   doc="The network's name (default: the part's name); ``${part:name}``."),
        opt.Option('driver', opt.text, default='bridge', doc='The network driver.'),
        opt.Option('driver-opts', opt.key_values, default='', doc='``KEY=VALUE`` driver options.'),
        opt.Option('subnet', opt.network_address,
                   doc='A subnet in CIDR form, e.g. ``172.28.0.0/16``.'),
        opt.Option('gateway', opt.ip_address, doc="The gateway's address."),
        opt.Option('ip-range', opt.network_address,
                   doc="The range containers' addresses are taken from (CIDR)."),
        opt.Option('ipv6', opt.boolean, default='false', doc='Enable IPv6.'),
        opt.Option('internal', opt.boolean, default='false', doc='No access to the outside.'),
        opt.Option('attachable', opt.boolean, default='false',
                   doc='Standalone containers may join (overlay networks).'),
        opt.Option('labels', opt.key_values, default='', doc='``KEY=VALUE`` labels.'),
        opt.Option('keep', opt.boolean, default='false', identity=False,
                   doc='Leave the network when the part is removed or renamed.'),
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

    def decide(self, fresh: bool) -> Decision:
        """Create, recreate (its options changed: its containers connected again), finish
        an interrupted recreate, or nothing; then the part's networks under old names."""
        name = self.values['name']
        identity = self.identity()
        current = self.find_named('networks', name, 'network')
        pending = self._pending_reconnect()
        if current is None:
            change = Change('network', name, 'create', [state('it was removed')] if
                            self.installed_before(fresh) else [])
        elif self.identity_of(current) != identity:
            attached = len(attached_containers(self.engine, name))
            change = Change('network', name, 'recreate', [state(
                'its options changed' + (f' (its {attached} containers are connected again)'
                                         if attached else ''))], current['Id'])
        elif pending:
            change = Change('network', name, 'update', [state(
                'finishing an interrupted recreate: connecting its containers again')],
                current['Id'])
        else:
            change = Change('network', name, 'none', [], current['Id'])
        old = self.decide_old_names(name, fresh, self.values['keep'])
        return Decision([change, *old], found={'identity': identity, 'pending': pending},
                        fresh=fresh)

    def act(self, decision: Decision) -> list[str]:
        name = self.values['name']
        identity, pending = decision.found['identity'], decision.found['pending']
        change = decision.changes[0]
        if change.action == 'create':
            self.log.info('creating network %s', name)
            self._create(identity)
        elif change.action == 'recreate':
            assert change.id is not None
            self._recreate(change.id, identity, pending)
        if pending and change.action != 'none':
            self._reconnect(pending, 'finishing an interrupted recreate')
        self.act_on_old_names(decision.changes[1:], decision.fresh, lambda engine, old: _remove(
            engine, {'Name': old.object, 'Id': old.id}, False, self.log))
        self.engine.forget('networks')
        return []

    def _create(self, identity: str) -> None:
        values = self.values
        ipam = None
        if values['subnet'] is not None:
            ipam = specs.ipam(
                str(values['subnet']),
                gateway=str(values['gateway']) if values['gateway'] else None,
                ip_range=str(values['ip-range']) if values['ip-range'] else None)
        self.engine.api.create_network(
            values['name'], driver=values['driver'], options=values['driver-opts'] or None,
            ipam=ipam, internal=values['internal'], attachable=values['attachable'],
            enable_ipv6=values['ipv6'], labels=self.labels(identity, values['labels']),
            check_duplicate=True)

    def _recreate(self, network_id: str, identity: str,
                  pending: dict[str, list[str]] | None = None) -> None:
        name = self.values['name']
        attached = attached_containers(self.engine, name)
        aliases: dict[str, list[str]] = dict(pending or {})
        for container_id in attached:
            container = self.engine.api.inspect_container(container_id)
            if not self.is_ours(container):
                raise zc.buildout.UserError(
                    f'{self.name}: network {name} must be made anew (its options changed) but '
                    f'the container {container["Name"].lstrip("/")} of another owner uses it: '
                    f'disconnect it first')
            endpoint = container['NetworkSettings']['Networks'].get(name) or {}
            short = container_id[:12]
            aliases[container_id] = [a for a in endpoint.get('Aliases') or [] if a != short]
        self.log.info('recreating network %s: its options changed%s', name,
                      f' (reconnecting {len(attached)} containers)' if attached else '')
        self._write_reconnect(aliases)
        for container_id in attached:
            self.engine.api.disconnect_container_from_network(container_id, network_id, force=True)
        _remove_network(self.engine, network_id, name, self.log)
        self._create(identity)
        self._reconnect(aliases)
        if pending is not None:
            pending.clear()

    # -- containers to connect again, written down while they are off the network ----------
    @property
    def reconnect_file(self) -> str:
        return os.path.join(self.directory, 'var', 'reconnect', f'{self.values["name"]}.json')

    def _pending_reconnect(self) -> dict[str, list[str]]:
        try:
            found = readfiles.read_record(self.reconnect_file)
        except readfiles.Unreadable as exc:
            self.log.warning('%s cannot be read (%s): containers left off network %s by an '
                             'interrupted run must be connected by hand', self.reconnect_file,
                             exc, self.values['name'])
            return {}
        return {str(k): list(v) for k, v in found.items()}

    def _write_reconnect(self, aliases: Mapping[str, list[str]]) -> None:
        os.makedirs(os.path.dirname(self.reconnect_file), exist_ok=True)
        atomicfile.write_text(self.reconnect_file,
                              json.dumps(dict(aliases), indent=1, sort_keys=True))

    def _reconnect(self, aliases: Mapping[str, list[str]], why: str = '') -> None:
        """Connect the containers again (those still there and not on it yet), then forget them."""
        name = self.values['name']
        on_it = set(attached_containers(self.engine, name))
        for container_id, names in aliases.items():
            if container_id in on_it:
                continue
            try:
                self.engine.api.connect_container_to_network(container_id, name,
                                                             aliases=names or None)
            except NotFound:
                continue  # removed meanwhile: nothing to connect
            if why:
                self.log.info('%s: connected %s to network %s again', why, container_id[:12], name)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.reconnect_file)

    @classmethod
    def remove_object(cls, engine: Engine, directory: str, part: str,
                      options: Mapping[str, str], change: Change, log: logging.Logger) -> None:
        """A network goes once no container uses it (stale endpoints waited out)."""
        if change.kind != 'network':
            super().remove_object(engine, directory, part, options, change, log)
            return
        _remove(engine, {'Name': change.object, 'Id': change.id}, False, log)


def _remove(engine: Engine, network: Mapping[str, Any], keep: bool, log: logging.Logger) -> None:
    name = network['Name']
    if keep:
        log.info('keeping network %s (keep = true)', name)
        return
    users = [c['Names'][0].lstrip('/') for c in engine.users('networks', name)]
    if users:
        raise zc.buildout.UserError(
            f'network {name} is still used by the containers {", ".join(sorted(users))}: '
            f'remove or disconnect them first')
    _remove_network(engine, network['Id'], name, log)
    log.info('removed network %s', name)


def _remove_network(engine: Engine, network_id: str, name: str, log: logging.Logger) -> None:
    """Remove a network no container uses, waiting out the engine's stale endpoints.

    Right after many of its containers were removed at once, a loaded engine may
    still count their endpoints ("has active endpoints") for a moment. No
    container is on it any more (looked up just before), so the endpoints left
    are disconnected by force and the removal is tried again, for a few seconds.
    """
    deadline = time.monotonic() + STALE_ENDPOINTS_WAIT
    delay = 0.1
    while True:
        try:
            engine.api.remove_network(network_id)
            return
        except APIError as exc:
            if 'active endpoints' not in explain(exc):
                raise
            if time.monotonic() >= deadline:
                raise zc.buildout.UserError(
                    f'{log.name}: network {name}: the Docker engine still counts active endpoints on it, '
                    f'but no container uses it (an engine bug, moby/moby#17217); restarting '
                    f'dockerd clears it, then run buildout again') from None
        log.info('network %s: the engine still counts endpoints of removed containers; '
                 'disconnecting them and trying again', name)
        for endpoint in ((engine.inspect('networks', network_id) or {}).get('Containers') or {}):
            with contextlib.suppress(APIError):
                engine.api.disconnect_container_from_network(endpoint, network_id, force=True)
        time.sleep(delay)
        delay = min(1.0, delay * 2)


def attached_containers(engine: Engine, name: str) -> list[str]:
    """Ids of every container on the network, running or not (the filter wants the name)."""
    return [c['Id'] for c in engine.users('networks', name)]


uninstall = uninstaller(NetworkRecipe)
