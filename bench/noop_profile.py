"""Where a no-op rerun's time goes: cProfile of ``bin/buildout -N`` in CPU time, as RST.

Each ``LABEL=BUILDOUT:DIRECTORY`` is a buildout script and a directory whose
configuration was brought up before (so the run is a no-op). Each is run
``--runs`` times under cProfile with ``time.process_time`` as its clock, so
other processes on a busy machine are not counted; the table gives the
median of a few totals by step (milliseconds; cProfile about doubles the
time of code that makes many small calls, so compare columns, not seconds).

    python bench/noop_profile.py empty=.bench-venv/bin/buildout:/tmp/empty \\
        idle=.bench-venv/bin/buildout:/tmp/idle20 system=.bench-venv/bin/buildout:/tmp/sys20
"""
from __future__ import annotations

import argparse
import pstats
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

#: (row, pattern of ``file:line(function)``), cumulative CPU time of every match.
STEPS = [
    ('the whole run', r'buildout:1\(<module>\)$'),
    ('buildout reads the configuration', r'zc/buildout/buildout\.py:\d+\(__init__\)$'),
    ('buildout installs (all below)', r'zc/buildout/buildout\.py:\d+\(install\)$'),
    ('- the parts\' signatures', r'buildout\.py:\d+\(_compute_part_signatures\)'),
    ('- of which hashing site-packages', r'buildout\.py:\d+\(_dir_hash\)'),
    ('- loading the recipes (imports)', r'buildout\.py:\d+\(_install_and_load\)'),
    ('- of which importing docker', r'/docker/__init__\.py:1\(<module>\)'),
    ('- the recipes\' constructors', r'dockeroo_nagoya/recipes/base\.py:\d+\(__init__\)'),
    ('- the recipes\' update', r'dockeroo_nagoya/recipes/base\.py:\d+\(update\)'),
    ('- of which the orphan sweep', r'dockeroo_nagoya/run/orphans\.py:\d+\(sweep_once\)'),
    ('engine requests (in the SDK)', r'requests/sessions\.py:\d+\(send\)'),
]

RUNNER = '''
import cProfile, runpy, sys, time
script, out = sys.argv[1], sys.argv[2]
sys.argv = [script, '-N', '-q']
profile = cProfile.Profile(time.process_time)
profile.enable()
try:
    runpy.run_path(script, run_name='__main__')
except SystemExit:
    pass
profile.disable()
profile.dump_stats(out)
'''


def profile_once(buildout: str, directory: str, out: Path) -> None:
    """One no-op run of ``buildout`` in ``directory`` under the CPU-time profiler, with the
    buildout script's own Python."""
    python = Path(buildout).read_text().splitlines()[0].removeprefix('#!').strip()
    subprocess.run([python, '-c', RUNNER, buildout, str(out)], cwd=directory, check=True,
                   capture_output=True)


def steps(path: Path) -> dict[str, float]:
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    found = {}
    for row, pattern in STEPS:
        rx = re.compile(pattern)
        found[row] = sum(v[3] for k, v in stats.items() if rx.search(f'{k[0]}:{k[1]}({k[2]})'))
    return found


def table(columns: dict[str, list[dict[str, float]]]) -> str:
    header = ['ms (cProfile, CPU)', *columns]
    rows = [[row, *(f'{statistics.median(r[row] for r in runs) * 1000:.0f}'
                    for runs in columns.values())] for row, _ in STEPS]
    widths = [max(len(c) for c in column) for column in zip(header, *rows)]
    rule = '  '.join('=' * w for w in widths)
    line = lambda cells: '  '.join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return '\n'.join([rule, line(header), rule, *(line(r) for r in rows), rule])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('runs', nargs='*', metavar='LABEL=BUILDOUT:DIRECTORY')
    parser.add_argument('--runs', type=int, default=3, dest='times')
    parser.add_argument('--from-dumps', nargs='*', metavar='LABEL=DUMP,DUMP',
                        help='tabulate earlier dumps instead of running')
    args = parser.parse_args()
    columns: dict[str, list[dict[str, float]]] = {}
    for spec in args.from_dumps or []:
        label, dumps = spec.split('=', 1)
        columns[label] = [steps(Path(d)) for d in dumps.split(',')]
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(args.times if args.runs else 0):
            for spec in args.runs:   # interleaved, so a slow minute hits each alike
                label, target = spec.split('=', 1)
                buildout, directory = target.split(':', 1)
                out = Path(scratch) / f'{label}-{i}.prof'
                profile_once(buildout, directory, out)
                columns.setdefault(label, []).append(steps(out))
    print(table(columns))


if __name__ == '__main__':
    main()
