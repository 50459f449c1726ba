"""The study: the article's sweeps on one base config, trained in order, each run once.

The same configuration often appears in several sweeps (the article's network is every
sweep's baseline). Training depends on (config, seed) alone, bit for bit, so such a run
trains once, in the first sweep that has it, and later sweeps get a copy of its
directory. Rerunning resumes: finished runs are skipped, unfinished ones resume.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
from typing import Any, Callable, Mapping, Sequence

import ml_collections

from cnn_jax import errors, options, stats, sweep


@dataclasses.dataclass
class SweepPlan:
  name: str
  grid: list[dict[str, Any]]
  baseline: dict[str, Any]
  workdir: pathlib.Path
  runs: list[sweep.Run]


def plan(base: ml_collections.ConfigDict,
         sweeps: Sequence[tuple[str, list[dict[str, Any]], dict[str, Any]]],
         seeds: Sequence[int], workdir: str | pathlib.Path) -> list[SweepPlan]:
  """Each sweep's runs, in `workdir`/<name>; `sweeps`: (name, GRID, BASELINE) each."""
  if not sweeps:
    raise errors.ConfigError('the study names no sweeps: expected SWEEPS, e.g. '
                              "('dropout_sweep', 'padding_sweep')")
  return [SweepPlan(name, grid, baseline, pathlib.Path(workdir) / name,
                    sweep.plan(base, grid, seeds)) for name, grid, baseline in sweeps]


def _identity(config: ml_collections.ConfigDict) -> str:
  return json.dumps(config.to_dict(), sort_keys=True, default=list)


def first_homes(base: ml_collections.ConfigDict, plans: Sequence[SweepPlan]
                ) -> dict[str, pathlib.Path]:
  """For each distinct (config, seed): the run directory that trains it."""
  homes: dict[str, pathlib.Path] = {}
  for p in plans:
    for run in p.runs:
      homes.setdefault(_identity(run.config(base)), p.workdir / run.name)
  return homes


def epochs_left(base: ml_collections.ConfigDict, plans: Sequence[SweepPlan]) -> int:
  """Epochs the study still has to train (each distinct run counted once)."""
  states = [sweep.run_state(home) for home in first_homes(base, plans).values()]
  return sum(0 if state == 'done' else base.num_epochs - done for state, done in states)


def _copy_trained(base: ml_collections.ConfigDict, p: SweepPlan,
                  homes: Mapping[str, pathlib.Path]) -> None:
  """Copies into `p` its runs already finished in another sweep of the study."""
  for run in p.runs:
    home, target = homes[_identity(run.config(base))], p.workdir / run.name
    if (home != target and sweep.run_state(home)[0] == 'done'
        and sweep.run_state(target)[0] != 'done'):
      if target.exists():
        shutil.rmtree(target)
      shutil.copytree(home, target, ignore=shutil.ignore_patterns(sweep.LOCK_FILE))


def run_study(base: ml_collections.ConfigDict, plans: Sequence[SweepPlan],
              seeds: Sequence[int], *, vmap_seeds: bool = False,
              restart_changed: bool = False, command: str = '',
              equivalence_margin: float = stats.EQUIVALENCE_MARGIN,
              progress: Callable[[str, Any], None] | None = None
              ) -> dict[str, list[sweep.Outcome]]:
  """Trains every sweep of `plans` in order; returns each sweep's outcomes. Runs trained
  with another config stop the study before anything trains (`restart_changed`: they
  are trained again)."""
  for p in plans:  # Before anything trains.
    sweep.check_changed(base, p.runs, p.workdir, restart_changed)
  homes = first_homes(base, plans)
  outcomes = {}
  for p in plans:
    _copy_trained(base, p, homes)
    outcomes[p.name] = sweep.run_sweep(
        p.name, base, p.grid, p.baseline, seeds, p.workdir, vmap_seeds=vmap_seeds,
        command=command, equivalence_margin=equivalence_margin, progress=progress)
  return outcomes
