"""The verdict of a declared claim, at each of its boundaries, from per-seed contrasts;
and a claim's contrast over shared learning rates (strata), pooled per seed."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cnn_jax import claims


def _claim(expect, effect=0.005, metric='test_accuracy'):
  return claims.Claim.parse(dict(
      claim='c', sweep='s', contrast=[(1, {'padding': 1}), (-1, {'padding': 0})],
      metric=metric, expect=expect, effect=effect, family='f'))


class _Run:
  def __init__(self, padding, seed, accuracy, **strata):
    self.overrides, self.seed, self.completed = {'padding': padding, **strata}, seed, True
    self.history = self.best = {'epoch': 1, 'test_accuracy': accuracy}


def _tested(expect, differences, effect=0.005):
  runs = [_Run(1, s, 0.9 + d) for s, d in enumerate(differences)] + [
      _Run(0, s, 0.9) for s in range(len(differences))]
  result, = claims.evaluate([_claim(expect, effect)], {'s': runs})
  return result


def _with_p(p, n=5, sd=0.001):
  """n differences whose paired t-test has two-sided p = `p` exactly (scipy's t)."""
  z = np.arange(n) - (n - 1) / 2
  z /= np.std(z, ddof=1)
  mean = scipy_stats.t.isf(p / 2, n - 1) * sd / math.sqrt(n)
  return list(mean + sd * z)


@pytest.mark.parametrize('expect, differences, kind, words', [
    ('higher', [0.010, 0.012, 0.011, 0.009, 0.010], 'holds', 'holds: +1.04 pp'),
    ('lower', [0.010, 0.012, 0.011, 0.009, 0.010], 'the opposite', 'the opposite: +1.04'),
    # Real, but a tenth of the smallest effect of interest: it improves, by less.
    ('higher', [0.0004, 0.0005, 0.0006, 0.0005, 0.0005], 'holds, smaller',
     'higher, by less than 0.5 pp: +0.05 pp'),
    ('lower', [-0.0004, -0.0005, -0.0006, -0.0005, -0.0005], 'holds, smaller',
     'lower, by less than 0.5 pp: −0.05 pp'),
    # No effect as large as the claimed one shown: no refutation of a smaller one.
    ('higher', [0.0002, -0.0003, 0.0001, -0.0002, 0.0001], 'smaller, if any',
     'smaller than 0.5 pp, if any: −0.00 pp'),
    ('equivalent', [0.0002, -0.0003, 0.0001, -0.0002, 0.0001], 'holds', 'within ±0.5 pp'),
    ('equivalent', [0.010, 0.012, 0.011, 0.009, 0.010], 'does not hold', 'they differ'),
    ('higher', [0.004, -0.001, 0.009, 0.0, 0.006], 'inconclusive', 'power to detect'),
])
def test_each_verdict(expect, differences, kind, words):
  """Guards against a verdict that names the wrong outcome for a clear case."""
  result = _tested(expect, differences)
  assert result.kind == kind and words in result.verdict, result.verdict
  assert result.seeds == [0, 1, 2, 3, 4] and result.family_size == 1
  # The estimate and its CI lead the sentence.
  assert result.verdict.split(': ', 1)[1].startswith(('+', '−')), result.verdict


def test_an_equivalence_claim_on_a_small_but_significant_difference_never_reads_as_larger():
  """Guards against 'they differ by more than ±effect' for a difference inside ±effect:
  +0.30 pp, clearly nonzero, but its CI reaching past +0.5 pp, decides neither way."""
  differences = [0.001, 0.005, 0.003, 0.0005, 0.0055]  # Mean 0.3 pp, CI ≈ [0.03, 0.57].
  d = np.asarray(differences)
  half = scipy_stats.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
  assert d.mean() - half > 0 and d.mean() + half > 0.005  # The case, by hand.
  result = _tested('equivalent', differences)
  assert result.kind == 'inconclusive' and 'differ' not in result.verdict, result.verdict
  # Inside the margin and tight: equivalence holds even though the difference is real.
  result = _tested('equivalent', [0.0029, 0.003, 0.0031, 0.003, 0.003])
  assert result.kind == 'holds' and 'within ±0.5 pp' in result.verdict, result.verdict


@pytest.mark.parametrize('p, flagged', [(0.045, True), (0.059, False), (0.035, False),
                                         (0.041, True)])
def test_a_verdict_at_the_edge_of_alpha_is_flagged_borderline(p, flagged):
  """Guards against a verdict one image from flipping that reads as firm: a deciding
  Holm p within 0.01 of α is flagged (a p of 0.059 is not significant, not flagged)."""
  result = _tested('higher', _with_p(p), effect=0.002)
  assert math.isclose(result.holm_p, p, rel_tol=1e-9)
  assert ('borderline' in result.verdict) == flagged, result.verdict
  assert result.kind == ('holds' if p < 0.05 else 'inconclusive')


def test_an_inconclusive_claims_power_uses_the_sds_upper_bound():
  """Guards against power read off the point SD, which promises more than the design has."""
  differences = [0.004, -0.001, 0.009, 0.0, 0.006]
  result = _tested('higher', differences)
  sd = np.std(differences, ddof=1)
  upper = sd * math.sqrt(4 / scipy_stats.chi2.ppf(0.05, 4))
  assert f'{100 * upper:.2f} pp' in result.verdict, result.verdict
  shift = 0.005 * math.sqrt(5) / upper  # Noncentral t power at that SD, by hand.
  crit = scipy_stats.t.ppf(0.975, 4)
  power = scipy_stats.nct.sf(crit, 4, shift) + scipy_stats.nct.cdf(-crit, 4, shift)
  assert f'at this n: {power:.0%}' in result.verdict, result.verdict


def test_a_claim_pairs_within_each_learning_rate_and_averages_over_them_per_seed():
  """Guards against pairing arms trained at different rates, or pooling rates as
  independent seeds: the contrast is taken within each rate, then averaged per seed."""
  gains = {0.003: [0.001, 0.002, 0.003], 0.01: [0.005, 0.004, 0.009]}
  runs = []
  for rate, per_seed in gains.items():
    for seed, gain in enumerate(per_seed):
      base = 0.95 + 0.01 * seed + (0.02 if rate == 0.01 else 0.0)
      runs += [_Run(1, seed, base + gain, learning_rate=rate),
               _Run(0, seed, base, learning_rate=rate)]
  runs.append(_Run(1, 3, 0.99, learning_rate=0.003))  # Seed 3 lacks 1e-2: left out.
  result, = claims.evaluate([_claim('higher')], {'s': runs},
                            strata={'s': ['learning_rate']})
  assert result.seeds == [0, 1, 2]
  assert result.values == pytest.approx([0.003, 0.003, 0.006])
  assert sorted(result.by_stratum) == ['learning_rate=0.003', 'learning_rate=0.01']
  assert result.by_stratum['learning_rate=0.01'].values == pytest.approx(gains[0.01])
  assert result.test.n == 3 and 'n = 3 × 2 strata' in result.verdict
  rows = claims.strata_table([result])
  assert rows[0] == '| claim | pooled | learning_rate=0.003 | learning_rate=0.01 |'
  # Without the strata named, runs of two rates are two configurations: none pairs.
  unnamed, = claims.evaluate([_claim('higher')], {'s': runs})
  assert unnamed.kind == 'not run' or unnamed.test is None


def test_a_claim_on_a_configuration_never_run_says_so():
  result, = claims.evaluate([_claim('higher')], {'s': [_Run(1, 0, 0.9)]})
  assert result.kind == 'not run' and 'no finished run of' in result.verdict
  result, = claims.evaluate([_claim('higher')], {})
  assert result.verdict == 'not run'
