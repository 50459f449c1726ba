"""The study's long profile, for an accelerator (seeds train vmapped there): 10 seeds,
up to 30 epochs each, stopped once validation accuracy has not improved for 5 epochs
but never before epoch 15; the same sweeps and margin as configs/study.py.

python -m experiments.study --config=configs/study_long.py --workdir=runs/study_long \
    --output_dir=results/study_long
python -m experiments.study --config=configs/study_long.py --estimate   # its time
"""

from configs import default
from configs.study import EQUIVALENCE_MARGIN, SWEEPS  # pylint: disable=unused-import

SEEDS = 10


def get_config():
  config = default.get_config()
  config.num_epochs = 30
  config.early_stopping_patience = 5
  config.early_stopping_min_epochs = 15
  return config
