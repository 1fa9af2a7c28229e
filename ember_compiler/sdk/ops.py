"""The built-in ops as Python operators: ``ops.Ensemble(model=..., n=5, prompt=...)``, ``ops.Vote()``…

Constructor arguments are the op's spec fields (DESIGN §2), with ``Model`` objects (or binding
mappings) where a spec names a binding. Calling an op runs it eagerly (one small plan through the
runtime); inside a traced network the same call emits the spec node instead. Template ops
(``Generate``, ``Ensemble``, and ``Judge``/``Select``/``Verify`` with a custom ``prompt``) take their
template variables as keyword arguments — a spec's ``with:``:

    ask = ops.Generate(model=Model(provider="sim"), prompt="Question: {{ question }}")
    ask(question="What is 7 * 6?").answer
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from ember_compiler.ops.catalog import OPS
from ember_compiler.sdk import engine
from ember_compiler.sdk.model import Model, as_model
from ember_compiler.sdk.operator import EAGER, Operator, OperatorError, eager_node_id
from ember_compiler.templates import variables

MODEL_FIELDS = ("model", "models", "prover", "verifier")


class _Vars(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Candidates(BaseModel):
    candidates: Any


class _Choice(BaseModel):
    model_config = ConfigDict(extra="allow")
    question: Any
    candidates: Any


class BuiltinOp(Operator):
    """Base of the built-in ops: eager calls run a one-node plan; traced calls emit the node."""

    op: ClassVar[str]
    value_fields: ClassVar[tuple[str, ...]] = ()  # Input fields that are spec fields; the rest go to with:
    template_fields: ClassVar[tuple[str, ...]] = ()

    def runs_on_loop(self) -> bool:
        return True

    def ports(self) -> tuple[str, ...]:
        return OPS[self.op].ports

    def static_fields(self) -> dict[str, Any]:
        """The spec fields this op was built with (Models where the spec names a binding)."""
        out: dict[str, Any] = {}
        for key, value in self.init_args.kwargs.items():
            if value is None:
                continue
            if key in MODEL_FIELDS:
                value = [as_model(v, self.op_name, key) for v in value] if key == "models" else \
                    as_model(value, self.op_name, key)
            out[key] = value
        return out

    def template_variables(self) -> set[str]:
        names: set[str] = set()
        for field in self.template_fields:
            source = self.init_args.kwargs.get(field)
            if isinstance(source, str):
                names |= variables(source)
        return names - {"inputs", "params"}

    def spec_node(self, values: dict[str, Any], tracer: Any, known: set[str] = frozenset()) -> dict[str, Any]:
        """The spec node of one call (values already traced: proxies or literals)."""
        node: dict[str, Any] = {"op": self.op, **self.static_fields()}
        bound: dict[str, Any] = {}
        for key, value in values.items():
            target = node if key in self.value_fields else bound
            target[key] = tracer.value(value, f"{self.op_name} input '{key}'")
        missing = sorted(self.template_variables() - bound.keys() - set(known) - set(tracer.nodes))
        if missing:
            raise OperatorError(f"{self.op_name}: its template reads '{missing[0]}', which this call does not "
                                f"pass (call it with {missing[0]}=...)")
        if bound:
            node["with"] = bound
        return node

    async def ainvoke(self, values: dict[str, Any]) -> BaseModel:
        from ember_compiler.sdk.jit import eager_plan

        checked = self.validate_input(values)
        fields = self.fields(checked)
        session = engine.CURRENT.get()
        scope = EAGER.get()
        network_inputs = dict(scope.inputs) if scope is not None else {}
        executor = eager_plan(self, eager_node_id(self), tuple(fields), tuple(network_inputs), session.scheduler)
        inputs = {**network_inputs, **{f"_arg_{k}": v for k, v in fields.items()}}
        session.prepare(executor.plan)
        outputs, _ = await executor.execute(session.sink, inputs, dict(session.meta), session.row)
        return self.validate_output(outputs)

    def forward(self, **inputs: Any) -> Any:  # never called: ainvoke runs the op's plan
        raise NotImplementedError


def _check_n(op: str, value: Any, field: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise OperatorError(f"{op}: {field} must be an integer >= 1, got {value!r}")


class Generate(BuiltinOp):
    """One model call. Output: ``text``, ``answer`` (extracted), ``usage``."""

    op = "generate"
    template_fields = ("prompt", "system")
    Input = _Vars

    class Output(BaseModel):
        text: str | None = None
        answer: str | None = None
        usage: dict | None = None

    def __init__(self, *, model: Model | dict, prompt: str, system: str | None = None,
                 extract: str | None = None) -> None:
        self.model = as_model(model, "Generate")
        self.prompt, self.system, self.extract = prompt, system, extract


class Ensemble(BuiltinOp):
    """``n`` samples from ``model`` (or ``n`` from each of ``models``). Output: ``responses``,
    ``answers``, ``usage``."""

    op = "ensemble"
    template_fields = ("prompt", "system")
    Input = _Vars

    class Output(BaseModel):
        responses: list[str] | None = None
        answers: list[str | None] | None = None
        usage: dict | None = None

    def __init__(self, *, model: Model | dict | None = None, models: list[Model | dict] | None = None,
                 n: int = 1, prompt: str, system: str | None = None, extract: str | None = None) -> None:
        if (model is None) == (models is None) or (models is not None and not models):
            raise OperatorError("Ensemble: pass exactly one of model= or models= (a non-empty list)")
        _check_n("Ensemble", n, "n")
        self.model = as_model(model, "Ensemble") if model is not None else None
        self.models = [as_model(m, "Ensemble", "models") for m in models] if models is not None else None
        self.n, self.prompt, self.system, self.extract = n, prompt, system, extract


class Vote(BuiltinOp):
    """Plurality vote. Output: ``answer``, ``counts``, ``confidence``."""

    op = "vote"
    value_fields = ("candidates",)
    Input = _Candidates

    class Output(BaseModel):
        answer: Any = None
        counts: dict | None = None
        confidence: float | None = None

    def __init__(self, *, normalize: Literal["none", "strip", "lower", "number"] | None = None,
                 extract: str | None = None) -> None:
        self.normalize, self.extract = normalize, extract


class _ChoiceOp(BuiltinOp):
    value_fields = ("question", "candidates")
    template_fields = ("prompt",)
    Input = _Choice

    def __init__(self, *, model: Model | dict, prompt: str | None = None) -> None:
        self.model = as_model(model, type(self).__name__)
        self.prompt = prompt


class Judge(_ChoiceOp):
    """A model reads the candidates and writes the answer. Output: ``answer``, ``reasoning``, ``text``."""

    op = "judge"

    class Output(BaseModel):
        answer: Any = None
        reasoning: str | None = None
        text: str | None = None


class Select(_ChoiceOp):
    """A model picks one candidate. Output: ``answer``, ``index``."""

    op = "select"

    class Output(BaseModel):
        answer: Any = None
        index: int | None = None


class Verify(BuiltinOp):
    """One verifier call per candidate. Output: ``verdicts``, ``accepted``, ``answer``."""

    op = "verify"
    value_fields = ("question", "candidates")
    template_fields = ("prompt",)
    Input = _Choice

    class Output(BaseModel):
        verdicts: list[bool] | None = None
        accepted: list | None = None
        answer: Any = None

    def __init__(self, *, model: Model | dict, prompt: str | None = None,
                 then: Literal["first", "vote"] | None = None,
                 fallback: Literal["first", "vote", "none"] | None = None) -> None:
        self.model = as_model(model, "Verify")
        self.prompt, self.then, self.fallback = prompt, then, fallback


class Refine(BuiltinOp):
    """Verifier-prover rounds. Output: ``answer``, ``rounds``, ``accepted``."""

    op = "refine"
    value_fields = ("question",)

    class Input(BaseModel):
        question: Any

    class Output(BaseModel):
        answer: Any = None
        rounds: int | None = None
        accepted: bool | None = None

    def __init__(self, *, prover: Model | dict, verifier: Model | dict, max_rounds: int = 3) -> None:
        _check_n("Refine", max_rounds, "max_rounds")
        self.prover = as_model(prover, "Refine", "prover")
        self.verifier = as_model(verifier, "Refine", "verifier")
        self.max_rounds = max_rounds


class First(BuiltinOp):
    """The first non-null candidate. Output: ``value``."""

    op = "first"
    null_tolerant = True  # picks the first candidate that is not None (nor skipped)
    value_fields = ("candidates",)
    Input = _Candidates

    class Output(BaseModel):
        value: Any = None

    def __init__(self) -> None:
        pass


__all__ = ["BuiltinOp", "Ensemble", "First", "Generate", "Judge", "Refine", "Select", "Verify", "Vote"]
