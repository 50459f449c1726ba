"""Padding 1 keeps 28×28 through conv1 (the article's choice); padding 0 shrinks each
conv by 2, so FC1's input drops from 3136 to 1600 and with it FC1's parameters.

python -m experiments.padding_sweep --workdir=runs/padding_sweep --seeds=5
"""

from configs import default

GRID = [{'padding': 0}, {'padding': 1}]
BASELINE = {'padding': 1}


def get_config():
  return default.get_config()
