"""Every op in the registry is complete, and a new op is one file plus one registry line.

Complete means: a node model for `op: NAME`, typed ports, a lowering rule, plan ops whose runtime,
static call rule, sim role and dry-run text exist, an SDK class (or a note saying what the SDK has
instead), an example that compiles and runs on the sim, and a row in docs/spec-format.md.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

import ember_compiler.sdk.ops as sdk_ops
from ember_compiler.compiler import compile_spec
from ember_compiler.compiler.check import validate_paths
from ember_compiler.ops import registry
from ember_compiler.ops.base import MODEL_CALL, OpDef, PlanOp, SdkDef
from ember_compiler.providers.sim import ROLES
from ember_compiler.runs import run_plan
from ember_compiler.spec.model import NodeBase
from ember_compiler.xcs.plan import NodeKind
from ember_compiler.xcs.runners import runner_for

ROOT = Path(__file__).resolve().parents[3]
OPS = sorted(registry.OPS.values(), key=lambda op: op.name)


def _spec(tmp_path: Path, op: OpDef) -> Path:
    spec = {"ember": 1, "name": f"example-{op.name}",
            "inputs": {"question": "string", "choices": {"type": "array", "default": ["A", "B"]}},
            "models": {"m": {"provider": "sim"}}, "nodes": {"x": op.example},
            "outputs": {port: f"${{x.{port}}}" for port in op.ports}}
    path = tmp_path / f"{op.name}.json"  # a JSON spec is the same document
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_every_op_is_complete(op: OpDef, tmp_path: Path):
    assert issubclass(op.node, NodeBase)
    assert typing.get_args(op.node.model_fields["op"].annotation) == (op.name,)
    assert op.summary and callable(op.lower) and op.plan_ops
    assert op.ports or op.ports_declared_by_node, "ports (name -> type), or the node declares them"
    for plan_op in op.plan_ops:
        _complete(plan_op)
    assert op.sdk is not None or op.sdk_note, "an SdkDef, or a note on what the SDK has instead"
    if op.sdk is not None:
        cls = getattr(sdk_ops, op.sdk.name)
        assert cls.op == op.name and set(cls.Output.model_fields) == set(op.ports)
    if op.example is not None:
        path = _spec(tmp_path, op)
        assert [d for d in validate_paths([path]) if d.severity == "error"] == []
        result = run_plan(compile_spec(path), {"question": "Which letter?"}, runs_dir=None, example={"answer": "A"})
        assert result.error is None and set(result.outputs) == set(op.ports)
    else:
        assert op.ports_declared_by_node, "an example, unless the op needs a file (a sub-spec, an operator)"
    docs = (ROOT / "docs" / "spec-format.md").read_text()
    assert f"`{op.name}`" in docs, "docs/spec-format.md lists every op (python docs/generate.py)"


def _complete(p: PlanOp) -> None:
    assert p.kind in NodeKind.__members__.values()
    if p.kind == "fn":
        assert callable(p.run)
    elif p.kind == "llm":
        assert (p.build and p.finish) or p.drive, "an llm op builds requests and reads completions"
        assert p.calls is not None and p.effects == MODEL_CALL
        assert p.role in ROLES, "the sim knows how to answer its requests"
        assert p.dry_text is not None and isinstance(p.dry_text(0), str)
    elif p.kind == "python":
        assert runner_for("python") is not None
    assert p.ports is None or all(isinstance(port, str) for port in p.ports)


# -- a new op: one file (here, this module's `SHOUT`) plus one registry line (here, register_op) ----
class ShoutNode(NodeBase):
    op: typing.Literal["shout"]
    text: typing.Any


def _lower(ctx, node: ShoutNode):
    return [ctx.make("fn", "shout", {"text": ctx.value(node.text)}, {})]


SHOUT = OpDef(
    name="shout", summary="Upper-cases a text.", node=ShoutNode, ports={"text": str}, lower=_lower,
    plan_ops=(PlanOp("shout", "fn", ("text",), run=lambda node, values: {"text": str(values["text"]).upper()}),),
    sdk=SdkDef("Shout", "Upper-cases ``text``.", {}, value_fields=("text",)),
    example={"op": "shout", "text": "${inputs.question}"},
)


@pytest.fixture
def shout():
    registry.register_op(SHOUT)
    yield SHOUT
    registry.unregister_op("shout")


SPEC = """\
ember: 1
name: loud
inputs: {question: string}
nodes:
  loud: {op: shout, text: "${inputs.question}"}
  louder: {op: shout, text: "${loud.txt}"}
outputs: {answer: "${loud.text}"}
"""


def test_a_registered_op_validates_compiles_runs_and_prints(shout, tmp_path: Path):
    spec = tmp_path / "loud.yaml"
    spec.write_text(SPEC)
    (diag,) = [d for d in validate_paths([spec]) if d.severity == "error"]
    assert diag.code == "E202" and "'txt'" in diag.message  # its ports are known to the checker
    spec.write_text(SPEC.replace("${loud.txt}", "${loud.text}"))
    plan = compile_spec(spec)
    assert "fn.shout(text=%inputs.question)" in str(plan)
    assert run_plan(plan, {"question": "hi"}, runs_dir=None).outputs == {"answer": "HI"}
    from ember_compiler import ops

    assert ops.Shout().op == "shout" and ops.Shout()(text="hi").text == "HI"  # its SDK class, eager


def test_plugins_register_ops_through_the_ember_ops_entry_point_group(monkeypatch):
    class EP:
        name, value = "shout", "tests.unit.ops.test_registry:SHOUT"

        def load(self):
            return SHOUT

    monkeypatch.setattr(registry, "entry_points", lambda group: [EP()] if group == "ember.ops" else [])
    registry._load_plugins()
    try:
        assert registry.get("shout") is SHOUT
        assert "shout" in registry.Spec.model_json_schema()["$defs"]["ShoutNode"]["properties"]["op"]["const"]
    finally:
        registry.unregister_op("shout")
    assert registry.get("shout") is None


def test_a_broken_plugin_is_a_warning_not_a_crash(monkeypatch):
    class EP:
        name, value = "bad", "nowhere:OP"

        def load(self):
            raise ImportError("no module named nowhere")

    monkeypatch.setattr(registry, "entry_points", lambda group: [EP()])
    with pytest.warns(UserWarning, match="ember.ops plugin 'bad'"):
        registry._load_plugins()


def test_names_must_be_new():
    with pytest.raises(registry.OpConflict, match="'vote' is registered already"):
        registry.register_op(registry.OPS["vote"])


def test_op_models_are_pydantic_models_with_the_base_fields():
    for op in OPS:
        assert issubclass(op.node, BaseModel) and {"description", "when"} <= set(op.node.model_fields)
