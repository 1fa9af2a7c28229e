"""Diagnostics: one problem in one file at one position, rendered the way compilers and CI expect."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from ember_compiler.spec.codes import CODES


@dataclass(frozen=True, slots=True)
class Diagnostic:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    code: str  # stable code, e.g. "E201"
    message: str
    hint: str | None = None  # e.g. "did you mean 'ensemble'?"
    severity: str = "error"  # "error" | "warning"

    def __post_init__(self) -> None:
        entry = CODES.get(self.code)
        if entry is None:  # a bug in Ember, caught by the tests that run every fixture
            raise ValueError(f"diagnostic code {self.code!r} is not registered in ember_compiler/spec/codes.py")
        if self.severity != entry.severity:
            raise ValueError(f"diagnostic {self.code} is registered as a {entry.severity}, not a {self.severity}")

    @property
    def name(self) -> str:
        """The code's kebab-case name, e.g. `unknown-node` for E201 (`ember explain E201`)."""
        return CODES[self.code].name

    def render(self) -> str:
        """`FILE:LINE:COL: error: MESSAGE; HINT [CODE]` — the contract form (DESIGN §7)."""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}{hint} [{self.code}]"

    def render_github(self) -> str:
        """A GitHub Actions workflow command, shown as an annotation on the file."""
        text = self.message + (f"; {self.hint}" if self.hint else "")
        text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        kind = "error" if self.severity == "error" else "warning"
        return f"::{kind} file={self.file},line={self.line},col={self.column},title={self.code}::{text}"

    def to_json(self) -> dict:
        return {**asdict(self), "name": self.name}


def render_all(diagnostics: Iterable[Diagnostic], fmt: str = "text") -> str:
    diags = list(diagnostics)
    if fmt == "json":
        return json.dumps([d.to_json() for d in diags], indent=2)
    if fmt == "github":
        return "\n".join(d.render_github() for d in diags)
    return "\n".join(d.render() for d in diags)


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    """A "did you mean 'x'?" hint for the closest option, or None when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
