"""The shipped results: REPORT.md is exactly what the shipped raw data gives, and three
of its verdicts recomputed here from runs.csv alone, with csv, numpy and scipy and
none of cnn_jax's statistics (an independent check of the paired t-test, Holm over
the whole REPORT, and the TOST)."""

import csv
import json
import pathlib

import numpy as np
from scipy import stats as scipy_stats

from cnn_jax import learning_curve, report, study
from configs import learning_curve as curve_config

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / 'results'
STUDY = study.load_study(str(ROOT / 'configs' / 'study.py'))
NAMES = [s.name for s in STUDY.sweeps]
SWEEP_DIRS = [RESULTS / n for n in NAMES if (RESULTS / n / 'runs.csv').exists()]
CURVE = RESULTS / learning_curve.NAME


def test_the_shipped_report_is_what_the_shipped_raw_data_gives(tmp_path):
  assert SWEEP_DIRS, 'results/ ships no runs.csv'
  for directory in SWEEP_DIRS + [CURVE]:
    (tmp_path / directory.name).mkdir()
    for file in ('runs.csv', 'sweep.json'):
      (tmp_path / directory.name / file).write_bytes((directory / file).read_bytes())
  previous = RESULTS / report.PREVIOUS_CLAIMS  # The earlier registration's verdicts.
  if previous.exists():
    (tmp_path / report.PREVIOUS_CLAIMS).parent.mkdir()
    (tmp_path / report.PREVIOUS_CLAIMS).write_bytes(previous.read_bytes())
  base = json.loads((SWEEP_DIRS[0] / 'sweep.json').read_text())['base_config']
  text = report.write_report(tmp_path, tmp_path, 'python -m experiments.report', base,
                             NAMES, STUDY.claims, curve_config.EFFECTS)
  assert text == (RESULTS / 'REPORT.md').read_text(), (
      'rebuild it: python -m experiments.report')
  for directory in SWEEP_DIRS:
    assert ((tmp_path / directory.name / 'results.md').read_text()
            == (directory / 'results.md').read_text()), directory.name
  page = pathlib.Path(learning_curve.NAME) / learning_curve.TABLE_FILE
  assert (tmp_path / page).read_text() == (RESULTS / page).read_text()


def test_the_learning_curves_2000_image_runs_are_the_studys():
  """Its 2,000-image point is the study's dropout_sweep configuration: the same
  (config, seed) trains the same run, bit for bit, whichever command trains it."""
  rows = lambda d: {
      (json.dumps({k: v for k, v in json.loads(r['overrides']).items()
                   if k in ('dropout_placement', 'learning_rate')}, sort_keys=True),
       r['seed'], r['epoch']): r
      for r in csv.DictReader((d / 'runs.csv').read_text().splitlines())
      if json.loads(r['overrides']).get('max_train_examples', 2000) == 2000}
  curve, study_runs = rows(CURVE), rows(RESULTS / 'dropout_sweep')
  assert curve and set(curve) <= set(study_runs)
  columns = ('train_loss', 'validation_accuracy', 'validation_loss', 'train_eval_loss',
             'test_accuracy', 'test_loss', 'loss_gap')
  for key, row in curve.items():
    assert [row[c] for c in columns] == [study_runs[key][c] for c in columns], key


def _best(directory):
  """{(overrides less the sweep's strata as JSON, stratum as JSON, seed): the row of its
  first epoch of best validation accuracy} of the finished runs in a sweep's runs.csv."""
  strata = json.loads((directory / 'sweep.json').read_text()).get('strata', [])
  runs = {}
  with (directory / 'runs.csv').open() as f:
    for row in csv.DictReader(f):
      if row['completed'] == 'True' and row['epoch']:
        overrides = json.loads(row['overrides'])
        key = (json.dumps({k: v for k, v in overrides.items() if k not in strata},
                          sort_keys=True),
               json.dumps({k: v for k, v in overrides.items() if k in strata},
                          sort_keys=True), int(row['seed']))
        runs.setdefault(key, []).append(row)
  return {key: max(sorted(rows, key=lambda r: int(r['epoch'])),
                   key=lambda r: float(r['validation_accuracy']))  # First of equals.
          for key, rows in runs.items()}


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


def test_every_declared_claims_p_value_recomputed_from_the_raw_data():
  """Each tested claim's per-seed contrast (within each shared learning rate, then the
  mean over them), paired t p and Holm p within its family, by the textbook formulas on
  runs.csv; the REPORT's verdict states that Holm p."""
  tested = {}
  for claim in STUDY.claims:
    directory = RESULTS / claim.sweep
    if not (directory / 'runs.csv').exists():
      continue
    best = _best(directory)
    terms = [(w, {(stratum, seed): row for (key, stratum, seed), row in best.items()
                  if key == json.dumps(json.loads(json.dumps(o, default=list)),
                                       sort_keys=True)}) for w, o in claim.contrast]
    if not all(rows for _, rows in terms) or any(
        m not in row for _, rows in terms for row in rows.values() for m in claim.metric):
      continue  # Not run, or a metric these runs did not record: "not tested".
    pairs = set.intersection(*(set(rows) for _, rows in terms))
    strata = sorted({stratum for stratum, _ in pairs})
    seeds = sorted({s for _, s in pairs if all((st, s) in pairs for st in strata)})
    values = [np.mean([sum(w * np.mean([float(rows[(st, s)][m]) for m in claim.metric])
                           for w, rows in terms) for st in strata]) for s in seeds]
    if len(values) >= 2 and np.std(values) > 0:
      _, p, q = _paired(values, [0.0] * len(values), claim.effect)
      tested[claim.text] = (claim.family, p, q)
  assert tested, 'no declared claim could be recomputed from results/'
  text = (RESULTS / 'REPORT.md').read_text()
  rows = {}
  for line in text.splitlines():  # The claims table's row: the first of that name.
    if line.startswith('| '):
      rows.setdefault(line.split(' | ')[0].lstrip('| '), line)
  checked = 0
  for family in {f for f, _, _ in tested.values()}:
    names = [n for n, (f, _, _) in tested.items() if f == family]
    ps = _holm(np.array([tested[n][1] for n in names]))
    qs = _holm(np.array([tested[n][2] for n in names]))
    for name, p, q in zip(names, ps, qs):
      row = rows[name]
      assert 'paired t Holm' in row or 'TOST ±' in row, row
      if 'paired t Holm' in row:  # The verdict names the p it rests on: check it.
        assert f'paired t {_p_text(p)}' in row, (name, p, row[-300:])
        checked += 1
      if 'TOST ±' in row:
        assert f' {_p_text(q)}' in row.split('TOST ±', 1)[1], (name, q, row[-300:])
        checked += 1
  assert checked >= len(tested)
