"""`op: python` in specs: validation never imports user code unless asked; running imports it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydantic import BaseModel

from ember_compiler import Model, Network, Operator, jit, ops
from ember_compiler.compiler import compile_spec
from ember_compiler.compiler.check import validate_paths
from ember_compiler.errors import EmberError
from ember_compiler.ops import operators as operators_mod
from ember_compiler.runs import run_plan

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "pyops"
EMBER = str(Path(sys.executable).parent / "ember")


@pytest.fixture
def marker(tmp_path, monkeypatch):
    path = tmp_path / "marker.txt"
    monkeypatch.setenv("EMBER_TEST_MARKER", str(path))
    sys.modules.pop("marker_op", None)
    yield path
    sys.modules.pop("marker_op", None)


def _cli(*args: str, env_marker: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EMBER_TEST_MARKER": str(env_marker)}
    return subprocess.run([EMBER, *args], capture_output=True, text=True, env=env, cwd=env_marker.parent)


def test_validate_leaves_no_trace_of_importing_the_operator(marker):
    diags = validate_paths([FIX / "shout.yaml"])
    assert [d for d in diags if d.severity == "error"] == []
    assert not marker.exists() and "marker_op" not in sys.modules
    compile_spec(FIX / "shout.yaml")  # compiling does not import either
    assert not marker.exists() and "marker_op" not in sys.modules
    done = _cli("validate", str(FIX / "shout.yaml"), env_marker=marker)
    assert done.returncode == 0, done.stderr
    assert not marker.exists() and "marker_op imported" not in done.stderr + done.stdout
    # the same check notices an import: --import does import (and runs the module's code)
    done = _cli("validate", "--import", str(FIX / "shout.yaml"), env_marker=marker)
    assert done.returncode == 0, done.stderr
    assert marker.exists() and "marker_op imported" in done.stderr


def test_validate_import_checks_bindings_init_and_ports(marker):
    plain = validate_paths([FIX / "bad_shout.yaml"])
    assert [d for d in plain if d.severity == "error"] == [], "without --import nothing is checked against code"
    assert not marker.exists()
    diags = validate_paths([FIX / "bad_shout.yaml"], import_operators=True)
    found = sorted((d.line, d.code) for d in diags if d.severity == "error")
    messages = " | ".join(d.message for d in diags)
    assert marker.exists()
    assert found == [(9, "E309"), (9, "E309"), (9, "E309"), (10, "E310"), (13, "E308"), (14, "E209")], messages
    assert "'txt' is not an input of operator Shout" in messages
    assert "needs input 'text'" in messages
    assert "input 'n' (array) does not fit Shout.Input.times" in messages
    assert "volume" in messages and "no attribute 'NoSuchOperator'" in messages
    assert "has no output port 'quiet'" in messages


def test_running_imports_from_the_spec_folder_and_validates(marker, tmp_path):
    plan = compile_spec(FIX / "shout.yaml")
    assert plan.node("shout").kind == "python" and plan.node("shout").params == {
        "call": "marker_op:Shout", "init": {"suffix": "?"}}
    result = run_plan(plan, {"q": "hi"}, runs_dir=None)
    assert result.error is None, result.error
    assert result.outputs["loud"] == "HI?HI?" and result.outputs["echo"].startswith("Reasoning (sim)")
    assert marker.exists()
    done = _cli("run", str(FIX / "shout.yaml"), "-i", "q=yo", "--json", env_marker=marker)
    assert done.returncode == 0 and '"loud": "YO?YO?"' in done.stdout, done.stderr


def test_unknown_port_fails_before_running(marker, tmp_path):
    spec = tmp_path / "port.yaml"
    spec.write_text((FIX / "shout.yaml").read_text().replace("${shout.loud}", "${shout.nope}"))
    (tmp_path / "marker_op.py").write_text((FIX / "marker_op.py").read_text())
    result = None
    with pytest.raises(EmberError, match="has no output 'nope'"):
        result = run_plan(compile_spec(spec), {"q": "x"}, runs_dir=None)
    assert result is None


def test_short_names_from_the_entry_point_group(marker, monkeypatch, tmp_path):
    class EP:
        name, value = "shout", "marker_op:Shout"

        def load(self):
            sys.path.append(str(FIX))
            try:
                import marker_op
            finally:
                sys.path.remove(str(FIX))
            return marker_op.Shout

    monkeypatch.setattr(operators_mod, "entry_points", lambda group: [EP()] if group == "ember.operators" else [])
    spec = tmp_path / "short.yaml"
    spec.write_text("ember: 1\nname: s\ninputs: {q: string}\nnodes:\n  s: {op: python, call: shout, "
                    "with: {text: '${inputs.q}'}}\noutputs: {a: '${s.loud}'}\n")
    assert validate_paths([spec]) == [] and not marker.exists()
    assert run_plan(compile_spec(spec), {"q": "ok"}, runs_dir=None).outputs == {"a": "OK!"}
    other = tmp_path / "other.yaml"
    other.write_text(spec.read_text().replace("call: shout", "call: shuot"))
    assert [d.code for d in validate_paths([other])] == ["E307"]


# -- the executor runs python nodes (sync in a worker thread, cheap ones inline, async awaited) ------
class Text(BaseModel):
    text: str


class Where(BaseModel):
    thread: str


class WhereSync(Operator):
    Input, Output = Text, Where

    def forward(self, text):
        return {"thread": threading.current_thread().name}


class WhereCheap(WhereSync):
    cheap = True


class WhereAsync(Operator):
    Input, Output = Text, Where

    async def forward(self, text):
        return {"thread": threading.current_thread().name}


class Threads(Network):
    Input = Text

    class Output(BaseModel):
        sync: str
        cheap: str
        asynchronous: str

    def __init__(self):
        self.a, self.b, self.c = WhereSync(), WhereCheap(), WhereAsync()

    def forward(self, text):
        return {"sync": self.a(text=text).thread, "cheap": self.b(text=text).thread,
                "asynchronous": self.c(text=text).thread}


def test_sync_forward_runs_in_a_worker_thread_cheap_and_async_on_the_loop():
    fast = jit(Threads())
    assert [n.kind for n in fast.plan.nodes] == ["python"] * 3
    out = fast(text="x")
    assert out.cheap == out.asynchronous == "ember-engine"
    assert out.sync != "ember-engine"


class AskInside(Operator):
    """A custom operator whose forward calls a built-in op: it shares the run's runtime and usage."""

    Input = Text

    class Output(BaseModel):
        answer: str | None

    def __init__(self, model: Model) -> None:
        self.ask = ops.Generate(model=model, prompt="{{ text }}")

    def forward(self, text):
        return {"answer": self.ask(text=text).answer}


class AskInsideAsync(AskInside):
    async def forward(self, text):
        return {"answer": (await self.ask.acall(text=text)).answer}


@pytest.mark.parametrize("cls", [AskInside, AskInsideAsync])
def test_operators_called_inside_a_python_node_count_in_the_run(cls):
    class Both(Network):
        Input = Text

        class Output(BaseModel):
            a: str | None
            b: str | None

        def __init__(self):
            sim = Model(provider="sim")
            self.inner, self.outer = cls(sim), ops.Generate(model=sim, prompt="{{ text }}")

        def forward(self, text):
            return {"a": self.inner(text=text).answer, "b": self.outer(text=text).answer}

    run = jit(Both()).run(text="q")
    assert run.usage.calls == 2 and run.output.a in "ABCD" and run.output.b in "ABCD"
