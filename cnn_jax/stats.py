"""Statistics for comparing configurations across seeds: mean ± std, a t-based 95%
confidence interval, Welch's t-test and Holm's correction for several comparisons.

Written out (scipy only supplies Student's t distribution) so the tests can check each
formula on numbers with known answers.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from scipy import stats as scipy_stats


@dataclasses.dataclass(frozen=True)
class Summary:
  """n values summarized; std, CI are NaN for n < 2 (no spread to estimate)."""
  n: int
  mean: float
  std: float  # Sample standard deviation (ddof=1).
  ci_low: float
  ci_high: float


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
  """Mean, sample std and the Student-t confidence interval of the mean."""
  n = len(values)
  if n == 0:
    raise ValueError('summarize needs at least one value')
  mean = math.fsum(values) / n
  if n < 2:
    return Summary(n, mean, math.nan, math.nan, math.nan)
  std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
  half = scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
  return Summary(n, mean, std, mean - half, mean + half)


@dataclasses.dataclass(frozen=True)
class WelchTest:
  """Welch's two-sided t-test of mean(a) == mean(b), unequal variances."""
  difference: float  # mean(a) - mean(b)
  t: float
  df: float
  p_value: float


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchTest:
  """Welch's t-test; p is NaN when either side has fewer than 2 values."""
  sa, sb = summarize(a), summarize(b)
  difference = sa.mean - sb.mean
  if sa.n < 2 or sb.n < 2:
    return WelchTest(difference, math.nan, math.nan, math.nan)
  va, vb = sa.std ** 2 / sa.n, sb.std ** 2 / sb.n
  if va + vb == 0:
    # No spread on either side: the means either are identical or certainly differ.
    return WelchTest(difference, 0.0 if difference == 0 else math.copysign(math.inf,
                     difference), math.inf, 1.0 if difference == 0 else 0.0)
  t = difference / math.sqrt(va + vb)
  df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1))
  return WelchTest(difference, t, df, float(2 * scipy_stats.t.sf(abs(t), df)))


def holm_adjust(p_values: Sequence[float]) -> list[float]:
  """Holm–Bonferroni adjusted p-values (same order; NaN stays NaN and is not counted).

  Comparing k configurations against one default at α = 0.05 each would find a
  "winner" by chance far more often than 5% of the time; Holm controls that.
  """
  finite = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
  adjusted = [math.nan] * len(p_values)
  running = 0.0
  for rank, (p, i) in enumerate(finite):
    running = max(running, min(1.0, (len(finite) - rank) * p))
    adjusted[i] = running
  return adjusted


def verdict(test: WelchTest, adjusted_p: float, *, alpha: float = 0.05,
            unit_scale: float = 100.0, unit: str = ' pp') -> str:
  """The comparison in words, e.g. 'worse by 0.21 pp (p = 0.003)'."""
  if math.isnan(adjusted_p):
    return 'not tested (needs ≥ 2 seeds on both sides)'
  size = f'{abs(test.difference) * unit_scale:.2f}{unit}'
  if adjusted_p < alpha:
    direction = 'better' if test.difference > 0 else 'worse'
    return f'{direction} by {size} ({p_text(adjusted_p)})'
  sign = '+' if test.difference >= 0 else '−'
  return f'no significant difference ({sign}{size}, {p_text(adjusted_p)})'


def p_text(p: float) -> str:
  """'p = 0.004', 'p < 0.001' or 'p n/a'."""
  if math.isnan(p):
    return 'p n/a'
  return 'p < 0.001' if p < 0.001 else f'p = {p:.3f}'
