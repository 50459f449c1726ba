"""Sweep workdirs with made-up runs, as run_sweep and the trainer would leave them, for
the tests of the results pages and the REPORT (no training)."""

import json
import pathlib

from configs import default
from cnn_jax import sweep


def epoch(number, test, validation=None, train_eval=None, shifted=None, **extra):
  """One epoch's record of metrics.json (losses made up from the accuracies); `extra`:
  more entries (e.g. the shift curve's accuracies)."""
  validation = test if validation is None else validation
  train_eval = validation if train_eval is None else train_eval
  record = {'epoch': number, 'train_loss': 0.1, 'train_accuracy': train_eval - 0.01,
            'learning_rate': 1e-3, 'train_seconds': 30.0}
  for name, accuracy in (('train_eval', train_eval), ('validation', validation),
                         ('test', test), ('test_shifted', shifted)):
    if accuracy is not None:
      record.update({f'{name}_accuracy': accuracy, f'{name}_loss': 1 - accuracy})
  record['generalization_gap'] = train_eval - validation
  return {**record, **extra}


def make_sweep(workdir: pathlib.Path, name: str, field: str, values, baseline,
               histories, params=421_642, num_epochs=2, margin=0.001, base=None,
               tuned=None, grid=None, strata=()):
  """`histories[value]`: one list of epoch records per seed (or a list of final test
  accuracies: two epochs each, the last the best). Returns the sweep's directory.
  `grid`: each value's overrides (default {field: value}), `baseline` then a key;
  `strata`: the grid's shared nuisance fields."""
  root = workdir / name
  root.mkdir(parents=True)
  baseline_key = baseline if grid else f'{field}={baseline}'
  grid = grid or [{field: v} for v in values]
  base = dict(default.get_config().to_dict(), num_epochs=num_epochs, **(base or {}))
  seeds = sorted({s for v in values for s in range(len(histories[v]))})
  (root / sweep.SWEEP_FILE).write_text(json.dumps({
      'name': name, 'grid': grid, 'baseline': baseline_key, 'seeds': seeds,
      'strata': list(strata),
      'base_config': base, 'command': f'python -m experiments.{name}',
      'code_version': 'abc123', 'packages': 'python 3.12', 'host': 'test host',
      'equivalence_margin': margin, **({'search': {
          'field': 'learning_rate', 'values': [1e-3, 1e-2], 'seeds': 1, 'overrides': {},
          'extend': 0}, 'tuned': tuned} if tuned else {})}, default=list))
  for index, value in enumerate(values):
    for seed, history in enumerate(histories[value]):
      if not isinstance(history, list):
        history = [epoch(1, history - 0.01), epoch(2, history)]
      key = sweep.config_key(grid[index])
      run_dir = root / f'{key},seed={seed}'
      run_dir.mkdir()
      (run_dir / sweep.RUN_FILE).write_text(json.dumps({
          'key': key, 'index': index, 'seed': seed, 'overrides': grid[index]}))
      (run_dir / 'metrics.json').write_text(json.dumps({
          'completed': len(history) == num_epochs, 'num_params': params,
          'multiply_adds': 4_241_152, 'test_examples': 10_000, 'history': history}))
  return root
