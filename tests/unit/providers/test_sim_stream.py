"""The sim streams: the same completion, its text in a few pieces spread over the binding's latency."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from ember_compiler.providers.sim import STREAM_PIECES, SimProvider, stream_pieces
from ember_compiler.testing.clock import virtual_time
from ember_compiler.testing.providers import request

BINDING = {"provider": "sim", "accuracy": 0.7, "latency_ms": 400}


def test_pieces_join_back_to_the_text():
    for text in ("Reasoning (sim).\nAnswer: B", "one", "a b c d e f g h i j", "", "  "):
        pieces = stream_pieces(text)
        assert "".join(pieces) == text and len(pieces) <= STREAM_PIECES


def test_the_streamed_reply_arrives_in_pieces_over_the_latency_and_equals_the_unstreamed_one():
    sim = SimProvider()
    req = request(BINDING, truth="B", choices=["A", "B", "C"], example_id="e1")
    arrivals: list[tuple[float, str]] = []

    async def go():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        plain = await sim.complete(req)
        t1 = loop.time()
        streamed = await sim.complete(replace(req, on_text=lambda d: arrivals.append((loop.time() - t1, d))))
        return plain, streamed, t1 - t0, loop.time() - t1

    with virtual_time():
        plain, streamed, plain_s, stream_s = asyncio.run(go())
    assert streamed == plain and "".join(d for _, d in arrivals) == plain.texts[0]
    assert plain_s == pytest.approx(0.4) and stream_s == pytest.approx(0.4)
    times = [t for t, _ in arrivals]
    assert len(times) == STREAM_PIECES and times == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_several_samples_are_not_streamed():
    deltas: list[str] = []
    out = asyncio.run(SimProvider().complete(replace(request({"provider": "sim"}, n=3), on_text=deltas.append)))
    assert deltas == [] and len(out.texts) == 3
