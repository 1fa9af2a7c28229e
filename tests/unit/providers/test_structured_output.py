"""Structured output for judge, select and verify: schemas on the requests, JSON replies parsed, the
text conventions as fallback, a clear error for an unreadable JSON reply; end to end on every
provider's wire format and on the real llama.cpp server."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest

from ember_compiler.answers import json_reply, parse_verdict
from ember_compiler.compiler import compile_spec
from ember_compiler.errors import OutputError
from ember_compiler.ops import prompts
from ember_compiler.ops.base import CallContext
from ember_compiler.ops.registry import PLAN_OPS as LLM_RULES
from ember_compiler.providers.base import Completion, Request
from ember_compiler.runs import run_plan
from ember_compiler.testing.providers import KEY, Server, reply
from ember_compiler.xcs.plan import PlanNode

CANDS = ["7*6 is 42\nAnswer: 42", "Answer: 48", "I think 42.\nAnswer: 42"]


def node(op, **params):
    return PlanNode(id="n", kind="llm", op=op, params={"model": "judge", **params}, inputs={}, outputs=(), when=())


def build(op, binding=None, **values):
    ctx = CallContext(node(op), binding or {"provider": "sim"}, True, {"node_id": "n"})
    return LLM_RULES[op].build(ctx.node, {"question": "What is 7 * 6?", "candidates": CANDS, **values}, ctx)


def finish(op, *texts, reasons=None):
    completions = [Completion([t], finish_reasons=[r]) for t, r in zip(texts, reasons or ["stop"] * len(texts),
                                                                       strict=True)]
    return LLM_RULES[op].finish(node(op), {"candidates": CANDS}, completions)


def test_requests_carry_their_schema():
    assert build("judge")[0].schema is prompts.JUDGE_SCHEMA
    assert build("select")[0].schema is prompts.SELECT_SCHEMA
    assert [r.schema for r in build("verify")] == [prompts.VERIFY_SCHEMA] * 3
    gen = LLM_RULES["generate"].build(node("generate", prompt="hi"), {"vars": {}},
                                      CallContext(node("generate", prompt="hi"), {}, True, {}))
    assert gen[0].schema is None
    for schema in (prompts.JUDGE_SCHEMA, prompts.SELECT_SCHEMA, prompts.VERIFY_SCHEMA):
        # the OpenAI strict subset: every property required, nothing else allowed
        assert schema["required"] == list(schema["properties"]) and schema["additionalProperties"] is False


def test_judge_reads_json_then_text():
    out = finish("judge", '{"reasoning": "Two say 42.", "answer": " 42 "}')
    assert (out["answer"], out["reasoning"]) == ("42", "Two say 42.")
    out = finish("judge", "Two candidates agree.\nAnswer: 42")
    assert (out["answer"], out["reasoning"]) == ("42", "Two candidates agree.")
    out = finish("judge", '```json\n{"reasoning": "x", "answer": "42"}\n```')
    assert out["answer"] == "42"


def test_a_reply_cut_off_after_its_answer_is_salvaged():
    out = finish("judge", '{"answer": "42", "reasoning": "Two of three candidates agr', reasons=["length"])
    assert out["answer"] == "42"


def test_an_unreadable_json_reply_is_a_clear_error():
    with pytest.raises(OutputError, match=r"model 'judge': the reply is JSON without a readable \"answer\".*"
                                          r"cut off at max_tokens"):
        finish("judge", '{"reasoning": "Let me think about this very care', reasons=["length"])
    with pytest.raises(OutputError, match="readable \"verdict\""):
        finish("verify", '{"verdict": "yes"}', '{"reasoning": "hm"}', '{"verdict": "no"}')
    # a JSON-looking reply that still has the text convention is read by the convention
    assert finish("judge", '{"reasoning": "x"\nAnswer: 42')["answer"] == "42"


def test_select_reads_the_candidate_number():
    assert finish("select", '{"reasoning": "the second", "answer": 2}') == {"answer": "48", "index": 1}
    assert finish("select", "Answer: 3") == {"answer": "42", "index": 2}


def test_verify_reads_the_verdict_field_not_words_in_the_reasoning():
    out = finish("verify", '{"reasoning": "one might say \\"yes\\", but true is 42", "verdict": "no"}',
                 '{"reasoning": "ok", "verdict": "yes"}', "Looks wrong.\nVerdict: no")
    assert out["verdicts"] == [False, True, False] and out["accepted"] == ["48"]
    assert parse_verdict('{"verdict": true}') is True and parse_verdict("Verdict: yes") is True
    assert json_reply("Answer: 42", "answer") is None


# -- end to end through each provider's wire format -----------------------------------------------------

SPEC = """ember: 1
name: structured
inputs: {{question: string}}
models:
  judge: {{provider: {provider}, model: {model}{extra}}}
nodes:
  pick: {{op: select, model: judge, question: "${{inputs.question}}", candidates: ["Answer: 41", "Answer: 42"]}}
  check: {{op: verify, model: judge, question: "${{inputs.question}}", candidates: ["${{pick.answer}}"]}}
outputs: {{answer: "${{pick.answer}}", verdicts: "${{check.verdicts}}"}}
"""


def wire_replies(provider):
    """A server answering select with candidate 2 and verify with yes, in `provider`'s wire format."""

    def handle(r):
        body = json.loads(r.content)
        verifying = "Proposed answer" in json.dumps(body)  # the verify prompt; else the select prompt
        text = json.dumps({"reasoning": "r", "verdict": "yes"} if verifying else {"reasoning": "r", "answer": 2})
        if provider == "openai":
            assert body["response_format"]["type"] == "json_schema"
            return httpx2.Response(200, json={"choices": [{"index": 0, "message": {"content": text}}]})
        if provider == "anthropic":
            assert body["tool_choice"]["type"] == "tool"
            return httpx2.Response(200, json={"type": "message", "content": [
                {"type": "tool_use", "id": "t", "name": body["tool_choice"]["name"], "input": json.loads(text)}]})
        assert body["generationConfig"]["responseMimeType"] == "application/json"
        return httpx2.Response(200, json={"candidates": [{"index": 0, "content": {"parts": [{"text": text}]}}]})

    return Server(handle)


@pytest.mark.parametrize(("provider", "model"), [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"),
                                                 ("gemini", "gemini-2.5-flash")])
def test_select_and_verify_end_to_end(monkeypatch, tmp_path, provider, model):
    monkeypatch.setenv(f"{provider.upper()}_API_KEY", KEY)
    path = tmp_path / "s.yaml"
    path.write_text(SPEC.format(provider=provider, model=model, extra=""))
    server = wire_replies(provider)
    result = run_plan(compile_spec(path), {"question": "What is 6 * 7?"}, runs_dir=None, transport=server.transport)
    assert result.error is None, result.error
    assert result.outputs == {"answer": "42", "verdicts": [True]} and len(server.requests) == 2


def test_structured_output_false_sends_no_schema(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = tmp_path / "s.yaml"
    path.write_text(SPEC.format(provider="openai", model="gpt-4o-mini", extra=", structured_output: false"))
    server = Server(lambda r: reply("openai_chat.json"))  # text replies: "Answer: 42"
    result = run_plan(compile_spec(path), {"question": "q"}, runs_dir=None, transport=server.transport)
    assert result.error is None and all("response_format" not in b for b in server.bodies())


# -- end to end on the real llama.cpp server ---------------------------------------------------------

@pytest.mark.e2e
def test_local_server_enforces_the_schema_when_asked():
    from ember_compiler.providers.local import LocalProvider

    async def go():
        local = LocalProvider()
        try:
            binding = {"provider": "local", "temperature": 0, "max_tokens": 48, "structured_output": True}
            msgs = [{"role": "user", "content": "Question: What is 7 * 6?\n\nProposed answer: 42\n\nIs it correct?"}]
            structured = await local.complete(Request("v", binding, msgs, 1, {}, prompts.VERIFY_SCHEMA))
            plain = await local.complete(Request("v", {**binding, "structured_output": None}, msgs, 1, {},
                                                 prompts.VERIFY_SCHEMA))
            return structured, plain
        finally:
            await local.aclose()

    structured, plain = asyncio.run(go())
    text = structured.texts[0].strip()
    # the grammar forces the object's opening and first key, whatever the 135M model would say
    assert text.startswith("{") and '"reasoning"' in text.split(":", 1)[0]
    if structured.finish_reasons == ["stop"]:
        assert json.loads(text)["verdict"] in ("yes", "no")
    assert not plain.texts[0].strip().startswith('{"reasoning"')  # off by default for local


def test_an_unreadable_reply_names_provider_and_model_like_provider_errors(monkeypatch, tmp_path):
    # row 12: `model 'judge' (openai gpt-4o-mini): …`, as a provider error names it (runtime/attempts.py)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = tmp_path / "s.yaml"
    path.write_text(SPEC.format(provider="openai", model="gpt-4o-mini", extra=""))
    cut = json.dumps({"reasoning": "Let me think about this very care"})[:-2]
    server = Server(httpx2.Response(200, json={"choices": [{"index": 0, "message": {"content": cut},
                                                            "finish_reason": "length"}]}))
    result = run_plan(compile_spec(path), {"question": "q"}, runs_dir=None, transport=server.transport)
    assert "model 'judge' (openai gpt-4o-mini): the reply is JSON without a readable \"answer\"" in result.error
    assert "cut off at max_tokens" in result.error and "\n" not in result.error
