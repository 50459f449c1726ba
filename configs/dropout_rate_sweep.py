"""How much dropout? Rates 0.25 to 0.75 before FC1 (the article: "typically 0.2–0.5",
"too much dropout hurts"); 0.25 is the article's. Small data (configs/regimes.py).
Add 0.1 to GRID for the low end (no claim of the study reads it).

python -m experiments.sweep --config=configs/dropout_rate_sweep.py --workdir=runs/dropout_rate_sweep 
"""

from configs import regimes

GRID = [{'dropout_rate': rate} for rate in (0.25, 0.5, 0.75)]
BASELINE = {'dropout_rate': 0.25}  # The article's table.
STRATA = regimes.SMALL_DATA_RATES
SEEDS = 10


def get_config():
  return regimes.config(regimes.SMALL_DATA)
