"""Scheduling policies: `parallel` overlaps independent calls, `sequential` runs one call at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.errors import UsageError
from ember_compiler.runs import run_plan
from ember_compiler.testing.clock import virtual_time
from ember_compiler.xcs.scheduling import CheapestFirst, NodeInfo, Sequential, get_scheduler, node_infos

WIDE = """ember: 1
name: wide
inputs: {question: string}
models:
""" + "".join(f"  w{i}: {{provider: sim, latency_ms: 60}}\n" for i in range(8)) + """nodes:
  e: {op: ensemble, models: [w0, w1, w2, w3, w4, w5, w6, w7], prompt: q}
  v: {op: vote, candidates: "${e.answers}"}
outputs: {answer: "${v.answer}"}
"""


@pytest.fixture()
def wide(tmp_path: Path):
    path = tmp_path / "wide.yaml"
    path.write_text(WIDE)
    return compile_spec(path)


def _took(plan, scheduler) -> float:
    """The run's duration in virtual time: exact, whatever the machine's load."""
    with virtual_time() as clock:
        result, took = clock.measure(lambda: run_plan(plan, {"question": "q"}, runs_dir=None, scheduler=scheduler))
    assert result.error is None and result.usage.calls == 8
    return took


def test_parallel_overlaps_and_sequential_does_not(wide):
    assert _took(wide, "parallel") == pytest.approx(0.06)  # eight 60 ms calls at once
    assert _took(wide, "sequential") == pytest.approx(0.06 * 8)  # one after another


def test_sequential_prefers_earlier_nodes_and_parallel_longer_paths(wide):
    infos = [i for i in node_infos(wide) if i is not None]
    assert [i.remaining for i in infos] == [1] * 8
    seq = Sequential()
    assert seq.priority(wide.nodes[0], infos[0]) > seq.priority(wide.nodes[1], infos[1])


def test_cheapest_first_ranks_by_price():
    cheap = NodeInfo(0, 1, {"price": {"input_per_mtok": 0.1, "output_per_mtok": 0.4}})
    dear = NodeInfo(1, 1, {"price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}})
    assert CheapestFirst().priority(None, cheap) > CheapestFirst().priority(None, dear)


def test_unknown_scheduler_is_a_usage_error_with_a_hint():
    with pytest.raises(UsageError, match="did you mean 'sequential'"):
        get_scheduler("sequentail")
