"""REPORT.md: the article's claims as the study declares them (configs/study.py CLAIMS),
tested on the sweeps' raw data, beside what its formulas give.

Reads only each sweep's runs.csv and sweep.json (`cnn_jax.results`), so the page and
every figure are rebuilt from the shipped files alone. Each declared claim is tested
with Holm's correction over its declared family (`cnn_jax.claims`); each sweep's own
page compares its configurations with its baseline, Holm over that sweep.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

from cnn_jax import (claims, geometry, input_pipeline, learning_curve, results, stats,
                     sweep, tuning)

MNIST_SHAPE, MNIST_CLASSES = (28, 28, 1), 10
ARTICLE_PARAMS = 421_642
# "~7% of the parameters": read as within ±MLP_SHARE_TOLERANCE of the share, in either
# reading (7% of the MLP's, or 7% fewer). The words of each verdict are made from these.
ARTICLE_MLP_SHARE, MLP_SHARE_TOLERANCE = 0.07, 0.005
ARTICLE_ACCURACY, ACCURACY_TOLERANCE = 0.99, 0.005  # "~99%": within ±0.5 pp.
def _table(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[geometry.Layer]:
  """The layer table of the model base + overrides describes, read from its module."""
  from cnn_jax import models  # pylint: disable=g-import-not-at-top  # JAX, only here.
  return models.layer_table({**base, **overrides}, MNIST_SHAPE, MNIST_CLASSES)


def _sizes(rows: Sequence[geometry.Layer]) -> str:
  keep = [r for r in rows if r.name.startswith(('conv', 'pool', 'flatten'))]
  return ' → '.join(f'{r.name} {geometry.shape_text(r.output_shape)}' for r in keep)


def _name(row: results.ConfigResult) -> str:
  return ', '.join(f'{k}={sweep.format_value(v)}' for k, v in row.overrides.items()
                   ) or row.key


def _pp(x: float) -> str:
  return f'{100 * x:.2f}'.replace('-', '−')


class Sweeps:
  """The sweeps `names` found in a directory: each one's sweep.json, runs and rows
  (compared with its baseline, Holm over the sweep)."""

  def __init__(self, directory: pathlib.Path, names: Sequence[str]):
    self.directory = directory
    self.found: dict[str, tuple[dict[str, Any], list[results.RecordedRun],
                                list[results.ConfigResult]]] = {}
    for name in names:  # Only these: another sweep there (the recipe's) is no claim.
      meta_file = directory / name / sweep.SWEEP_FILE
      if not (meta_file.exists() and (meta_file.parent / results.RUNS_FILE).exists()):
        continue
      meta, runs = results.read_runs(meta_file.parent)
      rows = results.aggregate(runs, meta['baseline'], meta.get(
          'equivalence_margin', stats.EQUIVALENCE_MARGIN), strata=meta.get('strata', ()))
      results.adjust([rows])
      self.found[meta['name']] = (meta, runs, rows)

  def rows(self, name: str) -> list[results.ConfigResult] | None:
    return self.found[name][2] if name in self.found and self.found[name][2] else None

  def runs(self) -> dict[str, list[results.RecordedRun]]:
    return {name: runs for name, (_, runs, _) in self.found.items()}

  def full_data_baseline(self) -> results.ConfigResult | None:
    """The article's network trained on all the data: the first such sweep's baseline."""
    return next((r for meta, _, rows in self.found.values() for r in rows if r.is_baseline
                 and not meta['base_config'].get('max_train_examples')), None)


def _not_run(what: str) -> str:
  return (f'not run: `python -m experiments.study` trains {what} (the long profile, '
          'configs/study_long.py, where the default study has none)')


def _percent(x: float) -> str:
  """0.99 → '99%', 0.005 → '0.5%' (as many digits as the constant has)."""
  return f'{100 * x:g}%'


def accuracy_verdict(ci_low: float, ci_high: float, mean: float,
                     target: float | None = None, tolerance: float | None = None) -> str:
  """The "~99%" claim's verdict from the seeds' 95% CI of the test accuracy: holds when
  the whole interval lies within target ± tolerance (default ARTICLE_ACCURACY ±
  ACCURACY_TOLERANCE), does not when it lies outside."""
  target = ARTICLE_ACCURACY if target is None else target
  tolerance = ACCURACY_TOLERANCE if tolerance is None else tolerance
  within = f'{_percent(target)} ± {100 * tolerance:g} pp'
  low, high = target - tolerance, target + tolerance
  if low <= ci_low and ci_high <= high:
    verdict = f'holds within ±{100 * tolerance:g} pp'
  elif ci_high < low or ci_low > high:
    verdict = f'does not hold: the interval lies outside {within}'
  else:
    verdict = f'inconclusive: the interval straddles {within}'
  if ci_high < target:
    verdict += f'; below {_percent(target)} itself (by {_pp(target - mean)} pp)'
  return verdict


def _accuracy_claim(sweeps: Sweeps) -> tuple[str, str, str]:
  claim = (f'It reaches ~{_percent(ARTICLE_ACCURACY)} test accuracy on MNIST (read: within '
           f'±{100 * ACCURACY_TOLERANCE:g} pp of {_percent(ARTICLE_ACCURACY)})')
  base = sweeps.full_data_baseline()
  if base is None:
    return claim, _not_run('a sweep on all the data'), 'not run'
  from scipy import stats as scipy_stats  # pylint: disable=g-import-not-at-top
  a = base.summary('test_accuracy')
  size = base.runs[0].test_examples
  one = scipy_stats.binomtest(round(a.mean * size), size).proportion_ci(0.95)
  epochs = len(base.runs[0].history)
  found = (f'{results.accuracy_text(a)} (n = {a.n} seeds, {epochs} epoch(s)); '
           f'{_percent(ARTICLE_ACCURACY)} is '
           f'{"inside" if a.ci_low <= ARTICLE_ACCURACY <= a.ci_high else "outside"} the '
           f'seeds\' 95% CI. The test set\'s own sampling error: one run\'s accuracy on '
           f'{int(size):,} images has a 95% Clopper–Pearson interval of '
           f'[{_pp(one.low)}%, {_pp(one.high)}%]')
  return claim, found, accuracy_verdict(a.ci_low, a.ci_high, a.mean)


def mlp_share_verdict(share: float, share_claimed: float | None = None,
                      tolerance: float | None = None) -> str:
  """The "~7% of the parameters" claim's verdict from the CNN's share of the MLP's
  parameters: holds in a reading where the share is within ± tolerance of the claim's
  (default ARTICLE_MLP_SHARE ± MLP_SHARE_TOLERANCE)."""
  share_claimed = ARTICLE_MLP_SHARE if share_claimed is None else share_claimed
  tolerance = MLP_SHARE_TOLERANCE if tolerance is None else tolerance
  claimed, fewer = _percent(share_claimed), _percent(1 - share_claimed)
  within = lambda x: share_claimed - tolerance <= x <= share_claimed + tolerance
  if within(share):
    return f'holds: {claimed} of the MLP\'s, within ±{100 * tolerance:g} pp'
  if within(1 - share):
    return f'holds as "{claimed} fewer" ({fewer} of the MLP\'s), within ±{100 * tolerance:g} pp'
  return (f'holds in neither reading with our MLP (±{100 * tolerance:g} pp); true for the '
          'MLP widths named')


def formula_claims(sweeps: Sweeps, base_config: Mapping[str, Any]
                   ) -> list[tuple[str, str, str]]:
  """(claim, what we found, verdict) rows of what the formulas decide, and the "~99%"
  accuracy of the article's network on all the data."""
  rows = []
  article = _table(base_config, {})
  counted = geometry.count_params(article)
  # The trained count of every configuration that is the article's network (another
  # sweep's baseline may be a variant: BatchNorm, another width).
  measured = sorted({r.num_params for meta, _, sweep_rows in sweeps.found.values()
                     for r in sweep_rows
                     if r.num_params and _table(meta['base_config'], r.overrides) == article})
  found = f'{counted:,} from the formulas' + (
      f'; {", ".join(f"{m:,}" for m in measured)} in the trained Flax model' if measured
      else '')
  ok = counted == ARTICLE_PARAMS and all(m == ARTICLE_PARAMS for m in measured)
  rows.append(('The CNN has 421,642 parameters', found, 'holds' if ok else 'does not hold'))
  rows.append(_accuracy_claim(sweeps))

  growth = [(r.name, r.receptive_field.size) for r in article
            if r.receptive_field is not None and r.kind != 'Activation'
            and r.name != 'input']
  ok = all(a[1] < b[1] for a, b in zip(growth, growth[1:]))
  rows.append(('Each conv and pool layer widens the receptive field',
               ' → '.join(f'{n} {k}×{k}' for n, k in growth) + ' (formulas; the tests '
               'check them against gradients)', 'holds' if ok else 'does not hold'))

  no_pad = _table(base_config, {'padding': 0})
  flat = {p: next(r for r in t if r.name == 'flatten') for p, t in ((1, article),
                                                                     (0, no_pad))}
  found = (f'padding 1: {_sizes(article)}; padding 0: {_sizes(no_pad)} '
           f'({geometry.count_params(no_pad):,} parameters)')
  ok = (flat[1].output_shape, flat[0].output_shape) == ((3136,), (1600,))
  rows.append(('Padding 1 keeps 28×28 through conv1; without it FC1 takes 1600 inputs, '
               'not 3136', found, 'holds' if ok else 'does not hold'))
  mlp_config = {**base_config, 'model': 'mlp'}
  mlp_table = _table(mlp_config, {})
  mlp_params = geometry.count_params(mlp_table)
  share = counted / mlp_params
  hidden = list(mlp_config['mlp_hidden_features'])
  # An MLP 784 → H → 128 → 10 has 785·H + (H + 1)·128 + 1,290 parameters.
  width = lambda total: (total - 128 - 1_290) / (785 + 128)
  claimed = _percent(ARTICLE_MLP_SHARE)
  found = (f'our MLP (784→{"→".join(map(str, hidden))}→10) has {mlp_params:,} parameters: '
           f'the CNN has {share:.1%} of them ({1 - share:.1%} fewer). The claim depends on '
           f'the MLP: "{claimed} of the MLP\'s" needs an MLP of '
           f'{counted / ARTICLE_MLP_SHARE:,.0f} '
           f'(784→{width(counted / ARTICLE_MLP_SHARE):,.0f}→128→10), "{claimed} fewer" one of '
           f'{counted / (1 - ARTICLE_MLP_SHARE):,.0f} '
           f'(784→{width(counted / (1 - ARTICLE_MLP_SHARE)):,.0f}→128→10)')
  rows.append((f'The CNN needs ~{claimed} of the parameters of an equivalent MLP', found,
               mlp_share_verdict(share)))
  cnn_compute, mlp_compute = (geometry.count_multiply_adds(t) for t in (article, mlp_table))
  rows.append(('Fewer parameters (compute beside them)',
               f'multiply-adds per image: CNN {cnn_compute:,}, MLP {mlp_compute:,} '
               f'({cnn_compute / mlp_compute:.2f}×); parameters: CNN {counted:,}, MLP '
               f'{mlp_params:,} (formulas)',
               'the CNN has fewer parameters but needs more compute per image'
               if cnn_compute > mlp_compute else 'the CNN has fewer parameters and needs '
               'less compute per image'))
  return rows


def shift_curve(sweeps: Sweeps, path: pathlib.Path, name: str = 'mlp_vs_cnn'
                ) -> list[str]:
  """The shift curve (accuracy against pixels moved, each direction, CNN and MLP,
  mean over seeds at each run's best epoch) drawn to `path`, and its lines of text:
  the absolute loss at each distance and the accuracy kept above chance."""
  rows = sweeps.rows(name)
  if not rows:
    return [f'{_not_run(name)} (its runs test the shift curve)']
  sets = input_pipeline.shift_curve_sets(
      sweeps.found[name][0]['base_config'].get('shift_curve_pixels', 0))
  if not sets:
    return [f'{name} has no shift curve in its raw data (shift_curve_pixels was 0)']
  directions = list(dict.fromkeys(s.direction for s in sets))
  pixels = sorted({s.pixels for s in sets})
  chance = 1 / MNIST_CLASSES
  curves = {}
  for r in rows:
    at = lambda key, r=r: float(np.mean(r.at_best(key)))
    curves[r.key] = {d: [at('test_accuracy')] + [at(f'{s.name}_accuracy') for s in sets
                                                 if s.direction == d]
                     for d in directions}
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4.5), layout='constrained')
  styles = dict(zip(directions, ('-', '--', ':', '-.')))
  for i, (key, by_direction) in enumerate(curves.items()):
    for d, ys in by_direction.items():
      ax.plot([0, *pixels], [100 * y for y in ys], styles[d], marker='o', color=f'C{i}',
              label=f'{key}, {d}')
  ax.axhline(100 * chance, color='grey', linewidth=1, label='chance (10%)')
  ax.set_xlabel('pixels the test images are moved')
  ax.set_ylabel('test accuracy (%), mean over seeds')
  ax.set_title('Where a digit appears: accuracy against shift')
  ax.legend(fontsize=7, ncol=2)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  lines = [f'![shift curve]({path.name})', '',
           '| model | ' + ' | '.join(f'{p} px' for p in [0, *pixels]) + ' |',
           '|---|' + '---:|' * (len(pixels) + 1)]
  for key, by_direction in curves.items():
    mean = np.mean(list(by_direction.values()), axis=0)
    kept = [(m - chance) / (mean[0] - chance) for m in mean]
    lines.append(f'| {key} | ' + ' | '.join(
        f'{100 * m:.1f}%' + ('' if p == 0 else f' (−{_pp(mean[0] - m)} pp; {k:.0%} of '
                                               'its margin over chance kept)')
        for p, m, k in zip([0, *pixels], mean, kept)) + ' |')
  lines += ['', 'Mean over the four directions (right, left, down, up), each run at its '
            'best validation epoch. "Regardless of where they appear" read in absolute '
            'terms: the loss at each distance above; relative to the MLP: the declared '
            'claim in the table.']
  return lines


PREVIOUS_CLAIMS = pathlib.Path('previous') / 'claims.md'  # Under the output directory.
PLANNED_POWER = 'planned_power.md'  # Likewise: `planned_power` for a long profile.


def _table_rows(text: str) -> list[list[str]]:
  return [[cell.strip() for cell in line.strip().strip('|').split(' | ')]
          for line in claims_table(text).splitlines()[2:]]


def design_text(meta: Mapping[str, Any]) -> str:
  """A sweep's design in a few words: its shared nuisance values (or the one it tuned),
  its split, seeds and epochs."""
  base = meta['base_config']
  shared = '; '.join(f"{field} {', '.join(f'{v:g}' for v in values)} shared"
                     for field, values in results.shared_values(meta).items())
  tuned = (meta.get('search') or {}).get('field')
  split = ('a split per seed' if base.get('split_seed') == 'seed'
           else f"one split (split_seed {base.get('split_seed')})")
  return ', '.join(x for x in (shared or (f'{tuned} tuned per configuration' if tuned
                                           else ''), split, f"{len(meta['seeds'])} seeds",
                               f"{base['num_epochs']} epochs") if x)


def what_changed(previous: str, tested: Sequence[claims.Result],
                 designs: Mapping[str, str]) -> list[str]:
  """Each claim's verdict under the previous registration (`previous`: a claims table
  as a REPORT writes it) beside this one's, and what changed in its test. Claims match
  by their contrast (sweep names aside), direction and kind of metric (accuracy, gap),
  so one that moved sweep or metric is still found."""
  key = lambda terms, metric, expect: (terms.split(': ', 1)[-1], expect,
                                       'gap' if 'gap' in metric else metric)
  now = [(r, claims.table([r])[2].strip().strip('|').split(' | ')) for r in tested]
  before = {key(row[1], row[2], row[3]): row for row in _table_rows(previous)}
  kind = lambda verdict: verdict.split(':', 1)[0]
  lines = ['| claim | before | now | what changed in its test |', '|---|---|---|---|']
  seen = set()
  for r, row in now:
    old = before.get(key(row[1], row[2], row[3]))
    changes = [designs.get(r.claim.sweep, '')]
    if old:
      seen.add(key(old[1], old[2], old[3]))
      changes += [f'{what}: {a} → {b}' for what, a, b in (
          ('metric', old[2], row[2]), ('effect', old[4], row[4]), ('family', old[5], row[5]))
                  if a != b]
    lines.append(f'| {r.claim.text} | {kind(old[6]) if old else "not tested"} | '
                 f'{r.kind} | {"; ".join(c for c in changes if c)} |')
  for k, old in before.items():
    if k not in seen:
      lines.append(f'| {old[0]} | {kind(old[6])} | not in this study (the long profile, '
                   'configs/study_long.py) | |')
  return lines


def planned_power(planned: Sequence[claims.Claim], seeds: int, source_dir: pathlib.Path,
                  alpha: float = stats.ALPHA) -> list[str]:
  """For claims a study plans but has not run (a long profile's): each one's power at
  `seeds` seeds to detect its smallest effect of interest, at α over its family's
  first Holm step, from the spread of the contrast in earlier runs of its sweep
  (`source_dir`/<sweep>/runs.csv, any design) at the SD's upper 95% bound."""
  family = lambda c: sum(1 for other in planned if other.family == c.family)
  lines = ['| claim | earlier runs: n, SD of the contrast (upper 95% bound) | power at '
           f'{seeds} seeds |', '|---|---|---|']
  for claim in planned:
    directory = source_dir / claim.sweep
    if not (directory / results.RUNS_FILE).exists():
      lines.append(f'| {claim.text} | none in {directory} | unknown |')
      continue
    meta, runs = results.read_runs(directory)
    tested, = claims.evaluate([claim], {claim.sweep: runs},
                              strata={claim.sweep: meta.get('strata', ())})
    if tested.test is None or not tested.test.n > 1:
      lines.append(f'| {claim.text} | {tested.verdict} | unknown |')
      continue
    scale, unit = claims.units(claim)
    sd = stats.sd_upper_bound(tested.test.sd, tested.test.n)
    power = stats.power(seeds, claim.effect, sd, alpha / family(claim))
    lines.append(f'| {claim.text} | n = {tested.test.n}, {tested.test.sd * scale:.3g}{unit} '
                 f'({sd * scale:.3g}{unit}) | {power:.0%} to detect ±'
                 f'{claim.effect * scale:g}{unit} (α/{family(claim)}) |')
  return lines


def tuned_rates(sweeps: Sweeps) -> list[str]:
  """Each configuration's tuned nuisance value, per sweep (curves: the sweep's page)."""
  lines = []
  for name, (meta, _, rows) in sweeps.found.items():
    tuned, search = meta.get('tuned') or {}, meta.get('search')
    strata = results.shared_values(meta)
    if strata:
      lines.append(f'- [{name}]({name}/results.md): every configuration at each of ' +
                   '; '.join(f"{field} {', '.join(f'{v:g}' for v in values)}"
                             for field, values in strata.items()) + ' (shared, not tuned)')
      continue
    if not search:
      lines.append(f'- {name}: nothing tuned (every configuration at '
                   f"learning_rate {meta['base_config']['learning_rate']:g})")
      continue
    chosen = '; '.join(f'{r.key}: {tuning.chosen_text(tuned[r.key])}'
                       for r in rows if r.key in tuned)
    lines.append(f"- [{name}]({name}/results.md) {search['field']}: {chosen}")
  return lines


def write_report(source_dir: str | pathlib.Path, output_dir: str | pathlib.Path,
                 command: str, base_config: Mapping[str, Any], names: Sequence[str],
                 declared: Sequence[claims.Claim] = (),
                 curve_effects: Mapping[str, float] | None = None) -> str:
  """REPORT.md, each sweep's results.md and results.png, and the shift curve, from the
  runs.csv and sweep.json of the sweeps `names` in `source_dir` (copied to
  `output_dir` if elsewhere); `declared`: the study's claims (parsed CLAIMS);
  `base_config`: the config whose network the formulas describe. Where `source_dir`
  has a learning curve's raw data, its page is rebuilt too (`curve_effects`: its
  registered smallest effects) and summed up here."""
  source_dir, output_dir = pathlib.Path(source_dir), pathlib.Path(output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  sweeps = Sweeps(source_dir, names)
  tested = claims.evaluate(declared, sweeps.runs(), strata={
      name: meta.get('strata', ()) for name, (meta, _, _) in sweeps.found.items()})
  sections, machines, provenances = [], set(), set()
  for name, (meta, runs, rows) in sweeps.found.items():
    (output_dir / name).mkdir(exist_ok=True)
    if source_dir != output_dir:
      for file in (sweep.SWEEP_FILE, results.RUNS_FILE):
        (output_dir / name / file).write_bytes((source_dir / name / file).read_bytes())
    mine = [r for r in tested if r.claim.sweep == name]
    results.write_page(output_dir / name, rows, meta, runs,
                       claims=claims.table(mine) if mine else ())
    total = sum(e['train_seconds'] for r in runs for e in r.history)
    sections.append(f'- [{name}]({name}/results.md): {len(runs)} runs, '
                    f'{total / 60:.0f} min of training in all (compile, data and '
                    f'evaluation excluded); raw data: [{name}/runs.csv]({name}/runs.csv)')
    if meta.get('host'):
      machines.add(meta['host'])
    provenances.add(results.provenance_text(meta))
  lines = ['# The article\'s claims, measured', '',
           f'Rebuilt by `{command}` from each sweep\'s raw data (`<sweep>/runs.csv`, '
           '`<sweep>/sweep.json`) alone. ' + ' '.join(sorted(provenances)), '',
           'Each claim below was declared in the study config before the runs: the '
           'configurations it contrasts (paired by seed), the metric, read at each run\'s '
           'epoch with the best validation accuracy (the test set decides nothing), the '
           'direction the article claims, the smallest effect of interest and the family '
           f'Holm\'s correction runs over (α = {stats.ALPHA:g}). Each verdict gives the '
           'estimate and its 95% CI first. A claim holds where the paired t-test shows '
           'its direction ("higher/lower, by less than" where the TOST also shows it '
           'smaller than the effect of interest); shows "the opposite" where the t-test '
           'shows the other direction; "smaller than the effect, if any" where only the '
           'TOST decides (no effect as large as the smallest of interest: no refutation '
           'of a smaller one). An equivalence claim holds where the TOST shows the '
           'difference within ±effect, does not hold where the t-test shows one as large. '
           'Else it is inconclusive, with its power at this n at the SD\'s upper 95% '
           'bound. A deciding Holm p within 0.01 of α is flagged borderline. '
           + ('Where a sweep trains every configuration at several shared learning rates '
              '(strata), the contrast is averaged over them per seed, and tested at each '
              'rate alone in the robustness table. '
              if any(m.get('strata') for m, _, _ in sweeps.found.values()) else '')
           + ('Some configurations trained at their own learning rate, tuned on '
              'validation (below). ' if any(m.get('search') for m, _, _ in
                                           sweeps.found.values())
              else '') + 'Nothing here is typed by hand.', '']
  setups = sorted({f"{name}: " + results.setup_text(
      m['base_config'], m['seeds'], (m.get('search') or {}).get('field'),
      results.shared_values(m))
                   for name, (m, _, _) in sweeps.found.items()})
  lines += claims.table(tested)
  robust = claims.strata_table(tested)
  if robust:
    lines += ['', '## Each claim at each shared learning rate', '',
              'The same claims tested within one rate alone (Holm over the family at that '
              'rate): a verdict that needs both rates, or holds at one only, shows here.',
              '', *robust]
  lines += _learning_curve(source_dir, output_dir, curve_effects)
  if (output_dir / PREVIOUS_CLAIMS).exists():
    previous = (output_dir / PREVIOUS_CLAIMS).read_text()
    lines += ['', '## What changed', '',
              f'The verdicts of the previous registration ([{PREVIOUS_CLAIMS}]'
              f'({PREVIOUS_CLAIMS})) beside this one\'s. Every claim moved to a new '
              'design: one learning rate per configuration, tuned on one seed and a few '
              'validation images, had split the arms of several claims; every seed '
              'shared one subset; the accuracy gap saturated. Its verdicts are not comparable one for one, and none of them '
              'is carried over.', '', *what_changed(previous, tested, {
                  name: design_text(meta) for name, (meta, _, _) in
                  sweeps.found.items()})]
  lines += ['', '## What the formulas say, and ~99%', '', '| claim | measured | verdict |',
            '|---|---|---|']
  for claim, found, verdict in formula_claims(sweeps, base_config):
    lines.append(f'| {claim} | {found} | {verdict} |')
  lines += ['', '## Where a digit appears', '',
            *shift_curve(sweeps, output_dir / 'shift_curve.png')]
  lines += ['', '## Learning rates', '', *(tuned_rates(sweeps) or [
      'No sweeps found.'])]
  lines += ['', '## Sweeps', ''] + (sections or [f'No sweeps found in {source_dir}'])
  if setups:
    lines += ['', 'Data and recipe per sweep:', '', *(f'- {t}' for t in setups)]
  if machines:
    lines += ['', 'Machine: ' + '; '.join(sorted(machines)) + '.']
  for name, (meta, runs, rows) in sweeps.found.items():
    if rows:
      lines += ['', f'### {name}', '', f'![{name}]({name}/results.png)']
  text = '\n'.join(lines) + '\n'
  (output_dir / 'REPORT.md').write_text(text)
  return text


def _learning_curve(source_dir: pathlib.Path, output_dir: pathlib.Path,
                    effects: Mapping[str, float] | None) -> list[str]:
  """The learning curve's section (its page rebuilt from its raw data), or []."""
  name = learning_curve.NAME
  if effects is None or not (source_dir / name / results.RUNS_FILE).exists():
    return []
  (output_dir / name).mkdir(exist_ok=True)
  if source_dir != output_dir:
    for file in (sweep.SWEEP_FILE, results.RUNS_FILE):
      (output_dir / name / file).write_bytes((source_dir / name / file).read_bytes())
  return ['', '## When does dropout help? The learning curve', '',
          f'Its own command (`python -m experiments.learning_curve`) and page '
          f'([{name}/{learning_curve.TABLE_FILE}]({name}/{learning_curve.TABLE_FILE})); '
          'its claims, one per size, are not in the table above.', '',
          *learning_curve.write(output_dir / name, effects, f'{name}/')]


def rebuild_command(output_dir: str | pathlib.Path) -> str:
  """The command that rebuilds a REPORT from the raw data in `output_dir`."""
  default = pathlib.Path(output_dir) == pathlib.Path('results')
  return 'python -m experiments.report' + ('' if default else
                                           f' --output_dir={output_dir}')


README_BEGIN, README_END = '<!-- study:begin -->', '<!-- study:end -->'


def claims_table(report_text: str) -> str:
  """The claims table of a REPORT.md (its first Markdown table)."""
  lines = report_text.splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith('| claim |'))
  end = next((i for i in range(start, len(lines)) if not lines[i].startswith('|')),
             len(lines))
  return '\n'.join(lines[start:end])


def update_readme(readme: str | pathlib.Path, output_dir: str | pathlib.Path) -> None:
  """Puts REPORT.md's claims table between the README's study markers."""
  readme, output_dir = pathlib.Path(readme), pathlib.Path(output_dir)
  text = readme.read_text()
  if README_BEGIN not in text or README_END not in text:
    raise ValueError(f'{readme} has no {README_BEGIN} … {README_END} section')
  table = claims_table((output_dir / 'REPORT.md').read_text())
  before, rest = text.split(README_BEGIN, 1)
  after = rest.split(README_END, 1)[1]
  readme.write_text(f'{before}{README_BEGIN}\n{table}\n{README_END}{after}')
