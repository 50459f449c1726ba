"""REPORT.md: the article's claims checked against formulas and (fake) sweep runs."""

import json

import pytest

from configs import default
from cnn_jax import options, report, sweep


def _sweep(workdir, name, key_field, values, baseline, accuracies, params=421_642):
  root = workdir / name
  root.mkdir(parents=True)
  (root / sweep.SWEEP_FILE).write_text(json.dumps(
      {'name': name, 'baseline': f'{key_field}={baseline}'}))
  for index, value in enumerate(values):
    for seed, accuracy in enumerate(accuracies[value]):
      run_dir = root / f'{key_field}={value},seed={seed}'
      run_dir.mkdir()
      (run_dir / sweep.RUN_FILE).write_text(json.dumps({
          'key': f'{key_field}={value}', 'index': index, 'seed': seed,
          'overrides': {key_field: value}}))
      (run_dir / 'metrics.json').write_text(json.dumps({
          'completed': True, 'num_params': params, 'best_epoch': 2,
          'train_seconds': 60.0, 'device': 'cpu', 'host': 'test host',
          'history': [{'epoch': 1, 'test_accuracy': 0.98},
                      {'epoch': 2, 'test_accuracy': accuracy}]}))


def test_report_checks_each_claim(tmp_path):
  runs = tmp_path / 'runs'
  _sweep(runs, 'dropout_sweep', 'dropout_placement',
         ['none', 'before_fc1', 'after_fc1', 'both'], 'before_fc1',
         {'none': [0.9900, 0.9905, 0.9895], 'before_fc1': [0.9910, 0.9912, 0.9908],
          'after_fc1': [0.9950, 0.9951, 0.9949], 'both': [0.9890, 0.9920, 0.9905]})
  _sweep(runs, 'padding_sweep', 'padding', [0, 1], 1,
         {0: [0.9800, 0.9802, 0.9801], 1: [0.9910, 0.9912, 0.9908]})
  _sweep(runs, 'mlp_vs_cnn', 'model', ['cnn', 'mlp'], 'cnn',
         {'cnn': [0.9910, 0.9912, 0.9908], 'mlp': [0.9810, 0.9830, 0.9820]})
  text = report.write_report(runs, tmp_path / 'out', 'cmd', default.get_config().to_dict())
  rows = {line.split(' | ')[0].lstrip('| '): line for line in text.splitlines()
          if line.startswith('| ') and ' | ' in line}
  assert rows['The CNN has 421,642 parameters'].endswith('| holds |')
  assert '99.10% ± 0.02 (n = 3 seeds' in rows['It reaches ~99% test accuracy on MNIST']
  assert rows['It reaches ~99% test accuracy on MNIST'].endswith('| holds |')
  assert ('conv1 3×3 → pool1 4×4 → conv2 8×8 → pool2 10×10'
          in rows['Each conv and pool layer widens the receptive field'])
  padding = next(v for k, v in rows.items() if k.startswith('Padding 1 keeps'))
  assert 'flatten 1600 (225,034 parameters)' in padding and padding.endswith('| holds |')
  accuracy = next(v for k, v in rows.items() if k.startswith('Padding 1 (the'))
  assert 'padding=0: 98.01% [' in accuracy and 'padding=1 (article): 99.10% [' in accuracy
  assert '| padding=0: worse by 1.09 pp' in accuracy
  mlp = next(v for k, v in rows.items() if '7%' in k)
  assert '(784→3136→128→10) has 2,864,586 parameters: the CNN has 14.7% of them' in mlp
  assert 'an MLP of 6,023,457' in mlp and 'one of 453,378' in mlp  # 7% of, 7% fewer.
  assert mlp.endswith('holds in neither reading with our MLP (the claim depends on the '
                      'MLP compared) |')
  assert 'model=mlp: worse by 0.90 pp' in rows['The CNN is more accurate than the MLP']
  dropout = next(v for k, v in rows.items() if k.startswith('Dropout before FC1'))
  assert 'dropout_placement=after_fc1: better by 0.40 pp' in dropout
  assert 'dropout_placement=none: no significant difference' in dropout
  # Sweeps not run say so, with the commands that run them.
  for claim in ('Max pooling', 'ReLU (the'):
    row = next(v for k, v in rows.items() if k.startswith(claim))
    assert row.endswith('| not run |') and 'python -m experiments.study' in row
  for name in ('dropout_sweep', 'padding_sweep'):
    for file in ('results.md', 'results.csv', 'results.png'):
      assert (tmp_path / 'out' / name / file).exists()
  assert (tmp_path / 'out' / 'REPORT.md').read_text() == text
  assert 'Machine: cpu (test host).' in text


def test_report_without_sweeps_says_what_to_run(tmp_path):
  text = report.write_report(tmp_path, tmp_path / 'out', 'cmd', default.get_config().to_dict())
  assert (f'not run: `python -m experiments.study --workdir={tmp_path}` (all sweeps) or '
          f'`python -m experiments.dropout_sweep --workdir={tmp_path}/dropout_sweep`'
          in text)
  assert text.count('| not run |') == 6
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
])
def test_the_readmes_tables_are_the_shipped_results(repo_root, page, heading, source):
  """Each results table the README (or a page it links) shows is, line for line, one in
  the results file that the command named there wrote (regenerate the file, then copy
  its table)."""
  text = (repo_root / page).read_text()
  shown = _tables(_section(text, heading) if heading else text)
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
