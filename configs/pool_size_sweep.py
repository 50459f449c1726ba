"""Pool windows 2 (the article's) and 5, max, stride 2: the larger window also shrinks
pool2 and FC1's input, and with it the parameters (the results page counts them).
Full data (configs/regimes.py). Add 3 or 4 to GRID for the curve between: each costs
about twice the baseline's time on XLA:CPU (max pooling's gradient over overlapping
windows).

python -m experiments.sweep --config=configs/pool_size_sweep.py --workdir=runs/pool_size_sweep --seeds=5
"""

from configs import regimes

GRID = [{'pool_window': window} for window in (2, 5)]
BASELINE = {'pool_window': 2}  # The article's table (stride 2).
SEARCH = regimes.FULL_DATA_SEARCH


def get_config():
  return regimes.config(regimes.FULL_DATA)
