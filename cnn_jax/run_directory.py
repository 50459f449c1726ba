"""One run's directory and everything in it: the config guard, config.json, epoch /
best / interrupted checkpoints, TensorBoard events, the epoch history and metrics.json.

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

from cnn_jax import checkpoints, options, parallel, run_metrics, safety, steps
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


def check_workdir(path: pathlib.Path, config: Mapping[str, Any],
                  allow_config_change: bool = False) -> None:
  """Refuses a workdir that is a file or holds a run of another config; reads only."""
  if path.exists() and not path.is_dir():
    raise options.ConfigError(f'workdir {path} is a file: expected a directory')
  safety.check_workdir_config(path, config, allow_config_change)


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
      raise options.ConfigError(f'workdir {self.path} cannot be written: '
                                f'{e.strerror or e}') from None
    self.epochs = checkpoints.Checkpointer(self.path / 'checkpoints',
                                           self.config['checkpoints_to_keep'])
    self.best = checkpoints.Checkpointer(self.path / checkpoints.BEST_DIR, keep=1)
    self.interrupted = checkpoints.Checkpointer(self.path / checkpoints.INTERRUPTED_DIR,
                                                keep=1)

  def restore(self, like: steps.TrainState, zero_totals: Any, steps_per_epoch: int
              ) -> Position:
    """The newest readable position: a mid-epoch checkpoint if one is newer than the
    last epoch's, else that epoch's, else the start (`like`). Loads the history."""
    try:
      return self._restore(like, zero_totals, steps_per_epoch)
    except checkpoints.ShapeMismatchError as e:
      raise options.ConfigError(
          f'workdir {self.path} holds checkpoints of another network ({e}): a config '
          'change that changes parameter shapes cannot continue a run; train it in a new '
          '--workdir') from None

  def _restore(self, like: steps.TrainState, zero_totals: Any, steps_per_epoch: int
               ) -> Position:
    position = Position(0, 0, like)
    found = self.epochs.restore_latest_good(like)
    if found:
      position = Position(found[0], 0, found[1])
    mid_step = self.interrupted.latest_epoch()  # Numbered by global step.
    if mid_step is not None and mid_step > position.epoch * steps_per_epoch:
      found = self.interrupted.restore_latest_good(like, totals=zero_totals)
      if found:
        mid_step, (state, extra) = found
        epoch = (mid_step - 1) // steps_per_epoch
        position = Position(epoch, mid_step - epoch * steps_per_epoch, state,
                            extra['totals'])
    self.history = self._history(position.epoch)
    best = max(self.history, key=lambda r: r['test_accuracy'], default=None)
    if (best and best['epoch'] == position.epoch and not position.index
        and position.epoch not in self.best.all_epochs()):
      self.best.save(position.epoch, position.state, record=best)  # Killed before it.
    return position

  def _history(self, up_to_epoch: int) -> list[dict[str, Any]]:
    """Epochs 1..up_to_epoch: metrics.json's records, and those only the epoch
    checkpoints hold (a process killed between the checkpoint and metrics.json)."""
    records = {r['epoch']: r
               for r in run_metrics.load_history(self.path / 'metrics.json', up_to_epoch)}
    for epoch in self.epochs.all_epochs():
      if epoch <= up_to_epoch and epoch not in records:
        record = self.epochs.record(epoch)
        if record:
          records[epoch] = record
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
    """The mid-epoch state (and the epoch's running sums) to resume from."""
    self.epochs.wait()  # Orbax's cross-process barriers are keyed by step alone.
    self.best.wait()
    self.interrupted.save(global_step, state, totals=totals)
    self.interrupted.wait()
    return self.interrupted.directory / str(global_step)

  def log_train_scalars(self, global_step: int, loss: float, accuracy: float,
                        learning_rate: float) -> None:
    """Training curves for TensorBoard: means over the steps since the last log."""
    if self.writer:
      self.writer.scalars(global_step, {'train/loss': loss, 'train/accuracy': accuracy,
                                        'train/learning_rate': learning_rate})

  def end_epoch(self, record: dict[str, Any], state: steps.TrainState,
                resumed_mid_epoch: bool, global_step: int) -> None:
    """Saves the epoch (and the best so far apart, which the rolling checkpoints may
    drop later), logs its test metrics to TensorBoard at `global_step` (the epoch's
    last) and rewrites metrics.json."""
    best = run_metrics.is_best(record, self.history)
    self.history.append(record)
    self.epochs.save(record['epoch'], state, record=record)
    if best:
      self.epochs.wait()  # Same step number: see Checkpointer.wait.
      self.best.save(record['epoch'], state, record=record)
    if jax.process_count() > 1:  # The next run's saves use the same step numbers.
      self.epochs.wait()
      self.best.wait()
    if resumed_mid_epoch:
      self.interrupted.delete_all()  # The epoch checkpoint supersedes it.
    if self.writer:
      self.writer.scalars(global_step, run_metrics.tensorboard_scalars(record))
      self.writer.flush()
    self.write_metrics()

  def fail(self, reason: str, epoch: int, step: int) -> None:
    self.facts['failed'] = {'reason': reason, 'epoch': epoch, 'step': step}
    self.write_metrics()

  def write_metrics(self) -> dict[str, Any]:
    """metrics.json (primary only) from the history and facts; returned everywhere."""
    return run_metrics.write_metrics(
        self.path / 'metrics.json' if self.primary else None, self.history,
        num_epochs=self.config['num_epochs'], **self.facts,
        wall_seconds_this_process=time.perf_counter() - self._wall_start)

  def close(self) -> None:
    """Waits for checkpoints still being written in the background."""
    for checkpointer in (self.epochs, self.best, self.interrupted):
      checkpointer.close()
    if self.writer:
      self.writer.close()
