"""Writing a traced spec as YAML (multi-line strings as `|` blocks, keys in spec order)."""

from __future__ import annotations

import copy
import io
import os
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString


def _blocks(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _blocks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blocks(v) for v in value]
    if isinstance(value, str) and "\n" in value.rstrip("\n"):
        return LiteralScalarString(value)
    return value


def spec_yaml(spec: dict[str, Any], folder: Path | None = None) -> str:
    """YAML text of ``spec``; sub-spec paths are made relative to ``folder`` when given."""
    data = copy.deepcopy(spec)
    for node in data.get("nodes", {}).values():
        if node.get("op") == "network" and folder is not None:
            node["spec"] = os.path.relpath(node["spec"], folder)
    yaml = YAML(typ="rt", pure=True)
    yaml.default_flow_style = False
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    out.write("# Written by ember_compiler: jit(network).to_spec(). `ember validate` / `ember run` it.\n")
    yaml.dump(_blocks(data), out)
    return out.getvalue()
