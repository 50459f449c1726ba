"""When does dropout help? Dropout before FC1 against none at a ladder of training-set
sizes (cnn_jax/learning_curve.py): python -m experiments.learning_curve
(`python -m experiments.sweep --config=configs/learning_curve.py` trains the same runs).

Registered here before the runs that test it:
- Sizes: SIZES on the 2-core CPU (a doubling ladder from 500, where an epoch is 3
  steps, to 8,000); GPU_SIZES and GPU_SEEDS for a GPU (untried: none was lent).
- Budget: about STEPS steps at every size (the study's at 2,000 images: 10 epochs of
  15), so a size changes the data and nothing else; the best validation epoch is read,
  and the page names the sizes where it was the last one.
- Learning rate as in the study: both arms train at each of the shared rates
  (regimes.SMALL_DATA_RATES) and the paired effect is averaged over them per seed.
- Each seed draws its own subsets (split_seed='seed'); a size's set is the first N of
  the seed's stratified order, so smaller sets nest in larger ones, and both arms of a
  pair share images, order and initial weights.
- Claims: at each size, dropout improves test accuracy (smallest effect of interest
  0.5 pp, the study's) and reduces the loss gap (0.02, the study's); Holm over the
  sizes, one family per metric.
- SEEDS: as many as fit the 45-minute budget on 2 cores by --estimate.
"""

from cnn_jax import learning_curve
from configs import regimes, study

SIZES = (500, 1000, 2000, 4000, 8000)
GPU_SIZES = (250, 500, 1000, 2000, 4000, 8000, 16000, 0)  # 0: all 58,000.
GPU_SEEDS = 20
STEPS = 150
ARM, OFF = 'before_fc1', learning_curve.OFF
SEEDS = 5
STRATA = regimes.SMALL_DATA_RATES
EFFECTS = {'test_accuracy': study.ACCURACY, 'loss_gap': study.LOSS_GAP}


def get_config():
  return regimes.config(regimes.SMALL_DATA)


def make_grid(sizes=SIZES, arm=ARM, config=None, steps=STEPS):
  """The GRID: (size, arm) configurations, each size's epochs set for about `steps`."""
  config = config or get_config()
  return learning_curve.grid(sizes, (OFF, arm), steps, config.batch_size,
                             learning_curve.all_images(config))


GRID = make_grid()
# The study's dropout_sweep configuration: its runs and these are the same runs.
BASELINE = next(g for g in GRID if g['max_train_examples'] == 2000 and g['dropout_placement'] == ARM)
CLAIMS = learning_curve.declared_claims(GRID, ARM, OFF, EFFECTS)
