"""REPORT.md: the article's claims checked against formulas and (fake) sweeps' raw data."""

import json
import math

import numpy as np

import pytest

from configs import default
from scipy import stats as scipy_stats

from cnn_jax import claims, errors, input_pipeline, options, report, results, stats, sweep
import fake_sweeps


def _claims(text):
  return {line.split(' | ')[0].lstrip('| '): line for line in text.splitlines()
          if line.startswith('| ') and ' | ' in line}


def _row(rows, start):
  return next(v for k, v in rows.items() if k.startswith(start))


SHIFTS = [f'test_{d}{p}_accuracy' for p in (1, 2) for d in ('right', 'left', 'down', 'up')]


def _shifted(accuracy, lost_per_pixel):
  return {f'test_{d}{p}_accuracy': accuracy - p * lost_per_pixel
          for p in (1, 2) for d in ('right', 'left', 'down', 'up')}


def test_the_shift_curves_sets_are_named_by_direction_and_distance():
  assert [s.name + '_accuracy' for s in input_pipeline.shift_curve_sets(2)] == SHIFTS
  assert input_pipeline.shift_curve_sets(3)[-1] == ('test_up3', 'up', 3, -3, 0)
  assert input_pipeline.shift_curve_sets(0) == []


def _declared():
  return [claims.Claim.parse(c) for c in _specs()]


def _specs():
  vs = lambda a, b: [(1, a), (-1, b)]
  return [
      dict(claim='Dropout reduces overfitting', sweep='dropout_sweep',
           contrast=vs({'dropout_placement': 'before_fc1'}, {'dropout_placement': 'none'}),
           metric='generalization_gap', expect='lower', effect=0.005, family='dropout'),
      dict(claim='Dropout improves accuracy', sweep='dropout_sweep',
           contrast=vs({'dropout_placement': 'before_fc1'}, {'dropout_placement': 'none'}),
           metric='test_accuracy', expect='higher', effect=0.005, family='dropout'),
      dict(claim='Padding 1 beats 0', sweep='padding_sweep',
           contrast=vs({'padding': 1}, {'padding': 0}), metric='test_accuracy',
           expect='higher', effect=0.002, family='architecture'),
      dict(claim='Max pooling beats average', sweep='pooling_sweep',
           contrast=vs({'pooling': 'max'}, {'pooling': 'avg'}), metric='test_accuracy',
           expect='higher', effect=0.002, family='architecture'),
      dict(claim='Less sensitive to shifts', sweep='mlp_vs_cnn',
           contrast=vs({'model': 'cnn'}, {'model': 'mlp'}), metric=SHIFTS,
           expect='higher', effect=0.05, family='cnn vs mlp'),
  ]


def _study(tmp_path):
  runs = tmp_path / 'runs'
  base = [0.9910, 0.9912, 0.9908]
  small = {'max_train_examples': 2000}
  gap = lambda test, gap: [fake_sweeps.epoch(1, test - 0.01),
                           fake_sweeps.epoch(2, test, validation=test,
                                             train_eval=test + gap)]
  sweeps = [
      fake_sweeps.make_sweep(runs, 'dropout_sweep', 'dropout_placement',
                             ['none', 'before_fc1'], 'before_fc1', {
                                 'none': [gap(0.960, 0.040), gap(0.962, 0.043),
                                          gap(0.958, 0.041)],
                                 'before_fc1': [gap(0.966, 0.030), gap(0.961, 0.031),
                                                gap(0.967, 0.029)]}, base=small,
                             tuned={'dropout_placement=none': {
                                 'value': 0.01, 'curve': [[1e-3, 0.9], [1e-2, 0.95]]},
                             'dropout_placement=before_fc1': {
                                 'value': 0.003, 'curve': [[1e-3, 0.96], [3e-3, 0.97],
                                                           [1e-2, 0.95]]}}),
      fake_sweeps.make_sweep(runs, 'padding_sweep', 'padding', [0, 1], 1,
                             {0: [0.9800, 0.9802, 0.9801], 1: base}),
      fake_sweeps.make_sweep(runs, 'mlp_vs_cnn', 'model', ['cnn', 'mlp'], 'cnn', {
          'cnn': [[fake_sweeps.epoch(1, a, **_shifted(a, 0.01))] for a in base],
          'mlp': [[fake_sweeps.epoch(1, a, **_shifted(a, 0.20 + i / 100))]
                  for i, a in enumerate((0.9810, 0.9830, 0.9820))]}, num_epochs=1,
          base={'shift_curve_pixels': 2})]
  out = tmp_path / 'results'
  for root in sweeps:
    results.export(root, out / root.name)
  names = ['dropout_sweep', 'padding_sweep', 'pooling_sweep', 'mlp_vs_cnn']
  return out, names


def test_report_tests_each_declared_claim_from_the_raw_data_alone(tmp_path):
  out, names = _study(tmp_path)
  text = report.write_report(out, out, 'python -m experiments.report',
                             default.get_config().to_dict(), names, _declared())
  rows = _claims(text)
  # Each claim's declaration, then its verdict.
  gap = rows['Dropout reduces overfitting']
  assert ('| dropout_sweep: +1·(dropout_placement=before_fc1) −1·(dropout_placement=none)'
          ' | generalization_gap | lower | 0.5 pp | dropout (2) | holds: ' in gap)
  # The same test by hand: scipy's paired t on the per-seed gaps, Holm over the family.
  before, none = [0.030, 0.031, 0.029], [0.040, 0.043, 0.041]
  p_gap = scipy_stats.ttest_rel(before, none).pvalue
  p_acc = scipy_stats.ttest_rel([0.966, 0.961, 0.967], [0.960, 0.962, 0.958]).pvalue
  holm = min(1.0, 2 * min(p_gap, p_acc))
  assert p_gap < p_acc and f'Holm p = {holm:.3f} < 0.05' in gap
  assert '−1.13 pp [' in gap and 'n = 3' in gap
  assert rows['Dropout improves accuracy'].endswith('seeds for 80% (both at the SD\'s '
                                                    'upper 95% bound, 2.27 pp, α/2) |')
  assert '| inconclusive: +0.47 pp [' in rows['Dropout improves accuracy']
  assert '| architecture (1) | holds: +1.09 pp [' in rows['Padding 1 beats 0']
  assert rows['Max pooling beats average'].endswith('| not run |')
  shift = rows['Less sensitive to shifts']
  assert 'mean of 8: test_right1_accuracy … test_up2_accuracy' in shift
  assert '| holds: +' in shift
  # The formulas, and ~99% read on the full data (padding's baseline), not the
  # dropout sweep's 2,000 images.
  assert rows['The CNN has 421,642 parameters'].endswith('| holds |')
  accuracy = _row(rows, 'It reaches ~99%')
  assert '99.10% ± 0.02 [' in accuracy and 'n = 3 seeds' in accuracy
  assert accuracy.endswith('| holds within ±0.5 pp |')
  assert ('conv1 3×3 → pool1 4×4 → conv2 8×8 → pool2 10×10'
          in rows['Each conv and pool layer widens the receptive field'])
  assert 'flatten 1600 (225,034 parameters)' in _row(rows, 'Padding 1 keeps')
  mlp = _row(rows, 'The CNN needs ~7%')
  assert '(784→3136→128→10) has 2,864,586 parameters: the CNN has 14.7% of them' in mlp
  assert 'multiply-adds per image: CNN 4,241,152, MLP 2,861,312' in _row(rows, 'Fewer')
  # The shift curve: a figure, and the absolute loss at each distance.
  assert (out / 'shift_curve.png').stat().st_size > 0
  curve = rows['model=cnn']
  assert '| 99.1% | 98.1% (−1.00 pp; ' in curve and '97.1% (−2.00 pp; ' in curve
  assert '| 56.2% (−42.00 pp; 52% of its margin over chance kept) |' in rows['model=mlp']
  # Every configuration's learning rate.
  assert ('dropout_placement=none: 0.01 (at the edge); dropout_placement=before_fc1: '
          '0.003\n' in text)
  assert '- padding_sweep: nothing tuned (every configuration at learning_rate 0.01)' in text
  page = (out / 'dropout_sweep' / 'results.md').read_text()
  assert 'learning_rate tuned on validation' in page and '**0.01: 95.00%**' in page
  for name in ('dropout_sweep', 'padding_sweep', 'mlp_vs_cnn'):
    for file in ('results.md', 'runs.csv', 'sweep.json', 'results.png'):
      assert (out / name / file).exists()
  assert (out / 'REPORT.md').read_text() == text
  assert 'Machine: test host.' in text
  # Rebuilt elsewhere from the raw data alone: the same page.
  assert report.write_report(out, tmp_path / 'again', 'python -m experiments.report',
                             default.get_config().to_dict(), names, _declared()) == text


def test_a_bad_claim_is_one_line_naming_it():
  bad = dict(_specs()[0], expect='smaller')
  with pytest.raises(errors.ConfigError, match="'Dropout reduces overfitting': expect="):
    claims.Claim.parse(bad)
  with pytest.raises(errors.ConfigError, match='weights sum to 0'):
    claims.Claim.parse(dict(_specs()[0], contrast=[(1, {'padding': 1})]))


def test_report_without_sweeps_says_what_to_run(tmp_path):
  text = report.write_report(tmp_path, tmp_path / 'out', 'cmd',
                             default.get_config().to_dict(), ['dropout_sweep'], _declared())
  assert text.count('| not run |') == len(_declared()) + 1  # And ~99%.
  assert 'not run: `python -m experiments.study` trains' in text
  assert '421,642 from the formulas |' in text


def test_the_readme_gets_the_reports_claims_table(tmp_path):
  text = report.write_report(tmp_path, tmp_path / 'out', 'cmd',
                             default.get_config().to_dict(), [], _declared())
  readme = tmp_path / 'README.md'
  readme.write_text(f'# x\n\n{report.README_BEGIN}\nOLD TABLE\n{report.README_END}\n\nafter\n')
  report.update_readme(readme, tmp_path / 'out')
  updated = readme.read_text()
  assert updated.startswith('# x\n\n<!-- study:begin -->\n| claim | sweep | metric')
  assert updated.endswith('<!-- study:end -->\n\nafter\n') and 'OLD TABLE' not in updated
  assert report.claims_table(updated) == report.claims_table(text)


def _tables(text):
  """Every Markdown table in `text`, as a tuple of its lines."""
  tables, current = [], []
  for line in text.splitlines() + ['']:
    if line.startswith('|'):
      current.append(line.rstrip())
    elif current:
      tables.append(tuple(current))
      current = []
  return tables


def _section(readme, heading):
  return readme.split(f'\n## {heading}', 1)[1].split('\n## ', 1)[0]


@pytest.mark.parametrize('page, heading, source', [
    ('README.md', 'The study', ('results/REPORT.md', 'results/planned_power.md')),
    ('README.md', 'Results', 'results/article_cnn/summary.md'),
    ('docs/speed.md', None, 'results/benchmark.md'),
    ('docs/inspect.md', None, 'results/article_cnn/predict_check.md'),
])
def test_the_readmes_tables_are_the_shipped_results(repo_root, page, heading, source):
  """Each results table the README (or a page it links) shows is, line for line, one in
  the results file that the command named there wrote (regenerate the file, then copy
  its table)."""
  text = (repo_root / page).read_text()
  shown = [table for table in _tables(_section(text, heading) if heading else text)
           if '![' not in ''.join(table)]  # Figures laid out as a table are no results.
  assert shown, f'no table in {page} {heading or ""}'
  shipped = [t for one in ((source,) if isinstance(source, str) else source)
             for t in _tables((repo_root / one).read_text())]
  for table in shown:
    assert table in shipped, f'{page} {heading or ""} shows a table {source} lacks: {table[:3]}'


def test_the_readmes_options_table_is_the_declared_fields(repo_root):
  """The README's Options table is `options.markdown_table()` exactly: a field declared,
  renamed or given another default in cnn_jax/options.py changes it."""
  readme = (repo_root / 'README.md').read_text()
  shown = readme.split('<!-- options:begin -->\n', 1)[1].split('\n<!-- options:end -->')[0]
  assert shown == options.markdown_table(), (
      'regenerate the table: python -m cnn_jax.options')
  assert options.markdown_table().count('\n| `') == len(options.FIELDS)


def test_the_accuracy_verdict_says_the_tolerance_it_applies_at_both_edges(monkeypatch):
  low = report.ARTICLE_ACCURACY - report.ACCURACY_TOLERANCE
  high = report.ARTICLE_ACCURACY + report.ACCURACY_TOLERANCE
  below = lambda x: float(np.nextafter(x, 0))
  above = lambda x: float(np.nextafter(x, 1))
  words = f'±{100 * report.ACCURACY_TOLERANCE:g} pp'
  assert report.accuracy_verdict(low, high, 0.99).startswith(f'holds within {words}')
  assert report.accuracy_verdict(below(low), high, 0.99).startswith('inconclusive')
  assert report.accuracy_verdict(low, above(high), 0.99).startswith('inconclusive')
  assert report.accuracy_verdict(0.9, below(low), 0.95).startswith('does not hold')
  assert report.accuracy_verdict(above(high), 1.0, 0.999).startswith('does not hold')
  assert 'below 99% itself' in report.accuracy_verdict(low, below(0.99), 0.989)
  assert 'below' not in report.accuracy_verdict(low, 0.99, 0.989)
  # The words follow the constants: another tolerance, another sentence and edge.
  monkeypatch.setattr(report, 'ACCURACY_TOLERANCE', 0.004)
  assert report.accuracy_verdict(0.986, 0.99, 0.988) == 'holds within ±0.4 pp'
  assert report.accuracy_verdict(0.9855, 0.99, 0.988).startswith(
      'inconclusive: the interval straddles 99% ± 0.4 pp')
  claim = report._accuracy_claim(type('S', (), {'full_data_baseline': lambda self: None})())[0]
  assert claim == 'It reaches ~99% test accuracy on MNIST (read: within ±0.4 pp of 99%)'


def test_the_mlp_share_verdict_says_the_tolerance_it_applies_at_both_edges():
  share, tol = report.ARTICLE_MLP_SHARE, report.MLP_SHARE_TOLERANCE
  inside = [share - tol, share + tol]
  outside = [float(np.nextafter(share - tol, 0)), float(np.nextafter(share + tol, 1))]
  for x in inside:
    assert report.mlp_share_verdict(x) == (
        f"holds: {100 * share:g}% of the MLP's, within ±{100 * tol:g} pp")
  for x in outside:
    assert report.mlp_share_verdict(x).startswith('holds in neither reading')
  assert report.mlp_share_verdict(1 - share).startswith(f'holds as "{100 * share:g}% fewer"')
  assert report.mlp_share_verdict(0.2, share_claimed=0.2, tolerance=0.01) == (
      "holds: 20% of the MLP's, within ±1 pp")


def test_a_paired_verdict_states_the_alpha_and_margin_it_decides_by():
  better = stats.paired([0.99, 0.991, 0.992], [0.98, 0.9805, 0.983], margin=0.002)
  alpha = stats.ALPHA
  just_below = float(np.nextafter(alpha, 0))
  kind, text = stats.paired_verdict(better, just_below, 1.0, 3)
  assert kind == 'better' and text.endswith(f'< {alpha:g})')
  kind, text = stats.paired_verdict(better, alpha, 1.0, 3)
  assert kind == 'inconclusive' and f'paired t Holm p = {alpha:.4f} ≥ {alpha:g}' in text
  kind, text = stats.paired_verdict(better, 0.5, just_below, 3)
  assert kind == 'equivalent' and text.startswith('equivalent within ±0.20 pp')
  assert stats.paired_verdict(better, 0.5, alpha, 3)[0] == 'inconclusive'
  # Another α: the same boundary, and the sentence names it.
  kind, text = stats.paired_verdict(better, 0.0099, 1.0, 3, alpha=0.01)
  assert kind == 'better' and text.endswith('< 0.01)')
  assert stats.paired_verdict(better, 0.01, 1.0, 3, alpha=0.01)[0] == 'inconclusive'


def test_the_parameter_claim_reads_the_articles_network_not_a_variants(tmp_path):
  runs, out = tmp_path / 'runs', tmp_path / 'results'
  roots = [fake_sweeps.make_sweep(runs, 'padding_sweep', 'padding', [0, 1], 1,
                                  {0: [0.98, 0.981], 1: [0.99, 0.991]}),
           fake_sweeps.make_sweep(runs, 'bn_sweep', 'dropout_before_batch_norm',
                                  [False, True], False, {False: [0.98, 0.981],
                                                         True: [0.98, 0.982]},
                                  params=422_090, base={'batch_norm': 'both'})]
  for root in roots:
    results.export(root, out / root.name)
  row, *_ = report.formula_claims(report.Sweeps(out, ['padding_sweep', 'bn_sweep']),
                                  default.get_config().to_dict())
  assert row == ('The CNN has 421,642 parameters',
                 '421,642 from the formulas; 421,642 in the trained Flax model', 'holds')


def test_runs_an_earlier_grid_or_seed_count_left_stay_out_of_the_raw_data(tmp_path,
                                                                          caplog):
  root = fake_sweeps.make_sweep(tmp_path, 'padding_sweep', 'padding', [0, 1], 1,
                                {0: [0.98] * 3, 1: [0.99] * 3})
  meta = json.loads((root / sweep.SWEEP_FILE).read_text())
  # The sweep rerun in the same folder with padding 1 alone and two seeds.
  meta.update(grid=[{'padding': 1}], seeds=[0, 1])
  (root / sweep.SWEEP_FILE).write_text(json.dumps(meta))
  with caplog.at_level('WARNING'):
    results.export(root, tmp_path / 'out')
  _, runs = results.read_runs(tmp_path / 'out')
  assert sorted((r.key, r.seed) for r in runs) == [('padding=1', 0), ('padding=1', 1)]
  assert ('4 run(s) outside its grid and seeds left out of runs.csv: padding=0,seed=0, '
          'padding=0,seed=1, padding=0,seed=2, padding=1,seed=2') in caplog.text


def test_what_changed_sets_each_verdict_beside_the_previous_registrations():
  """Guards against a history section that loses a claim whose metric or sweep moved,
  or that silently drops one the new study no longer tests."""
  previous = '\n'.join([
      '| claim | sweep | metric (at the best validation epoch) | direction | smallest '
      'effect of interest | Holm family | verdict |', '|---|---|---|---|---|---|---|',
      '| Old words | old_sweep: +1·(padding=1) −1·(padding=0) | generalization_gap | lower '
      '| 0.5 pp | gap (7) | inconclusive: −0.28 pp [−0.62, +0.05] |',
      '| Gone | other: +1·(pooling=max) −1·(pooling=avg) | test_accuracy | higher | 0.2 pp '
      '| architecture (6) | holds: +1 pp |'])
  claim = claims.Claim.parse(dict(
      claim='New words', sweep='s', contrast=[(1, {'padding': 1}), (-1, {'padding': 0})],
      metric='loss_gap', expect='lower', effect=0.02, family='s'))
  result = claims.Result(claim, kind='holds')
  result.verdict = 'holds: −0.03 [−0.04, −0.02]'
  lines = report.what_changed(previous, [result], {'s': 'a split per seed, 10 seeds'})
  assert lines[2] == ('| New words | inconclusive | holds | a split per seed, 10 seeds; '
                      'metric: generalization_gap → loss_gap; effect: 0.5 pp → 0.02; '
                      'family: gap (7) → s (0) |')
  assert lines[3].startswith('| Gone | holds | not in this study (the long profile')


def test_planned_power_reads_the_contrasts_spread_from_earlier_runs(tmp_path):
  """Guards against a long profile's power statement taken from the point SD (or from
  nothing): the earlier runs' per-seed contrast, its SD's upper 95% bound (chi-square),
  and the noncentral-t power at the planned seeds."""
  base, other = [0.9910, 0.9912, 0.9908, 0.9915], [0.9900, 0.9905, 0.9906, 0.9901]
  root = fake_sweeps.make_sweep(tmp_path / 'runs', 'padding_sweep', 'padding', [0, 1], 1,
                                {0: other, 1: base})
  results.export(root, tmp_path / 'out' / 'padding_sweep')
  claim = claims.Claim.parse(dict(
      claim='Padding 1 beats 0', sweep='padding_sweep',
      contrast=[(1, {'padding': 1}), (-1, {'padding': 0})], metric='test_accuracy',
      expect='higher', effect=0.002, family='padding_sweep'))
  lines = report.planned_power([claim], 10, tmp_path / 'out')
  d = np.subtract(base, other)
  upper = d.std(ddof=1) * math.sqrt(3 / scipy_stats.chi2.ppf(0.05, 3))
  crit, shift = scipy_stats.t.ppf(0.975, 9), 0.002 * math.sqrt(10) / upper
  power = scipy_stats.nct.sf(crit, 9, shift) + scipy_stats.nct.cdf(-crit, 9, shift)
  assert lines[2] == (f'| Padding 1 beats 0 | n = 4, {100 * d.std(ddof=1):.3g} pp '
                      f'({100 * upper:.3g} pp) | {power:.0%} to detect ±0.2 pp (α/1) |')
