"""Streaming over Anthropic's Messages API (`stream: true`, SSE events): text deltas in order as they
arrive, no thinking deltas, the same Completion as unstreamed, refusals, tool calls, errors mid-stream."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ember_compiler.errors import ProviderError
from ember_compiler.ops.prompts import VERIFY_SCHEMA
from ember_compiler.providers.anthropic import AnthropicProvider
from ember_compiler.testing.providers import (
    KEY,
    Server,
    Stream,
    fixture,
    one,
    reply,
    request,
    sse_body,
    stream_reply,
)

BINDING = {"provider": "anthropic", "model": "claude-haiku-4-5", "temperature": 0.2, "max_tokens": 300}
LIMITS = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
          "anthropic-ratelimit-tokens-limit": "40000", "anthropic-ratelimit-tokens-remaining": "39000"}


def make(server):
    return AnthropicProvider(transport=server.transport, api_key=KEY)


def start(usage=None):
    return ("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": usage or {"input_tokens": 10, "output_tokens": 1}}})


def block(i, kind="text"):
    content = {"type": "text", "text": ""} if kind == "text" else kind
    return ("content_block_start", {"type": "content_block_start", "index": i, "content_block": content})


def delta(i, **d):
    return ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d})


def end(stop="end_turn", usage=None):
    return [("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                               "usage": usage or {"output_tokens": 7}}),
            ("message_stop", {"type": "message_stop"})]


def test_text_deltas_arrive_in_order_and_the_completion_is_the_unstreamed_one():
    deltas: list[str] = []
    stream = stream_reply("anthropic_message_stream.sse", seen=lambda: len(deltas), headers=LIMITS)
    server = Server(stream)
    streamed = one(make(server), replace(request(BINDING), on_text=deltas.append))
    assert deltas == ["7 times 6", " is 42.\n", "Answer: 42"]  # the thinking block's deltas are not answer text
    assert stream.seen == [0] * 8 + [1, 2, 2, 2, 3, 3, 3]  # each delta delivered before the next event was sent
    assert server.bodies()[0]["stream"] is True
    plain = one(make(Server(reply("anthropic_message.json", headers=LIMITS))), request(BINDING))
    assert streamed == plain
    assert (streamed.input_tokens, streamed.cached_tokens, streamed.cache_write_tokens) == (4521, 3000, 1500)
    assert streamed.output_tokens == 12 and streamed.rate_limits.tokens_remaining == 39000


def test_message_delta_usage_is_cumulative_and_may_repeat_the_input_counts():
    events = sse_body(start({"input_tokens": 10, "cache_read_input_tokens": 0, "output_tokens": 1}), block(0),
                      delta(0, type="text_delta", text="42"),
                      *end(usage={"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 9}))
    out = one(make(Server(Stream(events))), replace(request(BINDING), on_text=lambda d: None))
    assert (out.input_tokens, out.cached_tokens, out.output_tokens) == (15, 5, 9)


def test_a_refusal_after_some_text_is_no_answer_though_its_start_went_out():
    deltas: list[str] = []
    events = sse_body(start(), block(0), delta(0, type="text_delta", text="Sure, here"), *end("refusal"))
    out = one(make(Server(Stream(events))), replace(request(BINDING), on_text=deltas.append))
    assert deltas == ["Sure, here"] and out.texts == [""] and out.finish_reasons == ["refusal"]


def test_a_structured_reply_streams_no_deltas_and_is_the_tool_input():
    deltas: list[str] = []
    data = fixture("anthropic_tool_use.json")
    tool = {k: v for k, v in data["content"][0].items() if k != "input"} | {"input": {}}
    raw = json.dumps(data["content"][0]["input"])
    events = sse_body(start(data["usage"]), block(0, tool),
                      delta(0, type="input_json_delta", partial_json=raw[:20]),
                      delta(0, type="input_json_delta", partial_json=raw[20:]),
                      *end("tool_use", {"output_tokens": data["usage"]["output_tokens"]}))
    req = request(BINDING, schema=VERIFY_SCHEMA)
    out = one(make(Server(Stream(events))), replace(req, on_text=deltas.append))
    assert deltas == []  # the runtime passes the whole text on at the end
    plain = one(make(Server(reply("anthropic_tool_use.json"))), req)
    assert out.texts == plain.texts and out.finish_reasons == ["tool_use"] and out.output_tokens == plain.output_tokens


def test_an_overloaded_error_event_mid_stream_is_retryable_and_names_the_error():
    events = sse_body(start(), block(0), delta(0, type="text_delta", text="7"),
                      ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    with pytest.raises(ProviderError, match="overloaded_error: Overloaded") as info:
        one(make(Server(Stream(events))), replace(request(BINDING), on_text=lambda d: None))
    assert info.value.retryable


def test_a_stream_that_ends_before_message_stop_is_a_retryable_error():
    events = sse_body(start(), block(0), delta(0, type="text_delta", text="7 times"))
    with pytest.raises(ProviderError, match="ended before the message was complete") as info:
        one(make(Server(Stream(events))), replace(request(BINDING), on_text=lambda d: None))
    assert info.value.retryable


def test_a_429_before_the_stream_is_the_usual_error():
    server = Server(reply("anthropic_429_rate_limit.json", 429, {"retry-after": "7"}))
    with pytest.raises(ProviderError) as info:
        one(make(server), replace(request(BINDING), on_text=lambda d: None))
    assert info.value.status == 429 and info.value.retry_after_s == 7
