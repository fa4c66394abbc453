"""Uncertainty of a score and of a difference between two setups scored on the same items.

- ``mean_stderr``: the sample standard deviation over √n, as lm-evaluation-harness reports beside every mean
  (``lm_eval/api/metrics.py``: ``sample_stddev``, ``mean_stderr``).
- ``bootstrap_stderr``: the standard deviation of a statistic over resamples of the items (Efron & Tibshirani 1993,
  "An Introduction to the Bootstrap", ch. 6), for ROUGE and perplexities, which have no closed form.
- ``mcnemar``: McNemar's test (1947, "Note on the sampling error of the difference between correlated proportions")
  on the discordant items of two accuracy runs: exact two-sided binomial when they are few (< 25), else the
  chi-square with continuity correction (Edwards 1948); as Dietterich (1998, "Approximate Statistical Tests for
  Comparing Supervised Classification Learning Algorithms", §3.1) recommends for two classifiers on one test set.
- ``paired_bootstrap``: the paired bootstrap of Koehn (2004, "Statistical Significance Tests for Machine Translation
  Evaluation", §4) on per-item score differences (ROUGE, log-likelihood).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

ALPHA = 0.05
BOOTSTRAP_ITERS = 2000
EXACT_BELOW = 25


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("No values: a mean needs at least one item.")
    return sum(values) / len(values)


def sample_stddev(values: Sequence[float]) -> float:
    mu = mean(values)
    return math.sqrt(sum((x - mu) ** 2 for x in values) / (len(values) - 1))


def mean_stderr(values: Sequence[float]) -> float:
    """lm-eval's standard error of a mean: sample std (n - 1) / √n; nan for one item."""
    if len(values) < 2:
        return float("nan")
    return sample_stddev(values) / math.sqrt(len(values))


def bootstrap_stderr(statistic: Callable[[Sequence], float], values: Sequence, iters: int = BOOTSTRAP_ITERS,
                     seed: int = 1234) -> float:
    """Standard deviation of ``statistic`` over ``iters`` resamples (with replacement) of ``values``."""
    if len(values) < 2:
        return float("nan")
    rnd = random.Random(seed)
    n = len(values)
    draws = [statistic([values[rnd.randrange(n)] for _ in range(n)]) for _ in range(iters)]
    return sample_stddev(draws)


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of setup A and setup B on the same items."""

    test: str  # "McNemar exact" | "McNemar chi-square" | "paired bootstrap"
    items: int
    difference: float  # B minus A, in the metric's unit (a fraction for accuracy)
    p_value: float
    a_only: int = 0  # accuracy: items only A got right
    b_only: int = 0

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    @property
    def sentence(self) -> str:
        if self.items == 0:
            return "No items in common: nothing to compare."
        what = (f"{self.a_only} items right only in A, {self.b_only} only in B" if self.test.startswith("McNemar")
                else f"mean difference {self.difference:+.4g}")
        if self.significant:
            return (f"The difference is significant at 95 % ({self.test}, p = {self.p_value:.3g}, {what}, "
                    f"{self.items:,} items).")
        return (f"No significant difference at 95 % ({self.test}, p = {self.p_value:.3g}, {what}, "
                f"{self.items:,} items).")

    def to_dict(self) -> dict:
        return {"test": self.test, "items": self.items, "difference": self.difference, "p_value": self.p_value,
                "a_only": self.a_only, "b_only": self.b_only, "significant": self.significant,
                "sentence": self.sentence}


def _binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p of k or fewer of n at p = 1/2 (doubled, capped at 1)."""
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> PairedTest:
    """McNemar's test on paired right/wrong answers."""
    if len(a) != len(b):
        raise ValueError(f"The two runs have {len(a)} and {len(b)} items: a paired test needs the same items.")
    a_only = sum(1 for x, y in zip(a, b) if x and not y)
    b_only = sum(1 for x, y in zip(a, b) if y and not x)
    n = a_only + b_only
    diff = (sum(map(bool, b)) - sum(map(bool, a))) / len(a) if a else 0.0
    if n == 0:
        return PairedTest("McNemar exact", len(a), diff, 1.0, 0, 0)
    if n < EXACT_BELOW:
        return PairedTest("McNemar exact", len(a), diff, _binomial_two_sided(a_only, n), a_only, b_only)
    chi2 = (abs(a_only - b_only) - 1) ** 2 / n
    p = math.erfc(math.sqrt(chi2 / 2))  # chi-square with 1 degree of freedom
    return PairedTest("McNemar chi-square", len(a), diff, p, a_only, b_only)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], iters: int = BOOTSTRAP_ITERS,
                     seed: int = 1234) -> PairedTest:
    """Two-sided paired bootstrap on per-item differences b - a: the share of resampled mean differences on the
    other side of zero, doubled (Koehn 2004, §4)."""
    if len(a) != len(b):
        raise ValueError(f"The two runs have {len(a)} and {len(b)} items: a paired test needs the same items.")
    if not a:
        return PairedTest("paired bootstrap", 0, 0.0, 1.0)
    deltas = [y - x for x, y in zip(a, b)]
    observed = mean(deltas)
    if all(abs(d) < 1e-12 for d in deltas):
        return PairedTest("paired bootstrap", len(a), 0.0, 1.0)
    rnd = random.Random(seed)
    n = len(deltas)
    below = above = 0
    for _ in range(iters):
        m = sum(deltas[rnd.randrange(n)] for _ in range(n)) / n
        below += m <= 0
        above += m >= 0
    p = min(1.0, 2 * min(below, above) / iters)
    return PairedTest("paired bootstrap", len(a), observed, max(p, 1.0 / iters) if p == 0 else p)
