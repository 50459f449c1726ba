"""Model size and dropout: conv widths and FC1 ×½ (16, 32; 64), ×1 (the article's 32,
64; 128) and ×2 (64, 128; 256), each with dropout 0.25 and 0.5 before FC1 ("the more
complex the model, the more likely it is to overfit", "higher dropout in larger
models"). Parameters change with the width (the results page counts them). Small
data (configs/regimes.py).

python -m experiments.sweep --config=configs/width_sweep.py --workdir=runs/width_sweep 
"""

from configs import regimes

WIDTHS = {'half': ((16, 32), 64), 'one': ((32, 64), 128), 'double': ((64, 128), 256)}
GRID = [{'conv_features': conv, 'fc_features': fc, 'dropout_rate': rate}
        for conv, fc in WIDTHS.values() for rate in (0.25, 0.5)]
BASELINE = GRID[2]  # ×1 at 0.25: the article's network.
STRATA = regimes.SMALL_DATA_RATES
SEEDS = 10


def get_config():
  return regimes.config(regimes.SMALL_DATA)
