"""The conv layers' activation: ReLU (the article's), Leaky ReLU, tanh, sigmoid.

python -m experiments.activation_sweep --workdir=runs/activation_sweep --seeds=5
"""

from configs import default

GRID = [{'activation': a} for a in ('relu', 'leaky_relu', 'tanh', 'sigmoid')]
BASELINE = {'activation': 'relu'}


def get_config():
  return default.get_config()
