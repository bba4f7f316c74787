"""Benchmark: dockeroo_nagoya against docker-compose on the same systems.

For N containers (busybox ``sleep 3600`` under the engine's init, so that a
stop takes what the service takes, not the grace period; each with a named
volume, all on one network) in a dependency chain and in a fan-out, it measures cold
bring-up, a no-op rerun, a rerun after one container's option changed, and
teardown, for:

- ``compose``: Debian's docker-compose (``up -d``, ``up -d``, ``up -d``, ``down``);
- ``system``: one ``docker.system`` part (plus the network and volume parts);
- ``parts``: one ``docker.run`` part per container (plus the same);
- ``engine``: no tool, the floor: the same engine work driven straight from
  this process (no program to start, nothing to read or compare, every
  container stopped at once whatever depends on it), which no tool can beat.

Buildout is run the way a user runs it: this package installed into a
virtualenv of its own (not a develop egg), ``bin/buildout -N``. Engine API
requests of each no-op rerun are counted through a proxy on a unix socket.

    .venv/bin/python bench/bench.py                 # N = 5 20 100, 3 rounds
    .venv/bin/python bench/bench.py --sizes 20 --rounds 5 --tools compose system
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
from requests.exceptions import RequestException

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(HERE))
from countproxy import CountingProxy  # noqa: E402

IMAGE = 'dn-bench/busybox:latest'
VENV = PROJECT / '.bench-venv'
PROXY = '/tmp/dn-bench-engine.sock'


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


def ensure_venv() -> Path:
    """A virtualenv with this package installed as a user installs it (no develop egg)."""
    buildout = VENV / 'bin' / 'buildout'
    stamp = VENV / '.installed-from'
    source = str(max((p.stat().st_mtime for p in (PROJECT / 'dockeroo_nagoya').rglob('*.py'))))
    if buildout.exists() and stamp.exists() and stamp.read_text() == source:
        return buildout
    subprocess.run([sys.executable, '-m', 'venv', '--clear', str(VENV)], check=True)
    pip = [str(VENV / 'bin' / 'pip'), 'install', '-q']
    subprocess.run(pip + ['zc.buildout==6.0.1', str(PROJECT)], check=True)
    stamp.write_text(source)
    return buildout


def depends(shape: str, index: int) -> list[int]:
    if index == 0:
        return []
    return [index - 1] if shape == 'chain' else [0]


# -- the systems ----------------------------------------------------------------------------
#: True: the containers run under the engine's init and stop on SIGTERM (like most
#: services); False (--stubborn): sleep is PID 1, ignores SIGTERM and waits out its grace period.
GRACEFUL = True


def compose_file(n: int, shape: str, changed: bool) -> str:
    services = {}
    for i in range(n):
        service = {'image': IMAGE, 'command': 'sleep 3600', 'init': GRACEFUL, 'networks': ['net'],
                   'volumes': [f'vol{i}:/data'],
                   'environment': {'ROLE': 'changed' if changed and i == n - 1 else 'bench'}}
        if depends(shape, i):
            service['depends_on'] = [f'c{j}' for j in depends(shape, i)]
        services[f'c{i}'] = service
    return json.dumps({'version': '2.4', 'services': services, 'networks': {'net': {}},
                       'volumes': {f'vol{i}': {} for i in range(n)}}, indent=1)


def buildout_config(n: int, shape: str, tool: str, changed: bool, prefix: str,
                    parts: bool = True) -> str:
    lines = ['[buildout]', 'parts =']
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
                  f'init = {str(GRACEFUL).lower()}',
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


#: Seconds any one command may take (an N = 100 ``up -d`` takes about 40).
LIMIT = 300


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
    for container in client.containers.list(all=True, filters=containers):
        container.remove(force=True)
    for found in client.networks.list(names=[network]):
        try:
            found.remove()
        except docker.errors.APIError as exc:
            print(f'left network {network}: {exc}', flush=True)
    for volume in client.volumes.list(filters={'name': volumes}):
        volume.remove()
    client.close()


def run_compose(n: int, shape: str, proxy: CountingProxy, workdir: Path,
                tag: str = '') -> dict[str, object]:
    project = f'dnbench{n}{shape}{tag}'
    file = workdir / 'docker-compose.json'
    base = ['docker-compose', '-p', project, '-f', str(file)]
    # compose 1.29 nests its parallel work under one semaphore (COMPOSE_PARALLEL_LIMIT, 64):
    # with more services than that it can deadlock, every slot held by a service waiting
    # for a slot for its container (seen at N = 100 in a fan-out). Enough slots avoid it.
    env = {'DOCKER_HOST': f'unix://{PROXY}', 'COMPOSE_HTTP_TIMEOUT': '300',
           'COMPOSE_PARALLEL_LIMIT': str(max(64, 4 * n))}
    file.write_text(compose_file(n, shape, False))
    try:
        cold = timed(base + ['up', '-d'], workdir, env)
        proxy.reset()
        noop = timed(base + ['up', '-d'], workdir, env)
        requests = proxy.total()
        file.write_text(compose_file(n, shape, True))
        change = timed(base + ['up', '-d'], workdir, env)
        down = timed(base + ['down'], workdir, env)
    finally:
        clean_up({'label': f'com.docker.compose.project={project}'}, f'{project}_net', project)
    return {'cold': cold, 'noop': noop, 'change': change, 'teardown': down, 'requests': requests}


def run_buildout(n: int, shape: str, tool: str, proxy: CountingProxy, workdir: Path,
                 buildout: Path, tag: str = '') -> dict[str, object]:
    prefix = f'dnbench{n}{shape}{tool}{tag}'
    config = workdir / 'buildout.cfg'
    env = {'DOCKER_HOST': f'unix://{PROXY}'}
    command = [str(buildout), '-N', '-q', '-c', str(config)]
    config.write_text(buildout_config(n, shape, tool, False, prefix))
    try:
        cold = timed(command, workdir, env)
        proxy.reset()
        noop = timed(command, workdir, env)
        requests = proxy.total()
        config.write_text(buildout_config(n, shape, tool, True, prefix))
        change = timed(command, workdir, env)
        config.write_text(buildout_config(n, shape, tool, True, prefix, parts=False))
        down = timed(command, workdir, env)
    finally:
        clean_up({'name': prefix}, f'{prefix}-net', prefix)
    return {'cold': cold, 'noop': noop, 'change': change, 'teardown': down, 'requests': requests}


def run_engine(n: int, shape: str, proxy: CountingProxy, workdir: Path,
               tag: str = '') -> dict[str, object]:
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
    prefix = f'dnbench{n}{shape}engine{tag}'
    api = docker.APIClient(base_url=f'unix://{PROXY}', version='auto', timeout=LIMIT)
    workers = min(16, n)

    def create(i: int, role: str = 'bench') -> str:
        host = api.create_host_config(init=GRACEFUL or None, network_mode=f'{prefix}-net',
                                      binds=[f'{prefix}-vol{i}:/data:rw'])
        return api.create_container(
            IMAGE, 'sleep 3600', name=f'{prefix}-c{i}', environment={'ROLE': role},
            volumes=['/data'], host_config=host, labels={'dn-bench': prefix},
            networking_config=api.create_networking_config(
                {f'{prefix}-net': api.create_endpoint_config()}))['Id']

    def stop(container: str) -> None:
        api.kill(container, signal='SIGTERM' if GRACEFUL else 'SIGKILL')
        api.wait(container)

    def stop_and_remove(container: str) -> None:
        stop(container)
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
    return {'cold': cold, 'noop': noop, 'change': change, 'teardown': down, 'requests': requests}


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})'


METRICS = ('cold', 'noop', 'change', 'teardown')


def median(rounds: list[dict[str, object]], metric: str) -> float:
    return statistics.median(float(r[metric]) for r in rounds)  # type: ignore[arg-type]


def print_table(results: dict[str, list[dict[str, object]]]) -> None:
    """One row per size, shape and tool: medians, spread or ratio to compose, requests;
    then, when the engine's floor was measured, each tool's own share above it."""
    header = f'{"N":>4} {"shape":7} {"tool":8} {"cold up":>20} {"no-op rerun":>20} ' \
             f'{"one change":>20} {"teardown":>20} {"requests":>9}'
    print(header)
    print('-' * len(header))
    for key, rounds in results.items():
        n, shape, tool = key.split()
        reference = results.get(f'{n} {shape} compose')
        cells = []
        for metric in METRICS:
            values = [float(r[metric]) for r in rounds]  # type: ignore[arg-type]
            cell = summary(values)
            if reference and tool != 'compose':
                base = median(reference, metric)
                cell = f'{statistics.median(values):.2f} x{statistics.median(values) / base:.2f}'
            cells.append(cell)
        requests = statistics.median(int(r['requests']) for r in rounds)  # type: ignore[arg-type]
        print(f'{n:>4} {shape:7} {tool:8} ' + ' '.join(f'{c:>20}' for c in cells) + f' {requests:>9.0f}')
    above = [(key, rounds) for key, rounds in results.items()
             if not key.endswith(' engine') and f'{key.rsplit(" ", 1)[0]} engine' in results]
    if not above:
        return
    print('\nSeconds above the engine\'s floor (the tool\'s own share; the ratio is to compose\'s share):')
    print(header.rsplit(' ', 1)[0].rstrip())
    print('-' * len(header))
    for key, rounds in above:
        n, shape, tool = key.split()
        floor = results[f'{n} {shape} engine']
        reference = results.get(f'{n} {shape} compose')
        cells = []
        for metric in METRICS:
            share = median(rounds, metric) - median(floor, metric)
            cell = f'{share:.2f}'
            if reference and tool != 'compose':
                base = median(reference, metric) - median(floor, metric)
                cell += f' x{share / base:.2f}' if base > 0 else ''
            cells.append(cell)
        print(f'{n:>4} {shape:7} {tool:8} ' + ' '.join(f'{c:>20}' for c in cells))


def read_log(path: str) -> dict[str, list[dict[str, object]]]:
    """The figures of an earlier run from its output (``N shape tool {json}`` lines)."""
    results: dict[str, list[dict[str, object]]] = {}
    for line in Path(path).read_text().splitlines():
        words = line.split(' ', 3)
        if len(words) == 4 and words[0].isdigit() and words[3].startswith('{'):
            results.setdefault(' '.join(words[:3]), []).append(json.loads(words[3]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[5, 20, 100])
    parser.add_argument('--shapes', nargs='+', default=['chain', 'fanout'])
    parser.add_argument('--tools', nargs='+', default=['compose', 'system', 'parts', 'engine'],
                        choices=['compose', 'system', 'parts', 'engine'])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--json', help='also write the raw figures here')
    parser.add_argument('--stubborn', action='store_true',
                        help='containers that ignore SIGTERM and wait out the 10 s grace period')
    parser.add_argument('--table-from', metavar='OUTPUT',
                        help='print the table of an earlier run from its output, and stop')
    args = parser.parse_args()
    if args.table_from:
        print_table(read_log(args.table_from))
        return
    global GRACEFUL
    GRACEFUL = not args.stubborn

    client = docker.from_env()
    ensure_image(client)
    buildout = ensure_venv()
    results: dict[str, list[dict[str, object]]] = {}
    troubles: dict[str, list[str]] = {}
    with CountingProxy(PROXY) as proxy:
        for n in args.sizes:
            for shape in args.shapes:
                # Rounds interleave the tools, so a noisy minute hits each of them alike.
                for _, tool in ((r, t) for r in range(args.rounds) for t in args.tools):
                    key = f'{n} {shape} {tool}'
                    for attempt in range(3):
                        workdir = Path(tempfile.mkdtemp(prefix='dn-bench-'))
                        tag = f'a{attempt}' if attempt else ''
                        try:
                            if tool == 'compose':
                                figures = run_compose(n, shape, proxy, workdir, tag)
                            elif tool == 'engine':
                                figures = run_engine(n, shape, proxy, workdir, tag)
                            else:
                                figures = run_buildout(n, shape, tool, proxy, workdir, buildout,
                                                       tag)
                            break
                        except (Hung, Failed) as exc:  # said, counted, and the round run again
                            what = 'HUNG' if isinstance(exc, Hung) else 'FAILED'
                            print(f'{key} {what}: {exc}', flush=True)
                            troubles.setdefault(key, []).append(what.lower())
                        finally:
                            shutil.rmtree(workdir, ignore_errors=True)
                    else:
                        raise SystemExit(f'{key}: three attempts in a row hung or failed')
                    results.setdefault(key, []).append(figures)
                    print(key, json.dumps(figures, default=lambda v: round(v, 3)), flush=True)
    print()
    print(f'Machine: {platform.platform()}, {os.cpu_count()} cores, '
          f'engine {client.version()["Version"]}, '
          f'{subprocess.run(["docker-compose", "version", "--short"], capture_output=True, text=True).stdout.strip()} compose')
    print(f'{args.rounds} rounds; seconds as median (min-max); ratio = median / compose median; '
          f'{"graceful (init, stop on SIGTERM)" if GRACEFUL else "stubborn (SIGTERM ignored)"}\n')
    print_table(results)
    for key, what in troubles.items():
        print(f'{key}: {", ".join(what)}, and was run again each time')
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
