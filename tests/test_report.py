"""REPORT.md: the article's claims checked against formulas and (fake) sweep runs."""

import json

from cnn_jax import report, sweep


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
  text = report.write_report(runs, tmp_path / 'out', 'cmd')
  rows = {line.split(' | ')[0].lstrip('| '): line for line in text.splitlines()
          if line.startswith('| ') and ' | ' in line}
  assert rows['The CNN has 421,642 parameters'].endswith('| holds |')
  assert '99.10% ± 0.02 (n = 3 seeds' in rows['It reaches ~99% test accuracy on MNIST']
  assert rows['It reaches ~99% test accuracy on MNIST'].endswith('| holds |')
  padding = next(v for k, v in rows.items() if k.startswith('Padding 1 keeps'))
  assert 'flatten 1600 (225,034 parameters)' in padding and padding.endswith('| holds |')
  better_padding = next(v for k, v in rows.items() if k.startswith('Padding 1 is'))
  assert 'padding 0 vs 1: worse by 1.09 pp' in better_padding
  mlp = next(v for k, v in rows.items() if '7%' in k)
  assert '14.7% of our MLP (784→3136→128→10, 2,864,586 parameters)' in mlp
  dropout = next(v for k, v in rows.items() if k.startswith('Dropout before FC1'))
  assert 'better than before_fc1: after_fc1 (better by 0.40 pp' in dropout
  for name in ('dropout_sweep', 'padding_sweep'):
    for file in ('results.md', 'results.csv', 'results.png'):
      assert (tmp_path / 'out' / name / file).exists()
  assert (tmp_path / 'out' / 'REPORT.md').read_text() == text
  assert 'Machine: cpu (test host).' in text


def test_report_without_sweeps_says_what_to_run(tmp_path):
  text = report.write_report(tmp_path, tmp_path / 'out', 'cmd')
  assert 'not measured yet: run `python -m experiments.dropout_sweep`' in text
  assert '421,642 from the formulas |' in text
