"""The statistics behind the sweep reports, on numbers with known answers."""

import math

import numpy as np

import pytest
from scipy import stats as scipy_stats

from cnn_jax import stats


def test_summarize_mean_std_and_t_interval():
  s = stats.summarize([1.0, 2.0, 3.0])
  assert (s.n, s.mean, s.std) == (3, 2.0, 1.0)
  # t(0.975, df=2) = 4.302653; half-width = 4.302653 * 1 / sqrt(3) = 2.484138.
  assert s.ci_low == pytest.approx(2.0 - 2.484138, abs=1e-6)
  assert s.ci_high == pytest.approx(2.0 + 2.484138, abs=1e-6)


def test_summarize_one_value_has_no_spread():
  s = stats.summarize([0.99])
  assert s.mean == 0.99 and math.isnan(s.std) and math.isnan(s.ci_low)
  with pytest.raises(ValueError):
    stats.summarize([])


def test_holm_adjustment():
  # Sorted 0.01, 0.03, 0.04 → ×3, ×2, ×1 = 0.03, 0.06, 0.04 → monotone: 0.03, 0.06, 0.06.
  assert stats.holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
  assert stats.holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])
  adjusted = stats.holm_adjust([math.nan, 0.02])
  assert math.isnan(adjusted[0]) and adjusted[1] == pytest.approx(0.02)


def test_paired_comparison_against_hand_formulas_and_all_sign_flips():
  import itertools  # pylint: disable=g-import-not-at-top
  a = [0.9871, 0.9880, 0.9862, 0.9893, 0.9875]
  b = [0.9860, 0.9884, 0.9851, 0.9881, 0.9866]
  d = np.subtract(a, b)
  n, mean, sd = len(d), d.mean(), d.std(ddof=1)
  se = sd / np.sqrt(n)
  c = stats.paired(a, b, margin=0.001)
  assert c.n == 5 and c.difference == pytest.approx(mean) and c.sd == pytest.approx(sd)
  assert c.t == pytest.approx(mean / se)
  assert c.p_value == pytest.approx(2 * scipy_stats.t.sf(abs(mean / se), n - 1))
  half = scipy_stats.t.ppf(0.975, n - 1) * se
  assert (c.ci_low, c.ci_high) == pytest.approx((mean - half, mean + half))
  assert c.d_z == pytest.approx(mean / sd)
  # Every one of the 2^5 sign flips of the differences, as extreme or more.
  flips = [abs(np.mean(d * s)) >= abs(mean) - 1e-15
           for s in itertools.product((1, -1), repeat=n)]
  assert c.p_permutation == pytest.approx(np.mean(flips))
  # TOST: both one-sided tests against ±margin; the larger p.
  lower = scipy_stats.t.sf((mean + 0.001) / se, n - 1)
  upper = scipy_stats.t.cdf((mean - 0.001) / se, n - 1)
  assert c.p_equivalence == pytest.approx(max(lower, upper))


def test_paired_degenerate_cases():
  same = stats.paired([0.9, 0.8], [0.9, 0.8], margin=0.01)
  assert (same.p_value, same.p_equivalence, same.difference) == (1.0, 0.0, 0.0)
  shifted = stats.paired([0.75, 0.5], [0.5, 0.25], margin=0.01)  # Exact in binary.
  assert shifted.p_value == 0.0 and shifted.p_equivalence == 1.0
  one = stats.paired([0.9], [0.8], margin=0.01)
  assert one.n == 1 and math.isnan(one.p_value)
  assert stats.paired_verdict(one, math.nan, math.nan, 3)[0] == 'not tested'


def test_power_and_the_minimum_detectable_effect_against_simulation():
  rng = np.random.default_rng(0)
  n, sd, alpha = 5, 1.0, 0.05
  mde = stats.min_detectable_effect(n, sd, alpha)
  assert stats.power(n, mde, sd, alpha) == pytest.approx(stats.POWER, abs=1e-6)
  # Simulated paired experiments with that true difference: 80% reach p < alpha.
  d = rng.normal(mde, sd, size=(40_000, n))
  t = d.mean(1) / (d.std(1, ddof=1) / np.sqrt(n))
  rejected = np.mean(2 * scipy_stats.t.sf(np.abs(t), n - 1) < alpha)
  assert rejected == pytest.approx(stats.POWER, abs=0.01)
  # Many seeds: the normal approximation (z_{1-α/2} + z_power) σ / √n.
  z = scipy_stats.norm.ppf(1 - alpha / 2) + scipy_stats.norm.ppf(stats.POWER)
  assert stats.min_detectable_effect(400, sd, alpha) == pytest.approx(z / 20, rel=0.01)
  # Equivalence: simulated TOST experiments with a true difference inside the margin.
  n, effect, margin = 12, 0.2, 1.0
  d = rng.normal(effect, sd, size=(40_000, n))
  se = d.std(1, ddof=1) / np.sqrt(n)
  critical = scipy_stats.t.ppf(1 - alpha, n - 1)
  shown = np.mean(((d.mean(1) + margin) / se > critical)
                  & ((d.mean(1) - margin) / se < -critical))
  assert stats.equivalence_power(n, effect, sd, margin, alpha) == pytest.approx(shown,
                                                                               abs=0.02)


@pytest.mark.parametrize('effect, margin', [(0.5, None), (0.05, 0.3)])
def test_seeds_needed_is_the_fewest_with_the_power(effect, margin):
  sd, alpha = 0.2, 0.005
  n = stats.seeds_needed(effect, sd, alpha, margin)
  if margin is None:
    reach = lambda k: stats.power(k, effect, sd, alpha)
  else:
    reach = lambda k: stats.equivalence_power(k, effect, sd, margin, alpha)
  assert reach(n) >= stats.POWER > reach(n - 1)
  assert stats.seeds_needed(0.4, sd, alpha, margin=0.3) is None  # Outside the margin.


def test_paired_verdicts_are_decided_by_the_holm_adjusted_p_values():
  c = stats.paired([0.99, 0.991, 0.992], [0.98, 0.9805, 0.983], margin=0.001)
  assert stats.paired_verdict(c, 0.01, 0.9, 4)[0] == 'better'
  assert stats.paired_verdict(stats.paired([0.98, 0.9805, 0.983], [0.99, 0.991, 0.992],
                                           margin=0.001), 0.01, 0.9, 4)[0] == 'worse'
  kind, text = stats.paired_verdict(c, 0.2, 0.01, 4)
  assert kind == 'equivalent' and text.startswith('equivalent within ±0.10 pp')
  kind, text = stats.paired_verdict(c, 0.2, 0.3, 4)
  assert kind == 'inconclusive' and 'seeds would decide it' in text


def test_the_holm_p_is_written_with_a_fourth_digit_where_three_would_round_onto_alpha():
  c = stats.paired([0.99, 0.991, 0.992], [0.98, 0.9805, 0.983], margin=0.001)
  assert stats.paired_verdict(c, 0.04996, 0.9, 3)[1].endswith(
      '(paired t, Holm p = 0.0500 < 0.05)')
  assert stats.paired_verdict(c, 0.0002, 0.9, 3)[1].endswith('(paired t, Holm p < 0.001)')
