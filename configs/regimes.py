"""The two regimes the study's claims run in, and the learning-rate search each sweep
tunes with (cnn_jax.tuning): declared once, read by every sweep config.

- SMALL_DATA: 2,000 training images (a class-stratified subset), where the article's
  network overfits measurably (a pilot without dropout: train accuracy 100% from
  epoch 10 on, validation near 96%): the dropout, BatchNorm and model-size claims.
  15 epochs of 15 steps; 2,500 images held out for validation and 1,000 of the
  trained ones for the gap, so evaluation stays a fraction of the time.
- FULL_DATA: every training image not held out, 2 epochs (the main job's recipe):
  the accuracy claims ("~99%", architecture choices, CNN vs MLP).

Each sweep tunes the peak learning rate per configuration on validation, on one seed
and a shorter budget (declared in SEARCH), before its seeds train at the chosen rate.
"""

from configs import default

SMALL_DATA = {'max_train_examples': 2000, 'train_eval_examples': 1000,
              'validation_examples': 2500, 'test_shift_pixels': 0, 'num_epochs': 15}
FULL_DATA = {'num_epochs': 2, 'test_shift_pixels': 0}

# The peak learning rate on a log grid around the default's 1e-2, grown past each edge
# the best score sits at (alone or tied): one seed, 6 of the 15 epochs (small data) or
# a 10,000-image slice (full data); tuning reads validation only: no shift curve.
SMALL_DATA_SEARCH = {'field': 'learning_rate', 'values': [3e-3, 1e-2, 3e-2], 'seeds': 1,
                     'overrides': {'num_epochs': 6}, 'extend': 2}
FULL_DATA_SEARCH = {'field': 'learning_rate', 'values': [3e-3, 1e-2, 3e-2], 'seeds': 1,
                    'overrides': {'max_train_examples': 10000, 'shift_curve_pixels': 0},
                    'extend': 2}


def config(regime):
  """The default config in `regime` (SMALL_DATA or FULL_DATA)."""
  c = default.get_config()
  c.update(regime)
  return c
