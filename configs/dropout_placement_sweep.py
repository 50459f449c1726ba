"""Where does dropout belong? Dropout 0.25 before FC1 (the article's table) or after
it; 'both' is a placement too: add it to GRID (no claim of the study reads it). Small
data (configs/regimes.py).

python -m experiments.sweep --config=configs/dropout_placement_sweep.py --workdir=runs/dropout_placement_sweep
"""

from configs import regimes

GRID = [{'dropout_placement': p} for p in ('before_fc1', 'after_fc1')]
BASELINE = {'dropout_placement': 'before_fc1'}  # The article's table.
STRATA = regimes.SMALL_DATA_RATES
SEEDS = 10


def get_config():
  return regimes.config(regimes.SMALL_DATA)
