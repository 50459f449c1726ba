"""Max vs mean pooling, non-overlapping 2/2 windows (the article's) vs overlapping 3/2.

python -m experiments.pooling_sweep --workdir=runs/pooling_sweep --seeds=5
"""

from configs import default

GRID = [{'pooling': kind, 'pool_window': window, 'pool_stride': 2}
        for kind in ('max', 'avg') for window in (2, 3)]
BASELINE = {'pooling': 'max', 'pool_window': 2, 'pool_stride': 2}


def get_config():
  return default.get_config()
