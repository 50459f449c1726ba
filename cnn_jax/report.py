"""REPORT.md: each of the article's claims against the formulas and the sweeps' raw data.

Reads only each sweep's runs.csv and sweep.json (`cnn_jax.results`), so the page and
every figure are rebuilt from the shipped files alone. Every comparison the REPORT
makes is one family: Holm's correction counts them all (the sweeps' pages, rewritten
here, say so too).
"""

from __future__ import annotations

import math
import pathlib
from typing import Any, Mapping, Sequence

from cnn_jax import geometry, results, stats, sweep

MNIST_SHAPE, MNIST_CLASSES = (28, 28, 1), 10
ARTICLE_PARAMS = 421_642
# "~7% of the parameters": read as within ±MLP_SHARE_TOLERANCE of the share, in either
# reading (7% of the MLP's, or 7% fewer). The words of each verdict are made from these.
ARTICLE_MLP_SHARE, MLP_SHARE_TOLERANCE = 0.07, 0.005
ARTICLE_ACCURACY, ACCURACY_TOLERANCE = 0.99, 0.005  # "~99%": within ±0.5 pp.
# The sweeps the claims read, in the REPORT's order (configs/<name>.py each).
SWEEPS = ('dropout_sweep', 'dropout_rate_sweep', 'padding_sweep', 'pooling_sweep',
          'pool_size_sweep', 'activation_sweep', 'fc_activation_sweep', 'mlp_vs_cnn')


def _table(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[geometry.Layer]:
  return geometry.layer_table({**base, **overrides}, MNIST_SHAPE, MNIST_CLASSES)


def _sizes(rows: Sequence[geometry.Layer]) -> str:
  keep = [r for r in rows if r.name.startswith(('conv', 'pool', 'flatten'))]
  return ' → '.join(f'{r.name} {geometry.shape_text(r.output_shape)}' for r in keep)


def _name(row: results.ConfigResult) -> str:
  return ', '.join(f'{k}={sweep.format_value(v)}' for k, v in row.overrides.items()
                   ) or row.key


def _pp(x: float) -> str:
  return f'{100 * x:.2f}'.replace('-', '−')


class Sweeps:
  """The SWEEPS found in a directory: each one's sweep.json, runs and rows, adjusted
  together."""

  def __init__(self, directory: pathlib.Path):
    self.directory = directory
    self.found: dict[str, tuple[dict[str, Any], list[results.Run],
                                list[results.ConfigResult]]] = {}
    for name in SWEEPS:  # Only these: another sweep there (the recipe's) is no claim.
      meta_file = directory / name / sweep.SWEEP_FILE
      if not (meta_file.exists() and (meta_file.parent / results.RUNS_FILE).exists()):
        continue
      meta, runs = results.read_runs(meta_file.parent)
      rows = results.aggregate(runs, meta['baseline'], meta.get(
          'equivalence_margin', stats.EQUIVALENCE_MARGIN))
      self.found[meta['name']] = (meta, runs, rows)
    self.shift = self._shift()
    # Every comparison of the REPORT, one family for Holm.
    results.adjust([rows for _, _, rows in self.found.values()]
                   + [[self.shift] if self.shift else []])
    self.family = sum(1 for _, _, rows in self.found.values() for r in rows
                      if r.comparison) + bool(self.shift)

  def _shift(self) -> results.ConfigResult | None:
    """CNN vs MLP on where a digit appears: the accuracy each loses on the test images
    moved right and down, the MLP's loss against the CNN's, paired by seed."""
    rows = self.rows('mlp_vs_cnn')
    if not rows or len(rows) < 2 or any(
        math.isnan(v) for r in rows for v in r.at_best('test_shifted_accuracy')):
      return None
    base = next(r for r in rows if r.is_baseline)
    mlp = next(r for r in rows if not r.is_baseline)
    seeds = sorted(set(base.seeds) & set(mlp.seeds))

    def lost(r: results.ConfigResult) -> list[float]:
      best = [r.runs[r.seeds.index(s)].best for s in seeds]
      return [b['test_accuracy'] - b['test_shifted_accuracy'] for b in best]

    row = results.ConfigResult('shift', {}, False, mlp.runs, 0)
    row.comparison = stats.paired(lost(mlp), lost(base), mlp.comparison.margin)
    return row

  def rows(self, name: str) -> list[results.ConfigResult] | None:
    return self.found[name][2] if name in self.found and self.found[name][2] else None

  def baseline(self) -> results.ConfigResult | None:
    return next((r for _, _, rows in self.found.values() for r in rows if r.is_baseline),
                None)


def _not_run(name: str) -> str:
  return (f'not run: `python -m experiments.study` (all sweeps) or '
          f'`python -m experiments.{name}`')


def _comparison(claim: str, sweeps: Sweeps, name: str, note: str = ''
                ) -> tuple[str, str, str]:
  """A sweep as one claim row: each configuration's test accuracy (mean [95% CI], gap)
  and each verdict against the article's choice."""
  rows = sweeps.rows(name)
  if not rows:
    return claim, _not_run(name), 'not run'
  found = '; '.join(
      f'{_name(r)}{" (article)" if r.is_baseline else ""}: '
      f'{results.accuracy_text(r.summary("test_accuracy"))}, gap '
      f'{results.signed_pp(r.summary("generalization_gap").mean)}' for r in rows)
  seeds = sorted({len(r.seeds) for r in rows})
  found += (f" (test accuracy at the best validation epoch, mean ± std [95% CI] over "
            f"{'/'.join(map(str, seeds))} seeds; gap: train-eval − validation){note}")
  verdict = '; '.join(f'{_name(r)}: {r.verdict}' for r in rows if not r.is_baseline)
  return claim, found, verdict


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
  base = sweeps.baseline()
  if base is None:
    return claim, _not_run('dropout_sweep'), 'not run'
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


def _shift_claim(sweeps: Sweeps) -> tuple[str, str, str]:
  claim = ('The CNN is less sensitive than the MLP to where a digit appears (the test '
           'images moved right and down)')
  if sweeps.shift is None:
    return claim, _not_run('mlp_vs_cnn'), 'not run'
  rows = sweeps.rows('mlp_vs_cnn')
  base = next(r for r in rows if r.is_baseline)
  mlp = next(r for r in rows if not r.is_baseline)

  def text(r: results.ConfigResult) -> str:
    lost = [t - s for t, s in zip(r.at_best('test_accuracy'),
                                  r.at_best('test_shifted_accuracy'))]
    return (f'{_pp(stats.summarize(lost).mean)} pp lost '
            f'({results.accuracy_text(r.summary("test_shifted_accuracy"))} shifted)')

  # The MLP's loss minus the CNN's: "better" (positive) is the claim holding.
  label = {'better': 'holds (the MLP loses more)',
           'worse': 'does not hold (the CNN loses more)'}.get(sweeps.shift.kind)
  verdict = sweeps.shift.verdict
  return claim, (f'CNN (article): {text(base)}; MLP: {text(mlp)} (test accuracy minus '
                 f'shifted test accuracy, at the best validation epoch)'), (
                     label + verdict[len(sweeps.shift.kind):] if label else verdict)


def claims(sweeps: Sweeps, base_config: Mapping[str, Any]) -> list[tuple[str, str, str]]:
  """(claim, what we found, verdict) rows."""
  rows = []
  article = _table(base_config, {})
  counted = geometry.count_params(article)
  measured = sorted({r.num_params for _, _, sweep_rows in sweeps.found.values()
                     for r in sweep_rows if r.is_baseline and r.num_params})
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
  rows.append(_comparison('Padding 1 (the article\'s) vs 0: accuracy', sweeps,
                          'padding_sweep'))
  rows.append(_comparison('Dropout before FC1 (the article\'s table) vs after FC1, both, '
                          'none: less overfitting, as good a test accuracy', sweeps,
                          'dropout_sweep'))
  rows.append(_comparison('Dropout "sparingly", typically 0.2–0.5: rate 0.25 (the '
                          'article\'s) vs 0.1 and 0.5', sweeps, 'dropout_rate_sweep'))
  overlapping = _table(base_config, {'pool_window': 3, 'pool_stride': 2})
  rows.append(_comparison(
      'Max pooling 2×2/2 (the article\'s) vs average, and overlapping 3×3/2 windows',
      sweeps, 'pooling_sweep',
      f'. Overlapping 3×3/2 windows also change the network: pool2 '
      f'{geometry.shape_text(next(r for r in overlapping if r.name == "pool2").output_shape)}'
      f', {geometry.count_params(overlapping):,} parameters (not 421,642)'))
  sizes = ', '.join(f'window {w}/2: {geometry.count_params(_table(base_config, {"pool_window": w})):,}'
                    for w in (4, 5))
  rows.append(_comparison('Pool windows larger than 3 hurt: max 4×4/2 and 5×5/2 vs the '
                          'article\'s 2×2/2', sweeps, 'pool_size_sweep',
                          f'. Parameters: {sizes}'))
  rows.append(_comparison('ReLU (the article\'s) vs Leaky ReLU, tanh, sigmoid', sweeps,
                          'activation_sweep'))
  rows.append(_comparison(
      'An activation between FC1 and FC2 (the text recommends ReLU; the table has none)',
      sweeps, 'fc_activation_sweep',
      '. Without one, FC2·FC1 is a single affine map 3136 → 10 (rank ≤ 10) through a '
      '128-wide bottleneck'))

  mlp_config = {**base_config, 'model': 'mlp'}
  mlp_table = geometry.layer_table(mlp_config, MNIST_SHAPE, MNIST_CLASSES)
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
  rows.append(_comparison('The CNN is more accurate than the MLP', sweeps, 'mlp_vs_cnn'))
  rows.append(_shift_claim(sweeps))
  return rows


def write_report(source_dir: str | pathlib.Path, output_dir: str | pathlib.Path,
                 command: str, base_config: Mapping[str, Any]) -> str:
  """REPORT.md, each sweep's results.md and results.png, from the runs.csv and
  sweep.json of each sweep in `source_dir` (copied to `output_dir` if elsewhere);
  `base_config`: the config whose network the formulas describe."""
  source_dir, output_dir = pathlib.Path(source_dir), pathlib.Path(output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  sweeps = Sweeps(source_dir)
  table = claims(sweeps, base_config)
  family = sweeps.family
  sections, machines, provenances = [], set(), set()
  for name, (meta, runs, rows) in sweeps.found.items():
    (output_dir / name).mkdir(exist_ok=True)
    if source_dir != output_dir:
      for file in (sweep.SWEEP_FILE, results.RUNS_FILE):
        (output_dir / name / file).write_bytes((source_dir / name / file).read_bytes())
    results.write_page(output_dir / name, rows, meta, runs,
                       family=f"the REPORT's {family} comparisons")
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
           'Parameter counts, sizes and multiply-adds come from `cnn_jax.geometry`; '
           'accuracies from the runs, each at its epoch with the best validation accuracy '
           '(the test set decides nothing). Comparisons are paired by seed (paired t-test; '
           'TOST against the equivalence margin), Holm-corrected over all '
           f'{family} comparisons of this page, α = {stats.ALPHA:g}; each verdict is '
           'better, worse, equivalent within ±margin, or inconclusive with the seeds that '
           'would decide it. Nothing here is typed by hand.', '']
  setups = sorted({results.setup_text(m['base_config'], m['seeds'])
                   for m, _, _ in sweeps.found.values()})
  lines += [*setups, ''] if setups else []
  lines += ['| claim | measured | verdict |', '|---|---|---|']
  for claim, found, verdict in table:
    lines.append(f'| {claim} | {found} | {verdict} |')
  lines += ['', '## Sweeps', ''] + (sections or [f'No sweeps found in {source_dir}'])
  if machines:
    lines += ['', 'Machine: ' + '; '.join(sorted(machines)) + '.']
  for name, (meta, runs, rows) in sweeps.found.items():
    if rows:
      lines += ['', f'### {name}', '', f'![{name}]({name}/results.png)']
  text = '\n'.join(lines) + '\n'
  (output_dir / 'REPORT.md').write_text(text)
  return text


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
