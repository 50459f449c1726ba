"""The train state a config makes, for the tests that restore checkpoints into it or
start from it (the structure is what a restore needs; the values are seed 0's), and the
state a run checkpointed at an epoch's end."""

import pathlib

import jax

from configs import default
from cnn_jax import checkpoints, models, steps


def make_state(config=None, steps_per_epoch: int = 10) -> steps.TrainState:
  config = config or default.get_config()
  tx, _ = steps.create_optimizer(config, steps_per_epoch)
  return steps.create_train_state(jax.random.key(0), models.create_model(config, 10),
                                  (28, 28, 1), tx)


def epoch_state(workdir, like: steps.TrainState, epoch: int) -> steps.TrainState:
  """The state `workdir`'s run saved at the end of `epoch` (its record says which)."""
  saved = checkpoints.Checkpoints(pathlib.Path(workdir) / checkpoints.DIRECTORY, keep=99)
  try:
    step, = [s for s in saved.steps() if (saved.record(s) or {}).get('epoch') == epoch]
    return saved.restore(step, like).state
  finally:
    saved.close()
