"""Loading and validation behind `ember validate`: structure (JSON Schema), then semantics (DESIGN §2).

Every problem is reported at once, each as `FILE:LINE:COL: error: MESSAGE; HINT [CODE]`, pointing at
the offending key or value. Codes are stable; never reuse one. Each code is defined once, with its
name, summary, why and fix, in `ember_compiler/spec/codes.py`: `ember explain CODE` prints one,
`ember explain --all` lists them, and docs/diagnostics.md shows the table `codes_markdown()` makes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ember_compiler.compiler.check_rules import Checker, View
from ember_compiler.compiler.schema import validate_structure
from ember_compiler.compiler.sets import apply_sets
from ember_compiler.errors import SpecInvalid
from ember_compiler.spec.diagnostics import Diagnostic
from ember_compiler.spec.limits import DEFAULT, Limits
from ember_compiler.spec.loader import Document, load_document, read_spec_bytes, to_plain
from ember_compiler.spec.loader import subspec_path as subspec_path
from ember_compiler.spec.model import SpecBase as Spec

__all__ = ["check_spec", "load_spec", "sort_diagnostics", "subspec_path", "validate_paths"]

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


# -- public API ------------------------------------------------------------------------------------
def load_spec(path: str | Path, sets: dict[str, Any] | None = None, *,
              limits: Limits = DEFAULT) -> tuple[Document, Spec]:
    """Load, apply `--set` overrides, validate structure and semantics.

    Returns the document (its `.diagnostics` hold warnings) and the spec.

    Raises:
        SpecInvalid: with every error found, sorted by file, line and column.
        UsageError: a `--set` path names something that does not exist.
    """
    return _Session(limits=limits).checked(Path(path), sets)


def spec_loader(limits: Limits = DEFAULT) -> Any:
    """A `load_spec` for one compilation: each sub-spec is loaded and checked once (compile stays
    linear in the number of files, however deep the chain of sub-specs)."""
    session = _Session(limits=limits)
    return lambda path, sets=None: session.checked(Path(path), sets)


def check_spec(doc: Document, spec: Spec) -> list[Diagnostic]:
    """Semantic checks of a structurally valid spec (errors and warnings)."""
    session = _Session()
    return sort_diagnostics(Checker(session, doc, View.from_spec(spec), (doc.path.resolve(),)).run())


def validate_paths(paths: Iterable[str | Path], *, import_operators: bool = False,
                   limits: Limits = DEFAULT) -> list[Diagnostic]:
    """Validate files and folders (every `*.yaml`, `*.yml`, `*.json` below, hidden dirs skipped).

    Files found in folders that are clearly not Ember specs (no top-level `ember:` key) are
    skipped; files named explicitly are always validated. Never raises for bad input.
    `import_operators` imports the operators `python` nodes name (running their modules' code) to
    check bindings and ports against them; by default no user code is imported. `limits` are the
    caps of `ember_compiler.spec.limits` (file size, sub-specs outside the folder, sizes).
    """
    session = _Session(import_operators, limits)
    out: list[Diagnostic] = []
    for raw in paths:
        path = Path(raw)
        try:
            exists, explicit = path.exists(), not path.is_dir()
        except (OSError, ValueError) as e:
            out.append(Diagnostic(str(raw), 1, 1, "E104", f"cannot read path: {e}"))
            continue
        if not exists:
            out.append(Diagnostic(str(raw), 1, 1, "E104", "no such file or directory"))
            continue
        for file in [path] if explicit else spec_files(path):
            try:
                out += session.load(file, only_specs=not explicit).diags
            except Exception as e:  # noqa: BLE001 - report, keep validating the other files
                out.append(Diagnostic(str(file), 1, 1, "E999", f"internal error: {type(e).__name__}: {e}"))
    return sort_diagnostics(out)


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(dict.fromkeys(diags), key=lambda d: (d.file, d.line, d.column, d.code, d.message))


# -- folders ---------------------------------------------------------------------------------------
def spec_files(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        found += [Path(root) / f for f in files if f.lower().endswith(SPEC_SUFFIXES) and not f.startswith(".")]
    return sorted(found, key=str)


_MARKER = re.compile(r"""(?m)^\s*["']?ember["']?\s*:|["']ember["']\s*:""")


def marked_as_spec(path: Path) -> bool:
    try:
        return bool(_MARKER.search(read_spec_bytes(path).decode("utf-8", errors="replace")))
    except SpecInvalid:
        return True  # let the loader report it (a FIFO among the files is refused, never read)


# -- sessions ---------------------------------------------------------------------------------------
@dataclass
class _Loaded:
    doc: Document | None
    spec: Spec | None
    view: View | None
    diags: list[Diagnostic]
    inlined: tuple[int, int] = (0, 0)  # (plan nodes, model calls) once its sub-specs are inlined


class _Session:
    """One validation run: sub-specs are loaded once and cached by resolved path."""

    def __init__(self, import_operators: bool = False, limits: Limits = DEFAULT) -> None:
        self.cache: dict[Path, _Loaded] = {}
        self.import_operators = import_operators
        self.limits = limits

    def checked(self, path: Path, sets: dict[str, Any] | None = None) -> tuple[Document, Spec]:
        """The document and spec of a valid file (warnings in `.diagnostics`), else `SpecInvalid`."""
        loaded = self.load(path, sets=sets)
        errors = [d for d in loaded.diags if d.severity == "error"]
        if errors or loaded.spec is None or loaded.doc is None:
            raise SpecInvalid(sort_diagnostics(errors))
        loaded.doc.diagnostics = sort_diagnostics(loaded.diags)
        return loaded.doc, loaded.spec

    def load(self, path: Path, sets: dict[str, Any] | None = None, stack: tuple[Path, ...] = (),
             only_specs: bool = False) -> _Loaded:
        try:
            key = path.resolve()
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop (Python < 3.13)
            return _Loaded(None, None, None, [Diagnostic(str(path), 1, 1, "E104", f"cannot read file: {e}")])
        if not sets and key in self.cache:
            return self.cache[key]
        if only_specs and not marked_as_spec(path):
            return _Loaded(None, None, None, [])
        try:
            doc = load_document(path, max_bytes=self.limits.spec_bytes)
        except SpecInvalid as e:
            return self._remember(key, sets, _Loaded(None, None, None, list(e.diagnostics)))
        if only_specs and "ember" not in doc.data:
            return _Loaded(None, None, None, [])
        if sets:
            apply_sets(doc.data, sets)
        data = to_plain(doc.data)
        spec, diags = validate_structure(doc, data)
        view = View.from_spec(spec) if spec is not None else View.salvage(data)
        checker = Checker(self, doc, view, (*stack, key), lint=spec is not None)
        diags = diags + checker.run()
        return self._remember(key, sets, _Loaded(doc, spec, view, diags, checker.inlined))

    def _remember(self, key: Path, sets: Any, loaded: _Loaded) -> _Loaded:
        if not sets:
            self.cache[key] = loaded
        return loaded

