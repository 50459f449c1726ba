"""Do pool windows larger than 3 hurt? Max pooling with stride 2 and windows 2 (the
article's), 4 and 5 (which also shrink pool2 and FC1's input).

python -m experiments.pool_size_sweep --workdir=runs/pool_size_sweep --seeds=5
"""

from configs import default

GRID = [{'pool_window': window} for window in (2, 4, 5)]
BASELINE = {'pool_window': 2}  # The article's table (stride 2).


def get_config():
  return default.get_config()
