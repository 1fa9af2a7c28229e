"""Invalid spec fixtures that state what `ember validate` must report about them.

Each file in a fixtures folder (`tests/fixtures/invalid/`) says, in comment headers:

- `# expect: [FILE:]LINE:COL CODE` — one diagnostic it must produce (FILE relative to the fixture's folder,
  default the fixture itself); JSON has no comments, so the JSON fixtures' expectations are in `JSON_EXPECT`.
- `# validate: ARGS` — the arguments of `ember validate` (`--import`, `--size-limit=NAME=N`; paths
  relative to the fixture's folder, default the fixture itself).
- `# simulate: internal-error` — the test makes validation raise on the file (see `FixtureCase.patch`).

`invalid_cases(folder)` reads them all into `FixtureCase`s, in file-name order.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ember_compiler.compiler import check as check_mod
from ember_compiler.compiler.check import validate_paths
from ember_compiler.spec.codes import CODES
from ember_compiler.spec.diagnostics import Diagnostic
from ember_compiler.spec.limits import Limits

if TYPE_CHECKING:
    import pytest

# JSON has no comments: expectations of the JSON fixtures live here
JSON_EXPECT = {
    "e100_syntax.json": ["5:3 E100"],  # missing comma before "outputs"
    "e101_duplicate_key.json": ["6:3 E101"],  # "name" twice
    "e110_unknown_key.json": ["4:39 E110"],  # "temprature"
}
EXPECT_RE = re.compile(r"^#\s*expect:\s*(?:(?P<file>[^\s:]+):)?(?P<line>\d+):(?P<col>\d+)\s+(?P<code>[EW]\d{3})")
# `# validate: ARGS`: the arguments of `ember validate` (`--import`; paths relative to the fixture's folder,
# default the fixture itself). `# simulate: internal-error`: the test makes validation raise on the file.
VALIDATE_RE = re.compile(r"^#\s*validate:\s*(?P<args>.*)$")
SIMULATE_RE = re.compile(r"^#\s*simulate:\s*(?P<what>\S+)")


def expected(path: Path) -> set[tuple[str, int, int, str]]:
    """The (file, line, column, code) diagnostics a fixture says it produces (empty: it states none)."""
    if path.suffix == ".json":
        specs = JSON_EXPECT[path.name]
        return {(str(path), int(s.split(":")[0]), int(s.split(":")[1].split()[0]), s.split()[1]) for s in specs}
    out = set()
    for line in path.read_text().splitlines():
        m = EXPECT_RE.match(line)
        if m:
            file = os.path.normpath(path.parent / m["file"]) if m["file"] else str(path)
            out.add((file, int(m["line"]), int(m["col"]), m["code"]))
    return out


@dataclass(frozen=True)
class FixtureCase:
    """How to validate one invalid fixture and what it must report."""

    path: Path
    targets: tuple[str, ...]  # the paths given to `ember validate`
    import_operators: bool  # `--import`
    simulate: str | None  # "internal-error": a test-only patch makes validation raise on this file
    expected: frozenset[tuple[str, int, int, str]]
    size_limits: tuple[str, ...] = ()  # `--size-limit=NAME=N` items

    @property
    def cli_args(self) -> list[str]:
        return [*(["--import"] if self.import_operators else []),
                *(f"--size-limit={item}" for item in self.size_limits), *self.targets]

    @property
    def has_errors(self) -> bool:
        return any(CODES[code].severity == "error" for *_, code in self.expected)

    def validate(self) -> list[Diagnostic]:
        return validate_paths(self.targets, import_operators=self.import_operators,
                              limits=Limits().with_items(self.size_limits))

    def patch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Apply the test-only patch the fixture asks for (none for almost every fixture).

        `internal-error` simulates a bug in Ember: structural validation raises a RuntimeError for this
        file (only), which `validate_paths` must report as E999 while validating the other files.
        """
        if self.simulate is None:
            return
        assert self.simulate == "internal-error", f"{self.path.name}: unknown '# simulate: {self.simulate}'"
        real, target = check_mod.validate_structure, self.path.resolve()

        def crashing(doc, data):
            if Path(doc.path).resolve() == target:
                raise RuntimeError("simulated bug (test-only patch)")
            return real(doc, data)

        monkeypatch.setattr(check_mod, "validate_structure", crashing)


def fixture_case(path: Path) -> FixtureCase:
    """Read one fixture's headers."""
    targets: list[str] = []
    import_operators, simulate = False, None
    size_limits: list[str] = []
    if path.suffix != ".json":
        for line in path.read_text().splitlines():
            if m := VALIDATE_RE.match(line):
                for arg in m["args"].split():
                    if arg == "--import":
                        import_operators = True
                    elif arg.startswith("--size-limit="):
                        size_limits.append(arg.removeprefix("--size-limit="))
                    else:
                        targets.append(os.path.normpath(path.parent / arg))
            elif m := SIMULATE_RE.match(line):
                simulate = m["what"]
    return FixtureCase(path, tuple(targets) or (str(path),), import_operators, simulate, frozenset(expected(path)),
                       tuple(size_limits))


def invalid_files(folder: str | Path) -> list[Path]:
    """The fixtures (YAML and JSON files) directly in `folder`, sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix in (".yaml", ".json"))


def invalid_cases(folder: str | Path) -> list[FixtureCase]:
    """Every fixture directly in `folder` (not its subfolders), in file-name order."""
    return [fixture_case(p) for p in invalid_files(folder)]
