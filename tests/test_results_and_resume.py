"""Sweep verdicts against SciPy and Holm by hand; which checkpoints are kept, and which
one a resume and inference read."""

import json

import numpy as np
import optax
import pytest

from scipy import stats as scipy_stats

from configs import default
from cnn_jax import checkpoints, errors, options, results, stats, steps


def _runs(finals_by_key, best_first=0.999):
  """Runs of two epochs: the first best on validation only where `best_first` is
  given (its test accuracy `best_first`), else the last; the last's test accuracy is
  the final value."""
  runs = []
  for index, (key, finals) in enumerate(finals_by_key.items()):
    for seed, final in enumerate(finals):
      first = {'epoch': 1, 'validation_accuracy': 0.99 if best_first else 0.9,
               'test_accuracy': best_first or 0.9}
      last = {'epoch': 2, 'validation_accuracy': 0.98, 'test_accuracy': final}
      runs.append(results.RecordedRun(f'{key}-s{seed}', key, index, seed, {'k': key}, True,
                                      '', 10, 20, 10_000, [first, last]))
  return runs


def _holm(p_values):
  order = np.argsort(p_values)
  adjusted, running = [0.0] * len(p_values), 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
    adjusted[i] = running
  return adjusted


def test_verdicts_use_holm_over_every_paired_comparison_of_the_family():
  finals = {'base': [0.9900, 0.9910, 0.9920, 0.9905],
            'a': [0.9925, 0.9940, 0.9945, 0.9930],  # Raw paired p ≈ 0.004.
            'b': [0.9890, 0.9915, 0.9930, 0.9900],
            'c': [0.9900, 0.9911, 0.9921, 0.9906]}  # +0.01 pp: within ±0.10 pp.
  rows = results.aggregate(_runs(finals, best_first=None), 'base', margin=0.001)
  other = results.aggregate(_runs(finals, best_first=None), 'base', margin=0.001)
  results.adjust([rows, other])  # Two pages of one REPORT: six comparisons.
  raw = [scipy_stats.ttest_rel(finals[k], finals['base']).pvalue for k in 'abc']
  for row, p, p_adjusted in zip(rows[1:], raw, _holm(raw * 2)[:3]):
    assert row.comparison.p_value == pytest.approx(p, rel=1e-9)
    assert row.holm_p == pytest.approx(p_adjusted, rel=1e-9)
    assert row.family == 6
    assert row.comparison.difference == pytest.approx(
        np.mean(finals[row.key]) - np.mean(finals['base']))
  assert [r.kind for r in rows] == ['reference', 'better', 'inconclusive', 'equivalent']
  assert rows[1].verdict.startswith('better: +0.26 pp [')
  assert rows[3].verdict.startswith('equivalent within ±0.10 pp: +0.01 pp')
  assert 'seeds would decide it at the observed difference and the SD' in rows[2].verdict
  # The test accuracy at the best validation epoch is what counts: the first epoch's.
  rows = results.aggregate(_runs(finals), 'base')
  results.adjust([rows])
  assert rows[1].summary('test_accuracy').mean == pytest.approx(0.999)
  assert rows[1].kind == 'equivalent' and rows[1].comparison.difference == 0


def test_intervals_stay_within_0_and_100_percent_and_one_seed_tests_nothing():
  finals = {'base': [0.90, 0.99, 1.0], 'a': [0.99]}
  rows = results.aggregate(_runs(finals, best_first=None), 'base')
  results.adjust([rows])
  base = rows[0].summary('test_accuracy')
  t_interval = scipy_stats.t.interval(0.95, 2, loc=np.mean(finals['base']),
                                      scale=scipy_stats.sem(finals['base']))
  assert t_interval[1] > 1.0  # The plain t-interval reaches past 100% ...
  assert base.ci_low == pytest.approx(t_interval[0]) and base.ci_high == 1.0  # ... cut.
  assert base.clipped
  assert rows[1].verdict.startswith('not tested')
  meta = {'name': 't', 'base_config': default.get_config().to_dict(), 'seeds': [0, 1, 2]}
  markdown = results.to_markdown('t', rows, meta)
  assert '100.00] †' in markdown and 'Nothing was tested' in markdown


def _tiny_state(value: float) -> steps.TrainState:
  return steps.TrainState.create(apply_fn=None, params={'w': np.full(3, value,
                                                                          np.float32)},
                                       tx=optax.sgd(0.1))


def _record(epoch, accuracy=0.5):
  return {'epoch': epoch, 'validation_accuracy': accuracy, 'test_accuracy': 0.5}


def test_resume_reads_the_newest_readable_checkpoint(tmp_path):
  saver = checkpoints.Checkpoints(tmp_path, keep=5)
  for epoch in (1, 2, 3):
    saver.save(10 * epoch, _tiny_state(float(epoch)), record=_record(epoch))
  saver.close()
  like = _tiny_state(0.0)
  reader = checkpoints.Checkpoints(tmp_path, keep=5)
  found = reader.restore_latest_good(like)
  assert found.step == 30 and found.record == _record(3)
  assert float(found.state.params['w'][0]) == 3.0
  reader.close()
  # The newest damaged: the next newest (2), not the oldest.
  meta = tmp_path / '30' / '_CHECKPOINT_METADATA'
  content = json.loads(meta.read_text())
  content['custom_metadata']['sha256'] = '0' * 64
  meta.write_text(json.dumps(content))
  reader = checkpoints.Checkpoints(tmp_path, keep=5)
  found = reader.restore_latest_good(like)
  assert found.step == 20 and float(found.state.params['w'][0]) == 2.0
  reader.close()


def test_kept_are_the_newest_the_last_epochs_and_the_first_best(tmp_path):
  """checkpoints_to_keep=2: the newest checkpoint (a stop's), the last 2 epoch ends and
  the best epoch end (the earliest of equal validation accuracies, as metrics.json's
  best_epoch),
  whatever order they came in; a stop's checkpoint goes once it is not the newest."""
  saver = checkpoints.Checkpoints(tmp_path, keep=2)
  kept = []
  accuracies = {1: 0.5, 2: 0.9, 3: 0.7, 4: 0.9, 5: 0.8}
  for epoch in range(1, 6):
    saver.save(10 * epoch, _tiny_state(epoch), record=_record(epoch, accuracies[epoch]))
    saver.save(10 * epoch + 5, _tiny_state(epoch), totals={'loss': np.zeros(2)})
    saver.wait()
    kept.append(saver.steps())
  saver.close()
  assert kept == [[10, 15], [10, 20, 25], [20, 30, 35], [20, 30, 40, 45],
                  [20, 40, 50, 55]]
  reader = checkpoints.Checkpoints(tmp_path, keep=2)
  assert reader.best_step() == 20  # Epoch 2 ties epoch 4 and came first.
  found = reader.restore(55, _tiny_state(0.0), {'loss': np.ones(2)})
  assert found.record is None and list(found.totals['loss']) == [0.0, 0.0]
  reader.close()


def test_inference_loads_the_best_epoch_not_the_latest(tmp_path):
  saver = checkpoints.Checkpoints(tmp_path / 'checkpoints', keep=3)
  for epoch, accuracy in ((1, 0.8), (2, 0.95), (3, 0.9)):
    saver.save(10 * epoch, _tiny_state(float(epoch)), record=_record(epoch, accuracy))
  saver.save(35, _tiny_state(3.5), totals={'loss': np.zeros(2)})  # A stop: no epoch.
  saver.close()
  state, epoch, which = checkpoints.load_for_inference(tmp_path, _tiny_state(0.0))
  assert (epoch, which, float(state.params['w'][0])) == (2, 'best', 2.0)
  # The best's arrays damaged: the newest other epoch end, not the stop's checkpoint.
  meta = tmp_path / 'checkpoints' / '20' / '_CHECKPOINT_METADATA'
  content = json.loads(meta.read_text())
  content['custom_metadata']['sha256'] = '0' * 64
  meta.write_text(json.dumps(content))
  state, epoch, which = checkpoints.load_for_inference(tmp_path, _tiny_state(0.0))
  assert (epoch, which, float(state.params['w'][0])) == (3, 'latest', 3.0)


def test_a_workdir_of_the_old_checkpoint_layout_is_named(tmp_path):
  (tmp_path / 'best_checkpoint' / '2').mkdir(parents=True)
  with pytest.raises(errors.ConfigError, match=r'holds best_checkpoint/: an older '
                     r'cnn_jax wrote it .* train it in a new --workdir'):
    options.check_workdir(tmp_path, {})
