"""bench/phases.py cuts a run's request trace into phases the same way for every tool."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'bench'))
phases = pytest.importorskip('phases')


def test_a_cold_trace_is_cut_where_each_phase_sends_its_first_request():
    trace = [(10.5, 'GET', '/v1.41/version'), (10.6, 'GET', '/v1.41/containers/json'),
             (10.7, 'POST', '/v1.41/networks/create'), (10.8, 'POST', '/v1.41/volumes/create'),
             (11.0, 'POST', '/v1.41/containers/create'),
             (11.1, 'POST', '/v1.41/containers/c0/start'),
             (11.2, 'POST', '/v1.41/containers/create'),
             (13.0, 'POST', '/v1.41/containers/c1/start')]
    cut = phases.phases(trace, 10.0, 13.5, 'cold')
    assert [name for name, _ in cut] == ['start', 'looks', 'network, volumes', 'creates',
                                         'starts', 'end']
    assert [round(seconds, 2) for _, seconds in cut] == [0.5, 0.2, 0.3, 0.1, 1.9, 0.5]
    assert round(sum(seconds for _, seconds in cut), 2) == 3.5


def test_a_phase_a_run_does_not_have_is_left_out():
    trace = [(1.1, 'GET', '/containers/json'), (1.2, 'POST', '/containers/x/kill'),
             (1.9, 'DELETE', '/containers/x')]
    cut = phases.phases(trace, 1.0, 2.0, 'teardown')
    assert [name for name, _ in cut] == ['start', 'looks', 'containers', 'end']
    assert [round(seconds, 2) for _, seconds in cut] == [0.1, 0.1, 0.7, 0.1]


def test_the_last_phase_ends_with_the_engines_last_answer():
    trace = [(1.1, 'GET', '/containers/json'), (1.2, 'POST', '/containers/x/stop')]
    cut = phases.phases(trace, 1.0, 3.0, 'change', answers=[1.15, 2.5])
    assert [(name, round(seconds, 2)) for name, seconds in cut] == [
        ('start', 0.1), ('looks', 0.1), ('change', 1.3), ('end', 0.5)]
