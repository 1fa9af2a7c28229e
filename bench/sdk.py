"""SDK benchmarks (not tests): run with `make bench` or `python bench/sdk.py`.

(a) jit parallel dispatch on the sim at latency_ms=200, wall time divided by one call's:
    - ensemble(n=8) + vote, a Python network under `jit` (the sim serves n=8 in one request);
    - 8 separate `Generate` ops + vote (8 requests, dispatched at once by the executor);
    - the same 8 `Generate` ops called eagerly (one after another, as plain Python would) and under
      `jit(scheduler="sequential")`, for contrast.
(b) vmap throughput: ensemble(n=11) + vote over 2,000 rows on the sim (latency 0), through one runtime.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from ember_compiler import Model, Network, jit, ops, vmap

SIM = Model(provider="sim", latency_ms=200)


class Question(BaseModel):
    question: str


class Answer(BaseModel):
    answer: str | None


class One(Network):
    Input, Output = Question, Answer

    def __init__(self, model: Model) -> None:
        self.ask = ops.Generate(model=model, prompt="Q: {{ question }}")

    def forward(self, question):
        return {"answer": self.ask(question=question).answer}


class EnsembleVote(Network):
    Input, Output = Question, Answer

    def __init__(self, model: Model, n: int = 8) -> None:
        self.samples = ops.Ensemble(model=model, n=n, prompt="Q: {{ question }}")
        self.vote = ops.Vote()

    def forward(self, question):
        return {"answer": self.vote(candidates=self.samples(question=question).answers).answer}


class EightCalls(Network):
    Input, Output = Question, Answer

    def __init__(self, model: Model, n: int = 8) -> None:
        self.askers = [ops.Generate(model=model, prompt=f"Q{i}: {{{{ question }}}}") for i in range(n)]
        self.vote = ops.Vote()

    def forward(self, question):
        answers = [ask(question=question).answer for ask in self.askers]
        return {"answer": self.vote(candidates=answers).answer}


def best_of(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    q = {"question": "Which letter?"}
    single = jit(One(SIM))
    ens, eight = jit(EnsembleVote(SIM)), jit(EightCalls(SIM))
    seq = jit(EightCalls(SIM), scheduler="sequential")
    eager = EightCalls(SIM)
    for j in (single, ens, eight, seq):
        j(**q)  # trace once, outside the timing
    t1 = best_of(lambda: single(**q))
    t_ens = best_of(lambda: ens(**q))
    t_eight = best_of(lambda: eight(**q))
    t_eager = best_of(lambda: eager(**q), runs=1)
    t_seq = best_of(lambda: seq(**q), runs=1)
    print("(a) jit parallel dispatch, sim latency_ms=200")
    print(f"    one call                               {t1:.3f} s")
    print(f"    ensemble n=8 + vote (one n=8 request)  {t_ens:.3f} s   ratio {t_ens / t1:.3f}")
    print(f"    8 Generate ops + vote (8 requests)     {t_eight:.3f} s   ratio {t_eight / t1:.3f}")
    print(f"    the same, eager (one after another)    {t_eager:.3f} s   ratio {t_eager / t1:.3f}")
    print(f"    the same, jit(scheduler='sequential')  {t_seq:.3f} s   ratio {t_seq / t1:.3f}")

    rows = [{"question": f"q{i}", "answer": "ABCD"[i % 4]} for i in range(2000)]
    batched = vmap(EnsembleVote(Model(provider="sim", accuracy=0.6), n=11), row_concurrency=64)
    batched(rows[:10])  # trace once
    out = batched.run(rows)
    correct = sum(o.answer == r["answer"] for o, r in zip(out.outputs, rows, strict=True))
    print("(b) vmap: 2,000 rows x ensemble n=11 + vote on the sim, one runtime")
    print(f"    {out.usage.calls:,} calls in {out.wall_s:.2f} s = {out.usage.calls / out.wall_s:,.0f} calls/s, "
          f"accuracy {correct / len(rows):.3f}")


if __name__ == "__main__":
    main()
