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
from cnn_jax import errors, stats, sweep, tuning


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


def plan(sweeps: Sequence[SweepSpec], workdir: str | pathlib.Path,
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
      home = p.workdir / run.name
      if homes.get(_identity(run.config(p.base), p.spec.search)) != home:
        continue
      state, done = sweep.run_state(home)
      left = 0 if state == 'done' else p.base.num_epochs - done
      epochs += left
      images += left * train_images(p.base)
  return epochs, images


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


def run_study(plans: Sequence[SweepPlan], *, vmap_seeds: bool = False, restart_changed: bool = False, command: str = '',
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
        tuning_dir=p.workdir.parent / tuning.TUNING_DIR)
  return outcomes
