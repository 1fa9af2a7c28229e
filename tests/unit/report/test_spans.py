"""The timeline and per-node figures computed from spans (what the report's Gantt chart and node table draw)."""

from __future__ import annotations

import asyncio
import json

from ember_compiler import api
from ember_compiler.report.spans import calls, node_stats, pack
from ember_compiler.testing.clock import virtual_time
from ember_compiler.testing.providers import KEY, Server, reply

WIDE = """\
ember: 1
name: wide-judge
inputs: {question: string}
models:
  worker: {provider: anthropic, model: claude-haiku-4-5}
nodes:
  candidates: {op: ensemble, model: worker, n: 16, prompt: "Question: {{ inputs.question }}"}
  final: {op: judge, model: worker, question: "${inputs.question}", candidates: "${candidates.responses}"}
outputs: {answer: "${final.answer}"}
"""


def bars(*intervals):
    return [{"t0": a, "t1": b} for a, b in intervals]


def test_packing_uses_as_many_lanes_as_calls_overlap():
    found = bars((0, 4), (1, 2), (1.5, 3), (2, 5), (3, 6), (6, 7))
    assert pack(found) == 3  # at t=2.5: (0,4), (1.5,3), (2,5)
    assert [b["lane"] for b in found] == [0, 1, 2, 1, 2, 0]


def test_a_call_that_starts_when_another_ends_reuses_its_lane():
    found = bars((0, 1), (1, 2), (2, 3))
    assert pack(found) == 1 and {b["lane"] for b in found} == {0}


def test_a_16_wide_ensemble_then_a_judge_shows_16_overlapping_calls_then_one(tmp_path, monkeypatch):
    """Anthropic takes no `n`: the ensemble sends 16 requests at once, the judge one after they all answered.
    Each reply takes 0.2 s of virtual time, so every start comes before any end, whatever the machine's load."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    spec = tmp_path / "wide.yaml"
    spec.write_text(WIDE)

    async def slow(request):
        await asyncio.sleep(0.2)
        return reply("anthropic_message.json")

    server = Server(slow)
    with virtual_time():
        result = api.run(spec, {"question": "Which?"}, api.RunOptions(runs_dir=tmp_path / "runs", cache_mode="off",
                                                                    transport=server.transport))
    assert result.error is None and len(server.requests) == 17
    timeline = api.report_model(result.run_dir)["timeline"]
    first, judge = timeline["calls"][:16], timeline["calls"][16:]
    assert timeline["peak"] == timeline["lanes"] == 16
    assert {c["node"] for c in first} == {"candidates"} and sorted(c["lane"] for c in first) == list(range(16))
    assert max(c["t0"] for c in first) < min(c["t1"] for c in first)  # all 16 in flight at one instant
    [last] = judge
    assert last["node"] == "final" and last["t0"] >= max(c["t1"] for c in first) and last["lane"] == 0


def span(name, kind, node, start, end, status="OK", **attrs):
    return {"trace_id": "t", "span_id": name + str(start), "parent_span_id": "root", "name": name, "kind": kind,
            "start_time_unix_nano": int(start * 1e9), "end_time_unix_nano": int(end * 1e9), "status": status,
            "attributes": {"ember.node.id": node, **attrs}}


def test_node_figures_sum_calls_tokens_cost_and_count_failures_and_cache_hits():
    spans = [
        span("node gen", "INTERNAL", "gen", 0, 1.0, **{"ember.node.op": "ensemble", "ember.node.kind": "llm",
                                                    "ember.node.status": "ok"}),
        span("node gen", "INTERNAL", "gen", 0, 3.0, **{"ember.node.op": "ensemble", "ember.node.kind": "llm",
                                                    "ember.node.status": "ok"}),
        span("chat m", "CLIENT", "gen", 0, 1, **{"ember.samples": 4, "gen_ai.usage.input_tokens": 10,
                                                 "gen_ai.usage.output_tokens": 40, "ember.cost.usd": 0.5}),
        span("chat m", "CLIENT", "gen", 0, 1, **{"ember.samples": 4, "gen_ai.usage.input_tokens": 10,
                                                 "gen_ai.usage.output_tokens": 40, "ember.cost.usd": 0.25,
                                                 "ember.cache.hit": True}),
        span("chat m", "CLIENT", "gen", 0, 1, status="ERROR", **{"ember.samples": 1}),
        span("node pick", "INTERNAL", "pick", 3, 3.1, **{"ember.node.op": "vote", "ember.node.kind": "fn",
                                                      "ember.node.status": "skipped"}),
    ]
    gen, pick = node_stats(spans, ["gen", "pick"])
    assert (gen["calls"], gen["requests"], gen["input_tokens"], gen["output_tokens"]) == (9, 3, 20, 80)
    assert (gen["cost_usd"], gen["errors"], gen["cache_hits"], gen["runs"]) == (0.75, 1, 1, 2)
    assert (gen["latency_p50_s"], gen["latency_p95_s"]) == (3.0, 3.0)
    assert (pick["op"], pick["runs"], pick["skipped"], pick["latency_p50_s"]) == ("vote", 0, 1, None)


def test_an_unknown_price_makes_the_node_cost_unknown():
    spans = [span("chat m", "CLIENT", "gen", 0, 1, **{"ember.cost.usd": None}),
             span("chat m", "CLIENT", "gen", 1, 2, **{"ember.cost.usd": 0.1})]
    assert node_stats(spans, [])[0]["cost_usd"] is None


def test_times_are_from_the_first_span_and_rows_come_from_the_root_span(tmp_path):
    root = {"trace_id": "t", "span_id": "r", "parent_span_id": None, "name": "invoke_workflow x", "kind": "INTERNAL",
            "start_time_unix_nano": 10_000_000_000, "end_time_unix_nano": 13_000_000_000, "status": "OK",
            "attributes": {"ember.example.id": "q7"}}
    timeline = calls([root, span("chat m", "CLIENT", "gen", 11, 12.5)])
    [c] = timeline["calls"]
    assert (c["t0"], c["t1"], c["row"], timeline["span_s"]) == (1.0, 2.5, "q7", 3.0)
    assert json.loads(json.dumps(timeline)) == timeline  # JSON-able, as the page carries it
