"""What the reliability tests share: running a buildout with a fault, counting, checking for orphans.

``sitecustomize.py`` beside this file does the injecting inside the buildout
process; :func:`inject` runs ``bin/buildout`` with it on ``PYTHONPATH`` and
checks that the fault really fired and that the run failed the way it should
(one ``Error:`` line, or killed). :func:`inventory` lists everything labelled
with a buildout; :func:`assert_clean` compares that with what the
configuration describes and looks for leftovers of interrupted runs.
"""
from __future__ import annotations

import collections
import configparser
import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Iterable

import docker
import pytest

from helpers import assert_one_error

FAULTS_DIR = Path(__file__).resolve().parent
THROWAWAY_PREFIX = 'dockeroo-nagoya-tmp-'
HELPER_LABEL = 'io.dockeroo-nagoya.helper'


# -- counting, reported at the end of the session ---------------------------------------
class Tally:
    """Counts per kind of check, printed as one line each at the end of the session.

    Under pytest-xdist each worker counts its own and hands its counts to the
    controller when it is done, which prints the sums.
    """

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def add(self, key: str, number: int = 1) -> None:
        self.counts[key] += number

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        output = getattr(session.config, 'workeroutput', None)
        if output is not None:
            output['dn-tally'] = dict(self.counts)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:  # noqa: ANN001 - xdist's hook
        self.counts.update((getattr(node, 'workeroutput', None) or {}).get('dn-tally', {}))

    def pytest_terminal_summary(self, terminalreporter) -> None:  # noqa: ANN001 - pytest's hook
        counts = self.counts
        if counts['faults injected']:
            terminalreporter.write_line(
                f"fault injection: {counts['faults injected']} faults injected, "
                f"{counts['faults recovered']} recovered")
        if counts['bad inputs']:
            terminalreporter.write_line(
                f"bad input: {counts['bad inputs']} malformed configurations, "
                f"{counts['bad inputs clear']} gave one clear Error line")
        if counts['secrets searched']:
            terminalreporter.write_line(
                f"secrets: {counts['secrets searched']} places searched, none held a test secret")


def tally(config: pytest.Config) -> Tally:
    """The session's one tally, registered as a plugin the first time it is asked for."""
    plugin = config.pluginmanager.get_plugin('dn-tally')
    if plugin is None:
        plugin = Tally()
        config.pluginmanager.register(plugin, 'dn-tally')
    return plugin


# -- running with a fault ----------------------------------------------------------------
@dataclasses.dataclass
class Faulted:
    """The outcome of a buildout run with a fault injected."""

    rule: str
    returncode: int
    output: str
    fired: list[str]

    @property
    def killed(self) -> bool:
        return self.returncode == -9


def fault_env(rule: str, log: Path) -> dict[str, str]:
    path = os.environ.get('PYTHONPATH')
    return {'DN_FAULT': rule, 'DN_FAULT_LOG': str(log),
            'PYTHONPATH': str(FAULTS_DIR) + (os.pathsep + path if path else '')}


def inject(b, rule: str, *args: str, counter: Tally | None = None,
           env: dict[str, str] | None = None) -> Faulted:
    """Run bin/buildout with ``rule``; it must fire and the run must fail cleanly or be killed."""
    log = b.directory.parent / f'fault-{abs(hash(rule)) % 10 ** 8}.log'
    log.unlink(missing_ok=True)
    result = b.run(*(args or ('-N',)), check=False, env={**(env or {}), **fault_env(rule, log)})
    output = result.stdout + result.stderr
    fired = log.read_text().splitlines() if log.exists() else []
    faulted = Faulted(rule, result.returncode, output, fired)
    assert fired, f'the fault {rule!r} never fired:\n{output}'
    assert result.returncode != 0, f'the run with {rule!r} did not fail:\n{output}'
    if not faulted.killed:
        assert_one_error(output)
    if counter is not None:
        counter.add('faults injected')
    return faulted


# -- what is on the engine ---------------------------------------------------------------
def inventory(client: docker.DockerClient, b) -> set[str]:
    """``kind:name`` of everything labelled with the buildout (images by tag, ``<none>`` if untagged)."""
    found: set[str] = set()
    flt = {'label': b.label}
    for container in client.api.containers(all=True, filters=flt):
        found.add('container:' + container['Names'][0].lstrip('/'))
    for image in client.api.images(filters=flt):
        tags = [t for t in image.get('RepoTags') or [] if t != '<none>:<none>']
        found.update(f'image:{tag}' for tag in tags or ['<none>'])
    for network in client.api.networks(filters=flt):
        found.add(f'network:{network["Name"]}')
    for volume in client.api.volumes(filters=flt).get('Volumes') or []:
        found.add(f'volume:{volume["Name"]}')
    return found


def helpers_on(client: docker.DockerClient, volumes: Iterable[str]) -> list[str]:
    """Helper containers that mount one of ``volumes`` (volume archives left half-done)."""
    wanted = set(volumes)
    return [c['Names'][0] for c in client.api.containers(all=True, filters={'label': HELPER_LABEL})
            if wanted & {m.get('Name') for m in c.get('Mounts') or []}]


def installed_parts(b) -> set[str]:
    path = b.directory / '.installed.cfg'
    if not path.exists():
        return set()
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.read_string(path.read_text())
    return set(parser.get('buildout', 'parts', fallback='').split())


def assert_clean(client: docker.DockerClient, b, expected: Iterable[str],
                 installed: bool = True) -> None:
    """Labelled objects are exactly ``expected``; no throwaway, helper or untagged image is left.

    With ``installed``, every labelled object's part is one ``.installed.cfg`` knows.
    """
    found = inventory(client, b)
    assert found == set(expected), (
        f'left over: {sorted(found - set(expected))}, missing: {sorted(set(expected) - found)}')
    flt = {'label': b.label}
    throwaways = [c['Names'][0] for c in client.api.containers(all=True, filters=flt)
                  if c['Names'][0].lstrip('/').startswith(THROWAWAY_PREFIX)]
    assert not throwaways, throwaways
    volumes = [v['Name'] for v in client.api.volumes(filters=flt).get('Volumes') or []]
    assert not helpers_on(client, volumes)
    if not installed:
        return
    parts = installed_parts(b)
    for kind, listing in (('containers', client.api.containers(all=True, filters=flt)),
                          ('images', client.api.images(filters=flt)),
                          ('networks', client.api.networks(filters=flt))):
        for obj in listing:
            part = (obj.get('Labels') or {}).get('io.dockeroo-nagoya.part')
            assert part in parts, f'{kind}: {obj.get("Names") or obj.get("RepoTags") or obj.get("Name")} ' \
                                      f'belongs to part {part}, which .installed.cfg does not list'


def run_quietly(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
