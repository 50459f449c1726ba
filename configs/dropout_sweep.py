"""Does dropout help? The article's CNN with dropout 0.25 before FC1 (its table) or
none, at each shared learning rate, 10 seeds each drawing its own 2,000 training
images: the mission's command, and the study's first sweep. Where it goes (after FC1):
configs/dropout_placement_sweep.py. Small data (configs/regimes.py).

python -m experiments.dropout_sweep   # its claims: configs/study.py, tested on its page
"""

from configs import regimes

GRID = [{'dropout_placement': p} for p in ('none', 'before_fc1')]
BASELINE = {'dropout_placement': 'before_fc1'}  # The article's table.
STRATA = regimes.SMALL_DATA_RATES
SEEDS = 10


def get_config():
  return regimes.config(regimes.SMALL_DATA)
