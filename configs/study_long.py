"""The long profile of the study, for an accelerator: the default study's dropout
claims (configs/study.py) with 3× the epochs, stopped early on validation (never
before two thirds of them), and the claims that left the default study to keep it
within 90 minutes on 2 cores: model size and dropout (small data, shared rates) and
the full-data architecture and CNN-vs-MLP claims (each configuration at its own tuned
rate, configs/regimes.py). Not run for the shipped REPORT; the README says with what
power.

python -m experiments.study --config=configs/study_long.py --workdir=runs/study_long \
    --output_dir=results/study_long
python -m experiments.study --config=configs/study_long.py --estimate   # its time
"""

from cnn_jax import input_pipeline
from configs import default
from configs import mlp_vs_cnn
from configs import study
from configs import width_sweep
from configs.study import ACCURACY, EQUIVALENCE_MARGIN, LOSS_GAP  # pylint: disable=unused-import

SWEEPS = study.SWEEPS + ('width_sweep', 'padding_sweep', 'pooling_sweep', 'pool_size_sweep',
                         'activation_sweep', 'fc_activation_sweep', 'mlp_vs_cnn')
SEEDS = 10
FULL = 0.002  # 0.2 pp: full data leaves ~1% error; a fifth of it.

_W = {name: {'conv_features': conv, 'fc_features': fc}
      for name, (conv, fc) in width_sweep.WIDTHS.items()}
_RATE = lambda r: {'dropout_rate': r}
_SHIFTED = [f'{s.name}_accuracy' for s in input_pipeline.shift_curve_sets(
    mlp_vs_cnn.get_config().shift_curve_pixels)]
# (0.5 − 0.25 at ×2) − (0.5 − 0.25 at ×½).
_INTERACTION = [(1, {**_W['double'], **_RATE(0.5)}), (-1, {**_W['double'], **_RATE(0.25)}),
                (-1, {**_W['half'], **_RATE(0.5)}), (1, {**_W['half'], **_RATE(0.25)})]
_claim = study._claim  # pylint: disable=protected-access

CLAIMS = study.CLAIMS + [
    _claim('The more complex the model, the more it overfits: width ×2 vs ×½',
           'width_sweep', {**_W['double'], **_RATE(0.25)}, {**_W['half'], **_RATE(0.25)},
           'loss_gap', effect=LOSS_GAP),
    _claim('Higher dropout in larger models: 0.5 over 0.25 gains more at ×2 than at ×½',
           'width_sweep', None, None, contrast=_INTERACTION),
    _claim('Higher dropout in larger models: 0.5 over 0.25 narrows the loss gap more at '
           '×2 than at ×½', 'width_sweep', None, None, 'loss_gap', 'lower', LOSS_GAP,
           contrast=_INTERACTION),
    _claim('Padding 1 (the article\'s) beats padding 0', 'padding_sweep', {'padding': 1},
           {'padding': 0}, effect=FULL),
    _claim('Max pooling (the article\'s) beats average pooling', 'pooling_sweep',
           {'pooling': 'max'}, {'pooling': 'avg'}, effect=FULL),
    _claim('Pool windows larger than 3 hurt: 5×5/2 vs 2×2/2', 'pool_size_sweep',
           {'pool_window': 5}, {'pool_window': 2}, expect='lower', effect=FULL),
    _claim('ReLU (the article\'s) beats sigmoid, each at its own learning rate',
           'activation_sweep', {'activation': 'relu'}, {'activation': 'sigmoid'},
           effect=FULL),
    _claim('ReLU beats tanh, each at its own learning rate', 'activation_sweep',
           {'activation': 'relu'}, {'activation': 'tanh'}, effect=FULL),
    _claim('A ReLU between FC1 and FC2 (the text) beats none (the table)',
           'fc_activation_sweep', {'fc_activation': 'relu'}, {'fc_activation': 'none'},
           effect=FULL),
    _claim('The CNN is more accurate than the MLP', 'mlp_vs_cnn', {'model': 'cnn'},
           {'model': 'mlp'}, effect=FULL),
    _claim('The CNN is less sensitive than the MLP to where a digit appears (mean '
           'accuracy over shifts of 1–4 px in four directions)', 'mlp_vs_cnn',
           {'model': 'cnn'}, {'model': 'mlp'}, _SHIFTED, effect=0.05),
]


def adapt(config):
  """Each sweep's config in this profile: 3× its epochs, stopped early once validation
  has not improved for 5 epochs, never before two thirds of them."""
  config.num_epochs *= 3
  config.early_stopping_patience = 5
  config.early_stopping_min_epochs = config.num_epochs * 2 // 3
  return config


def get_config():
  return default.get_config()
