"""Orbax checkpoints of a TrainState: one per epoch, numbered by epoch; the best epoch
kept apart; and a mid-epoch one written when a run is stopped by a signal.

Orbax writes each checkpoint to a temporary directory and renames it when complete, so
a process killed mid-write leaves no checkpoint that looks finished; leftover temporary
directories are removed when the directory is opened again. Orbax does not checksum
the arrays, so each checkpoint's metadata carries a SHA-256 of what was saved, checked
on restore; and the epoch's record (its line of metrics.json), so the record is
durable exactly when the epoch is.
"""

from __future__ import annotations

import hashlib
import pathlib
from typing import Any

from absl import logging
from flax.training import train_state
import jax
import numpy as np
import orbax.checkpoint as ocp

from cnn_jax import parallel
from cnn_jax.safety import CheckpointError

BEST_DIR = 'best_checkpoint'  # In a run's workdir: the epoch with the best test accuracy.
INTERRUPTED_DIR = 'interrupted'  # Mid-epoch state of a run stopped by a signal.


class ShapeMismatchError(CheckpointError):
  """The checkpoints hold arrays of other shapes than the state to restore: another
  network, not damage (so older checkpoints are not tried)."""


def _tree(state: train_state.TrainState) -> dict:
  # apply_fn and tx are code, rebuilt from the config; only arrays are saved.
  return {'step': state.step, 'params': state.params, 'opt_state': state.opt_state}


def digest(tree: Any) -> str:
  """SHA-256 of a tree of (replicated) arrays: paths, dtypes, shapes and bytes."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_leaves_with_path(parallel.to_host(tree)):
    array = np.ascontiguousarray(leaf)
    h.update(f'{jax.tree_util.keystr(path)} {array.dtype} {array.shape}'.encode())
    h.update(array.tobytes())
  return h.hexdigest()


class Checkpointer:
  """Saves numbered checkpoints (keeping the last `keep`) and restores them."""

  def __init__(self, directory: str | pathlib.Path, keep: int):
    self.directory = pathlib.Path(directory).absolute()
    self._keep = keep
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        self.directory, item_handlers=ocp.StandardCheckpointHandler(),  # Metadata reads.
        options=ocp.CheckpointManagerOptions(max_to_keep=self._keep, create=True,
                                             cleanup_tmp_directories=True))

  def latest_epoch(self) -> int | None:
    return self._manager.latest_step()

  def all_epochs(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, epoch: int, state: train_state.TrainState,
           record: dict[str, Any] | None = None, **extra: Any) -> None:
    """Starts writing in the background; the next save or `close` waits for it.

    `record` (JSON) is kept in the checkpoint's metadata (see `record`); `extra` arrays
    (e.g. a partial epoch's running sums) are saved alongside the state. A checkpoint
    already numbered `epoch` (one that could not be read, since training went past
    it again) is replaced.
    """
    tree = {**_tree(state), **extra}
    if epoch in self._manager.all_steps():
      self._manager.delete(epoch)
    self._manager.save(epoch, args=ocp.args.StandardSave(tree),
                       custom_metadata={'sha256': digest(tree), 'record': record})

  def record(self, epoch: int) -> dict[str, Any] | None:
    """The record saved with checkpoint `epoch`, None if it has none or is unreadable."""
    try:
      return (self._manager.metadata(epoch).custom_metadata or {}).get('record')
    except Exception:  # pylint: disable=broad-except  # A damaged folder: no record.
      return None

  def restore(self, epoch: int, like: train_state.TrainState, **extra_like: Any
              ) -> train_state.TrainState | tuple[train_state.TrainState, dict]:
    """The state saved at `epoch`, with `like`'s structure, shapes, shardings and code;
    with `extra_like`, also the extra arrays: (state, extra)."""
    target = {**_tree(like), **extra_like}
    self._check_shapes(epoch, target)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = self._manager.restore(epoch, args=ocp.args.StandardRestore(abstract))
    expected = (self._manager.metadata(epoch).custom_metadata or {}).get('sha256')
    if expected and digest(restored) != expected:
      raise CheckpointError('its arrays differ from what was saved (SHA-256 mismatch)')
    state = like.replace(**{k: restored[k] for k in ('step', 'params', 'opt_state')})
    if extra_like:
      return state, {k: restored[k] for k in extra_like}
    return state

  def _check_shapes(self, epoch: int, target: Any) -> None:
    """ShapeMismatchError naming the first array whose saved shape differs from
    `target`'s; checked from the metadata, before Orbax reads (and fails on) the arrays."""
    try:
      saved = self._manager.item_metadata(epoch)
    except Exception:  # pylint: disable=broad-except  # Damaged metadata: restore says so.
      return
    if saved is None:
      return
    shapes = {jax.tree_util.keystr(path): tuple(leaf.shape)
              for path, leaf in jax.tree_util.tree_leaves_with_path(saved)
              if hasattr(leaf, 'shape')}
    for path, leaf in jax.tree_util.tree_leaves_with_path(target):
      key, shape = jax.tree_util.keystr(path), tuple(np.shape(leaf))
      if shapes.get(key, shape) != shape:
        raise ShapeMismatchError(f'{key} is {shapes[key]} there, {shape} now')

  def restore_latest_good(self, like: train_state.TrainState, **extra_like: Any
                          ) -> tuple[int, Any] | None:
    """(epoch, restore(...)) of the newest readable checkpoint, None if there is none.

    A checkpoint that fails to load (truncated or corrupt file) is reported with its
    path and the previous one is tried; if none loads, CheckpointError.
    """
    epochs = self.all_epochs()
    errors = []
    for epoch in reversed(epochs):
      try:
        return epoch, self.restore(epoch, like, **extra_like)
      except ShapeMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except  # Orbax/TensorStore errors vary.
        message = f'{self.directory / str(epoch)}: cannot be read ({type(e).__name__}: ' \
                  f'{str(e).splitlines()[0][:200] if str(e) else ""})'
        logging.error('Checkpoint %s; trying the one before it', message)
        errors.append(message)
        # A manager that failed on a damaged folder kept state that failed the next one.
        self._manager.close()
        self._manager = self._open()
    if errors:
      raise CheckpointError('no checkpoint could be read: ' + '; '.join(errors))
    return None

  def wait(self) -> None:
    """Waits for a save in flight. Orbax names its cross-process barriers by step alone,
    so two managers saving the same step at once collide in multi-process runs."""
    self._manager.wait_until_finished()

  def delete_all(self) -> None:
    for epoch in self.all_epochs():
      self._manager.delete(epoch)

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def load_for_inference(workdir: str | pathlib.Path, like: train_state.TrainState
                       ) -> tuple[train_state.TrainState, int, str]:
  """(state, epoch, which) from a run: its best checkpoint, else its latest one."""
  workdir = pathlib.Path(workdir)
  errors = []
  for which, directory in (('best', workdir / BEST_DIR), ('latest', workdir / 'checkpoints')):
    if directory.is_dir():
      checkpointer = Checkpointer(directory, keep=1)
      try:
        found = checkpointer.restore_latest_good(like)
      except CheckpointError as e:  # A damaged best checkpoint: the epochs may be intact.
        errors.append(str(e))
        continue
      finally:
        checkpointer.close()
      if found is not None:
        epoch, state = found
        return state, epoch, which
  if errors:
    raise CheckpointError('; '.join(errors))
  raise FileNotFoundError(f'{workdir} has no checkpoint: train it first with '
                          f'python -m experiments.train --workdir={workdir}')
