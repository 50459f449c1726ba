"""Sweeps: a grid of config overrides × seeds, each run trained in its own directory.

A grid is data (configs/*_sweep.py): a list of override dicts, one per configuration.
Every run lives in `<workdir>/<field=value,...,seed=N>/`, so rerunning a sweep skips
finished runs and resumes unfinished ones from their checkpoints.

Runs train one after another in this process by default, which uses every core as an
XLA device (`parallel.use_cpu_cores`): on the 2-core CI machine that trained twice as
fast as one process per core pinned to it (`parallel=2`; measured in issue 4). With
`parallel` > 1, JAX is only imported inside the processes that train.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import dataclasses
import fcntl
import importlib.util
import json
import math
import multiprocessing
import os
import pathlib
import signal
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


def _init_worker(core_sets: Any, events: Any, parent: int) -> None:
  global _emit
  _emit = events.put
  # Linux: SIGTERM this worker when the sweep process dies, even by kill -9. An orphan
  # went on training (measured) and held its run's lock, so a rerun skipped that run.
  try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
  except (OSError, AttributeError):
    pass  # Not Linux: the worker outlives a killed sweep.
  if os.getppid() != parent:  # The sweep died before prctl took effect.
    os.kill(os.getpid(), signal.SIGTERM)
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


def _accelerated() -> bool:
  """Whether JAX has an accelerator plugin installed (asked without importing JAX)."""
  return any(importlib.util.find_spec(m) for m in (
      'jax_cuda12_plugin', 'jax_cuda13_plugin', 'jax_rocm7_plugin', 'libtpu'))


def default_vmap_seeds() -> bool:
  """Train a configuration's seeds together (`cnn_jax.seeds`) only with an accelerator:
  on XLA:CPU it measured slower than one seed after another."""
  return _accelerated()


def _core_sets(parallel: int) -> list[set[int]]:
  cores = sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else []
  if len(cores) < parallel:
    return [set()] * parallel  # Fewer cores than processes: leave placement to the OS.
  per = len(cores) // parallel
  return [set(cores[i * per:(i + 1) * per]) for i in range(parallel)]


def run_sweep(name: str, base: ml_collections.ConfigDict, grid: Sequence[Mapping[str, Any]],
              baseline: Mapping[str, Any], seeds: Iterable[int],
              workdir: str | pathlib.Path, *, parallel: int = 1, vmap_seeds: bool = False,
              progress: Callable[[str, dict[str, Any]], None] | None = None
              ) -> list[Outcome]:
  """Trains every run not finished yet; returns what happened to each run.

  `progress(kind, info)` hears 'start' (runs, pending), 'epoch' (a run's epoch record),
  'run' (an Outcome) as they happen. A run that raises is recorded as failed and the
  others go on. `vmap_seeds`: the new runs of each configuration train together in one
  program (`cnn_jax.seeds`); if that fails they train one by one, each resuming from
  its own checkpoints.
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
  groups = _seed_groups(pending, workdir) if vmap_seeds else [[r] for r in pending]
  notify('start', {'runs': runs, 'pending': pending,
                   'epochs_done': {r.name: run_state(workdir / r.name)[1] for r in pending},
                   'parallel': min(parallel, max(1, len(groups)))})

  def jobs(group: list[Run]) -> list[tuple[dict[str, Any], str, str, str]]:
    return [(run.config(base).to_dict(), str(workdir / run.name), run.key, run.name)
            for run in group]

  if parallel <= 1 or len(groups) <= 1:
    global _emit
    _emit = lambda event: notify('epoch', event)
    for group in groups:
      # Ctrl-C / SIGTERM (safety.Interrupted) stops the sweep, not just this run.
      for run, result in zip(group, _train_runs(jobs(group), vmap_seeds)):
        outcomes.append(Outcome(run, *result))
        notify('run', outcomes[-1])
    return outcomes
  return outcomes + _run_in_processes(groups, jobs, vmap_seeds, parallel, notify)


def _seed_groups(pending: list[Run], workdir: pathlib.Path) -> list[list[Run]]:
  """Pending runs grouped by configuration; runs that already trained an epoch or
  hold checkpoints stay alone (they resume on their own)."""
  groups: dict[int, list[Run]] = {}
  alone = []
  for run in pending:
    if run_state(workdir / run.name)[0] == 'new' and not any(
        (workdir / run.name / 'checkpoints').glob('*')):
      groups.setdefault(run.index, []).append(run)
    else:
      alone.append([run])
  return list(groups.values()) + alone


def _train_runs(jobs: list[tuple[dict[str, Any], str, str, str]], together: bool
                ) -> list[tuple[str, str]]:
  """(status, error) of each job: trained together if asked and there are several,
  else (or if that fails) one after another."""
  if together and len(jobs) > 1:
    try:
      _train_together(jobs)
      return [('trained', '')] * len(jobs)
    except safety.Interrupted:
      raise
    except Exception as e:  # pylint: disable=broad-except
      from absl import logging  # pylint: disable=g-import-not-at-top
      logging.warning('Training seeds together failed (%s: %s); training them one by '
                      'one, each from its own checkpoints', type(e).__name__, e)
  results = []
  for job in jobs:
    try:
      _train(*job)
      results.append(('trained', ''))
    except RunLockedError as e:
      results.append(('skipped', str(e)))
    except safety.Interrupted:
      raise
    except Exception as e:  # pylint: disable=broad-except
      results.append(('failed', f'{type(e).__name__}: {e}'))
  return results


def _train_together(jobs: list[tuple[dict[str, Any], str, str, str]]) -> None:
  from absl import logging  # pylint: disable=g-import-not-at-top
  from cnn_jax import seeds  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  with contextlib.ExitStack() as locks:
    for _, run_dir, _, _ in jobs:
      locks.enter_context(run_lock(run_dir))
    seeds.train_seeds(
        ml_collections.ConfigDict(jobs[0][0]), [config['seed'] for config, *_ in jobs],
        [run_dir for _, run_dir, _, _ in jobs], hparams_group=jobs[0][2],
        on_epoch_end=lambda i, record, state: _emit({'run': jobs[i][3], **record}))


def _run_in_processes(groups: list[list[Run]], jobs: Callable[[list[Run]], list],
                      together: bool, parallel: int, notify: Callable[[str, Any], None]
                      ) -> list[Outcome]:
  context = multiprocessing.get_context('spawn')  # JAX is not fork-safe.
  parallel = min(parallel, len(groups))
  core_sets, events = context.Queue(), context.Queue()
  for cores in _core_sets(parallel):
    core_sets.put(cores)
  outcomes = []
  with concurrent.futures.ProcessPoolExecutor(
      parallel, mp_context=context, initializer=_init_worker,
      initargs=(core_sets, events, os.getpid())) as pool:
    futures = {pool.submit(_train_runs, jobs(group), together): group for group in groups}
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
        group = futures[future]
        results = ([('failed', f'{type(error).__name__}: {error}')] * len(group) if error
                   else future.result())
        for run, result in zip(group, results):
          outcomes.append(Outcome(run, *result))
          notify('run', outcomes[-1])
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
