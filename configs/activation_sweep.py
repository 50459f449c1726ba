"""ReLU (the article's) vs tanh and sigmoid after each conv (Leaky ReLU: add it to GRID), each at its
own tuned learning rate. Full data (configs/regimes.py).

python -m experiments.sweep --config=configs/activation_sweep.py --workdir=runs/activation_sweep --seeds=5
"""

from configs import regimes

GRID = [{'activation': a} for a in ('relu', 'tanh', 'sigmoid')]
BASELINE = {'activation': 'relu'}
SEARCH = regimes.FULL_DATA_SEARCH


def get_config():
  return regimes.config(regimes.FULL_DATA)
