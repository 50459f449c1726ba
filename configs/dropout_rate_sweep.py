"""How much dropout? "Sparingly", typically 0.2–0.5: rate 0.25 (the article's) against
0.1 and 0.5, dropout before FC1 as in the article's table.

python -m experiments.dropout_rate_sweep --workdir=runs/dropout_rate_sweep --seeds=5
"""

from configs import default

GRID = [{'dropout_rate': rate} for rate in (0.1, 0.25, 0.5)]
BASELINE = {'dropout_rate': 0.25}  # The article's table.


def get_config():
  return default.get_config()
