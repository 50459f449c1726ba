"""Dropout placement × padding: does where dropout belongs depend on FC1's size?
Padding 0 shrinks FC1's input from 3136 to 1600 features (see padding_sweep.py).

python -m experiments.dropout_sweep --config=configs/dropout_by_padding_sweep.py \
    --workdir=runs/dropout_by_padding_sweep --seeds=5
"""

from configs import default

GRID = [{'dropout_placement': placement, 'padding': padding}
        for padding in (1, 0) for placement in ('none', 'before_fc1', 'after_fc1', 'both')]
BASELINE = {'dropout_placement': 'before_fc1', 'padding': 1}  # The article's table.


def get_config():
  return default.get_config()
