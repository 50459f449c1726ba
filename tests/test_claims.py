"""The verdict of a declared claim, at each of its boundaries, from per-seed contrasts."""

import pytest

from cnn_jax import claims


def _claim(expect, effect=0.005):
  return claims.Claim.parse(dict(
      claim='c', sweep='s', contrast=[(1, {'padding': 1}), (-1, {'padding': 0})],
      metric='test_accuracy', expect=expect, effect=effect, family='f'))


class _Run:
  def __init__(self, padding, seed, accuracy):
    self.overrides, self.seed, self.completed = {'padding': padding}, seed, True
    self.history = self.best = {'epoch': 1, 'test_accuracy': accuracy}


def _tested(expect, differences, effect=0.005):
  runs = [_Run(1, s, 0.9 + d) for s, d in enumerate(differences)] + [
      _Run(0, s, 0.9) for s in range(len(differences))]
  result, = claims.evaluate([_claim(expect, effect)], {'s': runs})
  return result


@pytest.mark.parametrize('expect, differences, kind, words', [
    ('higher', [0.010, 0.012, 0.011, 0.009, 0.010], 'holds', 'holds: +1.04 pp'),
    ('lower', [0.010, 0.012, 0.011, 0.009, 0.010], 'does not hold', 'the opposite'),
    # Real, but a tenth of the smallest effect of interest: not what the claim means.
    ('higher', [0.0004, 0.0005, 0.0006, 0.0005, 0.0005], 'does not hold',
     'real but smaller than ±0.5 pp'),
    ('higher', [0.0002, -0.0003, 0.0001, -0.0002, 0.0001], 'does not hold',
     'no effect of ±0.5 pp or more'),
    ('equivalent', [0.0002, -0.0003, 0.0001, -0.0002, 0.0001], 'holds', 'within ±0.5 pp'),
    ('equivalent', [0.010, 0.012, 0.011, 0.009, 0.010], 'does not hold', 'differ by more'),
    ('higher', [0.004, -0.001, 0.009, 0.0, 0.006], 'inconclusive', 'seeds would decide it'),
])
def test_each_verdict(expect, differences, kind, words):
  result = _tested(expect, differences)
  assert result.kind == kind and words in result.verdict, result.verdict
  assert result.seeds == [0, 1, 2, 3, 4] and result.family_size == 1


def test_a_claim_on_a_configuration_never_run_says_so():
  result, = claims.evaluate([_claim('higher')], {'s': [_Run(1, 0, 0.9)]})
  assert result.kind == 'not run' and 'no finished run of' in result.verdict
  result, = claims.evaluate([_claim('higher')], {})
  assert result.verdict == 'not run'
