"""Streaming over Gemini (`:streamGenerateContent?alt=sse`): text parts in order as they arrive, no
thought parts, the same Completion as unstreamed, blocks, and streams cut short."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ember_compiler.errors import ProviderError
from ember_compiler.providers.gemini import GeminiProvider
from ember_compiler.testing.providers import KEY, Server, Stream, one, reply, request, sse_body, stream_reply

BINDING = {"provider": "gemini", "model": "gemini-2.5-flash", "temperature": 0.2, "max_tokens": 300}


def make(server):
    return GeminiProvider(transport=server.transport, api_key=KEY)


def chunk(text=None, finish=None, usage=None, **extra):
    cand = {"content": {"parts": [{"text": text}] if text else [], "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return {"candidates": [cand], **({"usageMetadata": usage} if usage else {}), **extra}


def test_text_parts_arrive_in_order_and_the_completion_is_the_unstreamed_one():
    deltas: list[str] = []
    stream = stream_reply("gemini_generate_stream.sse", seen=lambda: len(deltas))
    server = Server(stream)
    streamed = one(make(server), replace(request(BINDING), on_text=deltas.append))
    assert deltas == ["7 × 6 = 42", ".\nAnswer: 42"]  # the thought part is not answer text
    assert stream.seen == [0, 0, 1]
    url = server.requests[0].url
    assert url.path.endswith("/models/gemini-2.5-flash:streamGenerateContent") and url.params["alt"] == "sse"
    assert KEY not in str(url) and server.requests[0].headers["x-goog-api-key"] == KEY
    plain = one(make(Server(reply("gemini_generate_one.json"))), request(BINDING))
    assert streamed == plain
    assert (streamed.input_tokens, streamed.cached_tokens, streamed.output_tokens) == (2100, 2048, 54)


def test_several_candidates_are_not_streamed():
    server = Server(reply("gemini_generate.json"))
    one(make(server), replace(request(BINDING, n=2), on_text=lambda d: None))
    assert server.requests[0].url.path.endswith(":generateContent")


def test_a_safety_stop_mid_stream_is_no_answer():
    deltas: list[str] = []
    events = sse_body(chunk("Here is how"), chunk(finish="SAFETY", usage={"promptTokenCount": 5,
                                                                         "candidatesTokenCount": 3}))
    out = one(make(Server(Stream(events))), replace(request(BINDING), on_text=deltas.append))
    assert deltas == ["Here is how"] and out.texts == [""] and out.finish_reasons == ["SAFETY"]


def test_a_blocked_prompt_is_the_usual_error():
    events = sse_body({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                       "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}})
    with pytest.raises(ProviderError, match="prompt was blocked"):
        one(make(Server(Stream(events))), replace(request(BINDING), on_text=lambda d: None))


def test_a_stream_without_a_finish_reason_or_cut_mid_way_is_a_retryable_error():
    with pytest.raises(ProviderError, match="ended before the reply was complete") as info:
        one(make(Server(Stream(sse_body(chunk("7 × 6"))))), replace(request(BINDING), on_text=lambda d: None))
    assert info.value.retryable
    with pytest.raises(ProviderError, match="broke: ReadError") as info:
        one(make(Server(stream_reply("gemini_generate_stream.sse", cut_after=2))),
            replace(request(BINDING), on_text=lambda d: None))
    assert info.value.retryable


def test_a_429_before_the_stream_reads_its_retry_info():
    server = Server(reply("gemini_429_retry_info.json", 429))
    with pytest.raises(ProviderError) as info:
        one(make(server), replace(request(BINDING), on_text=lambda d: None))
    assert info.value.status == 429 and info.value.retry_after_s is not None
