"""``load(path)``: a YAML/JSON spec as an operator (eager, ``jit``, ``vmap``, or a sub-network).

Inside a traced network a loaded spec becomes a ``network`` node (``spec:`` its path), exactly as
a spec includes another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from ember_compiler.sdk import engine
from ember_compiler.sdk.operator import EAGER, Operator, OperatorError
from ember_compiler.xcs.executor import Executor
from ember_compiler.xcs.plan import Plan

_PY_TYPES: dict[str, Any] = {"string": str, "number": float, "integer": int, "boolean": bool, "array": list,
                             "object": dict}


class SpecOperator(Operator):
    """A compiled spec, callable like any operator. ``Input``/``Output`` come from the spec."""

    def __init__(self, path: str | Path, sets: dict[str, Any] | None = None) -> None:
        from ember_compiler.compiler import compile_spec

        self.path = str(Path(path).resolve())
        self.sets = dict(sets or {})
        self.compiled_plan: Plan = compile_spec(path, self.sets)
        plan = self.compiled_plan
        fields: dict[str, Any] = {}
        for name, decl in plan.inputs.items():
            kind = _PY_TYPES.get(decl.get("type", "string"), Any)
            fields[name] = (kind, ...) if decl.get("required", True) and decl.get("default") is None \
                else (kind | None, decl.get("default"))
        config = ConfigDict(extra="forbid")
        self.Input = create_model(f"{plan.name}-input".replace("-", "_"), __config__=config, **fields)
        self.Output = create_model(f"{plan.name}-output".replace("-", "_"), **{k: (Any, None) for k in plan.outputs})
        self._executors: dict[str, Executor] = {}

    @property
    def op_name(self) -> str:
        return f"spec '{self.compiled_plan.name}'"

    def runs_on_loop(self) -> bool:
        return True

    def ports(self) -> tuple[str, ...]:
        return tuple(self.compiled_plan.outputs)

    def spec_dict(self) -> dict[str, Any]:
        from ember_compiler.spec.loader import load_document, to_plain

        return to_plain(load_document(Path(self.path)).data)

    def spec_node(self, values: dict[str, Any], tracer: Any, known: Any = ()) -> dict[str, Any]:
        if self.sets:
            raise OperatorError(f"{self.op_name} was loaded with sets; a traced network includes a spec as "
                                "its file says (load it without sets)")
        node: dict[str, Any] = {"op": "network", "spec": self.path}
        if values:
            node["with"] = {k: tracer.value(v, f"{self.op_name} input '{k}'") for k, v in values.items()}
        return node

    async def ainvoke(self, values: dict[str, Any]) -> BaseModel:
        from ember_compiler.sdk.jit import execute_plan
        from ember_compiler.sdk.ops import BuiltinOp

        if EAGER.get() is not None and not self.sets:
            # inside a running network: the same `network` node a traced network has, so node ids
            # (and the sim's draws) match `jit`
            return await BuiltinOp.ainvoke(self, values)  # type: ignore[arg-type]
        checked = self.validate_input(values)
        session = engine.CURRENT.get()
        name = session.scheduler.name
        if name not in self._executors:
            self._executors[name] = Executor(self.compiled_plan, session.scheduler)
        outputs = await execute_plan(self._executors[name], self.fields(checked), session)
        return self.validate_output(outputs)

    def forward(self, **inputs: Any) -> Any:  # never called: ainvoke runs the plan
        raise NotImplementedError


def load(path: str | Path, sets: dict[str, Any] | None = None) -> SpecOperator:
    """Load, validate and compile a spec file into an operator (``sets``: ``--set`` overrides)."""
    return SpecOperator(path, sets)
