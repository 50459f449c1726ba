"""The CNN vs an MLP baseline (784 → 3136 → 128 → 10: as wide as the CNN's flatten,
then its head), each at its own tuned learning rate, both tested on the test images
moved 1–4 pixels in four directions (the shift curve). Full data
(configs/regimes.py).

python -m experiments.sweep --config=configs/mlp_vs_cnn.py --workdir=runs/mlp_vs_cnn --seeds=5
"""

from configs import regimes

GRID = [{'model': 'cnn'}, {'model': 'mlp'}]
BASELINE = {'model': 'cnn'}
SEARCH = regimes.FULL_DATA_SEARCH


def get_config():
  config = regimes.config(regimes.FULL_DATA)
  config.shift_curve_pixels = 4
  return config
