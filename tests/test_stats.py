"""The statistics behind the sweep reports, on numbers with known answers."""

import math

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


def test_welch_by_hand():
  # Means 2 and 5, variances 1 and 1: t = -3 / sqrt(2/3) = -3.674235, df = 4.
  test = stats.welch_t_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
  assert test.difference == -3.0
  assert test.t == pytest.approx(-3.674235, abs=1e-6)
  assert test.df == pytest.approx(4.0)
  assert test.p_value == pytest.approx(0.021312, abs=1e-5)


@pytest.mark.parametrize('a, b', [
    ([0.991, 0.992, 0.990, 0.993], [0.989, 0.990, 0.9885]),
    ([0.5, 0.7, 0.9, 0.95, 0.3], [0.6, 0.61]),
])
def test_welch_matches_scipy_with_unequal_variances(a, b):
  ours = stats.welch_t_test(a, b)
  reference = scipy_stats.ttest_ind(a, b, equal_var=False)
  assert ours.t == pytest.approx(reference.statistic)
  assert ours.p_value == pytest.approx(reference.pvalue)


def test_welch_degenerate_cases():
  assert stats.welch_t_test([0.99, 0.99], [0.99, 0.99]).p_value == 1.0
  assert stats.welch_t_test([0.99, 0.99], [0.98, 0.98]).p_value == 0.0
  assert math.isnan(stats.welch_t_test([0.99], [0.98, 0.97]).p_value)


def test_holm_adjustment():
  # Sorted 0.01, 0.03, 0.04 → ×3, ×2, ×1 = 0.03, 0.06, 0.04 → monotone: 0.03, 0.06, 0.06.
  assert stats.holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
  assert stats.holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])
  adjusted = stats.holm_adjust([math.nan, 0.02])
  assert math.isnan(adjusted[0]) and adjusted[1] == pytest.approx(0.02)


def test_verdict_in_words_is_decided_by_the_holm_p():
  better = stats.WelchTest(0.0021, 5.0, 4.0, 0.001, 0.0010, 0.0032)
  assert stats.verdict(better, 0.004) == 'better by 0.21 pp [0.10, 0.32] (Holm p = 0.004 < 0.05)'
  worse = stats.WelchTest(-0.0150, -9.0, 4.0, 0.0001, -0.02, -0.01)
  assert stats.verdict(worse, 0.0002) == 'worse by 1.50 pp [−2.00, −1.00] (Holm p < 0.001)'
  assert stats.verdict(better, 0.2) == ('no significant difference (+0.21 pp [0.10, 0.32], '
                                        'Holm p = 0.200 ≥ 0.05)')
  # p = 0.050 at α = 0.05 is not "better"; a p just under α gets a 4th digit.
  assert stats.verdict(better, 0.05).startswith('no significant difference')
  assert stats.verdict(better, 0.04996).endswith('(Holm p = 0.0500 < 0.05)')
  assert stats.verdict(better, math.nan).startswith('not tested')


def test_welch_difference_interval_is_scipys():
  a, b = [0.991, 0.992, 0.990, 0.993], [0.989, 0.990, 0.9885]
  test = stats.welch_t_test(a, b)
  interval = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
  assert (test.ci_low, test.ci_high) == pytest.approx((interval.low, interval.high))
  assert test.ci_low < test.difference < test.ci_high
