"""Orbax checkpoints of a TrainState, one per epoch, numbered by epoch."""

from __future__ import annotations

import pathlib

from flax.training import train_state
import jax
import orbax.checkpoint as ocp


BEST_DIR = 'best_checkpoint'  # In a run's workdir: the epoch with the best test accuracy.


def _tree(state: train_state.TrainState) -> dict:
  # apply_fn and tx are code, rebuilt from the config; only arrays are saved.
  return {'step': state.step, 'params': state.params, 'opt_state': state.opt_state}


class Checkpointer:
  """Saves after each epoch (keeping the last `keep`) and restores the latest."""

  def __init__(self, directory: str | pathlib.Path, keep: int):
    self._manager = ocp.CheckpointManager(
        pathlib.Path(directory).absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def latest_epoch(self) -> int | None:
    return self._manager.latest_step()

  def all_epochs(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, epoch: int, state: train_state.TrainState) -> None:
    """Starts writing in the background; the next save or `close` waits for it."""
    self._manager.save(epoch, args=ocp.args.StandardSave(_tree(state)))

  def restore(self, epoch: int, like: train_state.TrainState) -> train_state.TrainState:
    """The state saved at `epoch`, with `like`'s structure, shapes and code."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _tree(like))
    restored = self._manager.restore(epoch, args=ocp.args.StandardRestore(abstract))
    return like.replace(**restored)

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def load_for_inference(workdir: str | pathlib.Path, like: train_state.TrainState
                       ) -> tuple[train_state.TrainState, int, str]:
  """(state, epoch, which) from a run: its best checkpoint, else its latest one."""
  workdir = pathlib.Path(workdir)
  for which, directory in (('best', workdir / BEST_DIR), ('latest', workdir / 'checkpoints')):
    if directory.is_dir():
      checkpointer = Checkpointer(directory, keep=1)
      epoch = checkpointer.latest_epoch()
      if epoch is not None:
        state = checkpointer.restore(epoch, like)
        checkpointer.close()
        return state, epoch, which
  raise FileNotFoundError(f'{workdir} has no checkpoint: train it first with '
                          f'python -m experiments.train --workdir={workdir}')
