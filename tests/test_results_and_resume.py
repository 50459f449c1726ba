"""Sweep verdicts against SciPy and Holm by hand; which checkpoint a resume reads."""

import json

import numpy as np
import optax
import pytest
from flax.training import train_state
from scipy import stats as scipy_stats

from cnn_jax import checkpoints, results, stats


def _runs(finals_by_key, best_first=0.999):
  """RunResults whose curves peak at epoch 1 (`best_first`) and end at the final value."""
  runs = []
  for index, (key, finals) in enumerate(finals_by_key.items()):
    for seed, final in enumerate(finals):
      runs.append(results.RunResult(
          name=f'{key}-s{seed}', key=key, index=index, seed=seed, overrides={'k': key},
          completed=True, test_accuracy=final, best_epoch=1, num_params=10,
          train_seconds=1.0, curve=[best_first, final]))
  return runs


def _holm(p_values):
  order = np.argsort(p_values)
  adjusted, running = [0.0] * len(p_values), 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
    adjusted[i] = running
  return adjusted


def test_verdicts_use_holm_adjusted_welch_p_values_of_the_final_epoch():
  finals = {'base': [0.9900, 0.9910, 0.9920],
            'a': [0.9925, 0.9935, 0.9945],  # Raw p = 0.038: "better" without Holm.
            'b': [0.9890, 0.9910, 0.9930],
            'c': [0.9915, 0.9930, 0.9935]}
  rows = results.aggregate(_runs(finals), 'base')
  raw = [scipy_stats.ttest_ind(finals[k], finals['base'], equal_var=False).pvalue
         for k in 'abc']
  assert raw[0] < 0.05
  for row, p, p_adjusted in zip(rows[1:], raw, _holm(raw)):
    assert row.test.p_value == pytest.approx(p, rel=1e-9)
    assert row.adjusted_p == pytest.approx(p_adjusted, rel=1e-9)
    assert row.test.difference == pytest.approx(
        np.mean(finals[row.key]) - np.mean(finals['base']))
    assert row.verdict.startswith('no significant difference'), row.verdict
    assert stats.p_text(p_adjusted) in row.verdict
  # Final-epoch accuracy (0.99…), not the best epoch's (0.999), is what is summarized.
  assert rows[1].accuracy.mean == pytest.approx(np.mean(finals['a']))
  markdown = results.to_markdown('t', rows, 'cmd')
  assert 'No configuration tested (3) is significantly better' in markdown
  # With a clear difference the verdict says so, with the adjusted p.
  finals['a'] = [0.9950, 0.9952, 0.9954]
  rows = results.aggregate(_runs(finals), 'base')
  assert rows[1].verdict.startswith('better by 0.42 pp ['), rows[1].verdict
  assert rows[1].verdict.endswith(' < 0.05)')
  assert 'Significantly better than the default: a' in results.to_markdown('t', rows, 'c')


def test_intervals_stay_within_0_and_100_percent_and_one_seed_tests_nothing():
  finals = {'base': [0.90, 0.99, 1.0], 'a': [0.99]}
  rows = results.aggregate(_runs(finals), 'base')
  base = rows[0].accuracy
  t_interval = scipy_stats.t.interval(0.95, 2, loc=np.mean(finals['base']),
                                      scale=scipy_stats.sem(finals['base']))
  assert t_interval[1] > 1.0  # The plain t-interval reaches past 100% ...
  assert base.ci_low == pytest.approx(t_interval[0]) and base.ci_high == 1.0  # ... cut.
  assert base.clipped
  assert rows[1].verdict.startswith('not tested')
  markdown = results.to_markdown('t', rows, 'cmd')
  assert '100.00%] †' in markdown and 'Nothing was tested' in markdown
  assert 'significantly better' not in markdown


def _tiny_state(value: float) -> train_state.TrainState:
  return train_state.TrainState.create(apply_fn=None, params={'w': np.full(3, value,
                                                                          np.float32)},
                                       tx=optax.sgd(0.1))


def test_resume_reads_the_newest_readable_checkpoint(tmp_path):
  saver = checkpoints.Checkpointer(tmp_path, keep=5)
  for epoch in (1, 2, 3):
    saver.save(epoch, _tiny_state(float(epoch)), record={'epoch': epoch})
  saver.close()
  like = _tiny_state(0.0)
  reader = checkpoints.Checkpointer(tmp_path, keep=5)
  epoch, state = reader.restore_latest_good(like)
  assert epoch == 3 and float(state.params['w'][0]) == 3.0
  reader.close()
  # The newest damaged: the next newest (2), not the oldest.
  meta = tmp_path / '3' / '_CHECKPOINT_METADATA'
  content = json.loads(meta.read_text())
  content['custom_metadata']['sha256'] = '0' * 64
  meta.write_text(json.dumps(content))
  reader = checkpoints.Checkpointer(tmp_path, keep=5)
  epoch, state = reader.restore_latest_good(like)
  assert epoch == 2 and float(state.params['w'][0]) == 2.0
  reader.close()
