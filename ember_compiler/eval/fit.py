"""A scaling law for the number of calls, after Chen et al. 2024, "Are More LLM Calls All You Need?".

Their model: a vote over K calls on a query where the right answer is the most likely one ("more calls
help") has accuracy 1 − exp(−c1·K − c2·√K − c3), rising to 1; on the others exp(−c1·K − c2·√K − c3),
falling to 0. A dataset mixes both, which is why accuracy can rise and then fall as K grows.

How it is fitted here, from a sweep over K (pure Python, no numpy needed):

1. Per query: the vote's counts at the sweep's largest point (on the sim, samples at smaller K are the
   first samples of larger K, so these are all the distinct samples drawn), giving how often the right
   answer came up (x of N) and how often the most frequent wrong one did.
2. A two-component binomial mixture over x ~ Binomial(N, p), fitted by EM, gives each query's
   probability of belonging to each component. Soft memberships matter: classifying each query by
   "was the right answer the plurality of its few samples" misfiles many queries whose margin is small,
   and biases the fraction of easy queries (the limit of the curve) by several points.
3. A component is "helped" when its right-answer rate beats its most-frequent-wrong rate.
4. Each component's measured accuracy at each sweep point (membership-weighted) is fitted with its form,
   by weighted least squares on −log(1 − acc) (or −log acc), which is linear in (K, √K, 1); the weights
   are the delta-method inverse variances, c1 ≥ 0 keeps the extrapolation monotone.
5. The dataset curve is the membership-weighted mix; its argmax over K is the predicted best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..errors import UsageError


@dataclass(frozen=True)
class Law:
    """One component's curve: 1 − exp(−g(K)) when `up`, exp(−g(K)) otherwise; g = c1·K + c2·√K + c3."""

    up: bool
    c: tuple[float, float, float]

    def __call__(self, k: float) -> float:
        g = self.c[0] * k + self.c[1] * math.sqrt(k) + self.c[2]
        e = math.exp(-min(max(g, -50.0), 700.0))
        return min(1.0, max(0.0, 1.0 - e if self.up else e))


@dataclass
class ScalingFit:
    ks: list[float]                      # calls per row at each measured point
    measured: list[float]                # measured accuracy at each point
    weights: list[float]                 # share of queries in each component (sums to 1)
    rates: list[tuple[float, float]]     # per component: P(right), P(most frequent wrong) per call
    laws: list[Law]
    component_acc: list[list[float]]     # per component, its measured accuracy at each point
    helped: list[float] = field(default_factory=list)  # per query: P(more calls help it)
    k_max: int = 1000

    @property
    def alpha(self) -> float:
        """Estimated share of queries that more calls help."""
        return sum(w for w, law in zip(self.weights, self.laws, strict=True) if law.up)

    def predict(self, k: float) -> float:
        return sum(w * law(k) for w, law in zip(self.weights, self.laws, strict=True))

    @property
    def best_k(self) -> int:
        return max(range(1, self.k_max + 1), key=lambda k: (round(self.predict(k), 12), -k))

    @property
    def best_accuracy(self) -> float:
        return self.predict(self.best_k)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": "Chen et al. 2024: 1-exp(-c1*K-c2*sqrt(K)-c3) (helped) / exp(-c1*K-c2*sqrt(K)-c3) (hurt)",
            "best_calls": self.best_k, "best_accuracy": round(self.best_accuracy, 6),
            "share_helped": round(self.alpha, 6),
            "components": [
                {"share": round(w, 6), "p_right": round(r[0], 6), "p_top_wrong": round(r[1], 6),
                 "more_calls_help": law.up, "c": [round(x, 6) for x in law.c],
                 "measured": [round(a, 6) for a in acc]}
                for w, r, law, acc in zip(self.weights, self.rates, self.laws, self.component_acc, strict=True)],
            "measured": [{"calls": k, "accuracy": round(a, 6), "fitted": round(self.predict(k), 6)}
                         for k, a in zip(self.ks, self.measured, strict=True)],
        }


def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when singular."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) < 1e-12:
            return None
        m[col], m[piv] = m[piv], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            for c in range(col, n + 1):
                m[r][c] -= f * m[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / m[r][r]
    return x


def _wls(xs: list[list[float]], ys: list[float], ws: list[float]) -> list[float] | None:
    p = len(xs[0])
    a = [[sum(w * x[i] * x[j] for x, w in zip(xs, ws, strict=True)) for j in range(p)] for i in range(p)]
    b = [sum(w * x[i] * y for x, y, w in zip(xs, ys, ws, strict=True)) for i in range(p)]
    return _solve(a, b)


def fit_law(ks: list[float], accs: list[float], ns: list[float], up: bool) -> Law:
    """Weighted least squares of −log(1−acc) (up) or −log(acc) (down) on (K, √K, 1), with c1 ≥ 0."""
    ys, ws = [], []
    for acc, n in zip(accs, ns, strict=True):
        n = max(n, 1.0)
        a = min(max(acc, 0.5 / n), 1 - 0.5 / n)  # a measured 0 or 1 is "below one in n", not infinitely sure
        ys.append(-math.log(1 - a) if up else -math.log(a))
        ws.append(n * (1 - a) / a if up else n * a / (1 - a))  # 1 / Var of the log, delta method
    full = [[k, math.sqrt(k), 1.0] for k in ks]
    c = _wls(full, ys, ws) if len(set(ks)) >= 3 else None
    if c is None or c[0] < 0:  # a negative c1 would turn the curve around beyond the data: drop it
        c2 = _wls([[math.sqrt(k), 1.0] for k in ks], ys, ws) if len(set(ks)) >= 2 else None
        if c2 is not None and c2[0] >= 0:
            c = [0.0, *c2]
        else:  # flat: the weighted mean level
            c = [0.0, 0.0, sum(w * y for w, y in zip(ws, ys, strict=True)) / sum(ws)]
    return Law(up, (c[0], c[1], c[2]))


def mixture_memberships(xs: list[int], ns: list[int], iters: int = 500) -> tuple[list[float], float, float]:
    """EM for x_i ~ π·Bin(N_i, p1) + (1−π)·Bin(N_i, p2), started from "the right answer is the plurality"-
    like split (x/N above or below the median). Returns (P(component 1 | x_i), p1, p2) with p1 ≥ p2."""
    total_n = sum(ns)
    if total_n == 0:
        raise UsageError("--fit: no votes were recorded (is the spec's answer a vote over samples?)")
    rates = sorted(x / n for x, n in zip(xs, ns, strict=True) if n)
    mid = rates[len(rates) // 2]
    r = [1.0 if n and x / n > mid else 0.0 if n else 0.5 for x, n in zip(xs, ns, strict=True)]
    if not any(r) or all(r):
        r = [min(1.0, x / n) if n else 0.5 for x, n in zip(xs, ns, strict=True)]
    p1 = p2 = pi = 0.5
    eps = 1e-9
    for _ in range(iters):
        s1 = sum(r)
        s2 = len(r) - s1
        pi = min(1 - eps, max(eps, s1 / len(r)))
        w1 = sum(ri * n for ri, n in zip(r, ns, strict=True))
        w2 = total_n - w1
        p1 = min(1 - eps, max(eps, sum(ri * x for ri, x in zip(r, xs, strict=True)) / w1)) if w1 > eps else 0.5
        p2 = min(1 - eps, max(eps, sum((1 - ri) * x for ri, x in zip(r, xs, strict=True)) / w2)) if w2 > eps else 0.5
        if s1 < eps or s2 < eps:
            break
        l1, l1c, l2, l2c = math.log(p1), math.log(1 - p1), math.log(p2), math.log(1 - p2)
        lp, lq = math.log(pi), math.log(1 - pi)
        new = []
        for x, n in zip(xs, ns, strict=True):
            a = lp + x * l1 + (n - x) * l1c
            b = lq + x * l2 + (n - x) * l2c
            new.append(1.0 / (1.0 + math.exp(min(700.0, b - a))))
        delta = max(abs(u - v) for u, v in zip(new, r, strict=True))
        r = new
        if delta < 1e-10:
            break
    if p2 > p1:
        r, p1, p2 = [1 - x for x in r], p2, p1
    return r, p1, p2


_MAX_SUBSETS = 50_000


@lru_cache(maxsize=65536)
def subset_vote_accuracy(right: int, wrong: tuple[int, ...], k: int) -> float | None:
    """P(a plurality vote over k of these samples, drawn without replacement, is right; ties uniform).

    Given a query's N exchangeable samples, this is the average over every k-subset of the vote's
    outcome: an unbiased estimate of the query's accuracy at k calls with less variance than the one
    vote actually measured (Rao-Blackwell). None when k > N or the enumeration would be too large."""
    counts = (right, *sorted((w for w in wrong if w), reverse=True))
    n = sum(counts)
    if k > n or k < 1 or math.prod(c + 1 for c in counts) > _MAX_SUBSETS:
        return None
    total = 0.0
    denom = math.comb(n, k)

    def walk(i: int, left: int, ways: int, picked: list[int]) -> None:
        nonlocal total
        if i == len(counts) - 1:
            if left > counts[i]:
                return
            full = [*picked, left]
            top = max(full)
            if full[0] == top:
                total += ways * math.comb(counts[i], left) / sum(1 for c in full if c == top)
            return
        rest = sum(counts[i + 1:])
        for x in range(max(0, left - rest), min(counts[i], left) + 1):
            walk(i + 1, left - x, ways * math.comb(counts[i], x), [*picked, x])

    walk(0, k, 1, [])
    return total / denom


def fit_scaling(points: list[tuple[float, dict[int, float]]], votes: dict[int, tuple[int, ...]],
                k_max: int = 1000) -> ScalingFit:
    """`points`: (calls per row, {row index: score}) per sweep point; `votes`: {row index: (votes for the
    right answer, all votes, votes for each wrong answer...)} at the point with the most votes."""
    if len({k for k, _ in points}) < 3:
        raise UsageError("--fit needs at least 3 sweep points with different numbers of calls per row "
                         "(e.g. --set samples.n=1,3,5,9)")
    idx = sorted(i for i in votes if votes[i][1] > 0)
    if not idx:
        raise UsageError("--fit: no row recorded its vote counts (is the spec's answer a vote over samples?)")
    xs = [votes[i][0] for i in idx]
    ns = [votes[i][1] for i in idx]
    tops = [max(votes[i][2:], default=0) for i in idx]
    r, p1, p2 = mixture_memberships(xs, ns)
    members = [dict(zip(idx, r, strict=True)), {i: 1 - m for i, m in zip(idx, r, strict=True)}]
    weights = [sum(r) / len(r), 1 - sum(r) / len(r)]
    ks = [k for k, _ in points]
    measured = [sum(s.values()) / len(s) if s else 0.0 for _, s in points]
    laws: list[Law] = []
    rates: list[tuple[float, float]] = []
    comp_acc: list[list[float]] = []
    for c, p in enumerate((p1, p2)):
        m = members[c]
        mass_n = sum(m[i] * n for i, n in zip(idx, ns, strict=True))
        top = sum(m[i] * t for i, t in zip(idx, tops, strict=True)) / mass_n if mass_n > 0 else 0.0
        accs, effs = [], []
        for k, scores in points:
            # each row's accuracy at k from all its samples when k is a whole number of votes it covers
            smooth = {i: subset_vote_accuracy(votes[i][0], tuple(votes[i][2:]), int(k))
                      for i in scores if i in votes and float(k).is_integer()}
            num = sum(m.get(i, 0.0) * (s if smooth.get(i) is None else smooth[i]) for i, s in scores.items())
            den = sum(m.get(i, 0.0) for i in scores)
            accs.append(num / den if den > 0 else 0.0)
            effs.append(den)
        laws.append(fit_law(ks, accs, effs, up=p > top))
        rates.append((p, top))
        comp_acc.append(accs)
    helped = [sum(members[c][i] for c in range(2) if laws[c].up) for i in idx]
    return ScalingFit(ks, measured, weights, rates, laws, comp_acc, helped, k_max)
