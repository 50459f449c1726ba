"""A trained run, loaded back for inference: its config, model and best parameters."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from cnn_jax import checkpoints, errors, input_pipeline, models, options, steps

@dataclasses.dataclass(frozen=True)
class TrainedRun:
  config: dict[str, Any]
  spec: input_pipeline.DatasetSpec
  model: nn.Module
  variables: dict[str, Any]  # Every collection: params, batch statistics, …
  epoch: int
  which: str  # 'best' or 'latest' checkpoint.

  @property
  def params(self) -> Any:
    return self.variables['params']

def load_run(workdir: str | pathlib.Path) -> TrainedRun:
  """The run's config.json and its best checkpoint (else its latest)."""
  workdir = pathlib.Path(workdir)
  try:
    config = json.loads((workdir / 'config.json').read_text())
  except OSError:
    runs = sorted(p.parent.name for p in workdir.glob('*/config.json'))
    if runs:  # A sweep: its runs are one level down.
      shown = ', '.join(runs[:8]) + (f', … ({len(runs)} runs)' if len(runs) > 8 else '')
      raise errors.ConfigError(f'--workdir={workdir} is a sweep, not one run: pick one '
                                f'of its runs, --workdir={workdir}/<run>: {shown}') from None
    raise errors.ConfigError(f'--workdir={workdir} holds no training run '
                              '(no config.json)') from None
  config = options.with_defaults(ml_collections.ConfigDict(config).to_dict())
  options.validate_config(config)
  spec = input_pipeline.dataset_spec(config)
  model = models.create_model(config, spec.num_classes)
  # The optimizer state is restored too (the checkpoint holds it); its hyperparameters
  # do not matter here, its structure does.
  tx, _ = steps.create_optimizer(config, steps_per_epoch=1)
  like = steps.create_train_state(jax.random.key(0), model, spec.input_shape, tx)
  try:
    state, epoch, which = checkpoints.load_for_inference(workdir, like)
  except FileNotFoundError as e:
    raise errors.ConfigError(str(e)) from None
  return TrainedRun(config, spec, model, state.variables, epoch, which)

def probabilities(run: TrainedRun, images: np.ndarray, batch_size: int = 1000
                  ) -> np.ndarray:
  """Softmax class probabilities for uint8 NHWC images, in batches."""
  apply = jax.jit(lambda variables, x: jax.nn.softmax(run.model.apply(
      variables, steps.preprocess(x))))
  out = [np.asarray(apply(run.variables, images[i:i + batch_size]))
         for i in range(0, len(images), batch_size)]
  return np.concatenate(out) if out else np.zeros((0, run.spec.num_classes), np.float32)
