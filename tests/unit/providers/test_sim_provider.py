"""The sim provider (DESIGN §3): exact, deterministic semantics, checked statistically where random."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
from collections import Counter

import pytest

from ember_compiler.answers import extract_answer
from ember_compiler.errors import ConfigError, ProviderError
from ember_compiler.providers import sim as sim_mod
from ember_compiler.providers.base import Request
from ember_compiler.providers.registry import check_binding
from ember_compiler.providers.sim import SimProvider
from ember_compiler.testing.clock import VirtualTimeLoop

N = 20_000
MSGS = [{"role": "user", "content": "Question: which letter? Think, then end with Answer: X."}]


def req(binding=None, n=1, name="worker", **meta):
    meta = {"role": "generate", "seed": 7, "example_id": "ex-1", "node_id": "node", "sample_offset": 0, **meta}
    return Request(name, {"provider": "sim", **(binding or {})}, MSGS, n, meta)


def run(request, provider=None):
    return asyncio.run((provider or SimProvider()).complete(request))


def answers(request, provider=None):
    return [extract_answer(t) for t in run(request, provider).texts]


def within(count, n, p, sigmas=5.0):
    """count/n is within `sigmas` binomial standard deviations of p."""
    sd = math.sqrt(max(p * (1 - p), 1e-12) / n)
    return abs(count / n - p) <= sigmas * sd + 1e-12


# -- determinism -----------------------------------------------------------------------------------

def test_same_inputs_same_outputs_and_samples_differ():
    a = run(req(n=64, truth="B")).texts
    assert a == run(req(n=64, truth="B")).texts
    assert len(set(a)) > 1
    assert a != run(req(n=64, truth="B", seed=8)).texts
    assert a != run(req(n=64, truth="B", example_id="ex-2")).texts
    assert a != run(req(n=64, truth="B", node_id="other")).texts


def test_split_requests_equal_one_fused_request():
    fused = run(req(n=10, truth="C", sample_offset=3)).texts
    split = [run(req(n=1, truth="C", sample_offset=3 + j)).texts[0] for j in range(10)]
    assert fused == split


def test_binding_seed_shifts_the_stream():
    base = run(req(n=64, truth="B")).texts
    assert run(req({"seed": 1}, n=64, truth="B")).texts != base
    assert run(req({"seed": 1}, n=64, truth="B", seed=6)).texts == run(req(n=64, truth="B", seed=7)).texts


def test_stable_across_processes():
    code = (
        "import asyncio\n"
        "from ember_compiler.providers.base import Request\n"
        "from ember_compiler.providers.sim import SimProvider\n"
        "r = Request('w', {'provider': 'sim'}, [], 16, {'role': 'generate', 'truth': 'B', 'seed': 7,"
        " 'example_id': 'ex-1', 'node_id': 'node', 'sample_offset': 0})\n"
        "print('|'.join(asyncio.run(SimProvider().complete(r)).texts))\n"
    )
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        for seed in ("1", "2")
    }
    here = "|".join(run(Request("w", {"provider": "sim"}, [], 16, {
        "role": "generate", "truth": "B", "seed": 7, "example_id": "ex-1", "node_id": "node",
        "sample_offset": 0})).texts)
    assert outs == {here}


# -- generate ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("accuracy", [0.0, 0.3, 0.7, 1.0])
def test_generate_accuracy(accuracy):
    got = answers(req({"accuracy": accuracy}, n=N, truth="B"))
    assert within(got.count("B"), N, accuracy)
    assert set(got) <= {"A", "B", "C", "D"}


def test_generate_default_accuracy_and_text_format():
    c = run(req(n=N, truth="D"))
    assert all(t.startswith("Reasoning (sim).\nAnswer: ") for t in c.texts)
    assert within(sum(extract_answer(t) == "D" for t in c.texts), N, 0.7)
    assert c.model == "sim" and c.finish_reasons == ["stop"] * N


def test_independent_draws_across_examples():
    p = SimProvider()

    async def go():
        return [await p.complete(req({"accuracy": 0.4}, truth="A", example_id=f"e{i}")) for i in range(N)]

    hits = sum(extract_answer(c.texts[0]) == "A" for c in asyncio.run(go()))
    assert within(hits, N, 0.4)


def test_wrong_weights_over_wrong_choices_in_order():
    got = Counter(answers(req({"accuracy": 0.0, "wrong_weights": [1, 2, 5]}, n=N, truth="B")))
    assert got["B"] == 0
    for choice, share in (("A", 1 / 8), ("C", 2 / 8), ("D", 5 / 8)):
        assert within(got[choice], N, share), got


def test_wrong_answers_uniform_by_default():
    got = Counter(answers(req({"accuracy": 0.5}, n=N, truth="A")))
    assert within(got["A"], N, 0.5)
    for choice in "BCD":
        assert within(got[choice], N, 0.5 / 3), got


def test_no_truth_is_uniform_over_choices():
    got = Counter(answers(req(n=N, truth=None, choices=["x", "y", "z"])))
    assert set(got) == {"x", "y", "z"}
    for choice in "xyz":
        assert within(got[choice], N, 1 / 3), got


def test_choices_precedence_binding_then_meta_then_default():
    assert set(answers(req({"choices": ["p", "q"]}, n=200, choices=["x", "y"]))) == {"p", "q"}
    assert set(answers(req(n=200, choices=["x", "y"]))) == {"x", "y"}
    assert set(answers(req(n=200))) == {"A", "B", "C", "D"}


def test_truth_outside_choices_draws_wrong_from_all_choices():
    got = Counter(answers(req({"accuracy": 0.6}, n=N, truth=42)))
    assert within(got["42"], N, 0.6)
    assert set(got) == {"42", "A", "B", "C", "D"}


def test_single_choice_equal_to_truth_is_always_right():
    assert set(answers(req({"accuracy": 0.1, "choices": ["yes"]}, n=100, truth="yes"))) == {"yes"}


def test_wrong_weights_length_mismatch_is_a_config_error():
    with pytest.raises(ConfigError, match="wrong_weights"):
        run(req({"wrong_weights": [1, 2]}, truth="A"))


# -- judge / select / verify ---------------------------------------------------------------------------

def test_judge_picks_truth_with_judge_accuracy_else_another_candidate():
    c = req({"accuracy": 0.2, "judge_accuracy": 0.8}, n=N, truth="B", role="judge",
            candidate_answers=["A", "B", "B", "C"])
    texts = run(c).texts
    assert texts[0].endswith(("Answer: A", "Answer: B", "Answer: C"))
    got = Counter(extract_answer(t) for t in texts)
    assert within(got["B"], N, 0.8)
    assert within(got["A"], N, 0.1) and within(got["C"], N, 0.1)


def test_judge_accuracy_defaults_to_accuracy():
    got = answers(req({"accuracy": 0.3}, n=N, truth="B", role="judge", candidate_answers=["A", "B"]))
    assert within(got.count("B"), N, 0.3)


def test_judge_without_truth_among_candidates_is_uniform_over_distinct():
    for truth in ("D", None):
        got = Counter(answers(req(n=N, truth=truth, role="judge", candidate_answers=["A", "C", "A", "A"])))
        assert set(got) == {"A", "C"}
        assert within(got["A"], N, 0.5), got


def test_judge_with_only_the_truth_returns_it():
    got = answers(req({"judge_accuracy": 0.0}, n=100, truth="B", role="judge", candidate_answers=["B", "B"]))
    assert set(got) == {"B"}


def test_judge_falls_back_to_extracting_raw_candidates():
    got = answers(req({"judge_accuracy": 1.0}, n=10, truth="C", role="judge",
                      candidates=["I think\nAnswer: A", "so\nanswer: C"]))
    assert set(got) == {"C"}


def test_select_returns_one_based_index_of_first_matching_candidate():
    texts = run(req({"judge_accuracy": 0.75}, n=N, truth="B", role="select",
                    candidate_answers=["A", None, "B", "B", "C"])).texts
    got = Counter(extract_answer(t) for t in texts)
    assert set(got) <= {"1", "3", "5"}  # None keeps its place; the first B is #3
    assert within(got["3"], N, 0.75)
    assert within(got["1"], N, 0.125) and within(got["5"], N, 0.125)


def test_select_without_candidates_fails():
    with pytest.raises(ProviderError):
        run(req(role="select", candidate_answers=[]))


@pytest.mark.parametrize(("candidate", "truth", "p"), [("B", "B", 0.85), ("A", "B", 0.2), ("A", None, 0.5)])
def test_verify_rates(candidate, truth, p):
    c = run(req({"tpr": 0.85, "fpr": 0.2}, n=N, truth=truth, role="verify", candidate_answer=candidate))
    assert all(t.endswith(("Verdict: yes", "Verdict: no")) for t in c.texts)
    assert within(sum(t.endswith("Verdict: yes") for t in c.texts), N, p)


def test_verify_default_tpr_fpr():
    yes = sum(t.endswith("yes") for t in run(req(n=N, truth="B", role="verify", candidate_answer="B")).texts)
    no = sum(t.endswith("yes") for t in run(req(n=N, truth="B", role="verify", candidate_answer="C")).texts)
    assert within(yes, N, 0.9) and within(no, N, 0.1)


def test_unknown_role_fails():
    with pytest.raises(ProviderError, match="role"):
        run(req(role="summarize"))


# -- per-row overrides ------------------------------------------------------------------------------

def test_flat_row_override_applies_to_all_sim_models():
    assert set(answers(req({"accuracy": 0.0}, n=200, truth="B", sim={"accuracy": 1.0}))) == {"B"}


def test_per_binding_override_beats_flat():
    over = {"accuracy": 1.0, "worker": {"accuracy": 0.0}}
    assert "B" not in answers(req({"accuracy": 0.5}, n=200, truth="B", sim=over))
    # another binding only sees the flat override
    assert set(answers(req({"accuracy": 0.5}, n=200, name="judge", truth="B", sim=over))) == {"B"}


def test_namespaced_binding_matches_last_segment_exact_name_wins():
    over = {"worker": {"accuracy": 0.0}}
    assert "B" not in answers(req(n=200, name="net/worker", truth="B", sim=over))
    over = {"worker": {"accuracy": 0.0}, "net/worker": {"accuracy": 1.0}}
    assert set(answers(req(n=200, name="net/worker", truth="B", sim=over))) == {"B"}


def test_row_accuracy_override_moves_default_judge_accuracy():
    got = answers(req({"accuracy": 0.0}, n=200, truth="B", role="judge", candidate_answers=["A", "B"],
                      sim={"accuracy": 1.0}))
    assert set(got) == {"B"}


def test_unknown_row_override_field_is_reported_with_hint():
    with pytest.raises(ConfigError, match="did you mean 'accuracy'"):
        run(req(sim={"acuracy": 0.9}))


# -- latency and usage (speed: bench/sim.py) ----------------------------------------------------

def test_latency_sleeps_once_per_request():
    loop = VirtualTimeLoop()  # the 250 ms are virtual: the time taken is exact
    try:
        completion = loop.run_until_complete(SimProvider().complete(req({"latency_ms": 250}, n=50)))
    finally:
        loop.close()
    assert len(completion.texts) == 50 and loop.time() == pytest.approx(0.25)  # once, not per sample


def test_zero_latency_never_suspends():
    coro = SimProvider().complete(req(n=3))
    with pytest.raises(StopIteration) as done:
        coro.send(None)
    assert len(done.value.value.texts) == 3


def test_usage_counts_characters_over_four():
    c = run(req(n=3, truth="A"))
    assert c.input_tokens == math.ceil(len(MSGS[0]["content"]) / 4)
    assert c.output_tokens == sum(math.ceil(len(t) / 4) for t in c.texts)


def test_check_binding_validates_sim_fields():
    check_binding("worker", {"provider": "sim", "accuracy": 0.9, "wrong_weights": [1, 1, 2]})
    with pytest.raises(ConfigError, match="model 'worker'.*wrong_weights"):
        check_binding("worker", {"provider": "sim", "wrong_weights": [0, 0]})
    with pytest.raises(ConfigError, match="accuracy"):
        check_binding("worker", {"provider": "sim", "accuracy": 1.5})


def test_sim_reads_answers_with_the_ops_convention() -> None:
    """One default answer regex (ember_compiler.answers): the sim accepts `**Answer:**` and a full-width
    colon in candidates exactly as the ops do, so a judged candidate is read the same by both."""
    from ember_compiler import answers

    assert sim_mod.extract_answer is answers.extract_answer
    texts = ["Work.\n**Answer:** 42", "Answer：42", "> answer: *42*", None]
    assert sim_mod._candidate_answers({"candidates": texts}) == ["42", "42", "42", None]
    assert [answers.extract_answer(t) for t in texts[:3]] == ["42", "42", "42"]


# -- refusal_rate ------------------------------------------------------------------------------------

def test_refusal_rate_refuses_independently_of_the_other_draws():
    plain = run(req(n=N, truth="B"))
    refusing = run(req({"refusal_rate": 0.1}, n=N, truth="B"))
    refused = [j for j, r in enumerate(refusing.finish_reasons) if r == "refusal"]
    assert within(len(refused), N, 0.1) and all(refusing.texts[j] == "" for j in refused)
    # the samples that did not refuse are the very same draws as without a refusal rate
    assert all(refusing.texts[j] == plain.texts[j] for j in range(N) if j not in set(refused))
    split = [run(req({"refusal_rate": 0.1}, n=1, truth="B", sample_offset=j)).finish_reasons[0] for j in range(50)]
    assert split == refusing.finish_reasons[:50]  # seeded per sample, like the other draws
    assert run(req({"refusal_rate": 1.0}, n=5, role="verify", candidate="Answer: B")).texts == [""] * 5
    with pytest.raises(ConfigError, match="refusal_rate"):
        check_binding("w", {"provider": "sim", "refusal_rate": 1.5})


def test_a_vote_fails_a_row_only_when_every_sample_refuses(tmp_path):
    from ember_compiler.compiler import compile_spec
    from ember_compiler.eval.dataset import Row
    from ember_compiler.eval.runner import eval_plan

    spec = tmp_path / "s.yaml"
    spec.write_text("""ember: 1
name: refusing
inputs: {question: string}
models:
  m: {provider: sim, accuracy: 1.0, refusal_rate: 0.5}
nodes:
  ens: {op: ensemble, model: m, n: 3, prompt: "{{ inputs.question }}"}
  tally: {op: vote, candidates: "${ens.answers}"}
outputs: {answer: "${tally.answer}"}
""")
    rows = [Row(i, f"r{i}", {"id": f"r{i}", "question": "q", "answer": "A"}) for i in range(4000)]
    s = eval_plan(compile_spec(spec), rows, runs_dir=None).summary
    # a row is wrong exactly when all 3 samples refused (0.5 ** 3); the others vote for the truth
    assert s["errors"] == s["rows"] - round(s["metrics"]["accuracy"] * s["rows"])
    assert within(s["errors"], 4000, 0.125)
    assert within(s["refusals"], 12000, 0.5) and s["calls"] == 12000
    # the vote cut-off (ensemble and vote fused) draws the same samples: the same rows fail
    cut = eval_plan(compile_spec(spec, batch=True), rows, runs_dir=None).summary
    assert (cut["errors"], cut["metrics"]) == (s["errors"], s["metrics"]) and cut["calls"] < s["calls"]
