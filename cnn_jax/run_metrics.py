"""A run's metrics.json: every epoch's record, the final and best epoch, timings, and
the machine. Plain Python (no JAX), so sweeps and reports can read runs cheaply."""

from __future__ import annotations

import json
import os
import pathlib
import platform
from typing import Any


def host_description() -> str:
  """The CPU model and core count, for reports that name the machine."""
  name = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        name = line.split(':', 1)[1].strip()
        break
  except OSError:
    pass
  return f'{name}, {os.cpu_count()} cores'


def load_history(path: pathlib.Path, up_to_epoch: int) -> list[dict[str, Any]]:
  """The records of epochs 1..up_to_epoch from a previous process's metrics.json."""
  if not up_to_epoch or not path.exists():
    return []
  return [r for r in json.loads(path.read_text())['history'] if r['epoch'] <= up_to_epoch]


def best_rank(record: dict[str, Any]) -> tuple[float, int]:
  """The rule that picks a run's best epoch, wherever one is picked (metrics.json,
  runs.csv, the checkpoint kept as best): the highest validation accuracy, the earliest
  of equals."""
  return record['validation_accuracy'], -record['epoch']


def best_record(history: list[dict[str, Any]]) -> dict[str, Any] | None:
  """The best epoch's record (`best_rank`)."""
  return max(history, key=best_rank) if history else None


def stopped_early(history: list[dict[str, Any]], patience: int, min_epochs: int = 0
                  ) -> bool:
  """Whether `patience` epochs (0: never) have passed without a better validation
  accuracy than the best epoch's, at epoch `min_epochs` or later."""
  best = best_record(history)
  return bool(patience and best and history[-1]['epoch'] >= min_epochs
              and history[-1]['epoch'] - best['epoch'] >= patience)


def write_metrics(path: pathlib.Path | None, history: list[dict[str, Any]], *,
                  num_epochs: int, patience: int = 0, min_epochs: int = 0,
                  **facts: Any) -> dict[str, Any]:
  """metrics.json (at `path`; None: only returned): completion, the final and best
  epoch (by validation accuracy; its test accuracy is what a run reports), `facts`,
  every epoch's record."""
  best = best_record(history)
  early = stopped_early(history, patience, min_epochs)
  metrics = {
      'completed': bool(history) and (history[-1]['epoch'] == num_epochs or early),
      'stopped_early': early,
      'final': history[-1] if history else None,
      'best_epoch': best and best['epoch'],
      'best_validation_accuracy': best and best['validation_accuracy'],
      'best_test_accuracy': best and best['test_accuracy'],
      **facts,
      'host': host_description(),
      'train_seconds': sum(r['train_seconds'] for r in history),
      'history': history,
  }
  if path is not None:
    path.write_text(json.dumps(metrics, indent=2) + '\n')
  return metrics


def epoch_record(epoch: int, loss_sum: float, accuracy_sum: float, steps: int,
                 evaluated: dict[str, dict[str, float]], learning_rate: float,
                 examples: int, train_seconds: float) -> dict[str, Any]:
  """One epoch's line of metrics.json, from the step sums of its `steps` steps (with
  dropout on) and each evaluated set's loss and accuracy (`DeviceLoop.evaluate`)."""
  record = {'epoch': epoch, 'train_loss': float(loss_sum) / steps,
            'train_accuracy': float(accuracy_sum) / steps}
  for name, metrics in evaluated.items():
    record.update({f'{name}_loss': metrics['loss'], f'{name}_accuracy': metrics['accuracy']})
  # Overfitting: what the model does on images it trained on against held-out ones.
  record['generalization_gap'] = (record['train_eval_accuracy']
                                  - record['validation_accuracy'])
  record.update(learning_rate=learning_rate, examples_per_second=examples / train_seconds,
                train_seconds=train_seconds)
  return record


EVALUATED = ('train_eval', 'validation', 'test', 'test_shifted')  # TensorBoard's order.


def tensorboard_scalars(record: dict[str, Any]) -> dict[str, float]:
  """An epoch record's TensorBoard scalars (the training curves are logged per
  log_every_steps instead): each evaluated set's loss and accuracy (a section each),
  the gap, speed, and the epoch, so a global step on the x axis reads as epochs."""
  scalars = {f'{name}/{m}': record[f'{name}_{m}'] for name in EVALUATED
             for m in ('accuracy', 'loss') if f'{name}_{m}' in record}
  return {**scalars, 'train/generalization_gap': record['generalization_gap'],
          'train/epoch': record['epoch'],
          'train/examples_per_second': record['examples_per_second']}
