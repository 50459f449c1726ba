"""The article's claims as a study declares them (configs/study.py CLAIMS), tested on the
sweeps' raw data.

A claim contrasts configurations of one sweep with weights (a comparison: +1 and −1; an
interaction: four terms), on one metric read at each run's best validation epoch (a
list of metrics: their mean), paired by seed. Declared before the runs: the direction
the article claims ('higher', 'lower' or 'equivalent'), the smallest effect of
interest, and the family Holm's correction runs over. Plain Python and scipy.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Mapping, Sequence

from cnn_jax import errors, options, stats

EXPECTATIONS = ('higher', 'lower', 'equivalent')


def same_overrides(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
  norm = lambda d: json.dumps(dict(d), sort_keys=True, default=list)
  return norm(a) == norm(b)


@dataclasses.dataclass(frozen=True)
class Claim:
  text: str
  sweep: str
  contrast: tuple[tuple[float, Mapping[str, Any]], ...]
  metric: tuple[str, ...]  # Averaged where several.
  expect: str
  effect: float
  family: str

  @classmethod
  def parse(cls, spec: Mapping[str, Any], where: str = 'CLAIMS') -> Claim:
    """A Claim from one CLAIMS entry, checked: errors name the entry and the key."""
    keys = {'claim', 'sweep', 'contrast', 'metric', 'expect', 'effect', 'family'}
    name = f"{where} entry {spec.get('claim', '?')!r}"
    if set(spec) != keys:
      raise errors.ConfigError(f'{name} has keys {sorted(spec)}: expected {sorted(keys)}')
    contrast = tuple((float(w), dict(o)) for w, o in spec['contrast'])
    if len(contrast) < 2 or abs(sum(w for w, _ in contrast)) > 1e-9:
      raise errors.ConfigError(f'{name}: contrast={spec["contrast"]!r} is invalid: '
                               'expected ≥ 2 (weight, overrides) pairs whose weights sum '
                               'to 0, e.g. [(1, {...}), (-1, {...})]')
    for _, overrides in contrast:
      unknown = set(overrides) - set(options.FIELDS)
      if unknown:
        raise errors.ConfigError(f'{name}: contrast sets {sorted(unknown)}: not config '
                                 'fields')
    metric = (spec['metric'],) if isinstance(spec['metric'], str) else tuple(spec['metric'])
    if spec['expect'] not in EXPECTATIONS:
      raise errors.ConfigError(f"{name}: expect={spec['expect']!r} is invalid: expected "
                               f"one of {', '.join(EXPECTATIONS)}")
    if not isinstance(spec['effect'], float) or not spec['effect'] > 0:
      raise errors.ConfigError(f"{name}: effect={spec['effect']!r} is invalid: expected "
                               'a positive number in the metric\'s units (0.005: 0.5 pp)')
    return cls(spec['claim'], spec['sweep'], contrast, metric, spec['expect'],
               spec['effect'], spec['family'])

  @property
  def metric_text(self) -> str:
    if len(self.metric) == 1:
      return self.metric[0]
    return f'mean of {len(self.metric)}: {self.metric[0]} … {self.metric[-1]}'


@dataclasses.dataclass
class Result:
  """A claim tested: the per-seed contrast, its paired statistics and the verdict."""
  claim: Claim
  missing: str = ''  # What the raw data lacks, if the claim could not be tested.
  seeds: list[int] = dataclasses.field(default_factory=list)
  values: list[float] = dataclasses.field(default_factory=list)
  test: stats.Paired | None = None
  holm_p: float = math.nan
  holm_p_equivalence: float = math.nan
  family_size: int = 0
  verdict: str = ''
  kind: str = ''  # holds | does not hold | inconclusive | not run


def contrast_values(claim: Claim, runs: Sequence[Any]) -> tuple[list[int], list[float], str]:
  """(seeds, the contrast per seed, what is missing) from a sweep's runs
  (`results.Run`), each read at its best validation epoch; only seeds every term has."""
  terms = []
  for weight, overrides in claim.contrast:
    found = {r.seed: r for r in runs if same_overrides(r.overrides, overrides) and r.completed
             and r.history}
    if not found:
      return [], [], f'no finished run of {overrides} in {claim.sweep}'
    terms.append((weight, found))
  seeds = sorted(set.intersection(*(set(found) for _, found in terms)))
  values = []
  for seed in seeds:
    total = 0.0
    for weight, found in terms:
      best = found[seed].best
      total += weight * sum(best.get(m, math.nan) for m in claim.metric) / len(claim.metric)
    values.append(total)
  if any(math.isnan(v) for v in values):
    return seeds, values, f'{claim.metric_text} is not in the raw data'
  return seeds, values, ''


def evaluate(claims: Sequence[Claim], runs_by_sweep: Mapping[str, Sequence[Any]],
             alpha: float = stats.ALPHA) -> list[Result]:
  """Every claim tested, Holm-adjusted within its family."""
  out = []
  for claim in claims:
    if claim.sweep not in runs_by_sweep:
      out.append(Result(claim, missing=f'{claim.sweep} not run', kind='not run',
                        verdict='not run'))
      continue
    seeds, values, missing = contrast_values(claim, runs_by_sweep[claim.sweep])
    result = Result(claim, missing, seeds, values)
    if not missing:
      result.test = stats.paired(values, [0.0] * len(values), claim.effect)
    out.append(result)
  for family in dict.fromkeys(r.claim.family for r in out):
    members = [r for r in out if r.claim.family == family and r.test is not None]
    ps = stats.holm_adjust([r.test.p_value for r in members])
    qs = stats.holm_adjust([r.test.p_equivalence for r in members])
    counted = sum(1 for r in members if not math.isnan(r.test.p_value))
    for r, p, q in zip(members, ps, qs):
      r.holm_p, r.holm_p_equivalence, r.family_size = p, q, counted
  for r in out:
    if r.test is None:
      r.kind = r.kind or 'not run'
      r.verdict = r.verdict or f'not tested: {r.missing}'
    else:
      r.kind, r.verdict = verdict(r, alpha)
  return out


def verdict(r: Result, alpha: float = stats.ALPHA) -> tuple[str, str]:
  """(kind, sentence): 'holds' where the Holm-adjusted test shows the claimed direction
  and the TOST does not show it smaller than the effect of interest (for 'equivalent':
  where the TOST shows |difference| < effect); 'does not hold' where it shows the
  opposite direction, or no effect as large as the declared one; else
  'inconclusive', with the seeds that would decide it: the fewer of the two routes
  (detecting the declared effect at the seeds' spread; showing equivalence within it
  at the observed difference)."""
  c, claim = r.test, r.claim
  if c.n < 2 or math.isnan(r.holm_p):
    return 'inconclusive', f'not tested: {c.n} seed(s) in common (needs ≥ 2)'
  scale = 1.0 if claim.metric[0].endswith('_loss') else 100.0
  unit = '' if scale == 1.0 else ' pp'
  num = lambda x: f'{x * scale:+.2f}'.replace('-', '−')
  measured = (f'{num(c.difference)}{unit} [{num(c.ci_low)}, {num(c.ci_high)}], d_z '
              f'{c.d_z:.1f}, n = {c.n}').replace('-', '−')
  p_text = f'paired t {stats.holm_text(r.holm_p, alpha)}'
  q_text = (f'TOST ±{claim.effect * scale:g}{unit} '
            f'{stats.holm_text(r.holm_p_equivalence, alpha)}')
  significant, equivalent = r.holm_p < alpha, r.holm_p_equivalence < alpha
  up = c.difference > 0
  if claim.expect == 'equivalent':
    if equivalent:
      return 'holds', f'holds: within ±{claim.effect * scale:g}{unit}: {measured} ({q_text})'
    if significant and abs(c.difference) >= claim.effect:
      return 'does not hold', (f'does not hold: they differ by more than ±'
                               f'{claim.effect * scale:g}{unit}: {measured} ({p_text})')
  else:
    wanted = up if claim.expect == 'higher' else not up
    if significant and wanted and equivalent:
      return 'does not hold', (f'does not hold: real but smaller than ±'
                               f'{claim.effect * scale:g}{unit}, {measured} ({p_text}; '
                               f'{q_text})')
    if significant and wanted:
      return 'holds', f'holds: {measured} ({p_text})'
    if significant:
      return 'does not hold', f'does not hold: the opposite direction, {measured} ({p_text})'
    if equivalent:
      return 'does not hold', (f'does not hold: no effect of ±{claim.effect * scale:g}'
                               f'{unit} or more, {measured} ({q_text})')
  k = max(r.family_size, 1)
  routes = [stats.seeds_needed(claim.effect, c.sd, alpha / k)]
  if abs(c.difference) < claim.effect:
    routes.append(stats.seeds_needed(c.difference, c.sd, alpha / k, claim.effect))
  needed = min((n for n in routes if n), default=None)
  decide = (f'~{needed} seeds would decide it' if needed else
            'more than 1000 seeds would be needed to decide it')
  return 'inconclusive', f'inconclusive: {measured} ({p_text}; {q_text}); {decide}'
