"""The checker's rules for fields (E3xx, E4xx): static numbers, regexes, model names, providers,
binding params and input defaults. A mixin of ``Checker`` (``check_rules.py``)."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

from ember_compiler.compiler.sets import apply_sets
from ember_compiler.errors import UsageError
from ember_compiler.providers.registry import known_providers
from ember_compiler.providers.sim import DEFAULT_KEY
from ember_compiler.providers.sim import FIELDS as SIM_FIELDS
from ember_compiler.spec.diagnostics import did_you_mean
from ember_compiler.spec.loader import describe
from ember_compiler.spec.refs import whole_reference

# model-binding fields that may be `${params.X}`: (kind, minimum, maximum)
_BINDING_NUMBERS = {"temperature": ("number", 0, None), "max_tokens": ("integer", 1, None),
                    "top_p": ("number", 0, 1), "accuracy": ("number", 0, 1), "latency_ms": ("number", 0, None)}
_INPUT_TYPES = {"string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,),
                "array": (list,), "object": (dict,)}


# deprecated field (a path in the document) -> its new name
_DEPRECATED = {("budget", "max_tokens"): "max_total_tokens"}


class FieldChecks:
    """Rules on single fields; ``self`` is the ``Checker`` (its ``doc``, ``view`` and ``error``)."""

    doc: Any
    view: Any
    error: Any
    error_at: Any
    _name_in: Any
    diags: list[Any]

    def _deprecated(self) -> None:
        for path, new in _DEPRECATED.items():
            section = self.doc.data.get(path[0]) if isinstance(self.doc.data, dict) else None
            if isinstance(section, dict) and path[1] in section:
                self.diags.append(self.doc.diag(path, "W202", f"{_dotted(path)} is deprecated: write "
                                                f"{path[0]}.{new} (it is read the same way)", key=True,
                                                severity="warning"))

    def _param_number(self, loc: tuple, text: str, kind: str, lo: float | None, hi: float | None,
                      code: str) -> None:
        ref = whole_reference(text)
        pos = self.doc.position(loc)
        if ref is None or not ref.tail or "." in ref.tail:
            self.error_at(pos, "E206", f"malformed reference '{text}' in {_dotted(loc)}: expected ${{params.NAME}}")
            return
        if ref.head != "params":
            self.error_at(pos, code, f"{_dotted(loc)} must be known before running: use {_article(kind)} or "
                                     f"${{params.NAME}}, not '{ref.text}'")
            return
        if ref.tail not in self.view.params:
            self._name_in(pos, ref.tail, self.view.params, "E204", "param", "params")
            return
        value = self.view.params[ref.tail]
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        ok = numeric and (kind == "number" or float(value).is_integer())
        ok = ok and (lo is None or value >= lo) and (hi is None or value <= hi)
        if not ok:
            want = _article(kind) + (f" >= {lo}" if lo is not None else "") + (f" and <= {hi}" if hi is not None else "")
            self.error_at(pos, code, f"{_dotted(loc)}: {ref.text} is {describe(value)}; expected {want}",
                          f"set it with --set params.{ref.tail}=VALUE or in params:")

    def _regex(self, loc: tuple, pattern: Any) -> None:
        if not isinstance(pattern, str):
            return
        try:
            groups = re.compile(pattern).groups
        except re.error as e:
            pos = self.doc.string_position(loc, e.pos or 0) if e.pos is not None else self.doc.position(loc)
            self.error_at(pos, "E303", f"invalid regex in {_dotted(loc)}: {e.msg}")
            return
        if groups != 1:
            self.error(loc, "E303", f"{_dotted(loc)} must have exactly one capturing group (it has {groups})",
                       "the group captures the answer; use (?:...) for other groups")

    def _model_names(self, nid: str, loc: tuple, value: Any) -> None:
        items = [(loc, value)] if not isinstance(value, list) else [((*loc, i), v) for i, v in enumerate(value)]
        for item_loc, name in items:
            if isinstance(name, str) and name not in self.view.models:
                hint = did_you_mean(name, self.view.models) or _listing("models", self.view.models)
                self.error(item_loc, "E401", f"undefined model '{name}' in node '{nid}'", hint)

    # -- models, inputs, outputs -------------------------------------------------------------------
    def _models(self) -> None:
        providers = None
        for name, binding in self.view.models.items():
            if binding is None:
                continue
            loc = ("models", name)
            if providers is None:
                providers = known_providers()
            if binding.provider not in providers:
                self.error((*loc, "provider"), "E402", f"unknown provider '{binding.provider}' in model '{name}'",
                           did_you_mean(binding.provider, providers) or "providers: " + ", ".join(sorted(providers)))
            for fname, (kind, lo, hi) in _BINDING_NUMBERS.items():
                value = getattr(binding, fname)
                if isinstance(value, str):
                    self._param_number((*loc, fname), value, kind, lo, hi, "E403")
            self._per_node_keys(name, binding)

    def _per_node_keys(self, name: str, binding: Any) -> None:
        """A sim field given per node names nodes of this spec (or `default`)."""
        for fname in SIM_FIELDS:
            value = getattr(binding, fname, None)
            if not isinstance(value, dict):
                continue
            for key in value:
                if key != DEFAULT_KEY and key not in self.view.nodes:
                    hint = did_you_mean(key, [*self.view.nodes, DEFAULT_KEY]) or _listing("nodes", self.view.nodes)
                    self.error(("models", name, fname, key), "E404",
                               f"model '{name}': {fname} names '{key}', which is not a node of this spec "
                               f"(a per-node mapping takes node ids and `{DEFAULT_KEY}`)", hint, key=True)

    def _search(self) -> None:
        """Each path of a `search:` section names something the spec has (as `--set` would check)."""
        data = self.doc.data
        search = data.get("search") if isinstance(data, dict) else None
        if not isinstance(search, dict):
            return
        for path in search:
            try:
                apply_sets(copy.deepcopy(data), {str(path): None})
            except UsageError as exc:
                message = str(exc).removeprefix(f"--set {path}: ").removeprefix("--set: ")
                hint = None if "did you mean" in message else "a search path is a --set path: nodes.NODE.FIELD, " \
                    "params.NAME or models.NAME.FIELD"
                self.error(("search", path), "E115", f"search path '{path}': {message}", hint, key=True)

    def _inputs(self) -> None:
        for name, decl in self.view.inputs.items():
            if decl is None or "default" not in decl.model_fields_set or decl.default is None:
                continue
            types = _INPUT_TYPES[decl.type]
            ok = isinstance(decl.default, types) and not (isinstance(decl.default, bool) and bool not in types)
            if not ok:
                self.error(("inputs", name, "default"), "E114",
                           f"default of input '{name}' is {describe(decl.default)}, but its type is {decl.type}")


def _article(kind: str) -> str:
    return "an integer" if kind == "integer" else "a number"


def _listing(section: str, names: Iterable[str]) -> str:
    names = list(names)
    return f"{section}: {', '.join(names)}" if names else f"the spec declares no {section}"


def _dotted(loc: tuple) -> str:
    out = ""
    for seg in loc:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else str(seg))
    return out
