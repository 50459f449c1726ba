"""A run's checkpoints: one Orbax manager, numbered by global step.

An epoch's end and a stop by a signal are both saves of it. An epoch's end carries its
record (its line of metrics.json) and its validation accuracy as Orbax metrics; a stop
mid-epoch carries the epoch's running sums instead. Orbax's preservation policies keep
the newest checkpoint, the last `keep` epoch ends and the best epoch end.

Orbax writes each checkpoint to a temporary directory and renames it when complete, so
a process killed mid-write leaves no checkpoint that looks finished; leftover temporary
directories are removed when the directory is opened again. Orbax does not checksum
the arrays, so each checkpoint's metadata carries a SHA-256 of what was saved, checked
on restore.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
from typing import Any, Sequence

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from cnn_jax import parallel, run_metrics, steps
from cnn_jax.errors import CheckpointError, ShapeMismatchError

DIRECTORY = 'checkpoints'  # In a run's workdir.


def _tree(state: steps.TrainState) -> dict:
  """What a checkpoint holds of a state: its arrays (apply_fn and tx are code, rebuilt
  from the config), every model collection among them. `model_state` only where the
  model has one, so checkpoints written before it existed read as they are."""
  tree = {'step': state.step, 'params': state.params, 'opt_state': state.opt_state}
  if state.model_state:
    tree['model_state'] = state.model_state
  return tree


def _path_name(path: Sequence[Any]) -> str:
  """'opt_state/0/mu/conv1/kernel': a leaf's path, the same whether a tuple's entry is
  reached by attribute (the state) or by key (Orbax's metadata of it)."""
  return jax.tree_util.keystr(path, simple=True, separator='/')


def digest(tree: Any) -> str:
  """SHA-256 of a tree of (replicated) arrays: paths, dtypes, shapes and bytes."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_leaves_with_path(parallel.to_host(tree)):
    array = np.ascontiguousarray(leaf)
    h.update(f'{jax.tree_util.keystr(path)} {array.dtype} {array.shape}'.encode())
    h.update(array.tobytes())
  return h.hexdigest()


def _rank(metrics: dict[str, Any]) -> tuple[float, int]:
  # The checkpoint's Orbax metrics (validation accuracy, epoch) by the one rule.
  return run_metrics.best_rank({'validation_accuracy': metrics['accuracy'],
                                'epoch': metrics['epoch']})


@dataclasses.dataclass
class _EpochEnds(checkpoint_managers.PreservationPolicy):
  """`policy` decided over the epoch ends alone (the checkpoints with metrics): a stop's
  mid-epoch checkpoint is no epoch, and goes once it is not the newest."""
  policy: checkpoint_managers.PreservationPolicy

  def should_preserve(self, checkpoints: Sequence[Any], *, context: Any) -> list[bool]:
    ends = [i for i, c in enumerate(checkpoints) if c.metrics is not None]
    kept = self.policy.should_preserve([checkpoints[i] for i in ends], context=context)
    keep = {i for i, k in zip(ends, kept) if k}
    return [i in keep for i in range(len(checkpoints))]


class _Manager(ocp.CheckpointManager):
  """Orbax's manager, opening a directory in which a checkpoint's metrics file is
  damaged (Orbax raises, and then no checkpoint there can be read): that checkpoint
  counts as one without metrics, and restoring it reports the damage."""

  def metrics(self, step: int) -> Any:
    try:
      return super().metrics(step)
    except ValueError:  # Invalid JSON.
      return None


@dataclasses.dataclass(frozen=True)
class Found:
  """A restored checkpoint: its global step, state, and its record (an epoch's end) or
  the epoch's running sums (a stop mid-epoch)."""
  step: int
  state: steps.TrainState
  record: dict[str, Any] | None = None
  totals: Any = None
  # Running sums this code keeps that the checkpoint lacked (a metric added since):
  # they start at zero at the resume point.
  started: tuple[str, ...] = ()


class Checkpoints:
  """Saves and restores a run's checkpoints in `directory`."""

  def __init__(self, directory: str | pathlib.Path, keep: int):
    self.directory = pathlib.Path(directory).absolute()
    self._keep = keep
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    policy = checkpoint_managers.AnyPreservationPolicy([
        checkpoint_managers.LatestN(1),
        _EpochEnds(checkpoint_managers.AnyPreservationPolicy([
            checkpoint_managers.LatestN(self._keep),
            checkpoint_managers.BestN(get_metric_fn=_rank, n=1,
                                      keep_checkpoints_without_metrics=False)]))])
    return _Manager(
        self.directory, item_handlers=ocp.StandardCheckpointHandler(),  # Metadata reads.
        options=ocp.CheckpointManagerOptions(
            preservation_policy=policy, best_fn=_rank, create=True,
            cleanup_tmp_directories=True))

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: steps.TrainState, *,
           record: dict[str, Any] | None = None, totals: Any = None) -> None:
    """Starts writing in the background; the next save or `close` waits for it.

    An epoch's end gives its `record` (kept in the checkpoint's metadata, with its
    validation accuracy as the metric the best is chosen by); a stop mid-epoch gives the epoch's
    running sums, `totals`. A checkpoint already numbered `step` (one that could not be
    read, or a stop after the epoch's last step) is replaced.
    """
    tree = _tree(state) if totals is None else {**_tree(state), 'totals': totals}
    if step in self._manager.all_steps():
      self._manager.delete(step)
    metrics = record and {'accuracy': record['validation_accuracy'],
                          'epoch': record['epoch']}
    self._manager.save(step, args=ocp.args.StandardSave(tree), metrics=metrics,
                       custom_metadata={'sha256': digest(tree), 'record': record},
                       force=True)

  def record(self, step: int) -> dict[str, Any] | None:
    """The record saved with checkpoint `step`; None for a mid-epoch one, or if its
    metadata cannot be read."""
    try:
      return (self._manager.metadata(step).custom_metadata or {}).get('record')
    except Exception:  # pylint: disable=broad-except  # A damaged folder: no record.
      return None

  def best_step(self) -> int | None:
    """The epoch end with the best validation accuracy (the earliest of equals)."""
    return self._manager.best_step()

  def restore(self, step: int, like: steps.TrainState, totals_like: Any = None
              ) -> Found:
    """Checkpoint `step` with `like`'s structure, shapes, shardings and code; a
    mid-epoch one also restores its running sums, shaped like `totals_like`."""
    record = self.record(step)
    target = _tree(like)
    started, saved = (), None
    if record is None and totals_like is not None:
      saved = self._saved_totals(step)
      # A metric added or removed since the stop: the sums it holds, those alone.
      target['totals'] = {k: v for k, v in totals_like.items() if saved is None or k in saved}
      started = tuple(sorted(set(totals_like) - set(target['totals'])))
    self._check_shapes(step, target)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    expected = (self._manager.metadata(step).custom_metadata or {}).get('sha256')
    # Only what was saved is checked: a part left out (a metric removed) changes it.
    whole = 'totals' not in target or saved is None or set(target['totals']) == saved
    if expected and whole and digest(restored) != expected:
      raise CheckpointError('its arrays differ from what was saved (SHA-256 mismatch)')
    state = like.replace(**{k: v for k, v in restored.items() if k != 'totals'})
    totals = restored.get('totals')
    if totals is not None:
      totals = {k: totals.get(k, v) for k, v in totals_like.items()}
    return Found(step, state, record, totals, started)

  def _saved_totals(self, step: int) -> set[str] | None:
    """The running sums a mid-epoch checkpoint holds, by name (None: unknown)."""
    try:
      saved = self._manager.item_metadata(step)
    except Exception:  # pylint: disable=broad-except  # Damaged metadata: restore says so.
      return None
    totals = saved.get('totals') if saved is not None else None
    return set(totals) if totals is not None else None

  def _check_shapes(self, step: int, target: Any) -> None:
    """ShapeMismatchError naming the first array whose saved shape differs from
    `target`'s; checked from the metadata, before Orbax reads (and fails on) the arrays."""
    try:
      saved = self._manager.item_metadata(step)
    except Exception:  # pylint: disable=broad-except  # Damaged metadata: restore says so.
      return
    if saved is None:
      return
    shapes = {_path_name(path): tuple(leaf.shape)
              for path, leaf in jax.tree_util.tree_leaves_with_path(saved)
              if hasattr(leaf, 'shape')}
    wanted = {_path_name(path): tuple(np.shape(leaf))
              for path, leaf in jax.tree_util.tree_leaves_with_path(target)}
    state = lambda keys: sorted(k for k in keys if not k.startswith('totals/'))
    # A model variable added since (a BatchNorm, say) or gone: never a silent default.
    for names, says in ((state(wanted.keys() - shapes), 'lacks {}, which the model has'),
                        (state(shapes.keys() - wanted), 'holds {}, which the model does not have')):
      if names:
        more = f' (and {len(names) - 1} more)' if len(names) > 1 else ''
        raise ShapeMismatchError('it ' + says.format(names[0]) + more)
    # The parameters first: the optimizer's arrays only repeat their shapes.
    for key, shape in sorted(wanted.items(), key=lambda kv: not kv[0].startswith('params/')):
      if shapes.get(key, shape) != shape:
        raise ShapeMismatchError(f'{key} is {shapes[key]} there, {shape} now')

  def restore_latest_good(self, like: steps.TrainState, totals_like: Any = None,
                          candidates: Sequence[int] | None = None) -> Found | None:
    """The newest readable of `candidates` (default: all), None if there are none.

    A checkpoint that fails to load (truncated or corrupt file) is reported with its
    path and the one before it is tried; if none loads, CheckpointError.
    """
    errors = []
    for step in sorted(self.steps() if candidates is None else candidates, reverse=True):
      try:
        return self.restore(step, like, totals_like)
      except ShapeMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except  # Orbax/TensorStore errors vary.
        message = f'{self.directory / str(step)}: cannot be read ({type(e).__name__}: ' \
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
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def load_for_inference(workdir: str | pathlib.Path, like: steps.TrainState
                       ) -> tuple[steps.TrainState, int, str]:
  """(state, epoch, which) from a run: its best epoch, else its newest readable epoch
  ('best' or 'latest')."""
  workdir = pathlib.Path(workdir)
  if not (workdir / DIRECTORY).is_dir():
    raise FileNotFoundError(f'{workdir} has no checkpoint: train it first with '
                            f'python -m experiments.train --workdir={workdir}')
  checkpoints = Checkpoints(workdir / DIRECTORY, keep=1)
  try:
    best = checkpoints.best_step()
    ends = [s for s in checkpoints.steps() if checkpoints.record(s)]
    errors = []
    for which, candidates in (('best', [best] if best is not None else []),
                         ('latest', [s for s in ends if s != best])):
      try:
        found = checkpoints.restore_latest_good(like, candidates=candidates)
      except CheckpointError as e:  # A damaged best: the other epochs may be intact.
        errors.append(str(e))
        continue
      if found is not None:
        return found.state, found.record['epoch'], which
  finally:
    checkpoints.close()
  if errors:
    raise CheckpointError('; '.join(errors))
  raise FileNotFoundError(f'{workdir} has no checkpoint of a whole epoch: train it with '
                          f'python -m experiments.train --workdir={workdir}')
