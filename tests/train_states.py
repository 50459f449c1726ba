"""The train state a config makes, for the tests that restore checkpoints into it or
start from it (the structure is what a restore needs; the values are seed 0's)."""

import jax

from configs import default
from cnn_jax import models, steps


def make_state(config=None, steps_per_epoch: int = 10) -> steps.TrainState:
  config = config or default.get_config()
  tx, _ = steps.create_optimizer(config, steps_per_epoch)
  return steps.create_train_state(jax.random.key(0), models.create_model(config, 10),
                                  (28, 28, 1), tx)
