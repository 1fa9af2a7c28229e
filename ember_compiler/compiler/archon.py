"""Archon's JSON layer configs as Ember specs (``ember import archon CONFIG.json``).

An Archon config is ``{"name": ..., "layers": [[component, ...], ...]}``; each component has a ``type``
(generator, fuser, ranker, critic, verifier, unit_test_generator, unit_test_evaluator), a ``model`` with
its ``model_type``, ``temperature``, ``max_tokens`` and ``samples``. Archon runs the layers in order and
passes a state from one to the next: the candidates (each layer's components' outputs, concatenated)
and the critiques aligned with them. The spec reproduces that dataflow node for node:

- generators of a layer -> one ``ensemble`` (``models:``, one entry per model, repeated per sample when
  their ``samples`` differ); candidates: its ``responses``;
- a critic -> ``critic`` over the candidates; its ``critiques`` follow them to the next ranker or fuser;
- a ranker -> ``rank`` (``k: top_k``; listwise, or pairwise for ``llm-blender/PairRM``); candidates: its
  ``top``, critiques its ``top_critiques`` (when ``use_critiques``);
- a fuser -> ``fuse`` (``n: samples``), one per component; candidates: their texts;
- a verifier -> ``verify``; candidates: its ``accepted`` answers;
- a unit-test generator -> ``generate`` (the tests, one text); a unit-test evaluator -> ``score`` with
  a prompt showing those tests (a candidate's score: the tests it passes, judged by the model, as
  Archon does), keeping its ``top_k``.

What has no exact counterpart is reported in ``notes`` (a different number of calls, a field Ember
ignores); what cannot be expressed at all (a layer mixing kinds of components, several critics in one
layer) is a ``UsageError`` naming the layer.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from ..errors import UsageError

# model_type -> binding fields (OpenAI-compatible servers get their base URL and key variable)
PROVIDERS: dict[str, dict[str, str]] = {
    "OpenAI_API": {"provider": "openai"},
    "Anthropic_API": {"provider": "anthropic"},
    "Google_API": {"provider": "gemini"},
    "Together_API": {"provider": "openai", "base_url": "https://api.together.xyz/v1", "api_key_env": "TOGETHER_API_KEY"},
    "Groq_API": {"provider": "openai", "base_url": "https://api.groq.com/openai/v1", "api_key_env": "GROQ_API_KEY"},
}
PAIR_RM = "llm-blender/PairRM"
KINDS = ("generator", "fuser", "ranker", "critic", "verifier", "unit_test_generator", "unit_test_evaluator")
_KNOWN = {"type", "model", "model_type", "temperature", "max_tokens", "samples", "top_k", "use_critiques",
          "ranker_batch_size", "no_system", "first_k", "unit_test_cap", "remove_unit_tests_from_prompt",
          "first_pass"}


@dataclass
class Imported:
    """A converted config: the spec document, its YAML, Archon's calls per query and what differs."""

    spec: dict[str, Any]
    text: str
    archon_calls: int | None  # None: depends on the verifier's verdicts
    notes: list[str] = field(default_factory=list)
    ember_calls: int | None = None  # the spec's calls per query (`ember plan`), when compiled


@dataclass
class _State:
    cands: Any = None  # a reference to a list ("${n.responses}") or a list of references to texts
    count: int | None = 0  # how many candidates (None: known only when running)
    crits: str | None = None
    last: tuple[str, str] | None = None  # (node id, its answer port) when one node made the candidates


class _Converter:
    def __init__(self, config: dict[str, Any], sim: bool) -> None:
        self.config, self.sim = config, sim
        self.models: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []
        self.calls: int | None = 0
        self.state = _State()
        self.unit_tests: str | None = None  # the node whose text holds the generated unit tests

    # -- models ----------------------------------------------------------------------------------------
    def binding(self, comp: dict[str, Any], where: str) -> str:
        model = comp.get("model")
        if not isinstance(model, str) or not model:
            raise UsageError(f"{where}: 'model' must be a model name")
        if self.sim:
            fields: dict[str, Any] = {"provider": "sim"}
        else:
            kind = comp.get("model_type", "OpenAI_API")
            fields = dict(PROVIDERS.get(kind, {"provider": "openai"}))
            if kind not in PROVIDERS:
                self.note(f"{where}: model_type '{kind}' is bound to provider openai; set its base_url")
        fields["model"] = model
        for key in ("temperature", "max_tokens"):
            if comp.get(key) is not None:
                fields[key] = comp[key]
        base = re.sub(r"[^a-z0-9]+", "_", model.rsplit("/", 1)[-1].lower()).strip("_") or "model"
        base = base if base[0].isalpha() else f"m_{base}"
        name, k = base, 1
        while name in self.models and self.models[name] != fields:
            k += 1
            name = f"{base}_{k}"
        self.models[name] = fields
        return name

    def note(self, text: str) -> None:
        self.notes.append(text)

    def add_calls(self, n: int | None) -> None:
        self.calls = None if self.calls is None or n is None else self.calls + n

    # -- layers ----------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        layers = self.config.get("layers")
        if not isinstance(layers, list) or not layers:
            raise UsageError("an Archon config needs 'layers': a non-empty list of layers (lists of components)")
        for i, layer in enumerate(layers, 1):
            if not isinstance(layer, list) or not layer or not all(isinstance(c, dict) for c in layer):
                raise UsageError(f"layer {i}: must be a non-empty list of components (objects with a 'type')")
            self.layer(i, layer)
        name = str(self.config.get("name") or "archon")
        spec: dict[str, Any] = {
            "ember": 1,
            "name": re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "archon",
            "description": f"Imported from the Archon config '{name}' ({len(layers)} layers).",
            "inputs": {"question": "string"},
            "models": self.models,
            "nodes": self.nodes,
            "outputs": {"answer": self.answer()},
        }
        return spec

    def layer(self, i: int, layer: list[dict[str, Any]]) -> None:
        kinds = [c.get("type") for c in layer]
        for j, kind in enumerate(kinds, 1):
            if kind not in KINDS:
                raise UsageError(f"layer {i}, component {j}: unknown type {kind!r} (Archon's are {', '.join(KINDS)})")
            extra = sorted(set(layer[j - 1]) - _KNOWN)
            if extra:
                self.note(f"layer {i}, component {j} ({kind}): ignored {', '.join(extra)}")
        if len(set(kinds)) > 1:
            raise UsageError(f"layer {i} mixes {' and '.join(sorted(set(kinds)))} components; Ember converts "
                             "layers of one kind")
        kind = kinds[0]
        if kind not in ("generator", "unit_test_generator") and self.state.cands is None:
            raise UsageError(f"layer {i}: a {kind} needs candidates from an earlier layer (Archon's first layer "
                             "is generators)")
        if len(layer) > 1 and kind in ("critic", "ranker", "verifier", "unit_test_generator", "unit_test_evaluator"):
            raise UsageError(f"layer {i}: {len(layer)} {kind}s in one layer would concatenate their outputs "
                             f"out of alignment; Ember converts one {kind} per layer")
        getattr(self, kind)(i, layer[0] if len(layer) == 1 and kind.startswith("unit_test") else layer)

    def generator(self, i: int, layer: list[dict[str, Any]]) -> None:
        names = [self.binding(c, f"layer {i} generator {j}") for j, c in enumerate(layer, 1)]
        samples = [self.samples(c, f"layer {i} generator {j}") for j, c in enumerate(layer, 1)]
        nid = f"layer{i}_generators"
        node: dict[str, Any] = {"op": "ensemble", "prompt": "{{ inputs.question }}"}
        if len(set(samples)) == 1:
            node |= {"models": names, "n": samples[0]} if len(names) > 1 else {"model": names[0], "n": samples[0]}
        else:
            node |= {"models": [m for m, s in zip(names, samples, strict=True) for _ in range(s)], "n": 1}
        if self.state.cands is not None:
            self.note(f"layer {i}: Archon's generators do not read earlier candidates; this one starts afresh")
        self.nodes[nid] = node
        self.add_calls(sum(samples))
        self.state = _State(f"${{{nid}.responses}}", sum(samples), None, None)

    def critic(self, i: int, layer: list[dict[str, Any]]) -> None:
        comp = layer[0]
        nid = f"layer{i}_critic"
        self.nodes[nid] = {"op": "critic", "model": self.binding(comp, f"layer {i} critic"),
                           "question": "${inputs.question}", "candidates": self.state.cands}
        if self.samples(comp, f"layer {i} critic") != 1:
            self.note(f"layer {i}: the critic's samples are ignored (Archon's critic makes one call)")
        self.add_calls(1)
        self.state.crits = f"${{{nid}.critiques}}"

    def ranker(self, i: int, layer: list[dict[str, Any]]) -> None:
        comp = layer[0]
        nid = f"layer{i}_ranker"
        top_k = comp.get("top_k", 1)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise UsageError(f"layer {i} ranker: top_k must be an integer >= 1, got {top_k!r}")
        node: dict[str, Any] = {"op": "rank", "model": self.binding(comp, f"layer {i} ranker"), "k": top_k,
                                "question": "${inputs.question}", "candidates": self.state.cands}
        use = bool(comp.get("use_critiques")) and self.state.crits is not None
        if use:
            node["critiques"] = self.state.crits
        elif self.state.crits is not None:
            self.note(f"layer {i}: use_critiques is off, so the critiques stop at this ranker")
        n = self.state.count
        if comp.get("model") == PAIR_RM:
            node["method"] = "pairwise"
            self.note(f"layer {i}: PairRM is a reward model Archon runs locally (no API call); the spec asks a "
                      f"chat model every ordered pair instead ({'N(N-1)' if n is None else n * (n - 1)} calls)")
            self.add_calls(0)
        else:
            self.add_calls(1)
        self.nodes[nid] = node
        count = None if n is None else min(n, top_k)
        self.state = _State(f"${{{nid}.top}}", count, f"${{{nid}.top_critiques}}" if use else None, (nid, "answer"))

    def fuser(self, i: int, layer: list[dict[str, Any]]) -> None:
        made: list[tuple[str, int]] = []
        for j, comp in enumerate(layer, 1):
            nid = f"layer{i}_fuser" if len(layer) == 1 else f"layer{i}_fuser{j}"
            samples = self.samples(comp, f"layer {i} fuser {j}")
            node: dict[str, Any] = {"op": "fuse", "model": self.binding(comp, f"layer {i} fuser {j}"),
                                    "question": "${inputs.question}", "candidates": self.state.cands}
            if self.state.crits is not None:
                node["critiques"] = self.state.crits
            if samples != 1:
                node["n"] = samples
            self.nodes[nid] = node
            made.append((nid, samples))
            self.add_calls(samples)
        total = sum(s for _, s in made)
        if len(made) == 1:
            nid, samples = made[0]
            cands: Any = f"${{{nid}.responses}}" if samples > 1 else [f"${{{nid}.text}}"]
        elif all(s == 1 for _, s in made):
            cands = [f"${{{nid}.text}}" for nid, _ in made]
        else:
            raise UsageError(f"layer {i}: several fusers with samples > 1 give lists Ember cannot concatenate; "
                             "give each fuser samples: 1 (or use one fuser)")
        last = (made[0][0], "answer") if len(made) == 1 else None
        self.state = _State(cands, total, None, last)

    def verifier(self, i: int, layer: list[dict[str, Any]]) -> None:
        comp = layer[0]
        nid = f"layer{i}_verifier"
        self.nodes[nid] = {"op": "verify", "model": self.binding(comp, f"layer {i} verifier"),
                           "question": "${inputs.question}", "candidates": self.state.cands}
        n = self.state.count
        self.note(f"layer {i}: Archon's verifier makes two calls per candidate (reasoning, then verdict); "
                  "Ember's verify makes one" + ("" if n is None else f" ({n} calls instead of {2 * n})"))
        if self.state.crits is not None:
            self.note(f"layer {i}: the critiques stop at the verifier")
        self.add_calls(None if n is None else 2 * n)
        self.state = _State(f"${{{nid}.accepted}}", None, None, (nid, "answer"))

    def unit_test_generator(self, i: int, comp: dict[str, Any]) -> None:
        nid = f"layer{i}_unit_tests"
        cap = comp.get("unit_test_cap")
        upto = f"up to {cap} " if isinstance(cap, int) and cap > 0 else ""
        self.nodes[nid] = {"op": "generate", "model": self.binding(comp, f"layer {i} unit_test_generator"),
                           "prompt": "Question: {{ inputs.question }}\n\nWrite " + upto + "unit tests that a "
                           "correct response to this question must pass, one per line, each starting "
                           "\"Unit Test #<number>:\"."}
        if self.samples(comp, f"layer {i} unit_test_generator") != 1:
            self.note(f"layer {i}: the unit test generator's samples are ignored (Archon reads the first)")
        self.add_calls(1)
        self.unit_tests = nid

    def unit_test_evaluator(self, i: int, comp: dict[str, Any]) -> None:
        if self.unit_tests is None:
            raise UsageError(f"layer {i}: a unit_test_evaluator needs a unit_test_generator in an earlier layer")
        nid = f"layer{i}_unit_test_evaluator"
        n = self.state.count
        k = comp.get("top_k") or n
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise UsageError(f"layer {i} unit_test_evaluator: give top_k (an integer >= 1): the number of "
                             "candidates it keeps is not known before running")
        self.nodes[nid] = {
            "op": "score", "model": self.binding(comp, f"layer {i} unit_test_evaluator"), "k": k,
            "question": "${inputs.question}", "candidates": self.state.cands,
            "prompt": "Question: {{ inputs.question }}\n\nUnit tests:\n{{ " + self.unit_tests + ".text }}\n\n"
                      "Decide for each unit test whether the response below passes it. End with a line "
                      "\"Score: <number of unit tests passed>\"."}
        if comp.get("first_k") or comp.get("first_pass"):
            self.note(f"layer {i}: first_k is ignored: every candidate is evaluated (Archon stops at the "
                      "first_k that pass every test)")
        self.add_calls(n)
        self.state = _State(f"${{{nid}.top}}", None if n is None else min(n, k), None, (nid, "answer"))

    def samples(self, comp: dict[str, Any], where: str) -> int:
        n = comp.get("samples", 1)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise UsageError(f"{where}: samples must be an integer >= 1, got {n!r}")
        return n

    def answer(self) -> str:
        if self.state.last is not None:
            nid, port = self.state.last
            return f"${{{nid}.{port}}}"
        if self.state.count != 1:
            self.note("the last layer leaves several candidates (Archon returns a random one); the spec "
                      "returns the first")
        self.nodes["final"] = {"op": "first", "candidates": self.state.cands}
        return "${final.value}"


def convert(config: Any, *, sim: bool = False) -> Imported:
    """Convert a parsed Archon config; ``sim`` binds every model to the sim provider (to study it first)."""
    if not isinstance(config, dict):
        raise UsageError("an Archon config is a JSON object with 'name' and 'layers'")
    conv = _Converter(config, sim)
    spec = conv.run()
    return Imported(spec, dump(spec), conv.calls, conv.notes)


def load(path: str | Path, *, sim: bool = False) -> Imported:
    """Read and convert the Archon config at ``path``."""
    p = Path(path)
    try:
        config = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{p}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{p}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    try:
        return convert(config, sim=sim)
    except UsageError as exc:
        raise UsageError(f"{p}: {exc}") from None


def dump(spec: dict[str, Any]) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 120
    out = io.StringIO()
    yaml.dump(spec, out)
    return out.getvalue()
