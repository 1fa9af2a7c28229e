"""Compile a spec file into a plan (``compile_spec``): load, check, lower, then the passes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ember_compiler.compiler.check import spec_loader
from ember_compiler.compiler.lower import lower
from ember_compiler.compiler.passes import PASSES, default_passes, pass_name, run_passes
from ember_compiler.errors import UsageError
from ember_compiler.spec.limits import DEFAULT, Limits
from ember_compiler.xcs.plan import Plan


def compile_spec(path: str | Path, sets: dict[str, Any] | None = None, *, optimize: bool = True,
                 disable: Iterable[str] = (), batch: bool = False, limits: Limits = DEFAULT) -> Plan:
    """Load, check and lower the spec at ``path``, then run the default passes.

    Args:
        path: the spec file; node sources in the plan use this path as given.
        sets: ``--set`` overrides (dotted path -> value), applied by the checker.
        optimize: run the default passes (``prune``, ``dedupe``, and for a batch ``vote-cutoff``);
            False returns the plan as lowered.
        disable: default passes not to run (``--no-pass NAME``; kebab- or snake_case).
        batch: compile for many rows (eval, sweep): adds the passes that trade latency for calls.
        limits: the caps checked while loading and validating (``ember_compiler.spec.limits``).

    Raises:
        SpecInvalid: the spec (or a sub-spec) failed validation, with every diagnostic.
    """
    load_spec = spec_loader(limits)
    doc, spec = load_spec(path, sets)
    plan = lower(doc, spec, load_spec=load_spec)
    if not optimize:
        return plan
    off = {pass_name(p) for p in disable}
    if unknown := sorted(off - PASSES.keys()):
        raise UsageError(f"unknown pass '{unknown[0]}' (passes: {', '.join(PASSES)})")
    return run_passes(plan, enabled=[p for p in default_passes(batch=batch) if p not in off])
