"""The long profile of the study, for an accelerator: 10 seeds per configuration, each
regime trained 3× as many epochs (early stopping on validation, never before two
thirds of them); the same sweeps and claims as configs/study.py.

python -m experiments.study --config=configs/study_long.py --workdir=runs/study_long \
    --output_dir=results/study_long
python -m experiments.study --config=configs/study_long.py --estimate   # its time
"""

from configs import default
from configs.study import CLAIMS, EQUIVALENCE_MARGIN, SWEEPS  # pylint: disable=unused-import

SEEDS = 10


def adapt(config):
  """Each sweep's config in this profile: 3× its epochs, stopped early once validation
  has not improved for 5 epochs, never before two thirds of them."""
  config.num_epochs *= 3
  config.early_stopping_patience = 5
  config.early_stopping_min_epochs = config.num_epochs * 2 // 3
  return config


def get_config():
  return default.get_config()
