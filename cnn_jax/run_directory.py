"""One run's directory and everything in it: config.json, its checkpoints, TensorBoard
events, the epoch history and metrics.json.

Every process of a run opens it (Orbax writes checkpoints from all of them together);
only the primary process writes the other files.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time
from typing import Any, Mapping, Sequence

import jax
import ml_collections

from cnn_jax import checkpoints, errors, options, parallel, run_metrics, steps
from cnn_jax import metric_writers
from cnn_jax.metric_writers import SummaryWriter


@dataclasses.dataclass
class Position:
  """Where a run resumes: after `index` steps of epoch `epoch` + 1 (index 0: at the
  start of that epoch), with the state and, mid-epoch, the epoch's running sums."""
  epoch: int
  index: int
  state: steps.TrainState
  totals: Any = None
  started: tuple[str, ...] = ()  # Running sums begun at the resume point (checkpoints.Found).


class RunDirectory:
  """A run's files. `facts` (device, parameters, compile time…) go into metrics.json."""

  def __init__(self, path: str | pathlib.Path, config: Mapping[str, Any]):
    self.path = pathlib.Path(path)
    self.config = dict(config)
    self.primary = parallel.is_primary()
    self.history: list[dict[str, Any]] = []
    self.facts: dict[str, Any] = {}
    self.writer: SummaryWriter | None = None
    self._wall_start = time.perf_counter()
    # The trainer has called check_workdir (before the dataset's info), so not again.
    try:  # Found before any data is prepared or compiled.
      self.path.mkdir(parents=True, exist_ok=True)
      if self.primary and not (self.path / 'config.json').exists():
        self._write_config()
      if not os.access(self.path, os.W_OK):
        raise PermissionError(13, 'Permission denied')
    except OSError as e:
      raise errors.ConfigError(f'workdir {self.path} cannot be written: '
                                f'{e.strerror or e}') from None
    self.checkpoints = checkpoints.Checkpoints(self.path / checkpoints.DIRECTORY,
                                               self.config['checkpoints_to_keep'])

  def restore(self, like: steps.TrainState, zero_totals: Any, steps_per_epoch: int
               ) -> Position:
    """The newest readable checkpoint's position (else the start, `like`), and the
    history up to it."""
    try:
      found = self.checkpoints.restore_latest_good(like, zero_totals)
    except errors.ShapeMismatchError as e:
      raise errors.ConfigError(
          f'workdir {self.path} holds checkpoints of another network ({e}): a config '
          'change that changes parameter shapes cannot continue a run; train it in a new '
          '--workdir') from None
    position = Position(0, 0, like)
    if found and found.record:
      if found.record['epoch'] * steps_per_epoch != found.step:
        raise errors.ConfigError(
            f"workdir {self.path} holds checkpoints numbered by epoch (step {found.step} "
            f"holds epoch {found.record['epoch']} of {steps_per_epoch} steps): an older "
            'cnn_jax wrote it; train it in a new --workdir')
      position = Position(found.record['epoch'], 0, found.state)
    elif found:  # A stop mid-epoch, possibly after the epoch's last step.
      epoch = (found.step - 1) // steps_per_epoch
      position = Position(epoch, found.step - epoch * steps_per_epoch, found.state,
                          found.totals, found.started)
    self.history = self._history(position.epoch)
    return position

  def _history(self, up_to_epoch: int) -> list[dict[str, Any]]:
    """Epochs 1..up_to_epoch: metrics.json's records, and those only the checkpoints
    hold (a process killed between the checkpoint and metrics.json)."""
    records = {r['epoch']: r
               for r in run_metrics.load_history(self.path / 'metrics.json', up_to_epoch)}
    for step in self.checkpoints.steps():
      record = self.checkpoints.record(step)
      if record and record['epoch'] <= up_to_epoch:
        records.setdefault(record['epoch'], record)
    return [records[e] for e in sorted(records)]

  def _write_config(self) -> None:
    (self.path / 'config.json').write_text(
        ml_collections.ConfigDict(self.config).to_json_best_effort(indent=2) + '\n')

  def open_writer(self, fresh: bool, hparams_group: str | None,
                  compared: Sequence[str] = ()) -> None:
    """TensorBoard events (primary only); a fresh run also records its hyperparameters
    (`metric_writers.hparam_names`). A run outside a group (`hparams_group` None) also sets the
    dashboard's columns; a sweep sets them once at its root. Called once the run's
    checkpoints were read: only then does an allowed config change replace config.json
    (a failed one leaves it as it was)."""
    if self.primary:
      self._write_config()
      self.writer = SummaryWriter(str(self.path))
      if fresh:
        names = metric_writers.hparam_names(compared, grouped=hparams_group is not None)
        self.writer.hparams({k: self.config[k] for k in names}, group=hparams_group)
        if hparams_group is None:
          self.writer.hparams_columns(names)

  def save_interrupted(self, global_step: int, state: steps.TrainState, totals: Any
                       ) -> pathlib.Path:
    """The mid-epoch state (and the epoch's running sums) to resume from, written."""
    self.checkpoints.save(global_step, state, totals=totals)
    self.checkpoints.wait()
    return self.checkpoints.directory / str(global_step)

  def log_scalars(self, global_step: int, scalars: Mapping[str, float]) -> None:
    """TensorBoard scalars at `global_step`, by tag (primary only)."""
    if self.writer:
      self.writer.scalars(global_step, scalars)

  def end_epoch(self, record: dict[str, Any], state: steps.TrainState,
                global_step: int, scalars: Mapping[str, float]) -> None:
    """Saves the epoch at `global_step` (its last), logs its TensorBoard `scalars`
    there and rewrites metrics.json."""
    self.history.append(record)
    self.checkpoints.save(global_step, state, record=record)
    if jax.process_count() > 1:
      # Orbax names its cross-process barriers by step alone, and the next run's saves
      # (another seed's directory) use the same step numbers.
      self.checkpoints.wait()
    if self.writer:
      self.writer.scalars(global_step, scalars)
      self.writer.flush()
    self.write_metrics()

  def fail(self, reason: str, epoch: int, step: int) -> None:
    self.facts['failed'] = {'reason': reason, 'epoch': epoch, 'step': step}
    self.write_metrics()

  def write_metrics(self) -> dict[str, Any]:
    """metrics.json (primary only) from the history and facts; returned everywhere."""
    return run_metrics.write_metrics(
        self.path / 'metrics.json' if self.primary else None, self.history,
        num_epochs=self.config['num_epochs'],
        patience=self.config['early_stopping_patience'],
        min_epochs=self.config['early_stopping_min_epochs'], **self.facts,
        wall_seconds_this_process=time.perf_counter() - self._wall_start)

  def close(self) -> None:
    """Waits for checkpoints still being written in the background."""
    self.checkpoints.close()
    if self.writer:
      self.writer.close()
