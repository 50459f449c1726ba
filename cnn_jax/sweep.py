"""Sweeps: a grid of config overrides × seeds, each run trained in its own directory.

A grid is data (configs/*_sweep.py): a list of override dicts, one per configuration.
Every run lives in `<workdir>/<field=value,...,seed=N>/`, so rerunning a sweep skips
finished runs and resumes unfinished ones from their checkpoints.

On CPU, several runs train side by side, each process pinned to its own cores: one
process per core measured 1.65× the throughput of one process using both cores of the
2-core CI machine (XLA:CPU scales poorly across cores for a network this small).
JAX is only imported inside the processes that train.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import importlib.util
import json
import math
import multiprocessing
import os
import pathlib
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import ml_collections

from cnn_jax import options, safety

SWEEP_FILE = 'sweep.json'  # At the sweep root: grid, baseline, seeds.
RUN_FILE = 'run.json'  # In each run's directory: its overrides and seed.


def format_value(value: Any) -> str:
  """A value as it appears in a run's name (tuples as 32-64: no commas or slashes)."""
  if isinstance(value, (tuple, list)):
    return '-'.join(format_value(v) for v in value)
  return str(value).replace('/', '_').replace(',', '_')


def config_key(overrides: Mapping[str, Any]) -> str:
  """The name of one configuration: its overrides in grid order, or 'default'."""
  return ','.join(f'{k}={format_value(v)}' for k, v in overrides.items()) or 'default'


@dataclasses.dataclass(frozen=True)
class Run:
  """One configuration of the grid trained with one seed."""
  index: int  # The configuration's position in the grid.
  overrides: Mapping[str, Any]
  seed: int

  @property
  def key(self) -> str:
    return config_key(self.overrides)

  @property
  def name(self) -> str:
    return f'{self.key},seed={self.seed}' if self.overrides else f'seed={self.seed}'

  def config(self, base: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict(base.to_dict())
    for field, value in {**self.overrides, 'seed': self.seed}.items():
      config[field] = value
    return config


def plan(base: ml_collections.ConfigDict, grid: Sequence[Mapping[str, Any]],
         seeds: Iterable[int]) -> list[Run]:
  """Every (configuration, seed) pair, each config validated before anything trains."""
  if not grid:
    raise options.ConfigError('the sweep grid is empty: expected a list of override dicts')
  seeds = list(seeds)
  if not seeds:
    raise options.ConfigError('--seeds must be at least 1')
  runs, keys = [], set()
  for index, overrides in enumerate(grid):
    for field in overrides:
      if field not in options.FIELDS or field == 'seed':
        raise options.ConfigError(
            f'the sweep grid sets {field!r}: expected config fields other than seed '
            f'({", ".join(sorted(set(options.FIELDS) - {"seed"}))})')
    key = config_key(overrides)
    if key in keys:
      raise options.ConfigError(f'the sweep grid lists {key} twice')
    keys.add(key)
    for seed in seeds:
      run = Run(index, dict(overrides), seed)
      options.validate_config(run.config(base).to_dict())
      runs.append(run)
  return runs


def load_grid(config_file: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
  """(GRID, BASELINE) declared in a sweep config file next to its get_config()."""
  path = config_file.split(':', 1)[0]
  spec = importlib.util.spec_from_file_location('_sweep_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  grid = [dict(g) for g in getattr(module, 'GRID', ())]
  baseline = dict(getattr(module, 'BASELINE', {}))
  if baseline and config_key(baseline) not in {config_key(g) for g in grid}:
    raise options.ConfigError(f'{path}: BASELINE {baseline} is not in GRID')
  return grid, baseline


def run_state(run_dir: pathlib.Path) -> tuple[str, int]:
  """('done' | 'partial' | 'new', epochs finished) from the run's metrics.json."""
  try:
    metrics = json.loads((run_dir / 'metrics.json').read_text())
  except (OSError, ValueError):
    return 'new', 0
  done = len(metrics.get('history') or [])
  return ('done' if metrics.get('completed') else 'partial' if done else 'new'), done


@dataclasses.dataclass
class Outcome:
  run: Run
  status: str  # 'skipped' (finished before or by another process), 'trained', 'failed'.
  error: str = ''


# Where `_train` reports each epoch: the parent's queue in a worker process (set by
# _init_worker), the progress callback when training in this process.
_emit: Callable[[dict[str, Any]], None] = lambda event: None


def _init_worker(core_sets: Any, events: Any) -> None:
  global _emit
  _emit = events.put
  cores = core_sets.get()
  if cores and hasattr(os, 'sched_setaffinity'):
    os.sched_setaffinity(0, cores)


LOCK_FILE = '.lock'


class RunLockedError(RuntimeError):
  """Another process is training this run right now."""


@contextlib.contextmanager
def run_lock(run_dir: str | pathlib.Path):
  """Holds an exclusive lock on the run while it trains, so two sweep processes on one
  directory never train the same run twice. The OS drops it when the holder dies, even
  by kill -9, so a stale lock never blocks a rerun."""
  with open(pathlib.Path(run_dir) / LOCK_FILE, 'a') as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise RunLockedError(f'{run_dir} is being trained by another process') from None
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def _train(config_dict: dict[str, Any], run_dir: str, group: str, name: str) -> None:
  # Imported here: only the processes that train load JAX (and size its thread pool
  # after the worker has been pinned to its cores).
  from absl import logging  # pylint: disable=g-import-not-at-top
  from cnn_jax import train  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)  # The sweep's progress display replaces it.
  with run_lock(run_dir):
    if run_state(pathlib.Path(run_dir))[0] == 'done':
      raise RunLockedError(f'{run_dir} was finished by another process meanwhile')
    train.train_and_evaluate(
        ml_collections.ConfigDict(config_dict), run_dir, hparams_group=group,
        on_epoch_end=lambda record, state: _emit({'run': name, **record}))


def default_parallelism(num_runs: int) -> int:
  """Processes to train in: one per core on a CPU-only host, else 1 (one accelerator)."""
  accelerated = any(importlib.util.find_spec(m) for m in (
      'jax_cuda12_plugin', 'jax_cuda13_plugin', 'jax_rocm7_plugin', 'libtpu'))
  if accelerated:
    return 1
  cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (
      os.cpu_count() or 1)
  return max(1, min(cores, num_runs))


def _core_sets(parallel: int) -> list[set[int]]:
  cores = sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else []
  if len(cores) < parallel:
    return [set()] * parallel  # Fewer cores than processes: leave placement to the OS.
  per = len(cores) // parallel
  return [set(cores[i * per:(i + 1) * per]) for i in range(parallel)]


def run_sweep(name: str, base: ml_collections.ConfigDict, grid: Sequence[Mapping[str, Any]],
              baseline: Mapping[str, Any], seeds: Iterable[int],
              workdir: str | pathlib.Path, *, parallel: int = 1,
              progress: Callable[[str, dict[str, Any]], None] | None = None
              ) -> list[Outcome]:
  """Trains every run not finished yet; returns what happened to each run.

  `progress(kind, info)` hears 'start' (runs, pending), 'epoch' (a run's epoch record),
  'run' (an Outcome) as they happen. A run that raises is recorded as failed and the
  others go on.
  """
  runs = plan(base, grid, seeds)
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / SWEEP_FILE).write_text(json.dumps({
      'name': name, 'grid': [dict(g) for g in grid],
      'baseline': config_key(baseline) if baseline else config_key(grid[0]),
      'seeds': sorted({r.seed for r in runs}), 'base_config': base.to_dict()},
      indent=2, default=list) + '\n')
  notify = progress or (lambda kind, info: None)
  outcomes, pending = [], []
  for run in runs:
    run_dir = workdir / run.name
    run_dir.mkdir(exist_ok=True)
    (run_dir / RUN_FILE).write_text(json.dumps({
        'key': run.key, 'index': run.index, 'overrides': dict(run.overrides),
        'seed': run.seed}, indent=2, default=list) + '\n')
    if run_state(run_dir)[0] == 'done':
      outcomes.append(Outcome(run, 'skipped'))
    else:
      pending.append(run)
  notify('start', {'runs': runs, 'pending': pending,
                   'epochs_done': {r.name: run_state(workdir / r.name)[1] for r in pending},
                   'parallel': min(parallel, max(1, len(pending)))})

  def job(run: Run) -> tuple[dict[str, Any], str, str, str]:
    return run.config(base).to_dict(), str(workdir / run.name), run.key, run.name

  if parallel <= 1 or len(pending) <= 1:
    global _emit
    _emit = lambda event: notify('epoch', event)
    for run in pending:
      try:
        _train(*job(run))
        outcome = Outcome(run, 'trained')
      except RunLockedError as e:
        outcome = Outcome(run, 'skipped', str(e))
      except safety.Interrupted:
        raise  # Ctrl-C / SIGTERM stops the sweep, not just this run.
      except Exception as e:  # pylint: disable=broad-except
        outcome = Outcome(run, 'failed', f'{type(e).__name__}: {e}')
      outcomes.append(outcome)
      notify('run', outcome)
    return outcomes
  return outcomes + _run_in_processes(pending, job, parallel, notify)


def _run_in_processes(pending: list[Run], job: Callable[[Run], tuple], parallel: int,
                      notify: Callable[[str, Any], None]) -> list[Outcome]:
  context = multiprocessing.get_context('spawn')  # JAX is not fork-safe.
  parallel = min(parallel, len(pending))
  core_sets, events = context.Queue(), context.Queue()
  for cores in _core_sets(parallel):
    core_sets.put(cores)
  outcomes = []
  with concurrent.futures.ProcessPoolExecutor(
      parallel, mp_context=context, initializer=_init_worker,
      initargs=(core_sets, events)) as pool:
    futures = {pool.submit(_train, *job(run)): run for run in pending}
    remaining = set(futures)
    while remaining:
      done, remaining = concurrent.futures.wait(remaining, timeout=1.0)
      _drain(events, notify)
      for future in done:
        error = future.exception()
        if isinstance(error, safety.Interrupted):
          for pending_future in remaining:
            pending_future.cancel()
          raise error
        if isinstance(error, RunLockedError):
          outcome = Outcome(futures[future], 'skipped', str(error))
        else:
          outcome = Outcome(futures[future], 'failed' if error else 'trained',
                            f'{type(error).__name__}: {error}' if error else '')
        outcomes.append(outcome)
        notify('run', outcome)
  _drain(events, notify)
  return outcomes


def _drain(events: Any, notify: Callable[[str, Any], None]) -> None:
  while True:
    try:
      notify('epoch', events.get_nowait())
    except Exception:  # pylint: disable=broad-except  # queue.Empty, or closed.
      return


def eta_seconds(epochs_left: int, seconds_per_epoch: Sequence[float], parallel: int
                ) -> float:
  """Time to finish `epochs_left` epochs at the mean pace seen so far (NaN before any)."""
  if not seconds_per_epoch:
    return math.nan
  return epochs_left * (sum(seconds_per_epoch) / len(seconds_per_epoch)) / max(1, parallel)
