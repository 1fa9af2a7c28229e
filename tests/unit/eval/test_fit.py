"""The scaling-law fit (Chen et al. 2024): from sweep points at n ≤ 9 only, it predicts the best n of a
sim mixture within one step and the accuracy at n = 51 within 0.03."""

from __future__ import annotations

import asyncio
import itertools
import math
from pathlib import Path

import pytest

from ember_compiler.errors import UsageError
from ember_compiler.eval.fit import fit_law, fit_scaling, mixture_memberships, subset_vote_accuracy
from ember_compiler.eval.sweep import sweep_async
from ember_compiler.testing.analytic import mixture, mixture_rows, plurality_accuracy

SPECS = Path(__file__).resolve().parents[3] / "specs"


def test_fit_on_small_n_predicts_the_best_n_and_large_n():
    sweep = asyncio.run(sweep_async(SPECS / "sim" / "self-consistency.yaml", mixture_rows(8000, seed=3),
                                    ["samples.n=1,3,5,7,9"], seed=4, runs_dir=None))
    fit = sweep.fit()
    odd = list(range(1, 52, 2))
    true_best = max(odd, key=mixture)
    assert true_best == 7
    assert abs(fit.best_k - true_best) <= 2, fit.best_k  # one step of the odd-n grid
    assert abs(fit.predict(51) - mixture(51)) < 0.03, (fit.predict(51), mixture(51))
    assert abs(fit.best_accuracy - mixture(true_best)) < 0.02
    assert abs(fit.alpha - 0.6) < 0.03  # soft memberships recover the share of easy queries
    (easy, hard) = fit.laws
    assert easy.up and not hard.up
    assert fit.to_json()["best_calls"] == fit.best_k


def test_law_fits_and_extrapolates_an_exact_curve():
    easy = [0.8] + [0.2 / 3] * 3
    ks = [1, 3, 5, 7, 9]
    law = fit_law(ks, [plurality_accuracy(k, easy) for k in ks], [1e6] * 5, up=True)
    assert law.up and law.c[0] >= 0
    assert abs(law(25) - plurality_accuracy(25, easy)) < 1e-3
    hard = [0.3, 0.525, 0.0875, 0.0875]
    down = fit_law(ks, [plurality_accuracy(k, hard) for k in ks], [1e6] * 5, up=False)
    assert abs(down(33) - plurality_accuracy(33, hard)) < 0.01


def test_subset_vote_accuracy_is_the_average_over_subsets():
    samples = ["R"] * 4 + ["W1"] * 3 + ["W2"] * 2
    for k in (1, 2, 3, 5, 9):
        outcomes = []
        for sub in itertools.combinations(samples, k):
            counts = {a: sub.count(a) for a in set(sub)}
            top = max(counts.values())
            outcomes.append(counts.get("R", 0) == top and 1 / sum(v == top for v in counts.values()) or 0.0)
        assert subset_vote_accuracy(4, (3, 2), k) == pytest.approx(sum(outcomes) / len(outcomes))
    assert subset_vote_accuracy(4, (3, 2), 10) is None


def test_mixture_memberships_separate_two_rates():
    import random

    rng = random.Random(0)
    ps = [0.8 if i % 3 else 0.3 for i in range(3000)]
    xs = [sum(rng.random() < p for _ in range(9)) for p in ps]
    r, p1, p2 = mixture_memberships(xs, [9] * 3000)
    assert abs(p1 - 0.8) < 0.02 and abs(p2 - 0.3) < 0.02 and abs(sum(r) / 3000 - 2 / 3) < 0.03


def test_fit_needs_three_sizes():
    with pytest.raises(UsageError, match="at least 3"):
        fit_scaling([(1, {0: 1.0}), (3, {0: 1.0})], {0: (1, 3, 2)})
    assert math.isfinite(mixture(1))
