"""Answer extraction, normalization, voting and verdict parsing (DESIGN §2 conventions)."""

from __future__ import annotations

import pytest

from ember_compiler.answers import extract_answer, normalize, parse_verdict, vote
from ember_compiler.ops.refine import result as fn_refine_result
from ember_compiler.ops.select import finish as finish_select
from ember_compiler.ops.verify import finish as finish_verify
from ember_compiler.providers.base import Completion
from ember_compiler.xcs.plan import PlanNode


@pytest.mark.parametrize("text,regex,expected", [
    ("Reasoning here.\nAnswer: B", None, "B"),
    ("answer: first\nmore thinking\nANSWER:  second  ", None, "second"),
    ("**Answer:** 42", None, "42"),
    ("no marker at all  ", None, "no marker at all"),
    ("The Answer: inline is not a line", None, "The Answer: inline is not a line"),
    ("x = 5; x = 7", r"x = (\d+)", "7"),
    ("nothing", r"x = (\d+)", "nothing"),
])
def test_extract_answer(text, regex, expected):
    assert extract_answer(text, regex) == expected


def test_normalize_modes():
    assert normalize("  Paris ", "none") == "  Paris "
    assert normalize("  Paris ", "strip") == "Paris"
    assert normalize("  Paris ", "lower") == "paris"
    assert normalize("1,000.0", "number") == "1000"
    assert normalize("0.50", "number") == "0.5"
    assert normalize("abc", "number") == "abc"


def test_vote_plurality_ties_go_to_first_seen_and_nulls_are_ignored():
    result = vote(["Answer: B", "Answer: A", None, "Answer: A", "Answer: B", "Answer: C"])
    assert result == {"answer": "B", "counts": {"B": 2, "A": 2, "C": 1}, "confidence": 0.4}
    assert vote([])["answer"] is None
    assert vote(["Answer: x", "Answer: X"], mode="lower")["confidence"] == 1.0


def test_parse_verdict():
    assert parse_verdict("looks right\nVerdict: yes") is True
    assert parse_verdict("Verdict: yes\nOn reflection\nVerdict: no") is False
    assert parse_verdict('{"verdict": "yes"}') is True
    assert parse_verdict("I cannot tell") is False


def _verify_node(then="first", fallback="first"):
    return PlanNode("v", "llm", "verify", {}, {"model": "m", "then": then, "fallback": fallback},
                    ("verdicts", "accepted", "answer"))


def _verdicts(*ok):
    return [Completion(texts=[f"Verdict: {'yes' if o else 'no'}"]) for o in ok]


def test_verify_then_and_fallback():
    values = {"candidates": ["Answer: A", "Answer: B", "Answer: B"]}
    out = finish_verify(_verify_node(), values, _verdicts(False, True, True))
    assert out == {"verdicts": [False, True, True], "accepted": ["B", "B"], "answer": "B"}
    assert finish_verify(_verify_node("vote"), values, _verdicts(True, True, True))["answer"] == "B"
    assert finish_verify(_verify_node(fallback="first"), values, _verdicts(False, False, False))["answer"] == "A"
    assert finish_verify(_verify_node(fallback="vote"), values, _verdicts(False, False, False))["answer"] == "B"
    assert finish_verify(_verify_node(fallback="none"), values, _verdicts(False, False, False))["answer"] is None


def test_select_reads_a_candidate_number_or_answer():
    node = PlanNode("s", "llm", "select", {}, {"model": "m"}, ("answer", "index"))
    values = {"candidates": ["Answer: A", "Answer: C", "Answer: D"]}
    assert finish_select(node, values, [Completion(texts=["Best is\nAnswer: 2"])]) == {"answer": "C", "index": 1}
    assert finish_select(node, values, [Completion(texts=["Answer: d"])]) == {"answer": "D", "index": 2}
    # a refused (blank) or skipped candidate is not shown to the model, but `index` is still its position
    # in the candidates the node was given
    values = {"candidates": ["Answer: A", "", None, "Answer: D"]}
    assert finish_select(node, values, [Completion(texts=["Answer: 2"])]) == {"answer": "D", "index": 3}


def test_refine_result_takes_the_last_round_that_ran():
    proofs = [{"answer": "A"}, {"answer": "B"}, None]
    checks = [{"accepted": False}, {"accepted": True}, None]
    assert fn_refine_result(None, {"proofs": proofs, "checks": checks}) == {
        "answer": "B", "rounds": 2, "accepted": True}


def test_vote_ignores_blank_candidates_and_a_varied_ensemble_sums_its_no_answers():
    from ember_compiler.ops.ensemble import concat
    from ember_compiler.ops.ensemble import finish as finish_ensemble

    assert vote(["", "Answer: 4", None, "  ", "Answer: 4"]) == {"answer": "4", "counts": {"4": 2}, "confidence": 1.0}
    node = PlanNode(id="e/a", kind="llm", op="ensemble", params={"model": "m", "n": 3, "prompt": "p"}, inputs={},
                    outputs=(), when=())
    a = finish_ensemble(node, {}, [Completion(["", "Answer: 4", ""], finish_reasons=["refusal", "stop", "length"])])
    assert a["responses"] == ["", "Answer: 4", ""] and a["answers"] == [None, "4", None]
    assert (a["usage"]["refusals"], a["usage"]["empty"], a["usage"]["samples"]) == (1, 1, 3)
    b = finish_ensemble(node, {}, [Completion(["Answer: 5", "", "Answer: 4"], finish_reasons=["stop", "SAFETY", "stop"])])
    both = concat(None, {"parts": [a, b]})
    assert both["answers"] == [None, "4", None, "5", None, "4"]
    assert both["usage"] == {"input_tokens": 0, "output_tokens": 0, "samples": 6, "refusals": 2, "empty": 1}
