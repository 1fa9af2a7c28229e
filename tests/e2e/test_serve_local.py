"""`ember serve` on the real local llama.cpp model, through the official openai SDK: a plain reply with
its usage, and a real token stream (the local server streams; the answer comes in several chunks)."""

from __future__ import annotations

import openai
import pytest

from ember_compiler import api
from ember_compiler.testing.serving import ServerThread

pytestmark = pytest.mark.e2e  # skipped, with the reason, without the `local` extra (conftest.py)

SPEC = """ember: 1
name: local-chat
inputs: {question: string}
models:
  m: {provider: local, temperature: 0, max_tokens: 24}
nodes:
  reply: {op: generate, model: m, prompt: "{{ inputs.question }}"}
outputs:
  answer: ${reply.text}
"""


def test_the_sdk_chats_and_streams_with_a_served_local_spec(tmp_path):
    (tmp_path / "local.yaml").write_text(SPEC)
    app = api.serve_app([tmp_path / "local.yaml"], api.ServeOptions(trace=tmp_path / "trace.jsonl", access_log=False,
                                                                    run=api.RunOptions(runs_dir=None, cache_mode="off")))
    with ServerThread(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        messages = [{"role": "user", "content": "Name a colour."}]
        reply = client.chat.completions.create(model="local-chat", messages=messages)
        text = reply.choices[0].message.content
        assert text and reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
        assert reply.model_extra["ember"]["calls"] == 1
        chunks = list(client.chat.completions.create(model="local-chat", messages=messages, stream=True,
                                                     stream_options={"include_usage": True}))
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert len(pieces) > 1  # token by token, as the model wrote them
        assert "".join(pieces) == text  # temperature 0: the same reply
        assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens
