"""experiments.study end to end on an MNIST slice: two sweeps sharing their baseline,
the shared runs trained once, one progress display, the report, and a rerun that
trains nothing."""

import json
import re
import subprocess
import sys

import pytest

from cnn_jax import report


@pytest.mark.slow
def test_the_study_trains_each_distinct_run_once_then_reports(small_config, repo_root,
                                                              tmp_path):
  configs = tmp_path / 'configs'
  configs.mkdir()
  (configs / 'study.py').write_text(
      'from configs import default\n'
      "SWEEPS = ('dropout_sweep', 'padding_sweep')\n"
      'SEEDS = 2\n'
      "CLAIMS = [dict(claim='Padding 1 beats 0', sweep='padding_sweep', contrast=[(1, "
      "{'padding': 1}), (-1, {'padding': 0})], metric='test_accuracy', expect='higher', "
      "effect=0.002, family='architecture')]\n"
      'def get_config():\n  return default.get_config()\n')
  # The study's own grids: padding=1 is the dropout sweep's before_fc1 (the default),
  # tuned once for both, its tuning runs at a tenth of the rate apart.
  search = ("SEARCH = {'field': 'learning_rate', 'values': [1e-3, 1e-2], 'extend': 0, "
            "'overrides': {'num_epochs': 1}}\n")
  (configs / 'dropout_sweep.py').write_text(
      "GRID = [{'dropout_placement': 'none'}, {'dropout_placement': 'before_fc1'}]\n"
      "BASELINE = {'dropout_placement': 'before_fc1'}\n" + search)
  (configs / 'padding_sweep.py').write_text(
      "GRID = [{'padding': 0}, {'padding': 1}]\nBASELINE = {'padding': 1}\n" + search)
  workdir, output = tmp_path / 'runs', tmp_path / 'results'
  overrides = [f'--config.{k}={small_config[k]}' for k in
               ('data_dir', 'conv_features', 'fc_features', 'max_train_examples',
                'max_test_examples', 'validation_examples', 'train_eval_examples',
                'batch_size', 'num_epochs')]
  command = [sys.executable, '-m', 'experiments.study', f'--workdir={workdir}',
             f'--output_dir={output}', f'--config={configs / "study.py"}', *overrides]
  done = subprocess.run(command, cwd=repo_root, capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  # 8 runs planned, 6 distinct: the 2 baseline seeds train once, in the dropout sweep;
  # 3 distinct configurations tuned, 2 rates each (1 epoch), joining the totals as the
  # search finds them (the shared tuning counted again, as already finished).
  assert done.stderr.startswith('[0/10 runs] 0/14 epochs')
  assert done.stderr.splitlines()[-1].startswith('[16/16 runs] 18/18 epochs')
  assert done.stderr.count('epoch 2/2 validation accuracy') == 6
  assert done.stderr.count('epoch 1/1 validation accuracy') == 6
  assert len(list((workdir / 'tuning').iterdir())) == 3
  for seed in (0, 1):
    trained = workdir / 'dropout_sweep' / f'dropout_placement=before_fc1,seed={seed}'
    copied = workdir / 'padding_sweep' / f'padding=1,seed={seed}'
    assert (json.loads((copied / 'metrics.json').read_text())['history']
            == json.loads((trained / 'metrics.json').read_text())['history'])
  page = (output / 'REPORT.md').read_text()
  assert page in done.stdout and '`python -m experiments.study ' in page
  assert ('dropout_sweep: Data: mnist, 1,024 training images and 500 held out for '
          'validation (class-stratified random splits of the training split, seed 0), the '
          'first 500 test images; 2 epoch(s); seeds 0, 1') in page
  rows = report.claims_table(page).splitlines()
  padding = next(r for r in rows if r.startswith('| Padding 1 beats 0'))
  assert '| test_accuracy | higher | 0.2 pp | architecture (1) | ' in padding
  assert 'n = 2' in padding
  tuned = json.loads((output / 'padding_sweep' / 'sweep.json').read_text())['tuned']
  assert set(tuned) == {'padding=0', 'padding=1'}
  assert tuned['padding=1'] == json.loads((output / 'dropout_sweep' / 'sweep.json')
                                          .read_text())['tuned']['dropout_placement=before_fc1']
  assert 'padding_sweep](padding_sweep/results.md) learning_rate: padding=0: ' in page
  for sweep_name in ('dropout_sweep', 'padding_sweep'):
    for file in ('results.md', 'runs.csv', 'sweep.json'):
      assert (output / sweep_name / file).exists()
  # The raw data alone rebuilds the same page.
  rebuilt = subprocess.run([sys.executable, '-m', 'experiments.report',
                            f'--output_dir={output}', f'--config={configs / "study.py"}'],
                           cwd=repo_root, capture_output=True, text=True, timeout=300)
  assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
  assert (output / 'REPORT.md').read_text() == page

  # The same command again trains nothing and writes the same report.
  again = subprocess.run(command, cwd=repo_root, capture_output=True, text=True,
                         timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert not re.search(r'epoch \d+/\d+ validation accuracy', again.stderr)
  assert again.stderr.splitlines()[-1].startswith('[16/16 runs] 0/0 epochs')
  assert report.claims_table((output / 'REPORT.md').read_text()) == report.claims_table(
      page)
