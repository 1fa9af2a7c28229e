"""rank, critic, fuse and score: what they read and write, their exact sim semantics on 2,000+ rows, their
call counts, their parallelism and their SDK classes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from ember_compiler import Model, Network, jit, ops
from ember_compiler.compiler import compile_spec
from ember_compiler.compiler.check import validate_paths
from ember_compiler.eval.dataset import Row
from ember_compiler.eval.metrics import wilson
from ember_compiler.eval.runner import eval_plan
from ember_compiler.ops import critic, rank, score
from ember_compiler.providers.base import Completion
from ember_compiler.runs import run_plan
from ember_compiler.testing import analytic
from ember_compiler.testing.clock import virtual_time
from ember_compiler.xcs.analysis import analyze
from ember_compiler.xcs.plan import PlanNode

ROOT = Path(__file__).resolve().parents[3]
ROWS = 2000


def _spec(tmp_path: Path, nodes: dict, models: dict, outputs: dict) -> Path:
    spec = {"ember": 1, "name": "t", "inputs": {"question": "string", "choices": {"type": "array",
                                                                               "default": list("ABCD")}},
            "models": models, "nodes": nodes, "outputs": outputs}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def _accuracy(path: Path, rows: int = ROWS, seed: int = 3) -> tuple[float, tuple[float, float]]:
    data = [Row(i, str(i), {"question": f"q{i}", "answer": "A"}) for i in range(rows)]
    result = eval_plan(compile_spec(path), data, seed=seed, runs_dir=None)
    assert result.errors == 0
    return result.accuracy, wilson(result.accuracy * rows, rows)


def _within(path: Path, expected: float, seed: int = 3) -> None:
    acc, (lo, hi) = _accuracy(path, seed=seed)
    assert lo <= expected <= hi, (acc, expected, (lo, hi))


def _cands(*answers: str) -> list[str]:
    return [f"Reasoning.\nAnswer: {a}" for a in answers]


Q = "${inputs.question}"


# -- sim semantics against their formulas (docs/sim.md) -----------------------------------------------
@pytest.mark.parametrize("answers,q", [("ABCA", 0.75), ("BAC", 0.9), ("BCDA", 0.6)])
def test_pairwise_rank_matches_the_exact_llm_blender_formula(tmp_path, answers, q):
    path = _spec(tmp_path, {"r": {"op": "rank", "model": "m", "method": "pairwise", "question": Q,
                                  "candidates": _cands(*answers)}},
                 {"m": {"provider": "sim", "judge_accuracy": q}}, {"answer": "${r.answer}"})
    _within(path, analytic.pairwise_top_accuracy([a == "A" for a in answers], q))


def test_listwise_rank_puts_a_correct_candidate_first_with_judge_accuracy(tmp_path):
    path = _spec(tmp_path, {"r": {"op": "rank", "model": "m", "question": Q, "candidates": _cands("B", "A", "C")}},
                 {"m": {"provider": "sim", "judge_accuracy": 0.7}}, {"answer": "${r.answer}"})
    _within(path, analytic.listwise_top_accuracy([False, True, False], 0.7))


@pytest.mark.parametrize("answers,q", [("ABBA", 0.8), ("BCAD", 0.65), ("AB", 0.5)])
def test_best_of_n_score_matches_c_alpha_over_c_alpha_plus_w(tmp_path, answers, q):
    path = _spec(tmp_path, {"s": {"op": "score", "model": "m", "question": Q, "candidates": _cands(*answers)}},
                 {"m": {"provider": "sim", "judge_accuracy": q}}, {"answer": "${s.answer}"})
    right = answers.count("A")
    _within(path, analytic.best_of_n_accuracy(right, len(answers) - right, q))


@pytest.mark.parametrize("top_k,sees_right", [(None, True), (2, False), (3, True)])
def test_fuse_is_right_with_judge_accuracy_when_it_sees_a_right_candidate_else_accuracy(tmp_path, top_k, sees_right):
    node = {"op": "fuse", "model": "m", "question": Q, "candidates": _cands("B", "C", "A")}
    if top_k is not None:
        node["top_k"] = top_k
    path = _spec(tmp_path, {"f": node}, {"m": {"provider": "sim", "accuracy": 0.3, "judge_accuracy": 0.85}},
                 {"answer": "${f.answer}"})
    _within(path, analytic.fuse_accuracy(sees_right, 0.85, 0.3))


def test_a_judge_given_critiques_matches_the_critic_formula(tmp_path):
    answers = ["B", "A", "C", "A"]
    nodes = {"c": {"op": "critic", "model": "crit", "question": Q, "candidates": _cands(*answers)},
             "j": {"op": "judge", "model": "judge", "question": Q, "candidates": _cands(*answers),
                   "critiques": "${c.critiques}"}}
    models = {"crit": {"provider": "sim", "tpr": 0.8, "fpr": 0.3}, "judge": {"provider": "sim", "judge_accuracy": 0.6}}
    path = _spec(tmp_path, nodes, models, {"answer": "${j.answer}"})
    expected = analytic.critic_judge_accuracy(answers, "A", 0.8, 0.3, 0.6)
    _within(path, expected)
    assert expected > 0.6 + 0.05  # the critic helps: without critiques the judge is right with 0.6


def test_the_sim_critic_calls_right_candidates_sound_with_tpr_and_wrong_ones_with_fpr(tmp_path):
    path = _spec(tmp_path, {"c": {"op": "critic", "model": "m", "question": Q, "candidates": _cands("A", "B")}},
                 {"m": {"provider": "sim", "tpr": 0.8, "fpr": 0.25}}, {"critiques": "${c.critiques}"})
    plan = compile_spec(path)
    sound = [0, 0]
    for i in range(ROWS):
        got = run_plan(plan, {"question": "q"}, runs_dir=None, example={"answer": "A"}, seed=i)
        for j, text in enumerate(got.outputs["critiques"]):
            sound[j] += "Assessment: sound" in text
    for count, p in zip(sound, (0.8, 0.25), strict=True):
        lo, hi = wilson(count, ROWS)
        assert lo <= p <= hi, (count / ROWS, p)


# -- what they read and write ---------------------------------------------------------------------------
def _node(op: str, **params) -> PlanNode:
    return PlanNode("n", "llm", op, {}, {"model": "m", **params}, ())


def test_pairwise_scores_are_wins_minus_losses_from_every_ordered_pair():
    values = {"candidates": ["Answer: X", None, "Answer: Y", "Answer: Z"]}
    # ordered pairs of the three real candidates: (X,Y) (X,Z) (Y,X) (Y,Z) (Z,X) (Z,Y)
    said = ["1", "2", "2", "1", "2", "2"]  # X>Y, Z>X, X>Y, Y>Z, X>Z, Y>Z
    out = rank.finish_pairs(_node("rank_pairs", k=2), values, [Completion(texts=[f"Answer: {s}"]) for s in said])
    # X: +1 (X,Y) −1 (X,Z) +1 (Y,X) +1 (Z,X) = 2; Y: −1 +1 −1 +1 = 0; Z: +1 −1 −1 −1 = −2
    assert out["scores"] == [2.0, None, 0.0, -2.0]
    assert out["order"] == [0, 2, 3] and out["top"] == ["Answer: X", "Answer: Y"] and out["answer"] == "X"
    assert out["top_critiques"] is None


def test_listwise_ranking_reads_the_ranking_line_and_appends_what_it_left_out():
    values = {"candidates": ["Answer: X", "Answer: Y", "Answer: Z"], "critiques": ["cx", "cy", "cz"]}
    out = rank.finish_list(_node("rank_list", k=2), values, [Completion(texts=["hmm\nRanking: [3] > 3 > 7 > 1"])])
    assert out["order"] == [2, 0, 1] and out["scores"] == [2.0, 1.0, 3.0] and out["answer"] == "Z"
    assert out["top_critiques"] == ["cz", "cx"]
    assert rank.read_ranking("{}", {"ranking": [2, 1]}, 3) == [1, 0, 2]


def test_critic_splits_its_reply_into_critiques_aligned_with_the_candidates():
    text = "Overall fine.\nCritique 1: Strengths: a\nWeaknesses: b\n\n**Critique 3**\nStrengths: c\nWeaknesses: d"
    values = {"candidates": ["Answer: X", "", "Answer: Y", "Answer: Z"]}  # the blank one is no candidate
    out = critic.finish(_node("critic"), values, [Completion(texts=[text])])
    assert out["critiques"] == ["Strengths: a\nWeaknesses: b", None, "", "Strengths: c\nWeaknesses: d"]
    structured = '{"critiques": [{"strengths": "s1", "weaknesses": "w1"}]}'
    out = critic.finish(_node("critic"), {"candidates": ["x"]}, [Completion(texts=[structured])])
    assert out["critiques"] == ["Strengths: s1\nWeaknesses: w1"]
    assert critic.sections("[1] Strengths: x. Weaknesses: y. [2] Strengths: z", 2)[1] == "Strengths: z"


def test_score_reads_json_a_score_line_or_a_bare_number_and_the_best_wins_ties_to_the_first():
    values = {"candidates": ["Answer: X", "Answer: Y", "Answer: Z", "Answer: W"]}
    replies = ['{"reasoning": "ok", "score": 7}', "Fine.\nScore: 9", "9", "no idea"]
    out = score.finish(_node("score"), values, [Completion(texts=[t]) for t in replies])
    assert out["scores"] == [7.0, 9.0, 9.0, None] and (out["best"], out["answer"]) == (1, "Y")
    assert out["ranked"] == ["Answer: Y", "Answer: Z", "Answer: X", "Answer: W"] and out["top"] == ["Answer: Y"]


# -- calls, plans, parallelism ----------------------------------------------------------------------------
def test_plan_counts_pairwise_rank_as_n_times_n_minus_1_and_the_run_agrees(tmp_path):
    nodes = {"g": {"op": "ensemble", "model": "m", "n": 5, "prompt": "{{ inputs.question }}"},
             "r": {"op": "rank", "model": "m", "method": "pairwise", "question": Q, "candidates": "${g.responses}"},
             "s": {"op": "score", "model": "m", "question": Q, "candidates": "${g.responses}"},
             "c": {"op": "critic", "model": "m", "question": Q, "candidates": "${g.responses}"},
             "f": {"op": "fuse", "model": "m", "n": 2, "question": Q, "candidates": "${r.top}"}}
    path = _spec(tmp_path, nodes, {"m": {"provider": "sim"}}, {"answer": "${f.answer}", "best": "${s.answer}",
                                                               "c": "${c.critiques}"})
    plan = compile_spec(path)
    stats = analyze(plan)
    assert stats.calls == 5 + 5 * 4 + 5 + 1 + 2
    assert run_plan(plan, {"question": "q"}, runs_dir=None, example={"answer": "A"}).usage.calls == stats.calls


def test_independent_calls_run_at_once_the_archon_spec_takes_its_critical_path():
    plan = compile_spec(ROOT / "specs" / "sim" / "archon.yaml", _latency(200))
    with virtual_time() as clock:
        result, took = clock.measure(lambda: run_plan(plan, {"question": "q"}, runs_dir=None,
                                                      example={"answer": "A"}))
    assert result.error is None
    # generators (6 at once) -> critic -> ranker -> two fusers at once -> fuser -> 3 verifications at once
    assert analyze(plan).depth == 6 and took == pytest.approx(6 * 0.2)


def test_pairwise_comparisons_and_scores_all_run_at_once(tmp_path):
    nodes = {"r": {"op": "rank", "model": "m", "method": "pairwise", "question": Q, "candidates": _cands(*"ABCDE")},
             "s": {"op": "score", "model": "m", "question": Q, "candidates": "${r.ranked}"}}
    path = _spec(tmp_path, nodes, {"m": {"provider": "sim", "latency_ms": 200}}, {"answer": "${s.answer}"})
    with virtual_time() as clock:
        result, took = clock.measure(lambda: run_plan(compile_spec(path), {"question": "q"}, runs_dir=None))
    assert result.error is None and result.usage.calls == 20 + 5
    assert took == pytest.approx(0.4)  # 20 comparisons in 200 ms, then 5 scores in 200 ms


def _latency(ms: int) -> dict[str, int]:
    return {f"models.{m}.latency_ms": ms for m in ("gen_a", "gen_b", "critic", "ranker", "fuser", "verifier")}


# -- validation ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field,value,code", [
    ("method", "tournament", "E112"), ("k", 0, "E1"), ("k", "${inputs.question}", "E302"),
    ("model", "nobody", "E401"), ("candidates", "${nowhere.responses}", "E201"),
])
def test_rank_fields_are_checked_with_positions(tmp_path, field, value, code):
    node = {"op": "rank", "model": "m", "question": Q, "candidates": _cands("A", "B"), field: value}
    text = ("ember: 1\nname: t\ninputs: {question: string}\nmodels: {m: {provider: sim}}\nnodes:\n  r:\n"
            + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in node.items()) + "outputs: {answer: \"${r.answer}\"}\n")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    (diag,) = [d for d in validate_paths([path]) if d.severity == "error"]
    line = 7 + list(node).index(field)
    assert diag.code.startswith(code) and diag.line == line, diag


@pytest.mark.parametrize("op,field", [("fuse", "top_k"), ("fuse", "n")])
def test_fuse_counts_must_be_static(tmp_path, op, field):
    text = ("ember: 1\nname: t\ninputs: {question: string}\nmodels: {m: {provider: sim}}\nnodes:\n"
            f"  f: {{op: {op}, model: m, question: q, candidates: [a, b], {field}: \"${{inputs.question}}\"}}\n"
            "outputs: {answer: \"${f.answer}\"}\n")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    (diag,) = [d for d in validate_paths([path]) if d.severity == "error"]
    assert diag.code == "E302" and diag.line == 6


# -- the SDK ----------------------------------------------------------------------------------------------
class Question(BaseModel):
    question: str
    choices: list[str] = ["A", "B", "C", "D"]


class Answer(BaseModel):
    answer: str | None
    scores: list[float | None] | None


class Blender(Network):
    Input, Output = Question, Answer

    def __init__(self, k: int = 2) -> None:
        self.candidates = ops.Ensemble(model=Model(name="worker", provider="sim", accuracy=0.5), n=4,
                                       prompt="Question: {{ inputs.question }}")
        self.ranked = ops.Rank(model=Model(name="ranker", provider="sim", judge_accuracy=0.75), method="pairwise",
                               k=k)
        self.fused = ops.Fuse(model=Model(name="fuser", provider="sim", accuracy=0.5, judge_accuracy=0.85))

    def forward(self, question, choices):
        ranked = self.ranked(question=question, candidates=self.candidates().responses)
        return {"answer": self.fused(question=question, candidates=ranked.top).answer, "scores": ranked.scores}


def test_the_sdk_classes_trace_to_the_plan_of_the_yaml():
    assert jit(Blender(), name="llm-blender-sim").plan.hash == compile_spec(ROOT / "specs/sim/llm-blender.yaml").hash


def test_critic_score_and_judge_with_critiques_run_eagerly_through_the_sdk():
    m = Model(provider="sim", judge_accuracy=0.9)
    cands = _cands("A", "B", "A")
    crit = ops.Critic(model=m)(question="q", candidates=cands)
    assert len(crit.critiques) == 3 and all("Strengths" in c for c in crit.critiques)
    assert ops.Judge(model=m)(question="q", candidates=cands, critiques=crit.critiques).answer in "ABCD"
    assert ops.Judge(model=m)(question="q", candidates=cands).answer in "ABCD"  # critiques stay optional
    best = ops.Score(model=m)(question="q", candidates=cands)
    assert len(best.scores) == 3 and best.best in (0, 1, 2)
    with pytest.raises(Exception, match="method must be 'listwise' or 'pairwise'"):
        ops.Rank(model=m, method="swiss")


def test_a_critic_reply_without_sections_and_scores_without_numbers_do_not_fail():
    out = critic.finish(_node("critic"), {"candidates": ["a", "b"]}, [Completion(texts=["The answer is 1."])])
    assert out["critiques"] == ["", ""]
    out = score.finish(_node("score"), {"candidates": ["Answer: X", "Answer: Y"]},
                       [Completion(texts=["hmm"]), Completion(texts=["no"])])
    assert (out["scores"], out["best"], out["answer"]) == ([None, None], 0, "X")
    out = score.finish(_node("score"), {"candidates": ["Answer: X", "Answer: Y"]},
                       [Completion(texts=["hmm"]), Completion(texts=["Score: 1"])])
    assert out["best"] == 1


@pytest.mark.parametrize("op,candidates,critiques,ok", [
    ("fuse", "${r.top}", "${r.top_critiques}", True),
    ("fuse", "${g.responses}", "${c.critiques}", True),
    ("fuse", "${r.top}", "${c.critiques}", False),
    ("judge", "${g.answers}", "${c.critiques}", False),
    ("rank", "${g.responses}", "${r.top_critiques}", False),
])
def test_critiques_must_be_aligned_with_the_candidates_they_are_shown_beside(tmp_path, op, candidates, critiques, ok):
    text = ("ember: 1\nname: t\ninputs: {question: string}\nmodels: {m: {provider: sim}}\nnodes:\n"
            "  g: {op: ensemble, model: m, n: 3, prompt: hi}\n"
            "  c: {op: critic, model: m, question: q, candidates: \"${g.responses}\"}\n"
            "  r: {op: rank, model: m, question: q, candidates: \"${g.responses}\", critiques: \"${c.critiques}\"}\n"
            f"  x: {{op: {op}, model: m, question: q, candidates: \"{candidates}\", critiques: \"{critiques}\"}}\n"
            "outputs: {answer: \"${x.answer}\"}\n")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    errors = [d for d in validate_paths([path]) if d.severity == "error"]
    if ok:
        assert errors == []
    else:
        (diag,) = errors
        assert diag.code == "E330" and diag.line == 9 and "not aligned" in diag.message


class Voted(BaseModel):
    answer: str | None


class CriticJudge(Network):
    Input, Output = Question, Voted

    def __init__(self) -> None:
        self.candidates = ops.Ensemble(model=Model(name="worker", provider="sim", accuracy=0.5), n=4,
                                       prompt="Question: {{ inputs.question }}")
        self.critiques = ops.Critic(model=Model(name="critic", provider="sim", tpr=0.85, fpr=0.2))
        self.final = ops.Judge(model=Model(name="judge", provider="sim", judge_accuracy=0.7))

    def forward(self, question, choices):
        cands = self.candidates().responses
        crit = self.critiques(question=question, candidates=cands)
        return {"answer": self.final(question=question, candidates=cands, critiques=crit.critiques).answer}


class BestOfN(Network):
    Input, Output = Question, Answer

    def __init__(self) -> None:
        self.candidates = ops.Ensemble(model=Model(name="worker", provider="sim", accuracy=0.5), n=4,
                                       prompt="Question: {{ inputs.question }}")
        self.scored = ops.Score(model=Model(name="scorer", provider="sim", judge_accuracy=0.8))

    def forward(self, question, choices):
        best = self.scored(question=question, candidates=self.candidates().responses)
        return {"answer": best.answer, "scores": best.scores}


@pytest.mark.parametrize("net,spec", [(CriticJudge, "critic-judge"), (BestOfN, "best-of-n-score")])
def test_critic_judge_and_score_trace_to_the_plans_of_their_yaml(net, spec):
    assert jit(net(), name=f"{spec}-sim").plan.hash == compile_spec(ROOT / "specs" / "sim" / f"{spec}.yaml").hash


def test_the_ops_print_like_the_other_plan_nodes():
    from ember_compiler.xcs.printing import to_text

    text = re.sub(" +", " ", to_text(compile_spec(ROOT / "specs" / "sim" / "archon.yaml")))  # names are padded
    assert "%critiques = llm.critic[model=critic](question=%inputs.question, candidates=%generators.responses)" in text
    assert ("%ranked = llm.rank_list[k=3 model=ranker](question=%inputs.question, candidates=%generators.responses, "
            "critiques=%critiques.critiques)") in text
    assert "llm.fuse[model=fuser n=1](question=%inputs.question, candidates=%ranked.top, critiques=%ranked.top_critiques)" \
        in text
    blender = to_text(compile_spec(ROOT / "specs" / "sim" / "llm-blender.yaml"))
    assert "(17 calls, depth 3, width 12)" in blender and "llm.rank_pairs[k=2 model=ranker]" in blender


@pytest.mark.parametrize("node,line,code", [
    ("{op: critic, model: m, question: q}", 6, "E111"),  # no candidates
    ("{op: critic, model: m, question: q, candidates: [a], extra: 1}", 6, "E110"),
    ("{op: score, model: m, question: q, candidates: [a], k: 0}", 6, "E1"),
    ("{op: score, model: nobody, question: q, candidates: [a]}", 6, "E401"),
    ("{op: fuse, model: m, question: q, candidates: [a], top_k: -1}", 6, "E1"),
    ("{op: fuse, model: m, question: q, candidates: \"${y.answers}\"}", 6, "E201"),
])
def test_critic_score_and_fuse_fields_are_checked_with_positions(tmp_path, node, line, code):
    path = tmp_path / "spec.yaml"
    path.write_text("ember: 1\nname: t\ninputs: {question: string}\nmodels: {m: {provider: sim}}\nnodes:\n"
                    f"  x: {node}\noutputs: {{answer: \"${{x.text}}\"}}\n")
    errors = [d for d in validate_paths([path]) if d.severity == "error" and d.code != "E202"]
    assert errors and errors[0].code.startswith(code) and errors[0].line == line, errors


def test_a_fuser_given_critiques_sees_the_right_candidate_unless_its_critique_is_flawed(tmp_path):
    nodes = {"c": {"op": "critic", "model": "crit", "question": Q, "candidates": _cands("B", "A")},
             "f": {"op": "fuse", "model": "fuser", "question": Q, "candidates": _cands("B", "A"),
                   "critiques": "${c.critiques}"}}
    models = {"crit": {"provider": "sim", "tpr": 0.7, "fpr": 0.4},
              "fuser": {"provider": "sim", "accuracy": 0.2, "judge_accuracy": 0.9}}
    path = _spec(tmp_path, nodes, models, {"answer": "${f.answer}"})
    # A is seen when its critique is sound, or when both are flawed (then the fuser sees both)
    seen = 0.7 + (1 - 0.7) * (1 - 0.4)
    expected = seen * analytic.fuse_accuracy(True, 0.9, 0.2) + (1 - seen) * analytic.fuse_accuracy(False, 0.9, 0.2)
    _within(path, expected, seed=4)
