"""Statistics for comparing configurations across seeds: mean ± std, a t-based 95%
confidence interval, Welch's t-test with the difference's interval, and Holm's
correction for several comparisons. Distributions and the test come from scipy.stats,
imported at first use (a second that a command's --help need not wait for).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

ALPHA = 0.05  # Significance level of every verdict.


@dataclasses.dataclass(frozen=True)
class Summary:
  """n values summarized; std, CI are NaN for n < 2 (no spread to estimate)."""
  n: int
  mean: float
  std: float  # Sample standard deviation (ddof=1).
  ci_low: float
  ci_high: float
  clipped: bool = False  # The t-interval reached past `bounds` and was cut there.


def summarize(values: Sequence[float], confidence: float = 0.95,
              bounds: tuple[float, float] | None = None) -> Summary:
  """Mean, sample std and the Student-t confidence interval of the mean, cut to
  `bounds` (e.g. (0, 1) for an accuracy) where it reaches past them."""
  n = len(values)
  if n == 0:
    raise ValueError('summarize needs at least one value')
  mean = math.fsum(values) / n
  if n < 2:
    return Summary(n, mean, math.nan, math.nan, math.nan)
  std = float(np.std(values, ddof=1))
  if std == 0:
    low = high = mean
  else:
    from scipy import stats as scipy_stats  # pylint: disable=g-import-not-at-top
    low, high = scipy_stats.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
  clipped = False
  if bounds is not None:
    clipped = bool(low < bounds[0] or high > bounds[1])
    low, high = max(low, bounds[0]), min(high, bounds[1])
  return Summary(n, mean, std, float(low), float(high), clipped)


@dataclasses.dataclass(frozen=True)
class WelchTest:
  """Welch's two-sided t-test of mean(a) == mean(b), unequal variances."""
  difference: float  # mean(a) - mean(b)
  t: float
  df: float
  p_value: float
  ci_low: float = math.nan  # 95% confidence interval of the difference.
  ci_high: float = math.nan


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchTest:
  """Welch's t-test (scipy.stats.ttest_ind, equal_var=False) and the 95% interval of
  the difference; p is NaN when either side has fewer than 2 values."""
  difference = math.fsum(a) / len(a) - math.fsum(b) / len(b)
  if len(a) < 2 or len(b) < 2:
    return WelchTest(difference, math.nan, math.nan, math.nan)
  if np.var(a) == 0 and np.var(b) == 0:
    # No spread on either side: the means either are identical or certainly differ.
    t = 0.0 if difference == 0 else math.copysign(math.inf, difference)
    return WelchTest(difference, t, math.inf, 1.0 if difference == 0 else 0.0,
                     difference, difference)
  from scipy import stats as scipy_stats  # pylint: disable=g-import-not-at-top
  result = scipy_stats.ttest_ind(a, b, equal_var=False)
  interval = result.confidence_interval(0.95)
  return WelchTest(difference, float(result.statistic), float(result.df),
                   float(result.pvalue), float(interval.low), float(interval.high))


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


def verdict(test: WelchTest, adjusted_p: float, *, alpha: float = ALPHA,
            unit_scale: float = 100.0, unit: str = ' pp') -> str:
  """The comparison in words, decided by the Holm-adjusted p, e.g.
  'worse by 0.21 pp [0.10, 0.32] (Holm p = 0.003 < 0.05)'."""
  if math.isnan(adjusted_p):
    return 'not tested (needs ≥ 2 seeds on both sides)'
  def pp(x: float) -> str:
    return f'{x * unit_scale:.2f}'
  interval = ('' if math.isnan(test.ci_low) else
              f' [{pp(test.ci_low)}, {pp(test.ci_high)}]'.replace('-', '−'))
  if adjusted_p < alpha:
    direction = 'better' if test.difference > 0 else 'worse'
    return (f'{direction} by {pp(abs(test.difference))}{unit}{interval} '
            f'({_holm_text(adjusted_p, alpha)})')
  sign = '+' if test.difference >= 0 else '−'
  return (f'no significant difference ({sign}{pp(abs(test.difference))}{unit}{interval}, '
          f'{_holm_text(adjusted_p, alpha)})')


def _holm_text(p: float, alpha: float) -> str:
  """'Holm p = 0.004 < 0.05'; a 4th digit where 3 would round onto α."""
  if p < 0.001:
    return 'Holm p < 0.001'
  digits = 4 if round(p, 3) == alpha else 3
  return f'Holm p = {p:.{digits}f} {"<" if p < alpha else "≥"} {alpha:g}'


def p_text(p: float) -> str:
  """'p = 0.004', 'p < 0.001' or 'p n/a'."""
  if math.isnan(p):
    return 'p n/a'
  return 'p < 0.001' if p < 0.001 else f'p = {p:.3f}'
