"""A sweep's results: per configuration mean ± std and 95% CI over seeds, each compared
with the article's default by Welch's t-test (Holm-corrected); CSV, Markdown and a PNG.

Reads only what the runs wrote (run.json, metrics.json), so it works on a sweep that
is still running or was copied from another machine.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib
from typing import Any, Sequence

import numpy as np

from cnn_jax import provenance, stats, sweep


@dataclasses.dataclass
class RunResult:
  name: str
  key: str
  index: int
  seed: int
  overrides: dict[str, Any]
  completed: bool
  test_accuracy: float  # Final epoch; NaN if the run has no epoch yet.
  best_epoch: int | None
  num_params: int | None
  train_seconds: float
  curve: list[float]  # Test accuracy per epoch.
  failed: str = ''  # Why the run stopped for good (e.g. a non-finite loss), if it did.


def load_runs(workdir: str | pathlib.Path) -> list[RunResult]:
  """Every run directory under a sweep's workdir, finished or not."""
  results = []
  for run_file in sorted(pathlib.Path(workdir).glob(f'*/{sweep.RUN_FILE}')):
    run = json.loads(run_file.read_text())
    try:
      metrics = json.loads((run_file.parent / 'metrics.json').read_text())
    except (OSError, ValueError):
      metrics = {}
    history = metrics.get('history') or []
    results.append(RunResult(
        name=run_file.parent.name, key=run['key'], index=run['index'], seed=run['seed'],
        overrides=run['overrides'], completed=bool(metrics.get('completed')),
        test_accuracy=history[-1]['test_accuracy'] if history else math.nan,
        best_epoch=metrics.get('best_epoch'), num_params=metrics.get('num_params'),
        train_seconds=float(metrics.get('train_seconds') or 0.0),
        curve=[r['test_accuracy'] for r in history],
        failed=_failure(metrics.get('failed'))))
  return results


def _failure(failed: Any) -> str:
  if not failed:
    return ''
  return f"{failed.get('reason', 'failed')} at epoch {failed.get('epoch')} step " \
         f"{failed.get('step')}"


@dataclasses.dataclass
class ConfigResult:
  """One configuration over its completed seeds."""
  key: str
  overrides: dict[str, Any]
  seeds: list[int]
  accuracy: stats.Summary
  best_epoch: float
  num_params: int | None
  train_seconds: float  # Mean per run.
  curves: list[list[float]]
  incomplete: int  # Runs of this configuration not finished (left out).
  is_baseline: bool = False
  test: stats.WelchTest | None = None
  adjusted_p: float = math.nan
  verdict: str = ''


def aggregate(runs: Sequence[RunResult], baseline_key: str) -> list[ConfigResult]:
  """Configurations in grid order; only completed runs count towards the figures."""
  by_key: dict[str, list[RunResult]] = {}
  for run in sorted(runs, key=lambda r: (r.index, r.seed)):
    by_key.setdefault(run.key, []).append(run)
  rows = []
  for key, group in by_key.items():
    done = [r for r in group if r.completed]
    if not done:
      continue
    rows.append(ConfigResult(
        key=key, overrides=group[0].overrides, seeds=[r.seed for r in done],
        accuracy=stats.summarize([r.test_accuracy for r in done], bounds=(0.0, 1.0)),
        best_epoch=sum(r.best_epoch for r in done) / len(done),
        num_params=done[0].num_params,
        train_seconds=sum(r.train_seconds for r in done) / len(done),
        curves=[r.curve for r in done], incomplete=len(group) - len(done),
        is_baseline=key == baseline_key))
  base = next((r for r in rows if r.is_baseline), None)
  if base is None:
    return rows
  base_values = [_final(c) for c in base.curves]
  others = [r for r in rows if not r.is_baseline]
  for row in others:
    row.test = stats.welch_t_test([_final(c) for c in row.curves], base_values)
  adjusted = stats.holm_adjust([r.test.p_value for r in others])
  for row, p in zip(others, adjusted):
    row.adjusted_p = p
    row.verdict = stats.verdict(row.test, p)
  base.verdict = 'the article\'s default (reference)'
  return rows


def _final(curve: Sequence[float]) -> float:
  return curve[-1]


def _pct(x: float) -> str:
  return 'n/a' if math.isnan(x) else f'{100 * x:.2f}%'


CSV_FIELDS = ('configuration', 'seeds', 'mean_test_accuracy', 'std', 'ci95_low',
              'ci95_high', 'mean_best_epoch', 'params', 'mean_train_seconds',
              'difference_vs_default', 'welch_t', 'welch_df', 'p_value', 'p_holm',
              'verdict')


def write_csv(rows: Sequence[ConfigResult], path: pathlib.Path) -> None:
  with path.open('w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(CSV_FIELDS)
    for r in rows:
      t = r.test
      writer.writerow([
          r.key, len(r.seeds), r.accuracy.mean, r.accuracy.std, r.accuracy.ci_low,
          r.accuracy.ci_high, r.best_epoch, r.num_params, r.train_seconds,
          t.difference if t else '', t.t if t else '', t.df if t else '',
          t.p_value if t else '', '' if math.isnan(r.adjusted_p) else r.adjusted_p,
          r.verdict])


def setup_text(base_config: dict[str, Any], seeds: Sequence[int]) -> str:
  """What every run of a sweep shared: data, epochs, seeds, recipe."""
  def examples(field: str) -> str:
    return f'first {base_config[field]:,}' if base_config.get(field) else 'all'
  return (f"Runs: {base_config['dataset']}, {examples('max_train_examples')} training and "
          f"{examples('max_test_examples')} test examples; {base_config['num_epochs']} "
          f"epoch(s); seeds {', '.join(map(str, seeds))}; batch {base_config['batch_size']}, "
          f"{base_config['optimizer']} lr {base_config['learning_rate']:g} "
          f"({base_config['lr_schedule']}).")


def to_markdown(title: str, rows: Sequence[ConfigResult], source: str,
                incomplete_runs: int = 0, failed: Sequence[RunResult] = (),
                setup: str = '') -> str:
  """The results page; `source` says what made it (provenance.footer)."""
  lines = [f'# {title}', '', source, ''] + ([setup, ''] if setup else []) + [
           'From each run\'s `metrics.json`. Final-epoch test '
           'accuracy over seeds: mean ± sample std, 95% CI from Student\'s t (cut at 0% '
           'and 100% where it reaches past them, marked †). Each configuration is '
           'compared with the article\'s default by Welch\'s t-test (two-sided); the '
           f'verdict uses p-values Holm-corrected for the number of comparisons, α = '
           f'{stats.ALPHA:g}; the difference\'s 95% CI (in pp) is per comparison. No test '
           'with fewer than 2 seeds on either side.',
           '', '| configuration | seeds | test accuracy (mean ± std) | 95% CI | '
           'best epoch (mean) | params | train time / run | vs default |',
           '|---|---:|---:|---|---:|---:|---:|---|']
  for r in rows:
    a = r.accuracy
    spread = '' if math.isnan(a.std) else f' ± {100 * a.std:.2f}'
    ci = 'n/a' if math.isnan(a.ci_low) else (
        f'[{_pct(a.ci_low)}, {_pct(a.ci_high)}]' + (' †' if a.clipped else ''))
    name = f'**{r.key}**' if r.is_baseline else r.key
    params = f'{r.num_params:,}' if r.num_params else 'n/a'
    lines.append(f'| {name} | {len(r.seeds)} | {100 * a.mean:.2f}%{spread} | {ci} | '
                 f'{r.best_epoch:.1f} | {params} | {r.train_seconds:.0f} s | {r.verdict} |')
  if incomplete_runs - len(failed) > 0:
    lines += ['', f'{incomplete_runs - len(failed)} run(s) not finished yet are left out.']
  if failed:
    lines += ['', 'Failed runs (left out): ' + '; '.join(f'{r.name}: {r.failed}'
                                                         for r in failed) + '.']
  if rows:
    lines += ['', '![final accuracy by configuration and test accuracy by epoch]'
              '(results.png)']
  tested = [r for r in rows if r.test and not math.isnan(r.adjusted_p)]
  significant = [r for r in tested if r.adjusted_p < stats.ALPHA]
  winners = [r for r in significant if r.test.difference > 0]
  losers = [r for r in significant if r.test.difference < 0]
  lines.append('')
  if not tested:
    lines.append('Nothing was tested: a comparison needs ≥ 2 finished seeds of a '
                 'configuration and of the default (rerun with --seeds=2 or more).')
  elif winners:
    lines.append('Significantly better than the default: '
                 + ', '.join(f'{r.key} ({r.verdict})' for r in winners) + '.')
  else:
    lines.append(f'No configuration tested ({len(tested)}) is significantly better than '
                 'the default.')
  if losers:
    lines.append('Significantly worse: '
                 + ', '.join(f'{r.key} ({r.verdict})' for r in losers) + '.')
  return '\n'.join(lines) + '\n'


def plot(rows: Sequence[ConfigResult], title: str, path: pathlib.Path) -> None:
  """Accuracy by configuration with 95% CI bars, and mean test-accuracy curves."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt, ticker  # pylint: disable=g-import-not-at-top
  # Constrained layout makes room for the legend beside the curves, off the data.
  fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.8), layout='constrained')
  length_max = 1
  for i, r in enumerate(rows):
    a = r.accuracy
    # The interval as cut to [0%, 100%]: asymmetric where it was cut.
    err = [[0.0], [0.0]] if math.isnan(a.ci_low) else [[100 * (a.mean - a.ci_low)],
                                                       [100 * (a.ci_high - a.mean)]]
    left.errorbar([i], [100 * a.mean], yerr=err, fmt='s' if r.is_baseline else 'o',
                  capsize=6, color=f'C{i}', markersize=8 if r.is_baseline else 6)
    left.scatter([i] * len(r.curves), [100 * c[-1] for c in r.curves], s=12, alpha=0.5,
                 color=f'C{i}')
    length = min(len(c) for c in r.curves)
    curves = 100 * np.array([c[:length] for c in r.curves])
    epochs = np.arange(1, length + 1, dtype=float)
    if length == 1:  # Side by side: one point each, with its band as a bar.
      epochs += (i - (len(rows) - 1) / 2) * 0.08
    right.plot(epochs, curves.mean(0), marker='o', color=f'C{i}',
               label=r.key + (' (default)' if r.is_baseline else ''),
               linewidth=2.5 if r.is_baseline else 1.5)
    if length > 1:
      right.fill_between(epochs, curves.min(0), curves.max(0), color=f'C{i}',
                         alpha=0.15, linewidth=0)
    else:
      right.vlines(epochs, curves.min(0), curves.max(0), color=f'C{i}', alpha=0.35,
                   linewidth=6)
    length_max = max(length_max, length)
  # Categories and epochs at whole numbers, half a step of room at each end.
  left.set_xticks(range(len(rows)), [_label(r) for r in rows], fontsize=8)
  left.set_xlim(-0.5, len(rows) - 0.5)
  left.margins(y=0.15)
  left.set_xlabel(', '.join(rows[0].overrides) + ' (square: the default)')
  left.set_ylabel('final test accuracy (%)')
  left.set_title('mean over seeds, 95% CI (dots: seeds)')
  right.set_xlabel('epoch')
  right.set_xlim(0.5, length_max + 0.5)
  right.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
  right.margins(y=0.1)
  right.set_ylabel('test accuracy (%)')
  right.set_title('mean over seeds (band: lowest to highest seed)')
  right.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.02, 1), borderaxespad=0)
  fig.suptitle(title)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _label(row: ConfigResult) -> str:
  return '\n'.join(sweep.format_value(v) for v in row.overrides.values()) or row.key


def write_results(workdir: str | pathlib.Path, command: str | None = None
                  ) -> tuple[str, list[ConfigResult]]:
  """results.csv, results.md and results.png in the sweep's workdir; returns the Markdown.
  `command`: the exact command line that made the runs (provenance.command_line);
  None: the one sweep.json recorded."""
  workdir = pathlib.Path(workdir)
  meta = json.loads((workdir / sweep.SWEEP_FILE).read_text())
  command = command or meta.get('command') or (
      f"python -m experiments.{meta['name']} --workdir={workdir}")
  runs = load_runs(workdir)
  rows = aggregate(runs, meta['baseline'])
  incomplete = sum(1 for r in runs if not r.completed)
  title = f"{meta['name']}: final test accuracy by configuration"
  markdown = to_markdown(title, rows, provenance.footer(command), incomplete,
                         [r for r in runs if r.failed and not r.completed],
                         setup_text(meta['base_config'], meta['seeds'])
                         if 'base_config' in meta else '')
  write_csv(rows, workdir / 'results.csv')
  (workdir / 'results.md').write_text(markdown)
  if rows:
    plot(rows, title, workdir / 'results.png')
  return markdown, rows
