"""Max (the article's) vs average pooling, 2×2 windows, stride 2. Full data
(configs/regimes.py).

python -m experiments.sweep --config=configs/pooling_sweep.py --workdir=runs/pooling_sweep --seeds=5
"""

from configs import regimes

GRID = [{'pooling': kind} for kind in ('max', 'avg')]
BASELINE = {'pooling': 'max'}
SEARCH = regimes.FULL_DATA_SEARCH


def get_config():
  return regimes.config(regimes.FULL_DATA)
