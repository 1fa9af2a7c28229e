"""End to end: streaming from the real llama.cpp server (xllamacpp, SmolLM2-135M) through `local`."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from ember_compiler import api
from ember_compiler.providers import registry
from ember_compiler.providers.base import Request
from ember_compiler.runs.options import RunOptions

pytestmark = pytest.mark.e2e  # skipped, with the reason, without the `local` extra (conftest.py)

ROOT = Path(__file__).resolve().parents[2]
BINDING = {"provider": "local", "temperature": 0, "max_tokens": 24, "seed": 1}


def ask() -> Request:
    return Request("worker", BINDING, [{"role": "user", "content": "Name three colours."}], 1, {"role": "generate"})


def test_local_streams_deltas_and_returns_the_unstreamed_completion():
    async def go():
        provider = registry.create_provider(BINDING)
        try:
            plain = await provider.complete(ask())
            deltas: list[str] = []
            streamed = await provider.complete(replace(ask(), on_text=deltas.append))
            return plain, streamed, deltas
        finally:
            await provider.aclose()

    plain, streamed, deltas = asyncio.run(go())
    assert len(deltas) > 1 and "".join(deltas) == streamed.texts[0]  # token by token, not one chunk
    # greedy decoding: the same reply, and the usage the server reports for it (include_usage)
    assert streamed.texts == plain.texts and streamed.finish_reasons == plain.finish_reasons
    assert (streamed.input_tokens, streamed.output_tokens) == (plain.input_tokens, plain.output_tokens)
    assert streamed.input_tokens > 0 and streamed.output_tokens > 0 and not streamed.usage_missing


def test_run_streams_the_answer_of_a_local_spec(tmp_path):
    deltas: list[str] = []
    result = api.run(ROOT / "specs" / "single.yaml", {"question": "What is 7 * 6?"},
                     RunOptions(cache_mode="off", runs_dir=tmp_path), on_text=deltas.append)
    assert result.error is None and len(deltas) > 1
    assert result.outputs["answer"] in "".join(deltas)
    assert result.usage.output_tokens > 0 and not result.usage.estimated
