"""REPORT.md: the article's claims checked against formulas and (fake) sweeps' raw data."""

import json

import numpy as np

import pytest

from configs import default
from cnn_jax import options, report, results, stats
import fake_sweeps


def _claims(text):
  return {line.split(' | ')[0].lstrip('| '): line for line in text.splitlines()
          if line.startswith('| ') and ' | ' in line}


def _row(rows, start):
  return next(v for k, v in rows.items() if k.startswith(start))


def test_report_checks_each_claim_from_the_raw_data_alone(tmp_path):
  runs = tmp_path / 'runs'
  base = [0.9910, 0.9912, 0.9908]
  sweeps = [
      fake_sweeps.make_sweep(runs, 'dropout_sweep', 'dropout_placement',
                             ['none', 'before_fc1', 'after_fc1'], 'before_fc1',
                             {'none': [0.9900, 0.9905, 0.9895], 'before_fc1': base,
                              'after_fc1': [0.9950, 0.9951, 0.9949]}),
      fake_sweeps.make_sweep(runs, 'padding_sweep', 'padding', [0, 1], 1,
                             {0: [0.9800, 0.9802, 0.9801], 1: base}),
      fake_sweeps.make_sweep(runs, 'mlp_vs_cnn', 'model', ['cnn', 'mlp'], 'cnn', {
          'cnn': [[fake_sweeps.epoch(1, a, shifted=a - 0.01)] for a in base],
          'mlp': [[fake_sweeps.epoch(1, a, shifted=a - 0.20)]
                  for a in (0.9810, 0.9830, 0.9820)]}, num_epochs=1)]
  out = tmp_path / 'results'
  for root in sweeps:
    results.export(root, out / root.name)
  text = report.write_report(out, out, 'python -m experiments.report',
                             default.get_config().to_dict())
  rows = _claims(text)
  assert rows['The CNN has 421,642 parameters'].endswith('| holds |')
  accuracy = _row(rows, 'It reaches ~99%')
  assert '99.10% ± 0.02 [' in accuracy and 'n = 3 seeds' in accuracy
  assert '99% is outside the seeds\' 95% CI' in accuracy
  assert 'one run\'s accuracy on 10,000 images has a 95% Clopper–Pearson' in accuracy
  assert accuracy.endswith('| holds within ±0.5 pp |')
  assert ('conv1 3×3 → pool1 4×4 → conv2 8×8 → pool2 10×10'
          in rows['Each conv and pool layer widens the receptive field'])
  padding = _row(rows, 'Padding 1 keeps')
  assert 'flatten 1600 (225,034 parameters)' in padding and padding.endswith('| holds |')
  accuracy = _row(rows, 'Padding 1 (the')
  assert 'padding=0: 98.01% ± 0.01 [' in accuracy
  assert '| padding=0: worse: −1.09 pp [' in accuracy
  mlp = _row(rows, 'The CNN needs ~7%')
  assert '(784→3136→128→10) has 2,864,586 parameters: the CNN has 14.7% of them' in mlp
  assert 'an MLP of 6,023,457 (784→6,596→128→10)' in mlp  # 7% of it: 913·H + 1,418.
  assert 'one of 453,378 (784→495→128→10)' in mlp  # 7% fewer.
  # MLP: 784·3136 + 3136·128 + 128·10.
  assert 'multiply-adds per image: CNN 4,241,152, MLP 2,861,312' in _row(rows, 'Fewer')
  assert 'model=mlp: worse: −0.90 pp' in rows['The CNN is more accurate than the MLP']
  shift = _row(rows, 'The CNN is less sensitive')
  assert 'CNN (article): 1.00 pp lost' in shift and 'MLP: 20.00 pp lost' in shift
  assert shift.endswith('|') and '| holds (the MLP loses more): +19.00 pp' in shift
  dropout = _row(rows, 'Dropout before FC1')
  assert 'dropout_placement=after_fc1: better: +0.40 pp' in dropout
  # Holm over every comparison the REPORT makes: 2 dropout, padding, MLP, the shift.
  assert 'Holm-corrected over all 5 comparisons' in text
  for claim in ('Max pooling', 'ReLU (the', 'Dropout "sparingly"'):
    row = _row(rows, claim)
    assert row.endswith('| not run |') and 'python -m experiments.study' in row
  for root in sweeps:
    for file in ('results.md', 'runs.csv', 'sweep.json', 'results.png'):
      assert (out / root.name / file).exists()
    assert "Holm's correction over the REPORT's 5 comparisons" in (
        out / root.name / 'results.md').read_text()
  assert (out / 'REPORT.md').read_text() == text
  assert 'Machine: test host.' in text
  assert 'Runs trained by `python -m experiments.dropout_sweep` at code version `abc123`' \
      in text
  # Rebuilt elsewhere from the raw data alone: the same page.
  again = tmp_path / 'again'
  assert report.write_report(out, again, 'python -m experiments.report',
                             default.get_config().to_dict()) == text


def test_report_without_sweeps_says_what_to_run(tmp_path):
  text = report.write_report(tmp_path, tmp_path / 'out', 'cmd', default.get_config().to_dict())
  assert ('not run: `python -m experiments.study` (all sweeps) or '
          '`python -m experiments.dropout_sweep`' in text)
  assert text.count('| not run |') == 10
  assert '421,642 from the formulas |' in text


def test_the_readme_gets_the_reports_claims_table(tmp_path):
  text = report.write_report(tmp_path, tmp_path / 'out', 'cmd', default.get_config().to_dict())
  readme = tmp_path / 'README.md'
  readme.write_text(f'# x\n\n{report.README_BEGIN}\nOLD TABLE\n{report.README_END}\n\nafter\n')
  report.update_readme(readme, tmp_path / 'out')
  updated = readme.read_text()
  assert updated.startswith('# x\n\n<!-- study:begin -->\n| claim | measured | verdict |')
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
    ('README.md', 'The study', 'results/REPORT.md'),
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
  shipped = _tables((repo_root / source).read_text())
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
  claim = report._accuracy_claim(type('S', (), {'baseline': lambda self: None})())[0]
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
