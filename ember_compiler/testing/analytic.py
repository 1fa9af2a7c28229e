"""Exact analytical results the sim must match: vote accuracies computed by enumeration, not sampling.

- `majority_accuracy(n, p, wrong)` — P(a plurality vote over n sim draws is right), the right answer drawn
  with probability p and the wrong ones in proportion to `wrong`; ties broken uniformly.
- `plurality_accuracy(k, probs)` — the same for any answer distribution (probs[0] is the right answer),
  enumerating only the count vectors that sum to k (fast enough for k in the hundreds).
- `mixture(k)` — the easy/hard mixture `ember sweep` studies (ALPHA easy rows at P_EASY, the rest at
  P_HARD with wrong-answer weights WRONG): non-monotone, best at k = 7.
- `mixture_rows(n, seed)` — `n` sim rows drawn from that same mixture, as eval `Row`s.
- `pairwise_top_accuracy`, `listwise_top_accuracy`, `best_of_n_accuracy`, `fuse_accuracy`,
  `critic_judge_accuracy` — the sim semantics of rank, score, fuse and critic (docs/sim.md).

A sim study's measured accuracy must agree with these within its sampling error.
"""

from __future__ import annotations

import math
from itertools import product

from ember_compiler.eval.dataset import Row
from ember_compiler.eval.simdata import sim_rows

ALPHA, P_EASY, P_HARD, WRONG = 0.6, 0.8, 0.3, [6, 1, 1]


def majority_accuracy(n: int, p: float, wrong: list[float]) -> float:
    """P(plurality vote is correct) with ties broken uniformly at random (first seen, exchangeable)."""
    probs = [p] + [(1 - p) * w / sum(wrong) for w in wrong]
    k = len(probs)
    total = 0.0
    for counts in product(range(n + 1), repeat=k):
        if sum(counts) != n:
            continue
        ways = math.factorial(n) / math.prod(math.factorial(c) for c in counts)
        pr = ways * math.prod(q**c for q, c in zip(probs, counts, strict=True))
        top = max(counts)
        if counts[0] == top:
            total += pr / sum(1 for c in counts if c == top)
    return total


def plurality_accuracy(k: int, probs: list[float]) -> float:
    """Exact P(a plurality vote over k draws is right), ties broken uniformly; probs[0] is the right answer.
    Same formula as `majority_accuracy`, enumerating only count vectors that sum to k."""
    total = 0.0

    def walk(i: int, left: int, counts: list[int]) -> None:
        nonlocal total
        if i == len(probs) - 1:
            c = [*counts, left]
            top = max(c)
            if c[0] == top:
                ways = math.factorial(k) / math.prod(math.factorial(x) for x in c)
                total += ways * math.prod(q**x for q, x in zip(probs, c, strict=True)) / c.count(top)
            return
        for x in range(left + 1):
            walk(i + 1, left - x, [*counts, x])

    walk(0, k, [])
    return total


def mixture(k: int, alpha=ALPHA, p_easy=P_EASY, p_hard=P_HARD, wrong=WRONG) -> float:
    """Exact plurality-vote accuracy over k draws on the easy/hard mixture."""
    easy = [p_easy] + [(1 - p_easy) / 3] * 3
    hard = [p_hard] + [(1 - p_hard) * w / sum(wrong) for w in wrong]
    return alpha * plurality_accuracy(k, easy) + (1 - alpha) * plurality_accuracy(k, hard)


def mixture_rows(n: int, seed: int = 1) -> list[Row]:
    """`n` sim rows from the mixture `mixture` describes."""
    data = sim_rows(rows=n, alpha=ALPHA, p_easy=P_EASY, p_hard=P_HARD, choices=list("ABCD"), wrong_weights=WRONG,
                    seed=seed)
    return [Row(i, d["id"], d) for i, d in enumerate(data)]


# -- issue 15's ops: their sim semantics (docs/sim.md), computed exactly -------------------------------

def _vote_index(answers: tuple[int, ...]) -> int:
    """The plurality answer of a tuple, ties to the first seen (as `answers.vote`)."""
    counts: dict[int, int] = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    best, top = answers[0], -1
    for a, c in counts.items():
        if c > top:
            best, top = a, c
    return best


def debate_vote_accuracy(agents: int, rounds: int, p: float, w: float, wrong: int = 3) -> float:
    """P(a sim debate's final vote is right): round 1 each agent is right with `p` (else one of `wrong`
    answers, uniformly); later, each adopts the last round's plurality with `w` (judge_accuracy), else
    draws afresh. Answer 0 is the right one; enumerated over every answer vector of every round."""
    probs = [p] + [(1 - p) / wrong] * wrong
    dist: dict[tuple[int, ...], float] = {(): 1.0}
    for _ in range(agents):
        dist = {s + (a,): q * probs[a] for s, q in dist.items() for a in range(wrong + 1)}
    for _ in range(rounds - 1):
        nxt: dict[tuple[int, ...], float] = {}
        for state, q in dist.items():
            majority = _vote_index(state)
            each = [(1 - w) * probs[a] + (w if a == majority else 0.0) for a in range(wrong + 1)]
            for combo in product(range(wrong + 1), repeat=agents):
                pr = q * math.prod(each[a] for a in combo)
                if pr:
                    nxt[combo] = nxt.get(combo, 0.0) + pr
        dist = nxt
    return sum(q for state, q in dist.items() if _vote_index(state) == 0)


def self_refine_accuracy(rounds: int, p: float, tpr: float, fpr: float) -> tuple[float, float]:
    """(P(right), expected calls) of a sim self-refine: each draft right with `p`; the feedback says done
    with `tpr` on a right draft and `fpr` on a wrong one; the last draft is the answer either way."""
    s = p * (1 - tpr) + (1 - p) * (1 - fpr)  # P(not done) after a round
    right = sum(s ** (k - 1) * p * tpr for k in range(1, rounds)) + s ** (rounds - 1) * p
    calls = 2 * sum(s ** (k - 1) for k in range(1, rounds + 1))
    return right, calls


def sequential_verify(n: int, p: float, tpr: float, fpr: float) -> tuple[float, float]:
    """(P(right), expected verifier calls) of best-of-n verified in order up to the first accepted
    (`then: first`, `fallback: first`): q = p·tpr + (1−p)·fpr accepts a candidate."""
    q = p * tpr + (1 - p) * fpr
    right = p * tpr * (1 - (1 - q) ** n) / q + p * (1 - tpr) * (1 - q) ** (n - 1)
    return right, (1 - (1 - q) ** n) / q


# -- the sim semantics of rank, score, fuse and critic (docs/sim.md), computed exactly ----------------
def pairwise_top_accuracy(correct: list[bool], q: float) -> float:
    """P(pairwise rank's first candidate is correct): every ordered pair compared once, a correct one
    preferred to a wrong one with probability q, two of a kind 1/2 each; s_i = wins − losses, ties to
    the earlier candidate. Exact, by enumerating the 2^(N(N−1)) outcomes."""
    n = len(correct)
    pairs = [(a, b) for a in range(n) for b in range(n) if a != b]
    total = 0.0
    for outcome in product((True, False), repeat=len(pairs)):  # True: the first shown wins
        pr, score = 1.0, [0] * n
        for (a, b), first in zip(pairs, outcome, strict=True):
            p_first = 0.5 if correct[a] == correct[b] else q if correct[a] else 1 - q
            pr *= p_first if first else 1 - p_first
            win, lose = (a, b) if first else (b, a)
            score[win] += 1
            score[lose] -= 1
        top = max(range(n), key=lambda i: (score[i], -i))
        total += pr * correct[top]
    return total


def listwise_top_accuracy(correct: list[bool], q: float) -> float:
    """P(listwise rank's first candidate is correct): q with both kinds present, else 1 or 0."""
    if all(correct) or not any(correct):
        return float(all(correct))
    return q


def best_of_n_accuracy(right: int, wrong: int, q: float) -> float:
    """P(score's argmax is correct) with `right` correct and `wrong` wrong candidates: cα/(cα + w), α = q/(1−q)."""
    if right == 0:
        return 0.0
    if wrong == 0 or q >= 1:
        return 1.0
    alpha = q / (1 - q)
    return right * alpha / (right * alpha + wrong)


def fuse_accuracy(sees_right: bool, q: float, p: float) -> float:
    """P(a fuser is correct): judge_accuracy q when a correct candidate is among those it sees, else accuracy p."""
    return q if sees_right else p


def critic_judge_accuracy(answers: list[str], truth: str, tpr: float, fpr: float, q: float) -> float:
    """P(a judge given a critic's critiques is correct): each critique calls a correct candidate sound with
    probability tpr and a wrong one with fpr; the judge sees the sound ones (all when none is) and picks the
    truth with probability q when it is there beside other answers (always when it is the only one)."""
    total = 0.0
    for flags in product((True, False), repeat=len(answers)):
        pr = math.prod((tpr if a == truth else fpr) if f else 1 - (tpr if a == truth else fpr)
                       for a, f in zip(answers, flags, strict=True))
        seen = {a for a, f in zip(answers, flags, strict=True) if f} or set(answers)
        total += pr * (0.0 if truth not in seen else 1.0 if len(seen) == 1 else q)
    return total
