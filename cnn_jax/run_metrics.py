"""A run's metrics.json: every epoch's record, the final and best epoch, timings, and
the machine. Plain Python (no JAX), so sweeps and reports can read runs cheaply."""

from __future__ import annotations

import json
import os
import pathlib
import platform
from typing import Any


def format_duration(seconds: float) -> str:
  """h:mm:ss; '?' for NaN (nothing measured yet)."""
  if seconds != seconds:  # NaN
    return '?'
  minutes, seconds = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f'{hours}:{minutes:02d}:{seconds:02d}'


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
