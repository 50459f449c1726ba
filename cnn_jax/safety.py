"""What keeps a run's work safe: a workdir never silently reused for another config, a
clean stop on SIGTERM/SIGINT, and a named error when the loss stops being finite."""

from __future__ import annotations

import json
import pathlib
import signal
import threading
from typing import Any, Mapping

from cnn_jax.options import ConfigError

# Fields that may change between the processes of one run: where data lives, how
# often to log, how many checkpoints to keep, the eval batch, steps per dispatch.
# Everything else changes what is computed (num_epochs too: it shapes the learning-rate
# schedule).
RESUMABLE_CHANGES = frozenset({'data_dir', 'manual_dir', 'log_every_steps',
                               'checkpoints_to_keep', 'eval_batch_size',
                               'steps_per_dispatch'})


class WorkdirConflictError(ConfigError):
  """The workdir holds a run of another configuration."""


class Interrupted(Exception):
  """Training stopped on a signal after saving a checkpoint to resume from."""


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or Inf."""


class CheckpointError(RuntimeError):
  """No checkpoint in a directory could be read (raised by `cnn_jax.checkpoints`;
  defined here so that entry points catch it without importing Orbax)."""


def config_changes(workdir: pathlib.Path, config: Mapping[str, Any]) -> list[str]:
  """'field: old there, new now' for each field that changes what workdir's run
  computes (see RESUMABLE_CHANGES); [] if workdir holds no config.json or the same.

  Compared after a JSON round trip (tuples become lists), so the same config written by
  another process compares equal.
  """
  path = workdir / 'config.json'
  if not path.exists():
    return []
  try:
    previous = json.loads(path.read_text())
  except ValueError:
    raise WorkdirConflictError(f'{path} is not valid JSON: fix or delete it, or use '
                               'another --workdir') from None
  current = json.loads(json.dumps(dict(config), default=list))
  changed = sorted(k for k in set(previous) | set(current)
                   if k not in RESUMABLE_CHANGES and previous.get(k) != current.get(k))
  return [f'{k}: {previous.get(k)!r} there, {current.get(k)!r} now' for k in changed]


def check_workdir_config(workdir: pathlib.Path, config: Mapping[str, Any],
                         allow_change: bool = False) -> None:
  """WorkdirConflictError if workdir/config.json describes another run."""
  if allow_change:
    return
  changes = config_changes(workdir, config)
  if changes:
    raise WorkdirConflictError(
        f'{workdir} holds a run of another configuration ({", ".join(changes)}); use '
        'another --workdir, or pass --allow_config_change to continue it with this one')


class StopSignal:
  """Within `with`, SIGTERM and SIGINT set `requested` instead of killing the process,
  so the training loop can finish its step and checkpoint. A second signal kills as
  usual. Only installed in the main thread (Python's rule for signal handlers)."""

  def __init__(self):
    self.requested: str | None = None
    self._previous = {}

  def __enter__(self) -> 'StopSignal':
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame) -> None:
    if self.requested:  # Second signal: stop now.
      signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
      signal.raise_signal(signum)
      return
    self.requested = signal.Signals(signum).name

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
