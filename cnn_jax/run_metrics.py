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


def write_metrics(path: pathlib.Path | None, history: list[dict[str, Any]], *, num_epochs: int,
                  **facts: Any) -> dict[str, Any]:
  """metrics.json (at `path`; None: only returned): completion, the final and best
  epoch, `facts`, every epoch's record."""
  best = max(history, key=lambda r: r['test_accuracy']) if history else None
  metrics = {
      'completed': bool(history) and history[-1]['epoch'] == num_epochs,
      'final': history[-1] if history else None,
      'best_epoch': best and best['epoch'],
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
                 test: dict[str, float], learning_rate: float, examples: int,
                 train_seconds: float) -> dict[str, Any]:
  """One epoch's line of metrics.json, from the step sums of its `steps` steps."""
  return {
      'epoch': epoch,
      'train_loss': float(loss_sum) / steps,
      'train_accuracy': float(accuracy_sum) / steps,
      'test_loss': test['loss'], 'test_accuracy': test['accuracy'],
      'learning_rate': learning_rate,
      'examples_per_second': examples / train_seconds,
      'train_seconds': train_seconds,
  }


def tensorboard_scalars(record: dict[str, Any]) -> dict[str, float]:
  """An epoch record's TensorBoard scalars (the training curves are logged per
  log_every_steps instead): test metrics, speed, and the epoch, so a global step on the
  x axis reads as epochs. Every tag under test/ or train/: two sections in TensorBoard,
  test first."""
  return {'test/accuracy': record['test_accuracy'], 'test/loss': record['test_loss'],
          'train/epoch': record['epoch'],
          'train/examples_per_second': record['examples_per_second']}
