"""Where does dropout belong? The article's CNN with dropout before FC1 (its table),
after FC1, at both places, or nowhere; rate 0.25 unless --config.dropout_rate says.

python -m experiments.dropout_sweep --workdir=runs/dropout_sweep --seeds=5
"""

from configs import default

GRID = [{'dropout_placement': p} for p in ('none', 'before_fc1', 'after_fc1', 'both')]
BASELINE = {'dropout_placement': 'before_fc1'}  # The article's table.


def get_config():
  return default.get_config()
