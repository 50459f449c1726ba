"""A run's metrics.json: every epoch's record, the final and best epoch, timings, and
the machine. Plain Python (no JAX), so sweeps and reports can read runs cheaply."""

from __future__ import annotations

import json
import os
import pathlib
import platform
from typing import Any, Sequence


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
      # Complete once the epochs are done and the epoch validation chose is tested.
      'completed': bool(history) and (history[-1]['epoch'] == num_epochs or early)
                   and 'test_accuracy' in best,
      'stopped_early': early,
      'final': history[-1] if history else None,
      'best_epoch': best and best['epoch'],
      'best_validation_accuracy': best and best['validation_accuracy'],
      'best_test_accuracy': best and best.get('test_accuracy'),
      **facts,
      'host': host_description(),
      'train_seconds': sum(r['train_seconds'] for r in history),
      'history': history,
  }
  if path is not None:
    path.write_text(json.dumps(metrics, indent=2) + '\n')
  return metrics


def epoch_record(epoch: int, step_sums: dict[str, float], num_steps: int,
                 evaluated: dict[str, dict[str, float]], learning_rate: float,
                 examples: int, train_seconds: float) -> dict[str, Any]:
  """One epoch's line of metrics.json: each train-step metric's mean over the epoch's
  `num_steps` steps (with dropout on) as train_<name>, each evaluated set's metrics
  (`DeviceLoop.evaluate`) as <set>_<name>, whatever those are."""
  record = {'epoch': epoch, **{f'train_{k}': float(v) / num_steps for k, v in step_sums.items()}}
  for name, metrics in evaluated.items():
    record.update({f'{name}_{k}': v for k, v in metrics.items()})
  record.update(gaps(record))
  record.update(learning_rate=learning_rate, examples_per_second=examples / train_seconds,
                train_seconds=train_seconds)
  return record


def gaps(record: dict[str, Any]) -> dict[str, float]:
  """Overfitting, what the model does on images it trained on against held-out ones,
  where the record has both: generalization_gap, train-eval minus validation accuracy
  (it saturates once train accuracy reaches 100%); loss_gap, test minus train-eval
  loss, read on the test set since validation chose the epoch."""
  out = {}
  if 'train_eval_accuracy' in record and 'validation_accuracy' in record:
    out['generalization_gap'] = record['train_eval_accuracy'] - record['validation_accuracy']
  if 'train_eval_loss' in record and 'test_loss' in record:
    out['loss_gap'] = record['test_loss'] - record['train_eval_loss']
  return out


def split_name(key: str, sets: Sequence[str]) -> tuple[str, str] | None:
  """(set, metric) of an evaluated set's entry in an epoch record ('test_shifted_loss'
  → ('test_shifted', 'loss')), None for any other entry."""
  for name in sorted(sets, key=len, reverse=True):
    if key.startswith(f'{name}_'):
      return name, key[len(name) + 1:]
  return None


def tensorboard_scalars(record: dict[str, Any], sets: Sequence[str]) -> dict[str, float]:
  """An epoch record's TensorBoard scalars: each evaluated set's metrics (a section per
  set), and every other number under train/ (the gap, speed, the epoch, so a global
  step on the x axis reads as epochs) but the train-step means and learning rate, whose
  curves are logged every log_every_steps instead."""
  scalars, other = {}, {}
  for key, value in record.items():
    where = split_name(key, sets)
    if where:
      scalars['/'.join(where)] = value
    elif not key.startswith('train_') and key != 'learning_rate':
      other[f'train/{key}'] = value
  return {**scalars, **other}


def epoch_text(record: dict[str, Any], sets: Sequence[str], rates: bool = True) -> str:
  """An epoch record on one console line: the train-step means, each set's, the gap,
  and (`rates`) the learning rate and speed."""
  def value(metric: str, x: float) -> str:
    return f'{100 * x:.2f}%' if metric.endswith('accuracy') else f'{x:.4f}'
  groups: dict[str, list[str]] = {}
  for key, x in record.items():
    where = split_name(key, ['train', *sets])
    if where and isinstance(x, float) and key not in ('train_seconds',):
      groups.setdefault(where[0], []).append(f'{where[1]} {value(where[1], x)}')
  text = '  '.join(f"{name} {' '.join(parts)}" for name, parts in groups.items())
  if 'generalization_gap' in record:
    text += f"  gap {100 * record['generalization_gap']:+.2f} pp"
  if not rates:
    return text
  return (f"{text}  lr {record['learning_rate']:.2e}  "
          f"{record['examples_per_second']:,.0f} ex/s")
