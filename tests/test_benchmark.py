"""The trainer's dispatch plan, which the benchmark times, and its time-to-accuracy loop, with fake training (no timing
asserted)."""

import ml_collections
import numpy as np

from cnn_jax import device_loop
from experiments import benchmark


def _config(**kw):
  return ml_collections.ConfigDict({"batch_size": 10, "num_epochs": 3, "seed": 0, **kw})


def test_dispatches_are_cut_as_the_trainer_cuts_them():
  # 10 steps per epoch, 4 per dispatch: 4 + 4 + 2 in every epoch.
  assert device_loop.dispatches(10, 4, 0, 10) == [(1, 0, 4), (1, 4, 4), (1, 8, 2)]
  # From global step 6 (a resumed run) for 9: what is left of epoch 1, then epoch 2's.
  assert device_loop.dispatches(10, 4, 6, 9) == [(1, 6, 4), (2, 0, 4), (2, 4, 1)]
  assert device_loop.dispatches(5, 1, 3, 3) == [(1, 3, 1), (1, 4, 1), (2, 0, 1)]


def test_stops_at_the_first_evaluation_that_reaches_the_target():
  calls, evaluations, waits = [], [], []
  accuracies = iter([0.5, 0.8, 0.991, 0.999])

  def run_steps(epoch, first, count):
    calls.append((epoch, first, count))

  def evaluate():
    evaluations.append(sum(c for _, _, c in calls))
    return next(accuracies)

  result = benchmark.time_to_accuracy(_config(), 55, run_steps, evaluate, target=0.99,
                                      eval_every_steps=2, wait=lambda: waits.append(1))
  # 5 steps per epoch (55 // 10): evaluations after steps 2, 4, 5 (epoch end), stop there.
  assert evaluations == [2, 4, 5] and len(waits) == 3
  assert calls == [(1, i, 1) for i in range(5)]
  assert result['reached'] and result['steps'] == 5 and result['epochs'] == 1.0
  assert result['accuracy'] == 0.991 and result['seconds'] >= 0


def test_evaluates_at_the_dispatch_that_completes_each_interval():
  evaluations, steps = [], [0]

  def run_steps(epoch, first, count):
    steps[0] += count

  result = benchmark.time_to_accuracy(
      _config(num_epochs=2), 100, run_steps, lambda: evaluations.append(steps[0]) or 0.5,
      target=0.99, eval_every_steps=3, steps_per_dispatch=4)
  # 10 steps per epoch in dispatches of 4, 4, 2: past 3 at 4, past 6 at 8, epoch end at
  # 10, past 12 at 14, past 15 at 18, past 18 and the end at 20.
  assert evaluations == [4, 8, 10, 14, 18, 20]
  assert not result['reached'] and result['steps'] == 20 and result['accuracy'] == 0.5


def test_reports_not_reached_after_the_last_epoch():
  result = benchmark.time_to_accuracy(_config(num_epochs=2), 20, lambda *a: None,
                                      lambda: 0.5, target=0.99, eval_every_steps=100)
  assert not result['reached'] and result['steps'] == 4 and result['accuracy'] == 0.5
  assert np.isfinite(result['seconds'])
