"""Statistics for comparing configurations across seeds: mean ± std, a t-based 95%
confidence interval, Holm's correction for several comparisons, and paired
comparisons (paired t, sign-flip permutation, TOST, power). Distributions and the test come from scipy.stats,
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


def holm_text(p: float, alpha: float) -> str:
  """'Holm p = 0.004 < 0.05'; a 4th digit where 3 would round onto α."""
  if p < 0.001:
    return 'Holm p < 0.001'
  digits = 4 if round(p, 3) == alpha else 3
  return f'Holm p = {p:.{digits}f} {"<" if p < alpha else "≥"} {alpha:g}'


# --- Paired comparisons: the same seeds on both sides. ---

POWER = 0.8  # Of every minimum detectable effect and seeds-needed figure.
EQUIVALENCE_MARGIN = 0.001  # ±0.10 pp: the TOST's margin where a study sets none.


@dataclasses.dataclass(frozen=True)
class Paired:
  """a − b over the seeds both have, paired by seed (seed i of a against seed i of b:
  the same example order and, where the shapes agree, the same initial weights)."""
  n: int
  difference: float  # Mean of the per-seed differences.
  sd: float  # Their sample standard deviation.
  ci_low: float  # 95% t-interval of the mean difference.
  ci_high: float
  t: float
  p_value: float  # Paired t-test, two-sided.
  p_permutation: float  # Exact sign-flip permutation test, two-sided.
  d_z: float  # Cohen's d_z: difference / sd.
  margin: float  # The equivalence margin of the TOST.
  p_equivalence: float  # Two one-sided t-tests against ±margin: the larger p.


def paired(a: Sequence[float], b: Sequence[float], margin: float) -> Paired:
  """The paired comparison of `a` and `b` (equal length, in seed order); NaN figures
  where fewer than 2 pairs. scipy.stats: ttest_rel, ttest_1samp, permutation_test."""
  from scipy import stats as scipy_stats  # pylint: disable=g-import-not-at-top
  d = np.asarray(a, float) - np.asarray(b, float)
  n, mean = len(d), float(np.mean(d)) if len(d) else math.nan
  if n < 2:
    return Paired(n, mean, *[math.nan] * 7, margin, math.nan)
  sd = float(np.std(d, ddof=1))
  if sd == 0:  # Identical differences: certain, whatever the test.
    same = mean == 0
    return Paired(n, mean, 0.0, mean, mean, 0.0 if same else math.copysign(math.inf, mean),
                  1.0 if same else 0.0, 1.0 if same else 0.0,
                  0.0 if same else math.copysign(math.inf, mean), margin,
                  0.0 if abs(mean) < margin else 1.0)
  test = scipy_stats.ttest_rel(a, b)
  interval = test.confidence_interval(0.95)
  flips = scipy_stats.permutation_test((d,), np.mean, permutation_type='samples',
                                       n_resamples=np.inf, alternative='two-sided')
  above = scipy_stats.ttest_1samp(d, -margin, alternative='greater').pvalue
  below = scipy_stats.ttest_1samp(d, margin, alternative='less').pvalue
  return Paired(n, mean, sd, float(interval.low), float(interval.high),
                float(test.statistic), float(test.pvalue), float(flips.pvalue), mean / sd,
                margin, float(max(above, below)))


def power(n: int, effect: float, sd: float, alpha: float) -> float:
  """Power of the two-sided paired t-test at level `alpha` with n pairs when the true
  mean difference is `effect` (noncentral t)."""
  from scipy import stats as scipy_stats  # pylint: disable=g-import-not-at-top
  df, shift = n - 1, abs(effect) * math.sqrt(n) / sd
  critical = scipy_stats.t.ppf(1 - alpha / 2, df)
  value = float(scipy_stats.nct.sf(critical, df, shift)
                + scipy_stats.nct.cdf(-critical, df, shift))
  # scipy's noncentral t is NaN far in its tail, where the answer is plain.
  return value if not math.isnan(value) else float(shift > critical)


def equivalence_power(n: int, effect: float, sd: float, margin: float,
                      alpha: float) -> float:
  """Approximate power of the TOST (two one-sided paired t-tests at `alpha` against
  ±margin) when the true mean difference is `effect`."""
  from scipy import stats as scipy_stats  # pylint: disable=g-import-not-at-top
  df, scale = n - 1, math.sqrt(n) / sd
  critical = scipy_stats.t.ppf(1 - alpha, df)
  # Shifted central t (Schuirmann's approximation): scipy's noncentral t far in its
  # tail gave different answers across scipy releases.
  t = scipy_stats.t
  value = float(t.cdf((margin - abs(effect)) * scale - critical, df)
                + t.cdf((margin + abs(effect)) * scale - critical, df) - 1)
  return 0.0 if math.isnan(value) else max(0.0, value)


def sd_upper_bound(sd: float, n: int, confidence: float = 0.95) -> float:
  """The one-sided upper `confidence` bound of a standard deviation estimated from n
  values (chi-square): what a power statement assumes, so that an SD that happened to
  come out small does not promise power the design lacks."""
  if n < 2 or math.isnan(sd):
    return math.nan
  from scipy import stats as scipy_stats  # pylint: disable=g-import-not-at-top
  return sd * math.sqrt((n - 1) / scipy_stats.chi2.ppf(1 - confidence, n - 1))


def min_detectable_effect(n: int, sd: float, alpha: float) -> float:
  """The smallest true difference the paired t-test at `alpha` detects with POWER."""
  if n < 2 or not sd > 0:
    return math.nan
  from scipy import optimize  # pylint: disable=g-import-not-at-top
  return float(optimize.brentq(lambda e: power(n, e, sd, alpha) - POWER, 1e-12 * sd,
                               1e3 * sd))


def seeds_needed(effect: float, sd: float, alpha: float, margin: float | None = None,
                 most: int = 1000) -> int | None:
  """The fewest seeds (pairs) with POWER to show a difference of `effect` at `alpha`,
  or, given `margin`, equivalence within it (TOST); None beyond `most`."""
  if not sd > 0:
    return None
  if margin is None:
    ok = lambda n: power(n, effect, sd, alpha) >= POWER
  elif abs(effect) < margin:
    ok = lambda n: equivalence_power(n, effect, sd, margin, alpha) >= POWER
  else:
    return None
  if not ok(most):
    return None
  low, high = 2, most  # Power grows with n: bisect.
  while low < high:
    middle = (low + high) // 2
    low, high = (low, middle) if ok(middle) else (middle + 1, high)
  return low


def paired_verdict(c: Paired, holm_p: float, holm_p_equivalence: float, k: int,
                   alpha: float = ALPHA, unit_scale: float = 100.0, unit: str = ' pp'
                   ) -> tuple[str, str]:
  """('better' | 'worse' | 'equivalent' | 'inconclusive' | 'not tested', the sentence):
  better or worse where the Holm-adjusted paired t p < alpha, equivalent within
  ±margin where the Holm-adjusted TOST p < alpha, else inconclusive, with the seeds
  that would decide it (POWER, at alpha / k: the first of Holm's k steps)."""
  if c.n < 2 or math.isnan(holm_p):
    return 'not tested', 'not tested (needs ≥ 2 seeds on both sides)'
  pp = lambda x: f'{x * unit_scale:.2f}'.replace('-', '−')
  effect = (f'{"+" if c.difference >= 0 else "−"}{pp(abs(c.difference))}{unit} '
            f'[{pp(c.ci_low)}, {pp(c.ci_high)}], d_z {c.d_z:.1f}'.replace('-', '−'))
  if holm_p < alpha:
    kind = 'better' if c.difference > 0 else 'worse'
    return kind, f'{kind}: {effect} (paired t, {holm_text(holm_p, alpha)})'
  margin = f'±{pp(c.margin)}{unit}'
  if holm_p_equivalence < alpha:
    return 'equivalent', (f'equivalent within {margin}: {effect} (TOST, '
                          f'{holm_text(holm_p_equivalence, alpha)})')
  needed = seeds_needed(c.difference, sd_upper_bound(c.sd, c.n), alpha / k,
                        None if abs(c.difference) >= c.margin else c.margin)
  decide = (f'~{needed} seeds would decide it at the observed difference and the '
            "SD's upper 95% bound" if needed else
            'more than 1000 seeds would be needed to decide it')
  return 'inconclusive', (f'inconclusive: {effect} (paired t {holm_text(holm_p, alpha)}; '
                          f'TOST {margin} {holm_text(holm_p_equivalence, alpha)}); '
                          f'{decide}')
