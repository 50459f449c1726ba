"""Dropout before or after BatchNorm ("Dropout before batchnorm = no … apply dropout
after batch norm + activation"): BatchNorm after each conv and after FC1, a ReLU
after FC1, dropout 0.25 after FC1 either behind its BatchNorm and ReLU or in front of
the BatchNorm. Small data (configs/regimes.py).

python -m experiments.sweep --config=configs/batch_norm_dropout_sweep.py --workdir=runs/batch_norm_dropout_sweep 
"""

from configs import regimes

GRID = [{'batch_norm': 'both', 'fc_activation': 'relu', 'dropout_placement': 'after_fc1',
         'dropout_before_batch_norm': before} for before in (False, True)]
BASELINE = GRID[0]  # The article's advice.
STRATA = regimes.SMALL_DATA_RATES
SEEDS = 10


def get_config():
  return regimes.config(regimes.SMALL_DATA)
