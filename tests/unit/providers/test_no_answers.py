"""Refusals, safety blocks and empty replies are never answers (issue 12, rows 5-8).

Each provider's response bodies are written as the official SDKs' types describe them: OpenAI's
`ChatCompletion` (`message.refusal`, `usage.completion_tokens_details.reasoning_tokens`), Anthropic's
`Message` (`thinking` and `tool_use` content blocks, `stop_reason: "refusal"`), Gemini's
`GenerateContentResponse` (`finishReason: SAFETY` with `safetyRatings` and no content, `MAX_TOKENS`,
`thought` parts). Such a sample is a null answer: votes skip it, judge/select/verify do not see it as
a candidate, and a node none of whose samples is an answer fails with one line naming the node, the
binding, its provider and model, and why.
"""

from __future__ import annotations

import json

import httpx2
import pytest

from ember_compiler.answers import no_answer
from ember_compiler.compiler import compile_spec
from ember_compiler.providers import anthropic, gemini, openai
from ember_compiler.providers.base import Completion, no_answers
from ember_compiler.runs import RunOptions, run_plan
from ember_compiler.testing.providers import KEY, Server

# -- response bodies ----------------------------------------------------------------------------------

REFUSAL_TEXT = "I'm sorry, but I can't help with that request."


def openai_choice(index, content=None, refusal=None, finish="stop"):
    return {"index": index, "logprobs": None, "finish_reason": finish,
            "message": {"role": "assistant", "content": content, "refusal": refusal, "annotations": []}}


def openai_body(*choices, model="gpt-4o-2024-08-06", reasoning=0):
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952,
        "model": model, "choices": list(choices), "service_tier": "default", "system_fingerprint": "fp_f9f4fb6dbf",
        "usage": {"prompt_tokens": 36, "completion_tokens": 12 + reasoning, "total_tokens": 48 + reasoning,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    }


def anthropic_body(content, stop_reason="end_turn", model="claude-sonnet-4-5-20250929"):
    return {"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 24, "output_tokens": 0 if stop_reason == "refusal" else 256,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": "standard"}}


THINKING = {"type": "thinking", "thinking": "Let me add 2 and 2 carefully, checking each step...",
            "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}
SAFETY_RATINGS = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
                  {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]


def gemini_body(*candidates, thoughts=0):
    return {"candidates": [{"index": i, **c} for i, c in enumerate(candidates)], "modelVersion": "gemini-2.5-flash",
            "responseId": "2fBQaPiIN6CPz7IPyc2p8Qo",
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 4, "thoughtsTokenCount": thoughts,
                              "totalTokenCount": 16 + thoughts}}


def gemini_text(text, finish="STOP"):
    return {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish}


GEMINI_SAFETY = {"finishReason": "SAFETY", "safetyRatings": SAFETY_RATINGS}  # no content at all
GEMINI_THOUGHT_ONLY = {"content": {"role": "model", "parts": [{"text": "**Adding** the numbers...", "thought": True}]},
                       "finishReason": "MAX_TOKENS"}


# -- the providers' parse functions ---------------------------------------------------------------------

def test_openai_refusal_is_a_refusal_sample():
    c = openai.parse(openai_body(openai_choice(0, refusal=REFUSAL_TEXT), openai_choice(1, "Answer: 4")))
    assert c.texts == ["", "Answer: 4"] and c.finish_reasons == ["refusal", "stop"]
    assert no_answers(c) == ["refusal", None]
    filtered = openai.parse(openai_body(openai_choice(0, "Here is how to", finish="content_filter")))
    assert filtered.texts == [""] and no_answers(filtered) == ["blocked"]  # a filtered reply is cut, not an answer


def test_openai_reasoning_that_used_the_budget_is_empty_by_length():
    body = openai_body(openai_choice(0, "", finish="length"), model="o4-mini-2025-04-16", reasoning=244)
    c = openai.parse(body)
    assert no_answers(c) == ["length"] and c.output_tokens == 256


def test_anthropic_only_text_blocks_are_the_answer():
    c = anthropic.parse(anthropic_body([THINKING, {"type": "text", "text": "Answer: 4"}]))
    assert c.texts == ["Answer: 4"] and no_answers(c) == [None]
    refused = anthropic.parse(anthropic_body([], "refusal"))
    assert refused.texts == [""] and no_answers(refused) == ["refusal"]
    # text streamed before the classifier stopped the reply is not an answer either
    cut = anthropic.parse(anthropic_body([{"type": "text", "text": "Sure, the first step"}], "refusal"))
    assert no_answers(cut) == ["refusal"]
    thought_out = anthropic.parse(anthropic_body([THINKING], "max_tokens"))
    assert thought_out.texts == [""] and no_answers(thought_out) == ["length"]


def test_gemini_safety_and_thought_only_candidates():
    c = gemini.parse(gemini_body(gemini_text("Answer: 4"), GEMINI_SAFETY, GEMINI_THOUGHT_ONLY, thoughts=255))
    assert c.texts == ["Answer: 4", "", ""] and no_answers(c) == [None, "blocked", "length"]
    assert no_answers(gemini.parse(gemini_body(gemini_text("partial", "RECITATION")))) == ["blocked"]


def test_no_answer_rule():
    assert no_answer("Answer: 4", "refusal") is None  # a text is an answer whatever the reason says
    assert [no_answer(t, r) for t, r in [("", "refusal"), (" ", "SAFETY"), ("", "MAX_TOKENS"), ("", "stop"),
                                         (None, None)]] == ["refusal", "blocked", "length", "empty", "empty"]
    assert no_answers(Completion(["a", ""])) == [None, "empty"]  # finish reasons may be missing


# -- the ops, end to end on each provider's wire ----------------------------------------------------------

ENSEMBLE = """ember: 1
name: refusals
inputs: {{question: string}}
models:
  m: {{provider: {provider}, model: {model}}}
nodes:
  ens: {{op: ensemble, model: m, n: 3, prompt: "{{{{ inputs.question }}}}"}}
  tally: {{op: vote, candidates: "${{ens.answers}}"}}
  pick: {{op: judge, model: m, question: "${{inputs.question}}", candidates: "${{ens.responses}}"}}
outputs: {{answer: "${{tally.answer}}", confidence: "${{tally.confidence}}", answers: "${{ens.answers}}",
  usage: "${{ens.usage}}", judged: "${{pick.answer}}"}}
"""

SINGLE = """ember: 1
name: one
inputs: {{question: string}}
models:
  m: {{provider: {provider}, model: {model}}}
nodes:
  {node}
outputs: {{answer: "${{x.answer}}"}}
"""


def run(tmp_path, monkeypatch, spec, server, provider, batch=False, **fmt):
    monkeypatch.setenv(f"{provider.upper()}_API_KEY", KEY)
    path = tmp_path / "s.yaml"
    path.write_text(spec.format(provider=provider, **fmt))
    plan = compile_spec(path, batch=batch)
    if batch:
        assert [n.op for n in plan.nodes] == ["vote_cutoff"]
    return run_plan(plan, {"question": "What is 2 + 2?"},
                    RunOptions(runs_dir=tmp_path / "runs", transport=server.transport))


def is_judge(request):
    return "Several candidate responses" in request.content.decode()


def judge_candidates(server):
    prompt = next(json.loads(r.content) for r in server.requests if is_judge(r))
    return json.dumps(prompt).count("Candidate ")


def test_row5_openai_refusals_are_not_votes(tmp_path, monkeypatch):
    def handle(r):
        if is_judge(r):
            return httpx2.Response(200, json=openai_body(openai_choice(0, "Answer: 4")))
        return httpx2.Response(200, json=openai_body(openai_choice(0, refusal=REFUSAL_TEXT),
                                                     openai_choice(1, refusal=REFUSAL_TEXT),
                                                     openai_choice(2, "2 + 2 = 4\nAnswer: 4")))

    server = Server(handle)
    result = run(tmp_path, monkeypatch, ENSEMBLE, server, "openai", model="gpt-4o")
    assert result.error is None, result.error
    out = result.outputs
    assert (out["answer"], out["confidence"], out["answers"]) == ("4", 1.0, [None, None, "4"])
    assert out["usage"]["refusals"] == 2 and out["usage"]["empty"] == 0
    assert judge_candidates(server) == 1  # the judge saw the one real answer, not two blanks
    # the trace says which samples were refusals
    spans = [json.loads(line) for line in (result.run_dir / "trace.jsonl").read_text().splitlines()]
    (chat,) = [s for s in spans if s["name"].startswith("chat") and s["attributes"]["ember.node.id"] == "ens"]
    assert chat["attributes"]["ember.response.no_answer"] == ["refusal", "refusal", None]
    assert chat["attributes"]["gen_ai.response.finish_reasons"] == ["refusal", "refusal", "stop"]
    assert result.usage.refusals == 2 and result.to_json()["refusals"] == 2 and "empty" not in result.to_json()


def test_row6_anthropic_refusal_fails_the_node(tmp_path, monkeypatch):
    server = Server(httpx2.Response(200, json=anthropic_body([], "refusal")))
    node = 'x: {op: generate, model: m, prompt: "{{ inputs.question }}"}'
    result = run(tmp_path, monkeypatch, SINGLE, server, "anthropic", model="claude-sonnet-4-5", node=node)
    assert result.error is not None and "\n" not in result.error
    assert result.error.startswith("node 'x'")
    assert "model 'm' (anthropic claude-sonnet-4-5): no answer in 1 sample (1 refused)" in result.error


def test_row6_anthropic_refusals_in_an_ensemble_are_skipped(tmp_path, monkeypatch):
    replies = [anthropic_body([], "refusal"), anthropic_body([THINKING, {"type": "text", "text": "Answer: 4"}]),
               anthropic_body([], "refusal")]

    def handle(r):
        if is_judge(r):
            return httpx2.Response(200, json=anthropic_body([{"type": "text", "text": "Answer: 4"}]))
        return httpx2.Response(200, json=replies.pop(0))

    result = run(tmp_path, monkeypatch, ENSEMBLE, Server(handle), "anthropic", model="claude-sonnet-4-5")
    assert result.error is None, result.error
    assert (result.outputs["confidence"], result.outputs["answers"].count(None)) == (1.0, 2)
    assert result.outputs["usage"]["refusals"] == 2


def test_row7_gemini_safety_block_is_not_a_vote(tmp_path, monkeypatch):
    def handle(r):
        if is_judge(r):
            return httpx2.Response(200, json=gemini_body(gemini_text("Answer: 4")))
        return httpx2.Response(200, json=gemini_body(gemini_text("Answer: 4"), GEMINI_SAFETY, gemini_text("Answer: 4")))

    server = Server(handle)
    result = run(tmp_path, monkeypatch, ENSEMBLE, server, "gemini", model="gemini-2.5-flash")
    assert result.error is None, result.error
    assert (result.outputs["answer"], result.outputs["confidence"]) == ("4", 1.0)
    assert result.outputs["answers"] == ["4", None, "4"] and result.outputs["usage"]["refusals"] == 1
    assert judge_candidates(server) == 2


@pytest.mark.parametrize("op", ["judge", "select", "verify"])
@pytest.mark.parametrize(("provider", "model", "body"), [
    ("openai", "o4-mini", openai_body(openai_choice(0, "", finish="length"), model="o4-mini", reasoning=244)),
    ("anthropic", "claude-sonnet-4-5", anthropic_body([THINKING], "max_tokens")),
    ("gemini", "gemini-2.5-flash", gemini_body(GEMINI_THOUGHT_ONLY, thoughts=255)),
])
def test_row8_empty_by_length_fails_with_the_max_tokens_hint(tmp_path, monkeypatch, op, provider, model, body):
    server = Server(httpx2.Response(200, json=body))
    node = f'x: {{op: {op}, model: m, question: "${{inputs.question}}", candidates: ["Answer: 4", "Answer: 5"]}}'
    result = run(tmp_path, monkeypatch, SINGLE, server, provider, model=model, node=node)
    # not an answer "" (judge), not candidate 1 (select), not a rejection of all and a fallback (verify)
    assert result.error is not None, result.outputs
    n = 2 if op == "verify" else 1
    assert "node 'x'" in result.error and f"model 'm' ({provider} {model}): no answer in {n} sample" in result.error
    assert "empty, cut off at max_tokens" in result.error and "raise the binding's max_tokens" in result.error
    assert "\n" not in result.error


def test_every_sample_a_non_answer_fails_an_ensemble_and_a_cut_off_vote(tmp_path, monkeypatch):
    server = Server(httpx2.Response(200, json=openai_body(*(openai_choice(i, refusal=REFUSAL_TEXT) for i in range(3)))))
    result = run(tmp_path, monkeypatch, ENSEMBLE, server, "openai", model="gpt-4o")
    assert "node 'ens'" in result.error and "no answer in 3 samples (3 refused)" in result.error
    # the vote cut-off (ensemble and vote fused) fails the same way
    fused = ENSEMBLE.replace(', confidence: "${{tally.confidence}}", answers: "${{ens.answers}}",\n  '
                             'usage: "${{ens.usage}}", judged: "${{pick.answer}}"', "").replace("  pick: {{op: judge",
                                                                                               "  # {{op: judge")
    result = run(tmp_path, monkeypatch, fused, server, "openai", model="gpt-4o", batch=True)
    assert result.error is not None and "no answer in 3 samples (3 refused)" in result.error
    assert "(openai gpt-4o)" in result.error


def test_a_verifier_that_refuses_one_candidate_gives_no_verdict_for_it(tmp_path, monkeypatch):
    def handle(r):
        if "Answer: 5" in r.content.decode():
            return httpx2.Response(200, json=openai_body(openai_choice(0, refusal=REFUSAL_TEXT)))
        return httpx2.Response(200, json=openai_body(openai_choice(0, '{"reasoning": "ok", "verdict": "yes"}')))

    spec = SINGLE.replace('outputs: {{answer: "${{x.answer}}"}}',
                          'outputs: {{answer: "${{x.answer}}", verdicts: "${{x.verdicts}}"}}')
    node = 'x: {op: verify, model: m, question: "${inputs.question}", candidates: ["Answer: 5", "Answer: 4"]}'
    result = run(tmp_path, monkeypatch, spec, Server(handle), "openai", model="gpt-4o", node=node)
    assert result.error is None, result.error
    assert result.outputs == {"answer": "4", "verdicts": [None, True]}
