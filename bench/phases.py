"""Where the time of a run goes, phase by phase, for compose v2 and ``docker.system`` alike.

The bench's figures say how long each tool takes; this says where, from the
engine's side: every request of a run goes through the bench's counting proxy
(``countproxy.py``), which keeps the time it was sent, and a phase ends where
the first request of the next one is sent. The phases need no help from the
tool, so both are cut the same way:

- cold bring-up: the program's start up to its first request; its first looks
  (what exists); making the network and the volumes; creating containers up
  to the first start; the starts up to the engine's last answer; the
  program's end after it;
- one change: start; the looks; the change (first write to last request); end;
- teardown: start; the looks; the containers (first stop or signal up to the
  network's removal); the network's removal and what follows; end.

Each run's last phase ends with the engine's last answer (the proxy keeps when each
response began), "end" is the rest up to the program's exit.

    .venv/bin/python bench/phases.py --sizes 20 100 --shapes chain fanout

Graceful containers, one run each (the same systems as ``bench.py``); prints an
RST table of seconds (the docs' "Where the time goes").
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402
from countproxy import CountingProxy  # noqa: E402

#: Per run, after the program's start: (phase, pattern of "METHOD /path" whose first match
#: begins it).
PHASES = {
    'cold': [('looks', r''),
             ('network, volumes', r'POST /(networks|volumes)/create'),
             ('creates', r'POST /containers/create'), ('starts', r'POST /containers/[^/]+/start')],
    'change': [('looks', r''), ('change', r'POST|DELETE')],
    'teardown': [('looks', r''),
                 ('containers', r'POST /containers/[^/]+/(stop|kill)'),
                 ('network', r'DELETE /networks/')],
}


def phases(trace: list[tuple[float, str, str]], started: float, ended: float,
           run: str, answers: Sequence[float] = ()) -> list[tuple[str, float]]:
    """The seconds of each phase of ``run`` in ``trace``; the engine's last answer
    (``answers``: when each response began) to the exit is the phase "end"."""
    lines = [(t - started, f'{method} {re.sub(r"^/v[0-9.]+", "", path)}')
             for t, method, path in trace]
    bounds: list[tuple[str, float]] = [('start', 0.0)]
    position = 0
    for name, pattern in PHASES[run]:
        at = next((i for i in range(position, len(lines)) if re.match(pattern, lines[i][1])),
                  None)
        if at is None:
            continue
        bounds.append((name, lines[at][0]))
        position = at
    last = max([lines[-1][0] if lines else 0.0] + [t - started for t in answers])
    bounds.append(('end', last))
    out = [(name, bounds[i + 1][1] - at) for i, (name, at) in enumerate(bounds[:-1])]
    return out + [('end', ended - started - last)]


def measure(n: int, shape: str, tool: str, proxy: CountingProxy, binary: Path,
            buildout: Path) -> dict[str, list[tuple[str, float]]]:
    work = Path(tempfile.mkdtemp(prefix=f'dn-phases-{tool}-'))
    env = {**os.environ, 'DOCKER_HOST': f'unix://{bench.PROXY}'}
    # Names of this run only: a network the engine bug keeps (docs/benchmark.rst) stays behind.
    prefix = f'dnphases{n}{shape}{int(time.time()) % 100000}'
    compose = work / 'docker-compose.json'
    config = work / 'buildout.cfg'
    found: dict[str, list[tuple[str, float]]] = {}
    try:
        for run in ('cold', 'change', 'teardown'):
            changed = run != 'cold'
            if tool == 'compose2':
                compose.write_text(bench.compose_file(n, shape, True, changed))
                command = [str(binary), '-p', prefix, '-f', str(compose)] + \
                    (['down'] if run == 'teardown' else ['up', '-d'])
            else:
                config.write_text(bench.buildout_config(n, shape, 'system', True, changed, prefix,
                                                        parts=run != 'teardown'))
                command = [str(buildout), '-N', '-q', '-c', str(config)]
            proxy.reset()
            started = time.monotonic()
            result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
            ended = time.monotonic()
            if result.returncode:
                raise SystemExit(f'{tool} {run} failed:\n{result.stdout}\n{result.stderr}')
            found[run] = phases(list(proxy.trace), started, ended, run, list(proxy.answers))
    finally:
        bench.clean_up({'name': prefix}, f'{prefix}-net', prefix)
        bench.clean_up({'label': f'com.docker.compose.project={prefix}'}, f'{prefix}_net', prefix)
        shutil.rmtree(work)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[20, 100])
    parser.add_argument('--shapes', nargs='+', default=['chain', 'fanout'])
    args = parser.parse_args()
    import docker
    client = docker.from_env()
    bench.ensure_image(client)
    client.close()
    buildout, binary = bench.ensure_venv(), bench.ensure_compose2()
    rows = []
    with CountingProxy(bench.PROXY) as proxy:
        for n in args.sizes:
            for shape in args.shapes:
                for tool, label in (('compose2', 'compose v2'), ('system', 'docker.system')):
                    for run, cut in measure(n, shape, tool, proxy, binary, buildout).items():
                        total = sum(seconds for _, seconds in cut)
                        rows.append([f'{n} {shape}', label, run, f'{total:.2f}',
                                     ', '.join(f'{name} {seconds:.2f}' for name, seconds in cut)])
                        print(*rows[-1], sep='  |  ', flush=True)
    print()
    print('\n'.join(bench.rst_table(['N, shape', 'tool', 'run', 'whole', 'phases (seconds)'],
                                    rows)))


if __name__ == '__main__':
    main()
