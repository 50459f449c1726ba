"""Where does dropout belong? The article's CNN with dropout before FC1 (its table),
after FC1, or nowhere; rate 0.25. Small data, where it overfits (configs/regimes.py).
'both' places is a placement too: add it to GRID (no claim of the study reads it).

python -m experiments.sweep --config=configs/dropout_sweep.py --workdir=runs/dropout_sweep --seeds=5
"""

from configs import regimes

GRID = [{'dropout_placement': p} for p in ('none', 'before_fc1', 'after_fc1')]
BASELINE = {'dropout_placement': 'before_fc1'}  # The article's table.
SEARCH = regimes.SMALL_DATA_SEARCH


def get_config():
  return regimes.config(regimes.SMALL_DATA)
