"""Dropout inside the conv blocks (after each pool), on top of the article's before
FC1: "dropout there can disrupt that structure". Small data (configs/regimes.py).
Add 0.1 to GRID for a milder rate (no claim of the study reads it).

python -m experiments.sweep --config=configs/conv_dropout_sweep.py --workdir=runs/conv_dropout_sweep 
"""

from configs import regimes

GRID = [{'conv_dropout_rate': rate} for rate in (0.0, 0.25)]
BASELINE = {'conv_dropout_rate': 0.0}  # The article's network.
STRATA = regimes.SMALL_DATA_RATES
SEEDS = 10


def get_config():
  return regimes.config(regimes.SMALL_DATA)
