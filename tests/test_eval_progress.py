"""The eval progress bar: rows, accuracy so far, cost so far and ETA on a terminal; quiet logs otherwise."""

from __future__ import annotations

import io

from ember_cli.progress import RowProgress
from rich.console import Console


def test_bar_on_a_terminal_shows_rows_accuracy_and_cost():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    with RowProgress(4, console=console) as bar:
        assert bar.live
        for correct in (True, False, True, True):
            bar.update({"scores": {"exact": float(correct)}, "correct": correct, "cost_usd": 0.25})
        bar._progress.refresh()
    text = buf.getvalue()
    assert "4/4" in text and "acc 0.750" in text and "$1.0000" in text and "ETA" in text


def test_unknown_cost_and_unscored_rows():
    bar = RowProgress(3, enabled=False)
    bar.update({"cost_usd": None})
    bar.update({"scores": {"exact": 1.0}, "correct": True, "cost_usd": 0.1})
    assert bar._stats() == "acc 1.000 · cost ?" and bar.done == 2


def test_not_a_terminal_logs_a_line_now_and_then():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False)
    bar = RowProgress(1000, console=console, log_every_s=0.0)
    assert not bar.live and bar.log
    bar.update({"scores": {"exact": 1.0}, "correct": True, "cost_usd": 0.0})
    assert buf.getvalue().startswith("eval: 1/1,000 rows · acc 1.000 · $0.0000")
    quiet = RowProgress(1000, console=Console(file=io.StringIO(), force_terminal=False))
    quiet.update({"correct": True})
    assert quiet.console.file.getvalue() == ""  # not before log_every_s has passed


def test_throughput_with_the_bar_on_stays_above_20k_calls_per_second(tmp_path):
    import asyncio
    import os
    import time

    from ember_compiler.compiler import compile_spec
    from ember_compiler.eval.dataset import Row
    from ember_compiler.eval.runner import EvalJob

    spec = tmp_path / "s.yaml"
    spec.write_text("ember: 1\nname: t\ninputs: {question: string}\nmodels:\n  w: {provider: sim, accuracy: 0.6}\n"
                    "nodes:\n  e: {op: ensemble, model: w, n: 11, prompt: 'Q {{ inputs.question }}'}\n"
                    "  v: {op: vote, candidates: '${e.answers}'}\noutputs: {answer: '${v.answer}'}\n")
    plan = compile_spec(spec)
    rows = [Row(i, str(i), {"question": "q", "answer": "ABCD"[i % 4]}) for i in range(4000)]
    best = 0.0
    with open(os.devnull, "w") as null:
        for _ in range(2):  # best of two: the machine may be busy with something else for a moment
            with RowProgress(len(rows), console=Console(file=null, force_terminal=True)) as bar:
                start = time.perf_counter()
                result = asyncio.run(EvalJob(plan, rows, runs_dir=tmp_path).run(bar.update))
                best = max(best, result.usage.calls / (time.perf_counter() - start))
    assert best >= 20_000, f"{best:,.0f} calls/s"
