"""The default recipe, chosen on validation: Adam's peak learning rate over 2 epochs
(warm-up 0.1 epoch, cosine to 0), by mean validation accuracy at the last epoch.

python -m experiments.recipe_sweep --workdir=runs/recipe_sweep --seeds=3
"""

from configs import default

GRID = [{'learning_rate': lr} for lr in (1e-3, 3e-3, 1e-2)]
BASELINE = {'learning_rate': 3e-3}  # The default before this sweep (issue 4).


def get_config():
  return default.get_config()
