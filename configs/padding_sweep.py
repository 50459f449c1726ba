"""Padding 1 (the article's) vs 0: without padding each map loses a pixel per side per
conv, so FC1's input drops from 3136 to 1600 and with it FC1's parameters. Full data
(configs/regimes.py).

python -m experiments.sweep --config=configs/padding_sweep.py --workdir=runs/padding_sweep --seeds=5
"""

from configs import regimes

GRID = [{'padding': 0}, {'padding': 1}]
BASELINE = {'padding': 1}
SEARCH = regimes.FULL_DATA_SEARCH


def get_config():
  return regimes.config(regimes.FULL_DATA)
