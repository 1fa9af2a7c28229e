"""The custom operators of textops.py used from Python: eagerly, under jit, over a batch, and as YAML.

Run it from anywhere: `python examples/custom_operator/run.py` (Python puts this folder on sys.path,
so `textops` imports as `textops`, the name router.yaml's `call: textops:KeywordRoute` uses).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from textops import KeywordRoute, Tally

from ember_compiler import Model, Network, jit, ops, vmap, when
from ember_compiler.compiler import compile_spec

HERE = Path(__file__).resolve().parent


class KeywordRouter(Network):
    """Route with plain Python, then answer with an ensemble (math) or one call (general)."""

    class Input(BaseModel):
        question: str

    class Output(BaseModel):
        answer: str | None
        route: str | None
        agreement: float | None

    def __init__(self, worker: Model = Model(name="worker", provider="sim", accuracy=0.7)) -> None:  # noqa: B008
        self.route = KeywordRoute(keywords=["sum", "times", "*", "+"])
        self.math = ops.Ensemble(model=worker, n=5, prompt="Solve step by step: {{ question }}")
        self.math_vote = ops.Vote()
        self.agreement = Tally()
        self.general = ops.Generate(model=worker, prompt="Question: {{ question }}")
        self.answer = ops.First()

    def forward(self, question):
        route = self.route(question=question)
        with when(route.route == "math"):
            math = self.math(question=question)
        voted = self.math_vote(candidates=math.answers)
        tally = self.agreement(answers=math.answers)
        with when(route.route != "math"):
            general = self.general(question=question)
        answer = self.answer(candidates=[voted.answer, general.answer])
        return {"answer": answer.value, "route": route.route, "agreement": tally.agreement}


def main() -> None:
    net = KeywordRouter()
    print("eager:", net(question="What is 3 times 4?"))
    fast = jit(net)
    print("jit:  ", fast(question="What is 3 times 4?"))
    print("batch:", vmap(net)(question=["What is 2 + 2?", "Who wrote Hamlet?"]))
    same = compile_spec(HERE / "router.yaml").hash == fast.plan.hash
    print("router.yaml compiles to the same plan:", same)


if __name__ == "__main__":
    main()
