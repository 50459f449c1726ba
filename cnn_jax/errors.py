"""Every error cnn_jax raises on purpose. The entry points print each as one line and
exit by kind: 2 for bad input, 1 for a run that failed, 130 for a run stopped by a
signal (`experiments/cli.py`). Nothing here imports anything, so they catch these
without importing JAX, TFDS or Orbax."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
  """An invalid config value, flag or workdir; the message is one line naming it."""


class WorkdirConflictError(ConfigError):
  """The workdir holds a run of another configuration."""


class GeometryError(ValueError):
  """A layer whose output size is not a positive integer."""

  def __init__(self, layer: str, message: str):
    super().__init__(f'{layer}: {message}')
    self.layer = layer
    # The rows before the failing layer (set by `models.module_table`), so a caller
    # can name the earlier layers that shrank its input.
    self.rows_before: list[Any] = []


class DatasetUnavailableError(RuntimeError):
  """The dataset is neither prepared nor obtainable; the message says what to do."""


class CheckpointError(RuntimeError):
  """No checkpoint in a run's directory could be read."""


class ShapeMismatchError(CheckpointError):
  """The checkpoints hold arrays of other shapes than the state to restore: another
  network, not damage (so older checkpoints are not tried)."""


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or Inf."""


class Interrupted(Exception):
  """Training stopped on a signal after saving a checkpoint to resume from."""


class RunLockedError(RuntimeError):
  """Another process is training this run right now."""


class PeerTimeoutError(RuntimeError):
  """Another process of a multi-process run did not reach a point all must reach (it
  died, hangs or runs other code) within the timeout."""
