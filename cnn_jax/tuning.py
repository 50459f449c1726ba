"""Nuisance hyperparameters tuned per configuration, on validation, before a sweep's
seeds train: the Deep Learning Tuning Playbook's rule that what a sweep compares (its
scientific hyperparameters, the grid) is compared at each configuration's own best
value of what it does not (the nuisance ones, e.g. the learning rate).

A sweep config declares its search beside its GRID (`SEARCH`, read by `Search.parse`):
the field, a log grid of values, and how much each tuning run trains (fewer seeds, a
shorter budget). Each configuration's tuning runs train as a small sweep of their own
under `<workdir>/tuning/<configuration>/`; the value with the best mean validation
accuracy (each run read at its best epoch) is chosen, and while the best score sits at
an edge of the values tried (alone or tied) the grid grows by its own ratio past that
edge (at most `extend` times). Plain Python: reading a search's results needs no JAX.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any, Mapping, Sequence

from cnn_jax import errors, options, run_metrics

TUNING_DIR = 'tuning'  # Under the sweep's workdir: one folder per configuration.


@dataclasses.dataclass(frozen=True)
class Search:
  """One nuisance field searched over `values` (positive, increasing, a log grid) with
  `seeds` seeds per value and `overrides` (e.g. fewer epochs) on each tuning run."""
  field: str
  values: tuple[float, ...]
  seeds: int = 1
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  extend: int = 2  # Steps past an edge the winner may take the grid.

  @classmethod
  def parse(cls, spec: Mapping[str, Any] | None, where: str = 'SEARCH') -> Search | None:
    """A Search from a sweep config's SEARCH dict (None: no tuning), checked."""
    if not spec:
      return None
    unknown = set(spec) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
      raise errors.ConfigError(f'{where} has {sorted(unknown)}: expected field, values, '
                               'seeds, overrides, extend')
    search = cls(spec.get('field', ''), tuple(spec.get('values', ())),
                 spec.get('seeds', 1), dict(spec.get('overrides', {})),
                 spec.get('extend', 2))
    if search.field not in options.FIELDS or search.field == 'seed':
      raise errors.ConfigError(f'{where}.field={search.field!r} is invalid: expected a '
                               'config field other than seed, e.g. learning_rate')
    values = search.values
    if not values or any(not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0
                         for v in values) or list(values) != sorted(set(values)):
      raise errors.ConfigError(f'{where}.values={list(values)!r} is invalid: expected '
                               'positive numbers in increasing order, e.g. [1e-3, 3e-3, 1e-2]')
    if not isinstance(search.seeds, int) or isinstance(search.seeds, bool) or search.seeds < 1:
      raise errors.ConfigError(f'{where}.seeds={search.seeds!r} is invalid: expected an '
                               'integer >= 1')
    if not isinstance(search.extend, int) or search.extend < 0:
      raise errors.ConfigError(f'{where}.extend={search.extend!r} is invalid: expected an '
                               'integer >= 0')
    for field in search.overrides:
      if field not in options.FIELDS or field in ('seed', search.field):
        raise errors.ConfigError(f'{where}.overrides sets {field!r}: expected config '
                                 f'fields other than seed and {search.field}')
    return search

  def describe(self) -> dict[str, Any]:
    return dataclasses.asdict(self) | {'values': list(self.values)}


def grown(curve: Mapping[float, float]) -> list[float]:
  """The values of `curve` (value -> score) with one more past each edge whose score
  ties the best (by the grid's ratio there; ×10 for a single value), or as they were.
  A tie counts: a flat curve (e.g. every rate stuck at chance) has not bracketed the
  best value, so both edges grow."""
  values = sorted(curve)
  best = max(curve.values())
  low = values[1] / values[0] if len(values) > 1 else 10.0
  high = values[-1] / values[-2] if len(values) > 1 else 10.0
  return (([_round(values[0] / low)] if curve[values[0]] == best else []) + values
          + ([_round(values[-1] * high)] if curve[values[-1]] == best else []))


def chosen_text(tuned: Mapping[str, Any]) -> str:
  """One configuration's entry of sweep.json 'tuned' ({'value', 'curve'}) as the pages
  show it: its value, flagged where the best score still sits at an edge of the curve
  (the search stopped growing before it bracketed the best)."""
  curve = dict((v, score) for v, score in tuned['curve'])
  at_edge = len(curve) > 1 and grown(curve) != sorted(curve)
  return f"{tuned['value']:g}" + (' (at the edge)' if at_edge else '')


def _round(x: float) -> float:
  return float(f'{x:.3g}')  # 3e-3 × 3.33 prints as 0.01, not 0.009999.


def score(run_dirs: Sequence[pathlib.Path]) -> tuple[float, int]:
  """(mean best validation accuracy, runs counted) over tuning runs: a run that failed
  (e.g. a diverged loss) or trained no epoch counts as 0, the worst there is."""
  values = []
  for run_dir in run_dirs:
    try:
      metrics = json.loads((run_dir / 'metrics.json').read_text())
    except (OSError, ValueError):
      metrics = {}
    best = run_metrics.best_record(metrics.get('history') or [])
    ok = best and not metrics.get('failed') and math.isfinite(best['validation_accuracy'])
    values.append(best['validation_accuracy'] if ok else 0.0)
  return (sum(values) / len(values) if values else math.nan), len(values)


def choose(curve: Mapping[float, float]) -> float:
  """The value with the highest score; of equals, the one nearest the middle of the
  values (then the smaller), so an edge wins only when it is better."""
  values = sorted(curve)
  middle = (len(values) - 1) / 2
  return max(values, key=lambda v: (curve[v], -abs(values.index(v) - middle), -v))
