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

from cnn_jax import errors, options, stats, sweep

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
  """A claim tested: the per-seed contrast (the mean over the sweep's strata, e.g. its
  shared learning rates), its paired statistics and the verdict; `by_stratum`: the
  same claim tested within each stratum alone (the robustness table)."""
  claim: Claim
  missing: str = ''  # What the raw data lacks, if the claim could not be tested.
  seeds: list[int] = dataclasses.field(default_factory=list)
  values: list[float] = dataclasses.field(default_factory=list)
  test: stats.Paired | None = None
  holm_p: float = math.nan
  holm_p_equivalence: float = math.nan
  family_size: int = 0
  verdict: str = ''
  kind: str = ''  # One of KINDS.
  strata: list[str] = dataclasses.field(default_factory=list)  # Pooled over, by name.
  by_stratum: dict[str, Result] = dataclasses.field(default_factory=dict)


# What a verdict decides: the claimed direction shown (for 'equivalent': a difference
# shown within the effect of interest); shown, but smaller than it; no effect as large
# as it shown (nor any effect); the opposite direction shown; a difference as large as
# it ('equivalent' claims); nothing shown.
KINDS = ('holds', 'holds, smaller', 'smaller, if any', 'the opposite', 'does not hold',
         'inconclusive', 'not run')
BORDERLINE = 0.01  # A verdict whose deciding Holm p is within this of α is flagged.


def contrast_values(claim: Claim, runs: Sequence[Any], strata: Sequence[str] = ()
                    ) -> tuple[list[int], list[float], dict[str, list[float]], str]:
  """(seeds, the contrast per seed averaged over the strata, the contrast per seed in
  each stratum, what is missing) from a sweep's runs (`results.RecordedRun`), each read at its
  best validation epoch. `strata`: the sweep's nuisance fields (sweep.json 'strata'):
  a term matches the runs whose other overrides are its own, at any stratum, and pairs
  within each stratum by seed; only seeds every term has in every stratum count."""
  terms, labels = [], set()
  for weight, overrides in claim.contrast:
    found = {}
    for r in runs:
      core, where = sweep.stratum(r.overrides, strata)
      if same_overrides(core, overrides) and r.completed and r.history:
        found[(sweep.config_key(where), r.seed)] = r
    if not found:
      return [], [], {}, f'no finished run of {overrides} in {claim.sweep}'
    terms.append((weight, found))
    labels |= {label for label, _ in found}
  labels = sorted(labels)
  keys = set.intersection(*(set(found) for _, found in terms))
  seeds = sorted({s for _, s in keys if all((label, s) in keys for label in labels)})
  by_stratum = {}
  for label in labels:
    by_stratum[label] = [
        sum(weight * sum(found[(label, s)].best.get(m, math.nan) for m in claim.metric)
            / len(claim.metric) for weight, found in terms) for s in seeds]
  values = [sum(v[i] for v in by_stratum.values()) / len(labels) for i in range(len(seeds))]
  if any(math.isnan(v) for v in values):
    return seeds, values, by_stratum, f'{claim.metric_text} is not in the raw data'
  return seeds, values, by_stratum, ''


def evaluate(claims: Sequence[Claim], runs_by_sweep: Mapping[str, Sequence[Any]],
             alpha: float = stats.ALPHA, strata: Mapping[str, Sequence[str]] | None = None
             ) -> list[Result]:
  """Every claim tested, Holm-adjusted within its family; `strata`: each sweep's
  nuisance fields, pooled over per seed (and each tested alone in `by_stratum`)."""
  out = []
  for claim in claims:
    if claim.sweep not in runs_by_sweep:
      out.append(Result(claim, missing=f'{claim.sweep} not run', kind='not run',
                        verdict='not run'))
      continue
    seeds, values, by_stratum, missing = contrast_values(
        claim, runs_by_sweep[claim.sweep], (strata or {}).get(claim.sweep, ()))
    result = Result(claim, missing, seeds, values, strata=list(by_stratum))
    if not missing:
      result.test = stats.paired(values, [0.0] * len(values), claim.effect)
      if len(by_stratum) > 1:
        result.by_stratum = {label: Result(claim, '', seeds, v, stats.paired(
            v, [0.0] * len(v), claim.effect)) for label, v in by_stratum.items()}
    out.append(result)
  _adjust(out, alpha)
  labels = dict.fromkeys(label for r in out for label in r.by_stratum)
  for label in labels:  # Each stratum alone: Holm over the family's claims there.
    _adjust([r.by_stratum[label] for r in out if label in r.by_stratum], alpha)
  return out


def _adjust(results: Sequence[Result], alpha: float) -> None:
  """Holm within each family of `results`, then each one's verdict."""
  for family in dict.fromkeys(r.claim.family for r in results):
    members = [r for r in results if r.claim.family == family and r.test is not None]
    ps = stats.holm_adjust([r.test.p_value for r in members])
    qs = stats.holm_adjust([r.test.p_equivalence for r in members])
    counted = sum(1 for r in members if not math.isnan(r.test.p_value))
    for r, p, q in zip(members, ps, qs):
      r.holm_p, r.holm_p_equivalence, r.family_size = p, q, counted
  for r in results:
    if r.test is None:
      r.kind = r.kind or 'not run'
      r.verdict = r.verdict or f'not tested: {r.missing}'
    else:
      r.kind, r.verdict = verdict(r, alpha)


def units(claim: Claim) -> tuple[float, str]:
  """(scale, unit) the claim's figures are written in: losses as they are, accuracies
  and gaps in percentage points."""
  return (1.0, '') if claim.metric[0].endswith('_loss') or claim.metric[0] == 'loss_gap' \
      else (100.0, ' pp')


def verdict(r: Result, alpha: float = stats.ALPHA) -> tuple[str, str]:
  """(kind, sentence), the estimate and its CI first. For 'higher'/'lower': 'holds'
  where the Holm-adjusted paired t shows the claimed direction, 'holds, smaller' where
  the TOST also shows it smaller than the effect of interest; 'the opposite' where the
  t-test shows the other direction; 'smaller, if any' where only the TOST decides (no
  effect as large as the declared one, which is no refutation of a smaller one). For
  'equivalent': 'holds' where the TOST shows |difference| < effect; 'does not hold'
  where the paired t shows a difference and its estimate reaches the effect. Else
  'inconclusive', with the power at this n and the seeds 80% power needs, both at the
  SD's upper 95% bound (not its point estimate). A deciding Holm p within BORDERLINE of
  α is flagged."""
  c, claim = r.test, r.claim
  if c.n < 2 or math.isnan(r.holm_p):
    return 'inconclusive', f'not tested: {c.n} seed(s) in common (needs ≥ 2)'
  scale, unit = units(claim)
  digits = 3 if scale == 1.0 else 2
  num = lambda x: f'{x * scale:+.{digits}f}'.replace('-', '−')
  effect = f'{claim.effect * scale:g}{unit}'
  strata = f' × {len(r.strata)} strata' if len(r.strata) > 1 else ''
  measured = (f'{num(c.difference)}{unit} [{num(c.ci_low)}, {num(c.ci_high)}], d_z '
              f'{c.d_z:.1f}, n = {c.n}{strata}').replace('-', '−')
  p_text = f'paired t {stats.holm_text(r.holm_p, alpha)}'
  q_text = f'TOST ±{effect} {stats.holm_text(r.holm_p_equivalence, alpha)}'
  flag = lambda p: (' — borderline: Holm p within 0.01 of α' if abs(p - alpha) <= BORDERLINE
                    else '')
  significant, equivalent = r.holm_p < alpha, r.holm_p_equivalence < alpha
  up = c.difference > 0
  if claim.expect == 'equivalent':
    if equivalent:
      return 'holds', (f'holds: {measured}, within ±{effect} ({q_text})'
                       + flag(r.holm_p_equivalence))
    if significant and abs(c.difference) >= claim.effect:
      return 'does not hold', (f'does not hold: {measured}; they differ, by as much as '
                               f'±{effect} at the estimate ({p_text})' + flag(r.holm_p))
  else:
    wanted = up if claim.expect == 'higher' else not up
    if significant and wanted and equivalent:
      return 'holds, smaller', (f'{claim.expect}, by less than {effect}: {measured} '
                                f'({p_text}; {q_text})'
                                + flag(max(r.holm_p, r.holm_p_equivalence)))
    if significant and wanted:
      return 'holds', f'holds: {measured} ({p_text})' + flag(r.holm_p)
    if significant:
      return 'the opposite', (f'the opposite: {measured} ({p_text})' + flag(r.holm_p))
    if equivalent:
      return 'smaller, if any', (f'smaller than {effect}, if any: {measured}, no effect '
                                 f'of ±{effect} or more ({q_text})'
                                 + flag(r.holm_p_equivalence))
  k = max(r.family_size, 1)
  sd = stats.sd_upper_bound(c.sd, c.n)
  power = stats.power(c.n, claim.effect, sd, alpha / k) if sd > 0 else math.nan
  needed = stats.seeds_needed(claim.effect, sd, alpha / k)
  return 'inconclusive', (
      f'inconclusive: {measured} ({p_text}; {q_text}); power to detect ±{effect} at '
      f'this n: {power:.0%}, {needed or "more than 1000"} seeds for 80% (both at the '
      f"SD's upper 95% bound, {sd * scale:.{digits}f}{unit}, α/{k})")


def table(tested: Sequence[Result]) -> list[str]:
  """The claims' table: what each claim tests (declared before the runs) and, last,
  what the runs say."""
  lines = ['| claim | sweep | metric (at the best validation epoch) | direction | smallest '
           'effect of interest | Holm family | verdict |', '|---|---|---|---|---|---|---|']
  for r in tested:
    c = r.claim
    scale, unit = units(c)
    terms = ' '.join(f"{'+' if w > 0 else '−'}{abs(w):g}·({_overrides(o)})"
                     for w, o in c.contrast)
    lines.append(f'| {c.text} | {c.sweep}: {terms} | {c.metric_text} | {c.expect} | '
                 f'{c.effect * scale:g}{unit} | {c.family} ({r.family_size}) | {r.verdict} |')
  return lines


def strata_table(tested: Sequence[Result]) -> list[str]:
  """Each claim's estimate and verdict within each stratum alone (e.g. at each shared
  learning rate, Holm over its family there) beside the pooled one: where it holds.
  [] where no claim has more than one stratum."""
  labels = list(dict.fromkeys(label for r in tested for label in r.by_stratum))
  if not labels:
    return []
  lines = ['| claim | pooled | ' + ' | '.join(labels) + ' |',
           '|---|---|' + '---|' * len(labels)]
  for r in tested:
    if not r.by_stratum:
      continue
    cell = lambda x: (f'{x.kind}: {_estimate(x)}' if x.test else x.verdict)
    lines.append(f'| {r.claim.text} | {cell(r)} | ' + ' | '.join(
        cell(r.by_stratum[label]) if label in r.by_stratum else '' for label in labels)
                 + ' |')
  return lines


def _estimate(r: Result) -> str:
  scale, unit = units(r.claim)
  digits = 3 if scale == 1.0 else 2
  num = lambda x: f'{x * scale:+.{digits}f}'.replace('-', '−')
  return f'{num(r.test.difference)}{unit} [{num(r.test.ci_low)}, {num(r.test.ci_high)}]'


def _overrides(overrides: Mapping[str, Any]) -> str:
  return ', '.join(f'{k}={sweep.format_value(v)}' for k, v in overrides.items())


def load(config_file: str, sweep_name: str | None = None) -> list[Claim]:
  """The CLAIMS a study config file declares (only those of `sweep_name` if given),
  parsed; [] where it declares none."""
  path, module = sweep.load_config_module(config_file)
  parsed = [Claim.parse(spec, f'{path}: CLAIMS') for spec in getattr(module, 'CLAIMS', ())]
  return [c for c in parsed if sweep_name is None or c.sweep == sweep_name]
