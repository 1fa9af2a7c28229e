"""Networks of Networks written in Python with the built-in ops.

Each class is a `Network`: called directly it runs eagerly; `jit(net)` traces it into the same xcs
plan a YAML spec gives (`jit(net).to_spec()` writes that YAML). Run this file to see each network's
plan, answer and calls on the sim:

    python examples/sdk/networks.py
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from ember_compiler import Model, Network, jit, load, ops, when

HERE = Path(__file__).resolve().parent
WORKER = Model(name="worker", provider="sim", accuracy=0.6)
JUDGE = Model(name="judge", provider="sim", accuracy=0.7)
VERIFIER = Model(name="verifier", provider="sim", tpr=0.9, fpr=0.1)
ROUTER = Model(name="router", provider="sim", choices=["math", "general"], accuracy=0)


class Question(BaseModel):
    question: str
    choices: list[str] = ["A", "B", "C", "D"]


class Answer(BaseModel):
    answer: str | None


class Voted(BaseModel):
    answer: str | None
    confidence: float | None


class SelfConsistency(Network):
    """n samples and a majority vote (the twin of specs/sim/self-consistency.yaml)."""

    Input, Output = Question, Voted

    def __init__(self, worker: Model = WORKER, n: int = 5) -> None:
        self.samples = ops.Ensemble(model=worker, n=n, prompt="Question: {{ inputs.question }}")
        self.majority = ops.Vote()

    def forward(self, question, choices):
        votes = self.majority(candidates=self.samples().answers)
        return {"answer": votes.answer, "confidence": votes.confidence}


class EnsembleJudge(Network):
    """n samples synthesized by a judge."""

    Input, Output = Question, Answer

    def __init__(self, worker: Model = WORKER, judge: Model = JUDGE, n: int = 4) -> None:
        self.candidates = ops.Ensemble(model=worker, n=n, prompt="Question: {{ question }}")
        self.final = ops.Judge(model=judge)

    def forward(self, question, choices):
        samples = self.candidates(question=question)
        return {"answer": self.final(question=question, candidates=samples.responses).answer}


class BestOfNVerify(Network):
    """n samples, one verifier call per candidate, the first accepted answer."""

    Input, Output = Question, Answer

    def __init__(self, worker: Model = WORKER, verifier: Model = VERIFIER, n: int = 5) -> None:
        self.samples = ops.Ensemble(model=worker, n=n, prompt="Question: {{ question }}")
        self.checked = ops.Verify(model=verifier, then="vote")

    def forward(self, question, choices):
        samples = self.samples(question=question)
        return {"answer": self.checked(question=question, candidates=samples.responses).answer}


class VerifierProver(Network):
    """A prover answers, a verifier checks, up to three rounds."""

    Input, Output = Question, Answer

    def __init__(self, prover: Model = WORKER, verifier: Model = VERIFIER) -> None:
        self.loop = ops.Refine(prover=prover, verifier=verifier, max_rounds=3)

    def forward(self, question, choices):
        return {"answer": self.loop(question=question).answer}


class MixtureOfAgents(Network):
    """Two layers of varied proposers, then a judge (independent calls run at once under jit)."""

    Input, Output = Question, Answer

    def __init__(self, proposers: list[Model] | None = None, judge: Model = JUDGE) -> None:
        proposers = proposers or [WORKER, Model(name="strong", provider="sim", accuracy=0.75)]
        self.layer1 = ops.Ensemble(models=proposers, n=2, prompt="Question: {{ question }}")
        self.layer2 = ops.Ensemble(models=proposers, n=1,
                                   prompt="Question: {{ question }}\nOther answers: {{ previous }}")
        self.final = ops.Judge(model=judge)

    def forward(self, question, choices):
        first = self.layer1(question=question)
        second = self.layer2(question=question, previous=first.answers)
        return {"answer": self.final(question=question, candidates=second.responses).answer}


class Router(Network):
    """Only the chosen branch runs: `with when(...)` becomes the nodes' `when:` (twin of
    specs/sim/router.yaml)."""

    Input = Question

    class Output(BaseModel):
        answer: str | None
        route: str | None

    def __init__(self, router: Model = ROUTER, worker: Model = WORKER) -> None:
        self.route = ops.Generate(model=router, prompt="Route: {{ inputs.question }}")
        self.math = ops.Ensemble(model=worker, n=3, prompt="Solve: {{ inputs.question }}")
        self.math_vote = ops.Vote()
        self.general = ops.Generate(model=worker, prompt="Question: {{ inputs.question }}")
        self.answer = ops.First()

    def forward(self, question, choices):
        route = self.route()
        with when(route.answer == "math"):
            math = self.math()
        voted = self.math_vote(candidates=math.answers)
        with when(route.answer != "math"):
            general = self.general()
        return {"answer": self.answer(candidates=[voted.answer, general.answer]).value, "route": route.answer}


class NetworkOfNetworks(Network):
    """Three networks as sub-networks, then a vote: a Python network, a nested Python network and a
    spec loaded from YAML (which becomes a `network` node)."""

    Input, Output = Question, Voted

    def __init__(self) -> None:
        self.consistent = SelfConsistency(n=3)
        self.judged = EnsembleJudge(n=3)
        self.from_yaml = load(HERE.parents[1] / "specs" / "sim" / "single.yaml")
        self.final = ops.Vote()

    def forward(self, question, choices):
        a = self.consistent(question=question, choices=choices)
        b = self.judged(question=question, choices=choices)
        c = self.from_yaml(question=question, choices=choices)
        votes = self.final(candidates=[a.answer, b.answer, c.answer])
        return {"answer": votes.answer, "confidence": votes.confidence}


EXAMPLES = [SelfConsistency, EnsembleJudge, BestOfNVerify, VerifierProver, MixtureOfAgents, Router,
            NetworkOfNetworks]


if __name__ == "__main__":
    from ember_compiler.xcs.printing import to_text

    for cls in EXAMPLES:
        fast = jit(cls())
        run = fast.run(question="Which letter?", example={"answer": "B"}, seed=1)
        print(to_text(fast.plan, print_source=False))
        print(f"  -> {run.output!r}  ({run.usage.calls} calls, {run.wall_s * 1000:.1f} ms)\n")
