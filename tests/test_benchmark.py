"""The benchmark's time-to-accuracy loop, with fake training (no timing asserted)."""

import ml_collections
import numpy as np

from experiments import benchmark


def _config(**kw):
  return ml_collections.ConfigDict({"batch_size": 10, "num_epochs": 3, "seed": 0, **kw})


def test_stops_at_the_first_evaluation_that_reaches_the_target():
  steps, evaluations, waits = [], [], []
  accuracies = iter([0.5, 0.8, 0.991, 0.999])

  def run_step(epoch, index, rows):
    steps.append((epoch, index, rows))

  def evaluate():
    evaluations.append(len(steps))
    return next(accuracies)

  result = benchmark.time_to_accuracy(_config(), 55, run_step, evaluate, target=0.99,
                                      eval_every_steps=2, wait=lambda: waits.append(1))
  # 5 steps per epoch (55 // 10): evaluations after steps 2, 4, 5 (epoch end), stop there.
  assert evaluations == [2, 4, 5] and len(waits) == 3
  assert result['reached'] and result['steps'] == 5 and result['epochs'] == 1.0
  assert result['accuracy'] == 0.991 and result['seconds'] >= 0
  # Each epoch's rows are the trainer's permutation, batch after batch, none repeated.
  rows = np.concatenate([r for _, _, r in steps])
  assert len(rows) == 50 and len(set(rows.tolist())) == 50 and rows.max() < 55


def test_reports_not_reached_after_the_last_epoch():
  result = benchmark.time_to_accuracy(_config(num_epochs=2), 20, lambda *a: None,
                                      lambda: 0.5, target=0.99, eval_every_steps=100)
  assert not result['reached'] and result['steps'] == 4 and result['accuracy'] == 0.5
