"""The runtime's rules for a streamed request (`on_text`): a cache hit and a provider that cannot stream
give the whole text once, a retry only while nothing went out, deltas scrubbed of keys (also a key split
across deltas), and budget, usage checks and the cache see the unstreamed completion."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ember_compiler.errors import ProviderError
from ember_compiler.providers import registry
from ember_compiler.providers.base import Completion
from ember_compiler.runtime.budget import Budget, Spending
from ember_compiler.runtime.cache import ResponseCache
from ember_compiler.runtime.streaming import TextStream
from ember_compiler.testing.providers import (
    KEY,
    Server,
    Stream,
    complete,
    reply,
    request,
    runtime,
    sse_body,
    stream_reply,
)

OPENAI = {"provider": "openai", "model": "gpt-4o-mini", "max_tokens": 16}
SIM = {"provider": "sim", "accuracy": 1.0, "latency_ms": 0}


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def chunk(text=None, finish=None, usage=None):
    return {"id": "c", "model": "gpt-4o-mini", "usage": usage,
            "choices": [{"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}]}


def streamed(*texts, usage=None):
    return Stream(sse_body(*(chunk(t) for t in texts), chunk(finish="stop"),
                           {"id": "c", "choices": [], "usage": usage or {"prompt_tokens": 5, "completion_tokens": 4}},
                           "[DONE]"))


def ask(binding=OPENAI, **kw):
    deltas: list[str] = []
    return replace(request(binding, **kw), on_text=deltas.append), deltas


def test_a_streamed_request_counts_like_an_unstreamed_one():
    req, deltas = ask()
    rt = runtime(Server(stream_reply("openai_chat_stream.sse")))
    [out] = complete(rt, req)
    assert "".join(deltas) == out.texts[0] == "7 * 6 = 42\nAnswer: 42" and len(deltas) == 4
    plain_rt = runtime(Server(reply("openai_chat_one.json")))
    [plain] = complete(plain_rt, request(OPENAI))
    assert out == plain
    assert rt.usage == plain_rt.usage and rt.usage.cached_tokens == 1024


def test_a_cache_hit_calls_on_text_once_with_the_whole_text(tmp_path):
    path = tmp_path / "cache.sqlite3"
    server = Server(stream_reply("openai_chat_stream.sse"))
    first, d1 = ask()
    [a] = complete(runtime(server, cache=ResponseCache(path)), first)
    second, d2 = ask()
    [b] = complete(runtime(server, cache=ResponseCache(path)), second)
    assert len(server.requests) == 1  # the second came from the cache
    assert len(d1) == 4 and d2 == [a.texts[0]] and b.texts == a.texts


def test_a_provider_that_cannot_stream_gives_the_whole_text_once():
    req, deltas = ask()  # the server ignores `stream` and answers with one JSON body
    [out] = complete(runtime(Server(reply("openai_chat_one.json"))), req)
    assert deltas == [out.texts[0]]


def test_more_than_one_sample_is_not_streamed_and_gives_the_first_text_once():
    server = Server(reply("openai_chat.json"))
    req, deltas = ask(n=3)
    [out] = complete(runtime(server), req)
    assert "stream" not in server.bodies()[0] and deltas == [out.texts[0]] and len(out.texts) == 3


def test_a_failure_before_any_delta_is_retried_and_streams_once():
    server = Server(stream_reply("openai_chat_stream.sse", cut_after=0), stream_reply("openai_chat_stream.sse"))
    req, deltas = ask()
    [out] = complete(runtime(server), req)
    assert len(server.requests) == 2 and "".join(deltas) == out.texts[0] and len(deltas) == 4


def test_after_the_first_delta_a_failure_is_final_and_says_why():
    server = Server(stream_reply("openai_chat_stream.sse", cut_after=3), stream_reply("openai_chat_stream.sse"))
    req, deltas = ask()
    rt = runtime(server)
    [err] = complete(rt, req)
    assert isinstance(err, ProviderError) and "already streamed" in str(err) and "not retried" in str(err)
    assert len(server.requests) == 1 and deltas == ["7", " * 6 ="]
    assert rt.usage.requests == 0  # nothing answered, nothing counted


def test_a_key_in_the_reply_never_reaches_on_text_even_split_across_deltas():
    half = len(KEY) // 2
    server = Server(streamed("the key is ", KEY[:half], KEY[half:], " and ", KEY, "!"))
    req, deltas = ask()
    [out] = complete(runtime(server), req)
    assert all(KEY[:half] not in d and KEY[half:] not in d for d in deltas)
    assert "".join(deltas) == out.texts[0] == "the key is *** and ***!"


def test_a_key_prefix_at_the_end_of_the_reply_is_passed_on_at_the_end():
    server = Server(streamed("ends with ", KEY[:5]))
    req, deltas = ask()
    [out] = complete(runtime(server), req)
    assert deltas == ["ends with ", KEY[:5]] and out.texts[0] == "ends with " + KEY[:5]


def test_text_stream_holds_back_only_what_may_start_a_key():
    out: list[str] = []
    s = TextStream(out.append, ["SECRET-KEY-123"])
    for piece in ("abc SEC", "RET-K", "EY-123 x", "yz SE"):
        s.push(piece)
    assert out == ["abc ", "*** x", "yz "]  # "SE" waits: it may start the key
    s.finish("abc *** xyz SE")
    assert "".join(out) == "abc *** xyz SE"


def test_vet_and_the_budget_apply_to_a_streamed_reply():
    # a stream without usage: estimated, with the warning; the budget settles the same completion
    server = Server(Stream(sse_body(chunk("42"), chunk(finish="stop"), "[DONE]")))
    req, deltas = ask()
    spending = Spending(Budget(max_calls=5))
    rt = runtime(server, budget=spending)
    [out] = complete(rt, req)
    assert deltas == ["42"] and out.usage_estimated and out.output_tokens == 16
    assert any("carried no usage" in w for w in rt.warnings)
    assert spending.spent_calls == 1


def test_the_sim_streams_its_answer_in_pieces():
    req, deltas = ask(SIM, truth="B", choices=["A", "B"])
    [out] = complete(runtime(), req)
    assert len(deltas) > 1 and "".join(deltas) == out.texts[0] and out.texts[0].endswith("Answer: B")


def test_a_plugin_provider_that_knows_nothing_of_streaming_gives_the_whole_text_once(monkeypatch):
    class Plain:  # a plugin written before streaming existed: it never looks at on_text
        name, supports_n, timeout_s = "plain", False, 30.0

        def default_concurrency(self, binding):
            return 4

        async def complete(self, req):
            return Completion(["It is 42.\nAnswer: 42"], input_tokens=5, output_tokens=6)

        async def aclose(self):
            pass

    monkeypatch.setitem(registry.PROVIDERS, "plain", lambda binding, *, transport=None: Plain())
    req, deltas = ask({"provider": "plain", "model": "x"})
    [out] = complete(runtime(), req)
    assert deltas == ["It is 42.\nAnswer: 42"] == out.texts
