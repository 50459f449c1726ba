"""An activation between FC1 and FC2: the article's table has none (FC2·FC1 is then a
single affine map); its text recommends ReLU between FC layers. Full data
(configs/regimes.py).

python -m experiments.sweep --config=configs/fc_activation_sweep.py --workdir=runs/fc_activation_sweep --seeds=5
"""

from configs import regimes

GRID = [{'fc_activation': a} for a in ('none', 'relu')]
BASELINE = {'fc_activation': 'none'}  # The article's table.
SEARCH = regimes.FULL_DATA_SEARCH


def get_config():
  return regimes.config(regimes.FULL_DATA)
