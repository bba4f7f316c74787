"""Writing a control script: ``bin/<script>`` and the description it reads (names, order,
gates and volumes, never an environment value), for docker.system and docker.control."""
from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping

from . import atomicfile, containerspec
from ..model import dependencies
from ..run import ownership
from .scripts import write_script
from ..engine.driver import EngineConfig
from ..model.engine_options import record


#: The description of the members, in ``parts/<part>/``.
DESCRIPTION = 'control.json'


def write_control(bin_directory: str, parts_directory: str, part: str, recipe: str,
                  description: Mapping[str, Any], script: str | None = None,
                  file_name: str = DESCRIPTION) -> list[str]:
    """``bin/<script>`` and ``parts/<part>/<file_name>``, each written whole (the script may
    be running): what a docker.system part and a docker.control part both install."""
    parts = os.path.join(parts_directory, part)
    os.makedirs(parts, exist_ok=True)
    path = os.path.join(parts, file_name)
    atomicfile.write_text_if_changed(
        path, json.dumps(description, indent=2, sort_keys=True) + '\n', 0o644)
    script = script or part
    target = write_script(
        os.path.join(bin_directory, script), 'dockeroo_nagoya.cli.control:main', [path],
        f'Control script of the {recipe} part {part} (made by buildout: bin/{script} --help).',
        {'prog': script})
    return [target, parts]


def describe(part: str, owner: ownership.Owner, engine: EngineConfig, backups: str,
             members: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The description the control script reads: members in dependency order, with
    ``section``, ``container``, ``image``, ``after``, ``linked``, ``job``, ``start``,
    ``stop-timeout``, ``wait-for``, ``wait-timeout``, ``callbacks`` and ``volumes``
    (names only: never an option value such as env)."""
    members = [dict(m) for m in members]
    graph = {m['section']: {a for a in m['after']} for m in members}
    volumes = sorted({v['volume'] for m in members for v in m['volumes']})
    return {'format': 1, 'part': part, 'directory': owner.directory, 'installed': owner.installed,
            'host': owner.host,
            'engine': record(engine), 'backup-directory': backups,
            'levels': dependencies.levels(graph), 'members': members, 'volumes': volumes}


def describe_member(section: str, spec: containerspec.ContainerSpec, after: Iterable[str],
                    linked: Iterable[str] = (), engine: EngineConfig | None = None
                    ) -> dict[str, Any]:
    """One member's entry in :func:`describe`, from its container's parsed options.

    ``engine``: the member's own engine (a docker.control part's members each
    come from a part with its own engine options); without it the member is on
    the engine of the description, as every member of a docker.system is."""
    values = spec.values
    own = {'engine': record(engine)} if engine is not None else {}
    return {**own,
        'section': section, 'container': spec.name, 'image': values['image'],
        'after': sorted(after), 'linked': sorted(linked),
        'job': values['job'], 'start': values['start'], 'run-once': values['run-once'],
        'stop-timeout': spec.stop_timeout,
        'wait-for': [gate.text for gate in values['wait-for']],
        'wait-for-tls-verify': values['wait-for-tls-verify'],
        'wait-for-tls-ca': values['wait-for-tls-ca'],
        'wait-timeout': values['wait-timeout'],
        'callbacks': [list(line) for line in values['callbacks']],
        'volumes': [{'volume': v['source'], 'target': v['target'], 'mode': v['mode']}
                    for v in values['volumes']
                    if v['source'] and not v['source'].startswith(('/', '.', '~'))],
    }


__all__ = ['describe', 'describe_member', 'write_control']
