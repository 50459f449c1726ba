"""The study (python -m experiments.study): the article's dropout claims, each in the
regime where it can show (small data, configs/regimes.py), then REPORT.md, which tests
each of CLAIMS.

The design, registered here before the runs that test it (the REPORT names the commit
the runs trained at; a design changed after seeing results is a new registration and a
full rerun):
- Every arm of a claim trains at the same learning rates (each sweep's STRATA:
  3e-3 and 1e-2); no rate is chosen per configuration.
- SEEDS seeds per configuration; each seed draws its own 2,000 training images and
  validation set (split_seed='seed'), shared by every configuration at that seed, and
  the configurations at one seed start from the same initial weights where their
  shapes agree: paired by seed.
- A claim's contrast is computed per seed within each rate, averaged over the rates,
  and tested across seeds (paired t and TOST against its smallest effect of interest),
  Holm over its family: the claims of one sweep, so that sweep's page tests them as
  this REPORT does. Each rate alone is tested too (the robustness table).
- Metrics are read at each run's best validation epoch; the test set decides nothing.
  Overfitting is the loss gap: test loss minus train-eval loss there (the accuracy gap
  saturates: train-eval accuracy reaches 100%), read on the test set since validation
  chose the epoch.
- Smallest effects of interest: 0.5 pp of test accuracy, ~14% of the ~3.5% error at
  2,000 images; 0.02 of loss gap, ~15% of the ~0.13 the article's network shows there.
- 10 seeds: a reviewer's simulation of this design (10 seeds × 2 shared rates) decides
  with probability >= 0.84 for any true effect from 0 to 0.4 pp at an SD of 0.4 pp.

The width claims (small data) and the full-data architecture and CNN-vs-MLP claims
are in the long profile (configs/study_long.py), to keep this study
within 90 minutes on 2 cores; the README says with what power.
"""

from configs import default

# configs/<name>.py for each, run in this order.
SWEEPS = ('dropout_sweep', 'dropout_placement_sweep', 'dropout_rate_sweep',
          'conv_dropout_sweep', 'batch_norm_dropout_sweep')
SEEDS = 10
EQUIVALENCE_MARGIN = 0.005  # The sweeps' descriptive comparisons: ±0.5 pp.

ACCURACY = 0.005  # 0.5 pp of test accuracy.
LOSS_GAP = 0.02


def _claim(claim, sweep, config, other, metric='test_accuracy', expect='higher',
           effect=ACCURACY, family=None, contrast=None):
  """One declared claim: `config` against `other` (or a `contrast` of several), in the
  family of its sweep's claims unless named."""
  return dict(claim=claim, sweep=sweep, contrast=contrast or [(1, config), (-1, other)],
              metric=metric, expect=expect, effect=effect, family=family or sweep)


_BN = {'batch_norm': 'both', 'fc_activation': 'relu', 'dropout_placement': 'after_fc1'}
_PLACE = lambda p: {'dropout_placement': p}
_RATE = lambda r: {'dropout_rate': r}
_GAP = 'loss_gap'

CLAIMS = [
    _claim('Dropout before FC1 improves test accuracy', 'dropout_sweep',
           _PLACE('before_fc1'), _PLACE('none')),
    _claim('Dropout before FC1 reduces overfitting', 'dropout_sweep',
           _PLACE('before_fc1'), _PLACE('none'), _GAP, 'lower', LOSS_GAP),
    _claim('Before FC1 (the table) and after FC1 work as well', 'dropout_placement_sweep',
           _PLACE('before_fc1'), _PLACE('after_fc1'), expect='equivalent'),
    _claim('Before FC1 and after FC1 overfit alike', 'dropout_placement_sweep',
           _PLACE('before_fc1'), _PLACE('after_fc1'), _GAP, 'equivalent', LOSS_GAP),
    _claim('Too much dropout hurts: 0.75 vs 0.25', 'dropout_rate_sweep', _RATE(0.75),
           _RATE(0.25), expect='lower'),
    _claim('Rates in the typical 0.2–0.5 work as well: 0.5 vs 0.25', 'dropout_rate_sweep',
           _RATE(0.5), _RATE(0.25), expect='equivalent'),
    _claim('More dropout, less overfitting: 0.75 vs 0.25', 'dropout_rate_sweep',
           _RATE(0.75), _RATE(0.25), _GAP, 'lower', LOSS_GAP),
    _claim('More dropout, less overfitting: 0.5 vs 0.25', 'dropout_rate_sweep',
           _RATE(0.5), _RATE(0.25), _GAP, 'lower', LOSS_GAP),
    _claim('Dropout inside the conv blocks hurts ("can disrupt that structure"): rate '
           '0.25 there vs none', 'conv_dropout_sweep', {'conv_dropout_rate': 0.25},
           {'conv_dropout_rate': 0.0}, expect='lower'),
    _claim('Dropout inside the conv blocks reduces overfitting: rate 0.25 there vs none',
           'conv_dropout_sweep', {'conv_dropout_rate': 0.25}, {'conv_dropout_rate': 0.0},
           _GAP, 'lower', LOSS_GAP),
    _claim('Dropout before BatchNorm is worse than after BatchNorm and its activation',
           'batch_norm_dropout_sweep', {**_BN, 'dropout_before_batch_norm': True},
           {**_BN, 'dropout_before_batch_norm': False}, expect='lower', effect=ACCURACY),
    _claim('Dropout before and after BatchNorm overfit alike', 'batch_norm_dropout_sweep',
           {**_BN, 'dropout_before_batch_norm': True},
           {**_BN, 'dropout_before_batch_norm': False}, _GAP, 'equivalent', LOSS_GAP),
]


def get_config():
  return default.get_config()
