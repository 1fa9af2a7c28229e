"""Streaming over the OpenAI-compatible wire (`stream: true`): deltas in order as they arrive, the same
Completion as unstreamed (usage with cached tokens, rate-limit headers), refusals, and failures mid-stream."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ember_compiler.errors import ProviderError
from ember_compiler.providers.openai import OpenAIProvider
from ember_compiler.testing.providers import KEY, Server, Stream, one, reply, request, sse_body, stream_reply

BINDING = {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.5, "max_tokens": 64}
LIMITS = {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
          "x-ratelimit-reset-requests": "120ms"}


def make(server):
    return OpenAIProvider(transport=server.transport, api_key=KEY)


def chunk(delta=None, finish=None, usage=None, choices=True):
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else [],
            "usage": usage}


def test_deltas_arrive_in_order_as_the_server_sends_them_and_the_completion_is_the_unstreamed_one():
    deltas: list[str] = []
    stream = stream_reply("openai_chat_stream.sse", seen=lambda: len(deltas), headers=LIMITS)
    server = Server(stream)
    streamed = one(make(server), replace(request(BINDING), on_text=deltas.append))
    assert deltas == ["7", " * 6 =", " 42\n", "Answer: 42"]
    # before the server sent event k, the deltas of the earlier events had already reached on_text
    assert stream.seen == [0, 0, 1, 2, 3, 4, 4, 4]
    body = server.bodies()[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    plain = one(make(Server(reply("openai_chat_one.json", headers=LIMITS))), request(BINDING))
    assert streamed == plain
    assert streamed.texts == ["7 * 6 = 42\nAnswer: 42"] and streamed.cached_tokens == 1024
    assert (streamed.input_tokens, streamed.output_tokens) == (1240, 12)
    assert streamed.rate_limits is not None and streamed.rate_limits.requests_remaining == 499


def test_without_on_text_or_with_n_above_one_the_request_is_not_streamed():
    server = Server(reply("openai_chat.json"))
    one(make(server), request(BINDING, n=3))
    one(make(server), replace(request(BINDING, n=3), on_text=lambda d: None))
    assert all("stream" not in b for b in server.bodies())


def test_a_refusal_streams_no_text_and_is_the_refusal_it_would_have_been():
    deltas: list[str] = []
    events = sse_body(chunk({"role": "assistant", "content": None, "refusal": ""}),
                      chunk({"refusal": "I can't help with that."}), chunk(finish="stop"),
                      chunk(usage={"prompt_tokens": 10, "completion_tokens": 6}, choices=False), "[DONE]")
    out = one(make(Server(Stream(events))), replace(request(BINDING), on_text=deltas.append))
    assert deltas == []
    assert out.texts == [""] and out.finish_reasons == ["refusal"] and out.output_tokens == 6


def test_reasoning_deltas_are_not_answer_text():
    deltas: list[str] = []
    events = sse_body(chunk({"reasoning_content": "Let me think."}), chunk({"reasoning": "Hmm."}),
                      chunk({"content": "42"}), chunk(finish="stop", usage={"prompt_tokens": 3, "completion_tokens": 9}),
                      "[DONE]")
    out = one(make(Server(Stream(events))), replace(request(BINDING), on_text=deltas.append))
    assert deltas == ["42"] and out.texts == ["42"] and out.output_tokens == 9


def test_a_stream_without_usage_says_so():
    events = sse_body(chunk({"content": "42"}), chunk(finish="stop"), "[DONE]")
    out = one(make(Server(Stream(events))), replace(request(BINDING), on_text=lambda d: None))
    assert out.usage_missing and out.texts == ["42"]


def test_a_connection_cut_mid_stream_is_a_retryable_error_after_the_deltas_so_far():
    deltas: list[str] = []
    server = Server(stream_reply("openai_chat_stream.sse", cut_after=3))
    with pytest.raises(ProviderError, match="stream .* broke: ReadError") as info:
        one(make(server), replace(request(BINDING), on_text=deltas.append))
    assert deltas == ["7", " * 6 ="] and info.value.retryable


def test_a_stream_that_ends_before_the_reply_is_complete_is_a_retryable_error():
    events = sse_body(chunk({"content": "7 * 6"}))
    with pytest.raises(ProviderError, match="ended before the reply was complete") as info:
        one(make(Server(Stream(events))), replace(request(BINDING), on_text=lambda d: None))
    assert info.value.retryable


def test_an_error_event_mid_stream_is_the_error_and_never_carries_the_key():
    events = sse_body(chunk({"content": "7"}),
                      {"error": {"message": f"upstream overloaded (key {KEY})", "type": "server_error", "code": 503}})
    with pytest.raises(ProviderError, match="HTTP 200 with an error: upstream overloaded") as info:
        one(make(Server(Stream(events))), replace(request(BINDING), on_text=lambda d: None))
    assert KEY not in str(info.value) and info.value.retryable


def test_an_http_error_before_the_stream_is_the_usual_error():
    server = Server(reply("openai_429_rate_limit.json", 429, {"retry-after": "3"}))
    with pytest.raises(ProviderError) as info:
        one(make(server), replace(request(BINDING), on_text=lambda d: None))
    assert info.value.status == 429 and info.value.retry_after_s == 3 and info.value.retryable


def test_a_server_that_ignores_stream_and_answers_json_gives_the_same_completion():
    deltas: list[str] = []
    out = one(make(Server(reply("openai_chat_one.json"))), replace(request(BINDING), on_text=deltas.append))
    assert out == one(make(Server(reply("openai_chat_one.json"))), request(BINDING))
    assert deltas == []  # nothing streamed: the runtime sends the whole text once (test_streaming.py)


def test_malformed_event_data_is_a_retryable_error():
    with pytest.raises(ProviderError, match="malformed stream event") as info:
        one(make(Server(Stream(["data: {\"choices\": [\n\n"]))), replace(request(BINDING), on_text=lambda d: None))
    assert info.value.retryable


def test_on_text_is_not_part_of_the_request_value():
    a, b = request(BINDING), replace(request(BINDING), on_text=print)
    assert a == b and "on_text" not in repr(b)
