"""The whole study (python -m experiments.study): every sweep of the article, each in its
regime (configs/regimes.py) with its learning rate tuned per configuration, SEEDS seeds
per configuration (SWEEP_SEEDS where a sweep has its own), then REPORT.md, which tests
each of CLAIMS.

CLAIMS are declared here, before any run: each names its sweep, the configurations it
contrasts (weights on their per-seed values: a comparison is +1 and −1), the metric
(read at each run's best validation epoch), the direction the article claims
('higher', 'lower', or 'equivalent'), the smallest effect of interest, and the family
over which Holm's correction runs. Sized for a 90-minute budget on the 2-core CI
machine (whether it keeps it: the measured time in README, The study). Overrides apply
to every sweep: --seeds=10, --config.num_epochs=3. The long profile: configs/study_long.py.
"""

from cnn_jax import input_pipeline
from configs import default
from configs import mlp_vs_cnn
from configs import width_sweep

# configs/<name>.py for each, run in this order.
SWEEPS = ('dropout_sweep', 'dropout_rate_sweep', 'conv_dropout_sweep',
          'batch_norm_dropout_sweep', 'width_sweep', 'padding_sweep', 'pooling_sweep',
          'pool_size_sweep', 'activation_sweep', 'fc_activation_sweep', 'mlp_vs_cnn')
SEEDS = 5
# CNN vs MLP: its effects (~1.4 pp, ~22 pp under shifts) are many times its paired
# differences' spread (~0.1, ~0.4 pp): 4 seeds decide them; its runs cost the most.
SWEEP_SEEDS = {'mlp_vs_cnn': 4}
EQUIVALENCE_MARGIN = 0.002  # The sweeps' own pages: ±0.20 pp of test accuracy.

_W = {name: {'conv_features': conv, 'fc_features': fc}
      for name, (conv, fc) in width_sweep.WIDTHS.items()}
_SHIFTED = [f'{s.name}_accuracy' for s in input_pipeline.shift_curve_sets(
    mlp_vs_cnn.get_config().shift_curve_pixels)]


def _claim(claim, sweep, config, other, metric='test_accuracy', expect='higher',
           effect=0.005, family='dropout', contrast=None):
  """One declared claim: `config` against `other` (or a `contrast` of several)."""
  return dict(claim=claim, sweep=sweep, contrast=contrast or [(1, config), (-1, other)],
              metric=metric, expect=expect, effect=effect, family=family)


_BN = {'batch_norm': 'both', 'fc_activation': 'relu', 'dropout_placement': 'after_fc1'}
_PLACE = lambda p: {'dropout_placement': p}
_RATE = lambda r: {'dropout_rate': r}
_GAP = 'generalization_gap'
# (0.5 − 0.25 at ×2) − (0.5 − 0.25 at ×½).
_INTERACTION = [(1, {**_W['double'], **_RATE(0.5)}), (-1, {**_W['double'], **_RATE(0.25)}),
                (-1, {**_W['half'], **_RATE(0.5)}), (1, {**_W['half'], **_RATE(0.25)})]

CLAIMS = [
    # Small data (2,000 images), where the network overfits: the dropout claims, each
    # on test accuracy and on the gap (train-eval minus validation accuracy: how much
    # it overfits), in a family of its own.
    _claim('Dropout before FC1 improves test accuracy', 'dropout_sweep',
           _PLACE('before_fc1'), _PLACE('none')),
    _claim('Dropout (before FC1, the table) reduces overfitting', 'dropout_sweep',
           _PLACE('before_fc1'), _PLACE('none'), _GAP, 'lower', family='dropout gap'),
    _claim('Before FC1 (the table) and after FC1 work as well', 'dropout_sweep',
           _PLACE('before_fc1'), _PLACE('after_fc1'), expect='equivalent'),
    _claim('Before FC1 and after FC1 overfit alike', 'dropout_sweep', _PLACE('before_fc1'),
           _PLACE('after_fc1'), _GAP, 'equivalent', family='dropout gap'),
    _claim('Dropout inside the conv blocks hurts ("can disrupt that structure"): rate '
           '0.25 there vs none', 'conv_dropout_sweep', {'conv_dropout_rate': 0.25},
           {'conv_dropout_rate': 0.0}, expect='lower'),
    _claim('Dropout inside the conv blocks reduces overfitting: rate 0.25 there vs none',
           'conv_dropout_sweep', {'conv_dropout_rate': 0.25}, {'conv_dropout_rate': 0.0},
           _GAP, 'lower', family='dropout gap'),
    _claim('Too much dropout hurts: 0.75 vs 0.25', 'dropout_rate_sweep', _RATE(0.75),
           _RATE(0.25), expect='lower', family='dropout rate'),
    _claim('More dropout, less overfitting: 0.75 vs 0.25', 'dropout_rate_sweep',
           _RATE(0.75), _RATE(0.25), _GAP, 'lower', family='dropout gap'),
    _claim('Rates in the typical 0.2–0.5 work as well: 0.5 vs 0.25', 'dropout_rate_sweep',
           _RATE(0.5), _RATE(0.25), expect='equivalent', family='dropout rate'),
    _claim('More dropout, less overfitting: 0.5 vs 0.25', 'dropout_rate_sweep',
           _RATE(0.5), _RATE(0.25), _GAP, 'lower', family='dropout gap'),
    _claim('Dropout before BatchNorm is worse than after BatchNorm and its activation',
           'batch_norm_dropout_sweep', {**_BN, 'dropout_before_batch_norm': True},
           {**_BN, 'dropout_before_batch_norm': False}, expect='lower',
           family='batch norm'),
    _claim('Dropout before and after BatchNorm overfit alike', 'batch_norm_dropout_sweep',
           {**_BN, 'dropout_before_batch_norm': True},
           {**_BN, 'dropout_before_batch_norm': False}, _GAP, 'equivalent',
           family='dropout gap'),
    _claim('The more complex the model, the more it overfits: width ×2 vs ×½',
           'width_sweep', {**_W['double'], **_RATE(0.25)}, {**_W['half'], **_RATE(0.25)},
           _GAP, family='model size'),
    _claim('Higher dropout in larger models: 0.5 over 0.25 gains more at ×2 than at ×½',
           'width_sweep', None, None, family='model size', contrast=_INTERACTION),
    _claim('Higher dropout in larger models: 0.5 over 0.25 narrows the gap more at ×2 '
           'than at ×½', 'width_sweep', None, None, _GAP, 'lower', family='dropout gap',
           contrast=_INTERACTION),
    # Full data: the accuracy claims.
    _claim('Padding 1 (the article\'s) beats padding 0', 'padding_sweep', {'padding': 1},
           {'padding': 0}, effect=0.002, family='architecture'),
    _claim('Max pooling (the article\'s) beats average pooling', 'pooling_sweep',
           {'pooling': 'max'}, {'pooling': 'avg'}, effect=0.002, family='architecture'),
    _claim('Pool windows larger than 3 hurt: 5×5/2 vs 2×2/2', 'pool_size_sweep',
           {'pool_window': 5}, {'pool_window': 2}, expect='lower', effect=0.002,
           family='architecture'),
    _claim('ReLU (the article\'s) beats sigmoid, each at its own learning rate',
           'activation_sweep', {'activation': 'relu'}, {'activation': 'sigmoid'},
           effect=0.002, family='architecture'),
    _claim('ReLU beats tanh, each at its own learning rate', 'activation_sweep',
           {'activation': 'relu'}, {'activation': 'tanh'}, effect=0.002,
           family='architecture'),
    _claim('A ReLU between FC1 and FC2 (the text) beats none (the table)',
           'fc_activation_sweep', {'fc_activation': 'relu'}, {'fc_activation': 'none'},
           effect=0.002, family='architecture'),
    _claim('The CNN is more accurate than the MLP', 'mlp_vs_cnn', {'model': 'cnn'},
           {'model': 'mlp'}, effect=0.002, family='cnn vs mlp'),
    _claim('The CNN is less sensitive than the MLP to where a digit appears (mean '
           'accuracy over shifts of 1–4 px in four directions)', 'mlp_vs_cnn',
           {'model': 'cnn'}, {'model': 'mlp'}, _SHIFTED, effect=0.05, family='cnn vs mlp'),
]


def get_config():
  return default.get_config()
