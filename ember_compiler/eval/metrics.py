"""Metrics: how a prediction is scored against a row's answer, and their 95% confidence intervals.

`--metric` names: `exact` (default: equal after trimming and lowercasing), `mc` (the multiple-choice
letter in the prediction), `numeric[:TOL]` / `numeric:rel=TOL` (numbers within an absolute or relative
tolerance), `contains` (the answer appears in the prediction), or `package.module:function`
(called as `function(prediction, answer)` or `function(prediction, answer, row)`, returning a bool or a
score in [0, 1]), or `pass@K` for code: it reads the spec's `passed` output (an `execute` node's
per-candidate results) instead of the answer, and scores the unbiased estimator of Chen et al. (2021),
1 − C(n−c, K)/C(n, K) with n candidates of which c passed. Scores are floats in [0, 1]; a failing row
scores 0 on every metric.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..answers import normalize
from ..errors import UsageError

Z95 = 1.959963984540054
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
# a standalone letter: "B", "(B)", "B.", "B)", "answer is B", "**B**"; not the "A" in "A cat"
_LETTER = re.compile(r"(?<![A-Za-z])([A-Za-z])(?![A-Za-z])")
_ANSWER_IS = re.compile(r"answer\s*(?:is|:)?\s*\(?([A-Za-z])\)?(?![A-Za-z])", re.IGNORECASE)
_PAREN = re.compile(r"\(([A-Za-z])\)")


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[Any, Any, dict[str, Any]], float]
    output: str | None = None  # the spec output it scores (None: the answer)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator: P(at least one of k candidates drawn from n passes), c passing.

    Computed as the product form 1 − Π_{i=n−c+1..n} (1 − k/i), which equals 1 − C(n−c, k)/C(n, k)
    without huge binomials.
    """
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass@k needs 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} candidates per row, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def _pass_metric(k: int) -> Callable[[Any, Any, Any], float]:
    def score(passed: Any, truth: Any, row: dict[str, Any] | None = None) -> float:
        if not isinstance(passed, list):
            raise ValueError(f"pass@{k} scores a list of per-candidate results (an execute node's `passed`), "
                             f"got {type(passed).__name__}")
        return pass_at_k(len(passed), sum(1 for p in passed if p is True), k)
    return score


def exact(pred: Any, truth: Any, row: dict[str, Any] | None = None) -> float:
    return float(pred is not None and normalize(pred, "lower") == normalize(truth, "lower"))


def contains(pred: Any, truth: Any, row: dict[str, Any] | None = None) -> float:
    t = normalize(truth, "lower")
    return float(pred is not None and bool(t) and t in normalize(pred, "lower"))


def mc_letter(text: Any) -> str | None:
    """The choice letter a prediction names: a lone letter, `(b)`, `B.`, `Answer: B`, `the answer is b`, or
    the first capital A–H standing alone (not "I", nor an article as in "A cat")."""
    if text is None:
        return None
    s = str(text).strip()
    if len(s) == 1 and s.isalpha():
        return s.upper()
    m = _ANSWER_IS.search(s) or _PAREN.search(s)
    if m:
        return m.group(1).upper()
    for m in _LETTER.finditer(s):
        if m.group(1) in "ABCDEFGH" and not re.match(r" [a-z]", s[m.end():m.end() + 2]):
            return m.group(1)
    return None


def mc(pred: Any, truth: Any, row: dict[str, Any] | None = None) -> float:
    p, t = mc_letter(pred), mc_letter(truth)
    return float(p is not None and p == t)


def parse_number(text: Any) -> float | None:
    """The last number in a text (`1,234.5`, `-3`, `$12`, `1e-3`), else None."""
    if text is None:
        return None
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    found = _NUMBER.findall(str(text))
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def numeric(abs_tol: float = 1e-6, rel_tol: float = 0.0) -> Callable[[Any, Any, Any], float]:
    def score(pred: Any, truth: Any, row: dict[str, Any] | None = None) -> float:
        p, t = parse_number(pred), parse_number(truth)
        if p is None or t is None:
            return 0.0
        return float(abs(p - t) <= max(abs_tol, rel_tol * abs(t)))
    return score


def _python_metric(ref: str) -> Callable[[Any, Any, Any], float]:
    module_name, _, attr = ref.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--metric {ref}: cannot load it ({exc})") from None
    if not callable(fn):
        raise UsageError(f"--metric {ref}: not a function")
    try:
        takes_row = len(inspect.signature(fn).parameters) >= 3
    except (TypeError, ValueError):
        takes_row = False

    def score(pred: Any, truth: Any, row: dict[str, Any] | None = None) -> float:
        value = fn(pred, truth, row) if takes_row else fn(pred, truth)
        value = float(value)
        if not 0.0 <= value <= 1.0 or math.isnan(value):
            raise ValueError(f"metric {ref} returned {value}, expected a bool or a score in [0, 1]")
        return value
    return score


def parse_metric(text: str) -> Metric:
    """`exact`, `mc`, `contains`, `numeric`, `numeric:0.01`, `numeric:rel=0.02`, `pkg.mod:fn`."""
    text = text.strip()
    head, _, arg = text.partition(":")
    if head in ("exact", "accuracy") and not arg:
        return Metric("exact", exact)
    if head == "contains" and not arg:
        return Metric("contains", contains)
    if head in ("mc", "choice") and not arg:
        return Metric("mc", mc)
    if re.fullmatch(r"pass@\d+", text):
        k = int(text[5:])
        if k < 1:
            raise UsageError(f"--metric {text}: k must be at least 1")
        return Metric(text, _pass_metric(k), output="passed")
    if head == "numeric":
        abs_tol, rel_tol = 1e-6, 0.0
        for part in filter(None, arg.split(",")):
            key, sep, val = part.rpartition("=")
            try:
                x = float(val)
            except ValueError:
                raise UsageError(f"--metric {text}: tolerance must be a number") from None
            if key in ("", "abs"):
                abs_tol = x
            elif key == "rel":
                rel_tol = x
            else:
                raise UsageError(f"--metric {text}: use numeric:TOL, numeric:abs=TOL or numeric:rel=TOL")
        return Metric(text, numeric(abs_tol, rel_tol))
    if arg and head not in ("exact", "accuracy", "contains", "mc", "choice"):
        return Metric(text, _python_metric(text))
    raise UsageError(f"unknown --metric {text!r} (exact, mc, numeric[:TOL], contains, pass@K, or "
                     "package.module:function)")


def parse_metrics(items: list[str] | None) -> list[Metric]:
    metrics = [parse_metric(t) for item in items or [] for t in _split_metrics(item)]
    if not metrics:
        metrics = [Metric("exact", exact)]
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise UsageError(f"--metric given twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    return metrics


def _split_metrics(item: str) -> list[str]:
    # `--metric exact,mc` as well as repeated `--metric`; a comma inside `numeric:abs=1,rel=0.1` stays
    parts: list[str] = []
    for piece in item.split(","):
        if parts and "=" in piece and parts[-1].startswith("numeric"):
            parts[-1] += "," + piece
        elif piece.strip():
            parts.append(piece)
    return parts


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval: honest near 0 and 1 and for small n, unlike mean ± 1.96·se."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def interval(scores: list[float]) -> tuple[float, float] | None:
    """95% interval of a mean score: Wilson for 0/1 scores, a normal interval for graded ones."""
    n = len(scores)
    if n == 0:
        return None
    total = math.fsum(scores)
    if all(s in (0.0, 1.0) for s in scores):
        return wilson(total, n)
    mean = total / n
    var = math.fsum((s - mean) ** 2 for s in scores) / max(1, n - 1)
    half = Z95 * math.sqrt(var / n)
    return max(0.0, mean - half), min(1.0, mean + half)
