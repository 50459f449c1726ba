"""The study: the article's sweeps, each in its own regime (its config: data size,
epochs), trained in order, each run once.

The same configuration often appears in several sweeps (the article's network is every
sweep's baseline). Training depends on (config, seed) alone, bit for bit, so such a run
trains once, in the first sweep that has it, and later sweeps get a copy of its
directory; a configuration's nuisance search is shared the same way. Rerunning
resumes: finished runs are skipped, unfinished ones resume.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
from typing import Any, Callable, Mapping, Sequence

import ml_collections

from cnn_jax import claims as claims_lib
from cnn_jax import errors, geometry, options, stats, sweep, tuning


@dataclasses.dataclass
class SweepSpec:
  """One sweep of a study: its grid, baseline, nuisance search, base config (its
  regime: data size, epochs) and seeds per configuration."""
  name: str
  grid: list[dict[str, Any]]
  baseline: dict[str, Any]
  search: tuning.Search | None
  base: ml_collections.ConfigDict
  seeds: int
  strata: dict[str, list[Any]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Study:
  """What a study config declares (configs/study.py)."""
  sweeps: list[SweepSpec]
  seeds: int  # Each sweep's unless it declares its own (SWEEP_SEEDS).
  margin: float
  claims: Sequence[claims_lib.Claim] = ()


@dataclasses.dataclass
class SweepPlan:
  spec: SweepSpec
  workdir: pathlib.Path
  seeds: range
  runs: list[sweep.Run]

  @property
  def name(self) -> str:
    return self.spec.name

  @property
  def base(self) -> ml_collections.ConfigDict:
    return self.spec.base


def plan_sweeps(sweeps: Sequence[SweepSpec], workdir: str | pathlib.Path,
         seeds: int | None = None) -> list[SweepPlan]:
  """Each sweep's runs, in `workdir`/<name>: seeds 0 .. its own count - 1 (`seeds`:
  that many in every sweep)."""
  if not sweeps:
    raise errors.ConfigError('the study names no sweeps: expected SWEEPS, e.g. '
                              "('dropout_sweep', 'padding_sweep')")
  plans = []
  for s in sweeps:
    own = range(s.seeds if seeds is None else seeds)
    plans.append(SweepPlan(s, pathlib.Path(workdir) / s.name, own,
                           sweep.plan(s.base, s.grid, own)))
  return plans


def _identity(config: ml_collections.ConfigDict, search: tuning.Search | None) -> str:
  return json.dumps([config.to_dict(), search and search.describe()], sort_keys=True,
                    default=list)


def first_homes(plans: Sequence[SweepPlan]) -> dict[str, pathlib.Path]:
  """For each distinct (config, seed): the run directory that trains it. (A tuned
  field is part of neither: the same configuration is tuned to the same value.)"""
  homes: dict[str, pathlib.Path] = {}
  for p in plans:
    for run in p.runs:
      homes.setdefault(_identity(run.config(p.base), p.spec.search), p.workdir / run.name)
  return homes


def work_left(plans: Sequence[SweepPlan]) -> tuple[int, int]:
  """(epochs, images) the study still has to train, each distinct run counted once;
  tuning runs not included."""
  epochs = images = 0
  homes = first_homes(plans)
  for p in plans:
    for run in p.runs:
      home, config = p.workdir / run.name, run.config(p.base)
      if homes.get(_identity(config, p.spec.search)) != home:
        continue
      state, done = sweep.run_state(home)
      left = 0 if state == 'done' else config.num_epochs - done  # A grid may set it.
      epochs += left
      images += left * train_images(config)
  return epochs, images


@dataclasses.dataclass(frozen=True)
class CostModel:
  """What a study costs on one machine, per unit of work, for `--estimate`: training
  examples and evaluated images per second, and seconds per run (its set-up and data,
  writing, the final test's restore) and per epoch, per set-up (a configuration's
  programs traced and compiled, or read from the compilation cache), and to start the
  process. Calibrated on a measured study
  (CPU_2_CORES: the README says how close it came)."""
  train_examples_per_second: float
  eval_images_per_second: float
  seconds_per_run: float
  seconds_per_epoch: float  # Each epoch's end: its checkpoint, metrics.json, the logs.
  seconds_per_setup: float
  start_seconds: float

  def run_seconds(self, config: Mapping[str, Any], epochs: int) -> tuple[float, float]:
    """(training, evaluation) seconds of `epochs` epochs of one run of `config`, and
    its final test on the checkpoint validation chose."""
    batch, eval_batch = config['batch_size'], config['eval_batch_size']
    up = lambda n: -(-n // eval_batch) * eval_batch  # Evaluation runs whole batches.
    tests = (config['max_test_examples'] or MNIST_TEST_IMAGES) * (
        1 + bool(config['test_shift_pixels']) + 4 * config['shift_curve_pixels'])
    per_epoch = config['validation_examples'] + min(
        config['train_eval_examples'], train_images(config)) + (
        tests if config['test_every_epoch'] else 0)
    trained = train_images(config) // batch * batch
    # Calibrated on the article's network; another costs in proportion to its compute.
    scale = _multiply_adds(config) / _multiply_adds(options.default_config().to_dict())
    return (scale * epochs * trained / self.train_examples_per_second,
            scale * (epochs * up(per_epoch) + (0 if config['test_every_epoch']
                                               else up(tests))) / self.eval_images_per_second)


def _multiply_adds(config: Mapping[str, Any]) -> int:
  from cnn_jax import models  # pylint: disable=g-import-not-at-top  # JAX, only here.
  return geometry.count_multiply_adds(models.layer_table(dict(config), (28, 28, 1), 10))


MNIST_TEST_IMAGES = 10_000
# Fitted on the 2-core CPU machine, Python 3.11, the lock, to three measured commands
# (README, The study): the mission's dropout_sweep (40 runs of 10 epochs, 12:48), the
# learning curve (100 runs of 2-50 epochs, 43:14) and the whole study (53:55); an
# Orbax save took 0.14 s of each epoch's end in a profile.
CPU_2_CORES = CostModel(train_examples_per_second=1_560.0, eval_images_per_second=7_300.0,
                        seconds_per_run=1.0, seconds_per_epoch=0.15,
                        seconds_per_setup=3.0, start_seconds=15.0)


def cost(plans: Sequence[SweepPlan], model: CostModel = CPU_2_CORES
         ) -> dict[str, float]:
  """Seconds the study still needs, by part: training, evaluation, runs (set-up and
  writing), set-ups (compiling), tuning (each configuration's first search grid, at
  its budget) and the process start; each distinct run counted once, finished ones
  not at all."""
  parts = dict.fromkeys(('training', 'evaluation', 'runs', 'set-ups', 'tuning'), 0.0)
  homes, setups = first_homes(plans), set()
  for p in plans:
    for run in p.runs:
      home = p.workdir / run.name
      config = run.config(p.base)
      if homes.get(_identity(config, p.spec.search)) != home:
        continue
      state, done = sweep.run_state(home)
      if state == 'done':
        continue
      train_s, eval_s = model.run_seconds(config, config.num_epochs - done)
      parts['training'] += train_s
      parts['evaluation'] += eval_s
      parts['runs'] += model.seconds_per_run + (
          config.num_epochs - done) * model.seconds_per_epoch
      setups.add(json.dumps({k: v for k, v in config.to_dict().items() if k != 'seed'},
                            sort_keys=True, default=list))
    if p.spec.search:
      for key in {run.key: run for run in p.runs}.values():
        config = key.config(p.base)
        config.update(p.spec.search.overrides)
        each = (sum(model.run_seconds(config, config.num_epochs)) + model.seconds_per_run
                + config.num_epochs * model.seconds_per_epoch)
        parts['tuning'] += each * len(p.spec.search.values) * p.spec.search.seeds
  parts['set-ups'] = len(setups) * model.seconds_per_setup
  parts['start'] = model.start_seconds
  return parts


def estimate_text(plans: Sequence[SweepPlan], model: CostModel = CPU_2_CORES,
                  speed_from: str = '') -> str:
  """What is left to train and how long it should take on `model`'s machine, by part;
  `speed_from`: where its training speed came from, if not the calibration."""
  epochs, images = work_left(plans)
  parts = cost(plans, model)
  distinct = len(first_homes(plans))
  low, high = min(len(p.seeds) for p in plans), max(len(p.seeds) for p in plans)
  seeds = f'{low}' if low == high else f'{low}–{high}'
  return (f'{distinct} distinct runs ({seeds} seeds), {epochs} epochs left to '
          f'train: {images:,} images at {model.train_examples_per_second:,.0f} ex/s'
          f'{f" ({speed_from})" if speed_from else ""}; ≈ {sum(parts.values()) / 60:.0f} min in all: '
          + ', '.join(f'{name} {seconds / 60:.1f}' for name, seconds in parts.items())
          + ' min (cnn_jax.study.CPU_2_CORES, calibrated on the 2-core machine; early '
          'stopping can end runs sooner)')


def train_images(config: Mapping[str, Any]) -> int:
  """Images an epoch trains on (MNIST's 60,000 less those held out, or fewer)."""
  return config['max_train_examples'] or 60_000 - config['validation_examples']


def _copy_trained(p: SweepPlan, homes: Mapping[str, pathlib.Path]) -> None:
  """Copies into `p` its runs already finished in another sweep of the study."""
  for run in p.runs:
    home, target = homes[_identity(run.config(p.base), p.spec.search)], p.workdir / run.name
    if (home != target and sweep.run_state(home)[0] == 'done'
        and sweep.run_state(target)[0] != 'done'):
      if target.exists():
        shutil.rmtree(target)
      shutil.copytree(home, target, ignore=shutil.ignore_patterns(sweep.LOCK_FILE))


def run_study(plans: Sequence[SweepPlan], *, vmap_seeds: bool = False,
              restart_changed: bool = False, command: str = '',
              equivalence_margin: float = stats.EQUIVALENCE_MARGIN,
              progress: Callable[[str, Any], None] | None = None
              ) -> dict[str, list[sweep.Outcome]]:
  """Trains every sweep of `plans` in order (each tuned first where it has a search,
  tuning runs shared under <workdir>/tuning); returns each sweep's outcomes. Runs
  trained with another config stop the study before anything trains
  (`restart_changed`: they are trained again)."""
  for p in plans:  # Before anything trains.
    sweep.check_changed(p.base, p.runs, p.workdir, restart_changed,
                        ignore=(p.spec.search.field,) if p.spec.search else ())
  homes = first_homes(plans)
  outcomes = {}
  for p in plans:
    _copy_trained(p, homes)
    outcomes[p.name] = sweep.run_sweep(
        p.name, p.base, p.spec.grid, p.spec.baseline, p.seeds, p.workdir,
        vmap_seeds=vmap_seeds, restart_changed=restart_changed, command=command,
        equivalence_margin=equivalence_margin,
        progress=progress, search=p.spec.search,
        tuning_dir=p.workdir.parent / tuning.TUNING_DIR, strata=list(p.spec.strata))
  return outcomes


# --- Study config files. ---

def load_study(config_file: str, config: ml_collections.ConfigDict | None = None
               ) -> Study:
  """The study a config file declares: the sweeps it names in SWEEPS (configs/<name>.py
  beside it: GRID, BASELINE, SEARCH, and get_config(), the sweep's own regime), its
  SEEDS (SWEEP_SEEDS: {sweep: seeds} where one has its own), EQUIVALENCE_MARGIN and
  CLAIMS. Each sweep trains on its own get_config() (the study file's where it has
  none), passed through the study file's adapt(config) if it has one (a profile: more
  epochs, early stopping), then changed as `config` (the study's config as the command
  line left it) changes the study file's get_config(): --config.num_epochs=2 applies
  to every sweep."""
  path, module = sweep.load_config_module(config_file)
  seeds = getattr(module, 'SEEDS', 5)
  if not isinstance(seeds, int) or seeds < 1:
    raise errors.ConfigError(f'{path}: SEEDS={seeds!r} is invalid: expected an integer '
                             '>= 1')
  margin = getattr(module, 'EQUIVALENCE_MARGIN', stats.EQUIVALENCE_MARGIN)
  if not isinstance(margin, float) or not 0 < margin < 1:
    raise errors.ConfigError(f'{path}: EQUIVALENCE_MARGIN={margin!r} is invalid: expected '
                             'a fraction of accuracy, e.g. 0.001 for ±0.10 pp')
  own_seeds = getattr(module, 'SWEEP_SEEDS', {})
  names = getattr(module, 'SWEEPS', ())
  if not isinstance(own_seeds, dict):
    raise errors.ConfigError(f'{path}: SWEEP_SEEDS={own_seeds!r} is invalid: expected a '
                             "dict {sweep: seeds}, e.g. {'mlp_vs_cnn': 4}")
  for name, count in own_seeds.items():
    if (name not in names or not isinstance(count, int) or isinstance(count, bool)
        or count < 1):
      raise errors.ConfigError(f'{path}: SWEEP_SEEDS[{name!r}]={count!r} is invalid: '
                               'expected a sweep of SWEEPS and an integer >= 1')
  own = module.get_config()
  changed = {k: v for k, v in (config or own).items() if own.get(k) != v}
  sweeps = []
  for name in names:
    sweep_file = pathlib.Path(path).resolve().parent / f'{name}.py'
    if not sweep_file.exists():
      raise errors.ConfigError(f'the study names sweep {name!r}, but {sweep_file} does '
                               'not exist')
    grid, baseline, search, strata = sweep.load_grid(str(sweep_file))
    _, sweep_module = sweep.load_config_module(str(sweep_file))
    base = (sweep_module.get_config() if hasattr(sweep_module, 'get_config')
            else module.get_config())
    base = getattr(module, 'adapt', lambda c: c)(base)
    base.update(changed)
    options.validate_config(base.to_dict())
    sweeps.append(SweepSpec(name, grid, baseline, search, base, own_seeds.get(name, seeds),
                            strata))
  return Study(sweeps, seeds, margin,
               _checked_claims(getattr(module, 'CLAIMS', ()), sweeps, path))


def _checked_claims(specs: Sequence[Any], sweeps: Sequence[SweepSpec], path: str
                    ) -> list[claims_lib.Claim]:
  """CLAIMS parsed, each naming a sweep of the study and configurations of its grid
  (less its STRATA), each family within one sweep (so a sweep's page tests its claims
  as the REPORT does): checked before any run, not hours later when the report finds
  nothing to test."""
  grids = {s.name: [sweep.stratum(g, s.strata)[0] for g in s.grid] for s in sweeps}
  parsed = [claims_lib.Claim.parse(spec, f'{path}: CLAIMS') for spec in specs]
  homes: dict[str, str] = {}
  for claim in parsed:
    if homes.setdefault(claim.family, claim.sweep) != claim.sweep:
      raise errors.ConfigError(f'{path}: CLAIMS entry {claim.text!r}: family '
                               f'{claim.family!r} is in {homes[claim.family]} too: expected '
                               'a family within one sweep')
    if claim.sweep not in grids:
      raise errors.ConfigError(f'{path}: CLAIMS entry {claim.text!r}: '
                               f'sweep={claim.sweep!r} is not in SWEEPS: expected one of '
                               f"{', '.join(grids)}")
    for _, overrides in claim.contrast:
      if not any(claims_lib.same_overrides(g, overrides) for g in grids[claim.sweep]):
        raise errors.ConfigError(f'{path}: CLAIMS entry {claim.text!r}: {overrides} is '
                                 f'not in the GRID of {claim.sweep}')
  return parsed
