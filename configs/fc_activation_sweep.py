"""An activation between FC1 and FC2? The article's table has none (FC2·FC1 is then a
single affine map); its text recommends ReLU between FC layers.

python -m experiments.fc_activation_sweep --workdir=runs/fc_activation_sweep --seeds=5
"""

from configs import default

GRID = [{'fc_activation': a} for a in ('none', 'relu')]
BASELINE = {'fc_activation': 'none'}  # The article's table.


def get_config():
  return default.get_config()
