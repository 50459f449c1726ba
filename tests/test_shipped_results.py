"""The shipped results: REPORT.md is exactly what the shipped raw data gives, and three
of its verdicts recomputed here from runs.csv alone, with csv, numpy and scipy and
none of cnn_jax's statistics (an independent check of the paired t-test, Holm over
the whole REPORT, and the TOST)."""

import csv
import json
import pathlib

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cnn_jax import report

RESULTS = pathlib.Path(__file__).resolve().parent.parent / 'results'
SWEEP_DIRS = sorted(p.parent for p in RESULTS.glob('*/runs.csv')
                    if p.parent.name in report.SWEEPS)


def test_the_shipped_report_is_what_the_shipped_raw_data_gives(tmp_path):
  assert SWEEP_DIRS, 'results/ ships no runs.csv'
  for directory in SWEEP_DIRS:
    (tmp_path / directory.name).mkdir()
    for file in ('runs.csv', 'sweep.json'):
      (tmp_path / directory.name / file).write_bytes((directory / file).read_bytes())
  base = json.loads((SWEEP_DIRS[0] / 'sweep.json').read_text())['base_config']
  text = report.write_report(tmp_path, tmp_path, 'python -m experiments.report', base)
  assert text == (RESULTS / 'REPORT.md').read_text(), (
      'rebuild it: python -m experiments.report')
  for directory in SWEEP_DIRS:
    assert ((tmp_path / directory.name / 'results.md').read_text()
            == (directory / 'results.md').read_text()), directory.name


def _best_test_accuracy(directory):
  """{configuration: {seed: test accuracy at its first epoch of best validation
  accuracy}} of the finished runs in a sweep's runs.csv."""
  runs = {}
  with (directory / 'runs.csv').open() as f:
    for row in csv.DictReader(f):
      if row['completed'] == 'True' and row['epoch']:
        runs.setdefault((row['configuration'], int(row['seed'])), []).append(row)
  out = {}
  for (configuration, seed), rows in runs.items():
    rows.sort(key=lambda r: int(r['epoch']))
    best = max(rows, key=lambda r: float(r['validation_accuracy']))  # First of equals.
    out.setdefault(configuration, {})[seed] = float(best['test_accuracy'])
  return out


def _paired(a, b, margin):
  """(mean difference, two-sided paired t p, TOST p) by the textbook formulas."""
  d = np.asarray(a) - np.asarray(b)
  n = len(d)
  se = d.std(ddof=1) / np.sqrt(n)
  t = d.mean() / se
  p = 2 * scipy_stats.t.sf(abs(t), n - 1)
  tost = max(scipy_stats.t.sf((d.mean() + margin) / se, n - 1),
             scipy_stats.t.cdf((d.mean() - margin) / se, n - 1))
  return d.mean(), p, tost


def _holm(p):
  order = np.argsort(p, kind='stable')
  adjusted, running = np.empty(len(p)), 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (len(p) - rank) * p[i]))
    adjusted[i] = running
  return adjusted


def _p_text(p):
  return 'Holm p < 0.001' if p < 0.001 else (
      f'Holm p = {p:.3f} {"<" if p < 0.05 else "≥"} 0.05')


def test_three_verdicts_recomputed_from_the_raw_data():
  comparisons = {}  # (sweep, configuration) -> (difference, p, TOST p)
  shift = None
  for directory in SWEEP_DIRS:
    meta = json.loads((directory / 'sweep.json').read_text())
    margin = meta['equivalence_margin']
    accuracy = _best_test_accuracy(directory)
    base = accuracy[meta['baseline']]
    for configuration, by_seed in accuracy.items():
      if configuration != meta['baseline']:
        seeds = sorted(set(by_seed) & set(base))
        comparisons[(meta['name'], configuration)] = _paired(
            [by_seed[s] for s in seeds], [base[s] for s in seeds], margin)
    if meta['name'] == 'mlp_vs_cnn':  # Accuracy lost on shifted digits, MLP − CNN.
      shift = _shift_losses(directory, meta['baseline'], margin)
  keys = list(comparisons) + (['shift'] if shift else [])
  values = list(comparisons.values()) + ([shift] if shift else [])
  holm = dict(zip(keys, _holm(np.array([v[1] for v in values]))))
  holm_tost = dict(zip(keys, _holm(np.array([v[2] for v in values]))))
  text = (RESULTS / 'REPORT.md').read_text()
  assert f'Holm-corrected over all {len(keys)} comparisons' in text
  rows = report.claims_table(text).splitlines()
  checked = 0
  for (sweep_name, configuration) in (('mlp_vs_cnn', 'model=mlp'),
                                      ('activation_sweep', 'activation=sigmoid'),
                                      ('dropout_sweep', 'dropout_placement=after_fc1')):
    if (sweep_name, configuration) not in comparisons:
      continue
    difference, _, _ = comparisons[(sweep_name, configuration)]
    p, q = holm[(sweep_name, configuration)], holm_tost[(sweep_name, configuration)]
    if p < 0.05:
      expected = f"{'better' if difference > 0 else 'worse'}: "
      detail = f'(paired t, {_p_text(p)})'
    elif q < 0.05:
      expected, detail = 'equivalent within ±0.10 pp: ', f'(TOST, {_p_text(q)})'
    else:
      expected = 'inconclusive: '
      detail = f'(paired t {_p_text(p)}; TOST ±0.10 pp {_p_text(q)})'
    row = next(r for r in rows if f'{configuration}: {expected}' in r)
    verdict = row.split(f'{configuration}: {expected}', 1)[1]
    assert f'{100 * difference:+.2f} pp'.replace('-', '−') in verdict.split(',')[0]
    assert detail in verdict, (configuration, verdict[:300])
    checked += 1
  assert checked == 3


def _shift_losses(directory, baseline, margin):
  losses = {}
  with (directory / 'runs.csv').open() as f:
    rows = [r for r in csv.DictReader(f) if r['completed'] == 'True' and r['epoch']]
  for configuration in {r['configuration'] for r in rows}:
    by_seed = {}
    for r in sorted(rows, key=lambda r: int(r['epoch'])):
      if r['configuration'] == configuration:
        by_seed.setdefault(int(r['seed']), []).append(r)
    losses[configuration] = {
        s: float(b['test_accuracy']) - float(b['test_shifted_accuracy'])
        for s, b in ((s, max(v, key=lambda r: float(r['validation_accuracy'])))
                     for s, v in by_seed.items())}
  other = next(c for c in losses if c != baseline)
  seeds = sorted(set(losses[other]) & set(losses[baseline]))
  return _paired([losses[other][s] for s in seeds], [losses[baseline][s] for s in seeds],
                 margin)
