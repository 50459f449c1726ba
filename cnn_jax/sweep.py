"""Sweeps: a grid of config overrides × seeds, each run trained in its own directory.

A grid is data (configs/*_sweep.py): a list of override dicts, one per configuration.
Every run lives in `<workdir>/<field=value,...,seed=N>/`, so rerunning a sweep skips
finished runs and resumes unfinished ones from their checkpoints.

Runs train in this process, one configuration after another, on every device
(`parallel.use_cpu_cores` makes each CPU core one): on the 2-core CI machine that
trained twice as fast as one process per core. With `vmap_seeds`, the seeds of a
configuration train together in one program (`train.train_seeds`). Several machines
share a sweep by running the same command with `shard=(i, n)` each, or on one shared
directory, where each run's lock keeps two processes from training it twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import pathlib
import shutil
from typing import Any, Callable, Iterable, Mapping, Sequence

import filelock
import ml_collections

from cnn_jax import errors, options, provenance, run_metrics, stats, tuning
from cnn_jax.errors import Interrupted, RunLockedError, WorkdirConflictError

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
  """One configuration of the grid trained with one seed (and the nuisance values
  tuned for that configuration, which its name leaves out)."""
  index: int  # The configuration's position in the grid.
  overrides: Mapping[str, Any]
  seed: int
  tuned: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def key(self) -> str:
    return config_key(self.overrides)

  @property
  def name(self) -> str:
    return f'{self.key},seed={self.seed}' if self.overrides else f'seed={self.seed}'

  def config(self, base: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict(base.to_dict())
    for field, value in {**self.overrides, **self.tuned, 'seed': self.seed}.items():
      config[field] = value
    return config


def plan(base: ml_collections.ConfigDict, grid: Sequence[Mapping[str, Any]],
         seeds: Iterable[int]) -> list[Run]:
  """Every (configuration, seed) pair, each config validated before anything trains."""
  if not grid:
    raise errors.ConfigError('the sweep grid is empty: expected a list of override dicts')
  seeds = list(seeds)
  if not seeds:
    raise errors.ConfigError('--seeds must be at least 1')
  runs, keys = [], set()
  for index, overrides in enumerate(grid):
    for field in overrides:
      if field not in options.FIELDS or field == 'seed':
        raise errors.ConfigError(
            f'the sweep grid sets {field!r}: expected config fields other than seed '
            f'({", ".join(sorted(set(options.FIELDS) - {"seed"}))})')
    key = config_key(overrides)
    if key in keys:
      raise errors.ConfigError(f'the sweep grid lists {key} twice')
    keys.add(key)
    for seed in seeds:
      run = Run(index, dict(overrides), seed)
      options.validate_config(run.config(base).to_dict())
      runs.append(run)
  return runs


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


LOCK_FILE = '.lock'
SWEEP_FILE_WAIT_SECONDS = 60  # Writing sweep.json takes milliseconds.


@contextlib.contextmanager
def _held(lock_file: pathlib.Path, timeout: float, busy: str):
  """Holds an exclusive file lock, waiting up to `timeout` s, else RunLockedError(`busy`).
  The OS drops it when the holder dies, even by kill -9, so a stale lock never blocks."""
  lock = filelock.FileLock(lock_file, timeout=timeout)
  try:
    lock.acquire()
  except filelock.Timeout:
    raise RunLockedError(busy) from None
  try:
    yield
  finally:
    lock.release()


def run_lock(run_dir: str | pathlib.Path):
  """Holds an exclusive lock on the run while it trains, so two sweep processes on one
  directory never train the same run twice."""
  return _held(pathlib.Path(run_dir) / LOCK_FILE, 0,
               f'{run_dir} is being trained by another process')


def run_sweep(name: str, base: ml_collections.ConfigDict, grid: Sequence[Mapping[str, Any]],
              baseline: Mapping[str, Any], seeds: Iterable[int],
              workdir: str | pathlib.Path, *, vmap_seeds: bool = False,
              shard: tuple[int, int] = (0, 1), restart_changed: bool = False,
              command: str = '', equivalence_margin: float = stats.EQUIVALENCE_MARGIN,
              progress: Callable[[str, dict[str, Any]], None] | None = None,
              search: tuning.Search | None = None,
              tuning_dir: str | pathlib.Path | None = None,
              strata: Sequence[str] = ()) -> list[Outcome]:
  """Trains every run of this shard not finished yet; returns what happened to each.

  `progress(kind, info)` hears 'start' (runs, pending, num_epochs, epochs_done; and
  tuning: True for a configuration's tuning runs),
  'epoch' (a run's epoch record),
  'run' (an Outcome) as they happen. A run that raises is recorded as failed and the
  others go on. `vmap_seeds`: the new runs of each configuration train together in one
  program; if that fails they train one by one, each resuming from its own checkpoints.
  `shard=(i, n)`: only configurations i, i + n, i + 2n, ... (all their seeds).
  Runs already in `workdir` trained with another effective config (another base config
  or override): WorkdirConflictError naming the fields, before anything is written;
  with `restart_changed`, those runs are deleted and trained again. `command`: the
  command line that started the sweep, kept in sweep.json for its results page.
  `search`: a nuisance field tuned for each configuration first (`cnn_jax.tuning`),
  its runs under `tuning_dir` (default <workdir>/tuning; a study shares one, so a
  configuration several sweeps hold is tuned once); the seeds then train at each
  configuration's chosen value, which sweep.json records with its tuning curve.
  `strata`: the fields of `grid` that are nuisance values every configuration trains
  at (`stratified`), recorded in sweep.json: the pages compare within each.
  """
  runs = [r for r in plan(base, grid, seeds) if r.index % shard[1] == shard[0]]
  workdir = pathlib.Path(workdir)
  notify = progress or (lambda kind, info: None)
  tuned = {}
  if search:
    if any(search.field in g for g in grid):
      raise errors.ConfigError(f'the sweep grid sets {search.field}, which its SEARCH tunes: '
                               'a field is either compared or tuned')
    check_changed(base, runs, workdir, restart_changed, ignore=(search.field,))
    where = pathlib.Path(tuning_dir or workdir / tuning.TUNING_DIR)
    for run in runs:
      if run.key not in tuned:
        tuned[run.key] = _tune(name, base, run.overrides, search, where, vmap_seeds,
                               restart_changed, notify)
    runs = [dataclasses.replace(r, tuned={search.field: tuned[r.key]['value']})
            for r in runs]
  check_changed(base, runs, workdir, restart_changed)
  workdir.mkdir(parents=True, exist_ok=True)
  # Shards on one folder each merge their configurations' tuning in: one at a time.
  lock_file = workdir / f'.{SWEEP_FILE}.lock'
  with _held(lock_file, SWEEP_FILE_WAIT_SECONDS,
             f'{lock_file} is still held by another process after '
             f'{SWEEP_FILE_WAIT_SECONDS} s: is a shard of this sweep stuck writing '
             'sweep.json?'):
    try:  # Another shard's configurations' tuning, kept.
      tuned = {**json.loads((workdir / SWEEP_FILE).read_text()).get('tuned', {}), **tuned}
    except (OSError, ValueError):
      pass
    (workdir / SWEEP_FILE).write_text(json.dumps({
        'name': name, 'grid': [dict(g) for g in grid],
        'baseline': config_key(baseline) if baseline else config_key(
            stratum(grid[0], strata)[0]),
        'seeds': sorted(set(seeds)), 'base_config': base.to_dict(), 'command': command,
        'code_version': provenance.code_version(),
        'packages': provenance.package_versions(), 'host': run_metrics.host_description(),
        'equivalence_margin': equivalence_margin, 'strata': list(strata),
        **({'search': search.describe(), 'tuned': tuned} if search else {})},
        indent=2, default=list) + '\n')
  _write_hparams_columns(workdir, grid)
  outcomes, pending = [], []
  for run in runs:
    run_dir = workdir / run.name
    run_dir.mkdir(exist_ok=True)
    (run_dir / RUN_FILE).write_text(json.dumps({
        'key': run.key, 'index': run.index, 'overrides': dict(run.overrides),
        'seed': run.seed, 'tuned': dict(run.tuned)}, indent=2, default=list) + '\n')
    if run_state(run_dir)[0] == 'done':
      outcomes.append(Outcome(run, 'skipped'))
    else:
      pending.append(run)
  # Seeds train together on one split only (split_seed='seed': each its own).
  together = vmap_seeds and base.split_seed != 'seed'
  groups = _seed_groups(pending, workdir) if together else [[r] for r in pending]
  notify('start', {'runs': runs, 'pending': pending, 'num_epochs': base.num_epochs,
                   'epochs_done': {r.name: run_state(workdir / r.name)[1] for r in pending}})
  # One configuration's set-up (data on the devices, model, compiled programs), kept
  # while its runs train: its next seed or group traces and compiles nothing again.
  kept, kept_for = {}, None
  for group in groups:
    if group[0].index != kept_for:
      kept, kept_for = {}, group[0].index
    # Ctrl-C / SIGTERM (Interrupted) stops the sweep, not just this run.
    for run, result in zip(group, _train_runs(base, group, workdir, notify, kept)):
      outcomes.append(Outcome(run, *result))
      notify('run', outcomes[-1])
  return outcomes


def _tune(name: str, base: ml_collections.ConfigDict, overrides: Mapping[str, Any],
          search: tuning.Search, tuning_dir: pathlib.Path, vmap_seeds: bool,
          restart_changed: bool, notify: Callable[[str, Any], None]) -> dict[str, Any]:
  """One configuration's nuisance value: its tuning runs trained (a sweep of their
  own), the grid grown while the best score sits at an edge; {'value', 'curve': [[value,
  mean best validation accuracy], ...]}."""
  tuning_base = ml_collections.ConfigDict(base.to_dict())
  tuning_base.update({**overrides, **search.overrides})
  # Named by what its runs train, whichever sweep asks: a configuration two sweeps
  # share (another name, the same network and data) is tuned once.
  shared = {k: v for k, v in tuning_base.to_dict().items() if k not in ('seed', search.field)
            and not (k in options.FIELDS and options.FIELDS[k].resumable)}
  folder = tuning_dir / hashlib.sha256(json.dumps(
      shared, sort_keys=True, default=list).encode()).hexdigest()[:12]
  values, curve = list(search.values), {}
  tuning_notify = lambda kind, info: notify(kind, {**info, 'tuning': True}
                                            if kind == 'start' else info)
  for extension in range(search.extend + 1):
    grid = [{search.field: v} for v in values]
    outcomes = run_sweep(f'{name} tuning {config_key(overrides)}', tuning_base, grid, {},
                         range(search.seeds), folder, vmap_seeds=vmap_seeds,
                         restart_changed=restart_changed, progress=tuning_notify)
    busy = [o.run.name for o in outcomes if o.status == 'skipped' and o.error]
    if busy:  # Scored half-trained, they could choose another value than their owner.
      raise RunLockedError(f"{folder}: tuning runs {', '.join(busy)} are being trained by "
                           'another process; rerun once they finish')
    curve = {v: tuning.score([folder / Run(i, g, s).name for s in range(search.seeds)])[0]
             for i, (v, g) in enumerate(zip(values, grid))}
    winner = tuning.choose(curve)
    more = tuning.grown(curve)
    if more == values or extension == search.extend:
      break
    values = more
  return {'value': winner, 'curve': [[v, curve[v]] for v in values]}


def _write_hparams_columns(workdir: pathlib.Path, grid: Sequence[Mapping[str, Any]]
                           ) -> None:
  """The HParams dashboard's columns for the whole sweep: the swept fields first."""
  if any(workdir.glob('events.out.tfevents.*')):
    return
  from cnn_jax import metric_writers  # pylint: disable=g-import-not-at-top
  swept = list(dict.fromkeys(field for overrides in grid for field in overrides))
  writer = metric_writers.SummaryWriter(str(workdir))
  writer.hparams_columns(metric_writers.hparam_names(swept, grouped=True))
  writer.close()


def check_changed(base: ml_collections.ConfigDict, runs: Sequence[Run],
                  workdir: pathlib.Path, restart: bool, ignore: Sequence[str] = ()) -> None:
  """WorkdirConflictError naming the fields if runs in `workdir` were trained with
  another effective config (`ignore`: fields not known yet, a tuned one); with
  `restart`, those runs are deleted instead."""
  changed = {run.name: [c for c in options.config_changes(
      workdir / run.name, run.config(base).to_dict()) if c.split(':')[0] not in ignore]
             for run in runs}
  changed = {name: changes for name, changes in changed.items() if changes}
  if not changed:
    return
  if not restart:
    fields = sorted({c for changes in changed.values() for c in changes})
    raise WorkdirConflictError(
        f'{workdir}: {len(changed)} of {len(runs)} runs were trained with another config '
        f'({"; ".join(fields)}); use another --workdir, or pass --restart_changed to '
        'train those runs again')
  for name in changed:
    with run_lock(workdir / name):
      for path in (workdir / name).iterdir():
        if path.is_dir():
          shutil.rmtree(path)
        elif path.name != LOCK_FILE:
          path.unlink()


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


def _train_runs(base: ml_collections.ConfigDict, group: list[Run],
                workdir: pathlib.Path, notify: Callable[[str, Any], None], kept: dict
                ) -> list[tuple[str, str]]:
  """(status, error) of each run: a group trained together, and if that fails (or
  for a single run) one after another."""
  if len(group) > 1:
    try:
      _train_together(base, group, workdir, notify, kept)
      return [('trained', '')] * len(group)
    except Interrupted:
      raise
    except RunLockedError:
      pass  # Some runs are another process's: train the rest one by one.
    except Exception as e:  # pylint: disable=broad-except
      from absl import logging  # pylint: disable=g-import-not-at-top
      logging.warning('Training seeds together failed (%s: %s); training them one by '
                      'one, each from its own checkpoints', type(e).__name__, e)
  results = []
  for run in group:
    try:
      _train_together(base, [run], workdir, notify, kept)
      results.append(('trained', ''))
    except RunLockedError as e:
      results.append(('skipped', str(e)))
    except Interrupted:
      raise
    except Exception as e:  # pylint: disable=broad-except
      results.append(('failed', f'{type(e).__name__}: {e}'))
  return results


def _train_together(base: ml_collections.ConfigDict, group: list[Run],
                    workdir: pathlib.Path, notify: Callable[[str, Any], None],
                    kept: dict) -> None:
  # Imported here: planning and reading results need no JAX.
  from absl import logging  # pylint: disable=g-import-not-at-top
  from cnn_jax import train  # pylint: disable=g-import-not-at-top
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)  # The sweep's progress display replaces it.
  try:
    run_dirs = [workdir / run.name for run in group]
    with contextlib.ExitStack() as locks:
      for run_dir in run_dirs:
        locks.enter_context(run_lock(run_dir))
      finished = [str(d) for d in run_dirs if run_state(d)[0] == 'done']
      if finished:
        raise RunLockedError(f'{", ".join(finished)} finished by another process '
                             'meanwhile')
      train.train_seeds(
          group[0].config(base), [run.seed for run in group], run_dirs, kept=kept,
          hparams_group=group[0].key, compared=list(group[0].overrides),
          on_epoch_end=lambda i, record, state: notify('epoch', {'run': group[i].name,
                                                                 **record}))
  finally:
    logging.set_verbosity(verbosity)


# --- Sweep config files. ---

def load_config_module(config_file: str) -> tuple[str, Any]:
  """(path, module) of a config file (a ':override' suffix dropped), for the names it
  declares beside get_config() (a sweep's GRID, a study's SWEEPS)."""
  path = config_file.split(':', 1)[0]
  spec = importlib.util.spec_from_file_location('_config_file', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return path, module


def load_grid(config_file: str) -> tuple[list[dict[str, Any]], dict[str, Any],
                                         tuning.Search | None, dict[str, list[Any]]]:
  """(grid, BASELINE, SEARCH, STRATA) declared in a sweep config file next to its
  get_config(): SEARCH the nuisance field each configuration is tuned on
  (`cnn_jax.tuning`); STRATA ({field: values}) the nuisance values every configuration
  of GRID trains at alike, so the grid returned is GRID × STRATA (`stratified`)."""
  path, module = load_config_module(config_file)
  grid = [dict(g) for g in getattr(module, 'GRID', ())]
  baseline = dict(getattr(module, 'BASELINE', {}))
  if baseline and config_key(baseline) not in {config_key(g) for g in grid}:
    raise errors.ConfigError(f'{path}: BASELINE {baseline} is not in GRID')
  search = tuning.Search.parse(getattr(module, 'SEARCH', None), f'{path}: SEARCH')
  strata = {k: list(v) for k, v in dict(getattr(module, 'STRATA', {})).items()}
  for field, values in strata.items():
    if (field not in options.FIELDS or field == 'seed' or any(field in g for g in grid)
        or (search and field == search.field) or not values):
      raise errors.ConfigError(
          f'{path}: STRATA[{field!r}]={values!r} is invalid: expected a config field '
          'that GRID and SEARCH leave alone (not seed), with >= 1 value')
  return stratified(grid, strata), baseline, search, strata


def stratified(grid: Sequence[Mapping[str, Any]], strata: Mapping[str, Sequence[Any]]
               ) -> list[dict[str, Any]]:
  """Each configuration of `grid` at every combination of the `strata` values: the
  nuisance values every arm of a comparison trains at alike (compared within each,
  `stratum`), so none of them can split the arms."""
  out = [dict(g) for g in grid]
  for field, values in strata.items():
    out = [{**g, field: v} for g in out for v in values]
  return out


def stratum(overrides: Mapping[str, Any], strata: Sequence[str]
            ) -> tuple[dict[str, Any], dict[str, Any]]:
  """(the configuration, its stratum): `overrides` split into the fields compared and
  the nuisance values (`strata` names) it trained at."""
  return ({k: v for k, v in overrides.items() if k not in strata},
          {k: v for k, v in overrides.items() if k in strata})
