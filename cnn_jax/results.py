"""A sweep's results, from its raw data: runs.csv (one row per run and epoch) and
sweep.json (the grid, baseline, seeds, base config, command and code version).

`export` writes both from a sweep's run directories; everything else reads them alone,
so a page is rebuilt from the shipped files without the runs. Each configuration is
reported by its test accuracy at the epoch with the best validation accuracy (the
model a reader would keep, chosen without the test set), and compared with the
article's default paired by seed (`stats.paired`): the verdict is better, worse,
equivalent within the margin, or inconclusive, with Holm's correction over the family
of comparisons the page belongs to (the sweep's own, or the REPORT's).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib
import shutil
from typing import Any, Mapping, Sequence

from absl import logging
import numpy as np

from cnn_jax import options, run_metrics, stats, sweep, tuning

RUNS_FILE = 'runs.csv'
RUN_COLUMNS = ('sweep', 'configuration', 'overrides', 'grid_index', 'seed', 'epoch',
               'num_epochs', 'completed', 'failed', 'num_params', 'multiply_adds',
               'test_examples')


@dataclasses.dataclass
class RecordedRun:
  """One run of a sweep: its configuration, seed and every epoch's record."""
  name: str
  key: str
  index: int
  seed: int
  overrides: dict[str, Any]
  completed: bool
  failed: str
  num_params: int | None
  multiply_adds: int | None
  test_examples: int | None
  history: list[dict[str, float]]  # Each epoch's record (metrics.json's, as numbers).

  @property
  def best(self) -> dict[str, float]:
    """The best epoch's record (`run_metrics.best_rank`)."""
    return run_metrics.best_record(self.history)


# --- Raw data: run directories -> runs.csv and sweep.json. ---

def export(workdir: str | pathlib.Path, output_dir: str | pathlib.Path | None = None
           ) -> pathlib.Path:
  """runs.csv and sweep.json of the sweep in `workdir`, written to `output_dir`
  (default: `workdir`) from the runs' run.json and metrics.json; returns the CSV.
  Runs left in `workdir` by an earlier grid or seed count (not in sweep.json's) are
  left out, with a warning naming them."""
  workdir = pathlib.Path(workdir)
  output_dir = pathlib.Path(output_dir or workdir)
  output_dir.mkdir(parents=True, exist_ok=True)
  meta = json.loads((workdir / sweep.SWEEP_FILE).read_text())
  if output_dir != workdir:
    shutil.copy(workdir / sweep.SWEEP_FILE, output_dir / sweep.SWEEP_FILE)
  rows, stale = [], []
  grid, seeds = {sweep.config_key(g) for g in meta['grid']}, set(meta['seeds'])
  for run_file in sorted(workdir.glob(f'*/{sweep.RUN_FILE}')):
    run = json.loads(run_file.read_text())
    if run['key'] not in grid or run['seed'] not in seeds:
      stale.append(run_file.parent.name)
      continue
    try:
      metrics = json.loads((run_file.parent / 'metrics.json').read_text())
    except (OSError, ValueError):
      metrics = {}
    common = {'sweep': meta['name'], 'configuration': run['key'],
              'overrides': json.dumps(run['overrides']),  # In the grid's order.
              'grid_index': run['index'], 'seed': run['seed'],
              'num_epochs': meta['base_config']['num_epochs'],
              'completed': bool(metrics.get('completed')),
              'failed': _failure(metrics.get('failed')),
              'num_params': metrics.get('num_params', ''),
              'multiply_adds': metrics.get('multiply_adds', ''),
              'test_examples': metrics.get('test_examples', '')}
    for record in metrics.get('history') or [{}]:  # A run with no epoch: one row.
      rows.append({**common, 'epoch': record.get('epoch', ''),
                   **{k: v for k, v in record.items() if k not in RUN_COLUMNS}})
  # Every number any epoch recorded is a column, in the order the records hold them.
  metric_columns = dict.fromkeys(k for row in rows for k in row if k not in RUN_COLUMNS)
  path = output_dir / RUNS_FILE
  with path.open('w', newline='') as f:
    writer = csv.DictWriter(f, [*RUN_COLUMNS, *metric_columns], restval='')
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: (r['grid_index'], r['seed'],
                                                 r['epoch'] or 0)))
  if stale:
    logging.warning('%s: %d run(s) outside its grid and seeds left out of %s: %s',
                    workdir, len(stale), RUNS_FILE, ', '.join(stale))
  return path


def _failure(failed: Any) -> str:
  if not failed:
    return ''
  return f"{failed.get('reason', 'failed')} at epoch {failed.get('epoch')} step " \
         f"{failed.get('step')}"


def read_runs(directory: str | pathlib.Path) -> tuple[dict[str, Any], list[RecordedRun]]:
  """(sweep.json, the runs of runs.csv) in `directory`."""
  directory = pathlib.Path(directory)
  meta = json.loads((directory / sweep.SWEEP_FILE).read_text())
  meta['base_config'] = options.with_defaults(meta['base_config'])
  runs: dict[tuple[int, int], RecordedRun] = {}
  with (directory / RUNS_FILE).open(newline='') as f:
    for row in csv.DictReader(f):
      key = (int(row['grid_index']), int(row['seed']))
      if key not in runs:
        overrides = json.loads(row['overrides'])
        name = (f"{row['configuration']},seed={row['seed']}" if overrides
                else f"seed={row['seed']}")
        runs[key] = RecordedRun(name, row['configuration'], key[0], key[1], overrides,
                        row['completed'] == 'True', row.get('failed') or '',
                        *(int(row[k]) if row.get(k) else None
                          for k in ('num_params', 'multiply_adds', 'test_examples')), [])
      if row['epoch']:  # Whatever metric columns the file has (older files: fewer).
        record = {'epoch': int(row['epoch']), **{
            k: float(v) if v != '' else math.nan for k, v in row.items()
            if k not in RUN_COLUMNS}}
        # A gap defined since the file was written, from the columns it has.
        runs[key].history.append({**run_metrics.gaps(record), **record})
  return meta, [runs[k] for k in sorted(runs)]


# --- Aggregation and the paired comparisons. ---

@dataclasses.dataclass
class ConfigResult:
  """One configuration over its completed seeds; figures at each run's best epoch."""
  key: str
  overrides: dict[str, Any]
  is_baseline: bool
  runs: list[RecordedRun]
  incomplete: int  # Runs of this configuration not finished (left out).
  comparison: stats.Paired | None = None  # Test accuracy against the baseline's.
  holm_p: float = math.nan
  holm_p_equivalence: float = math.nan
  family: int = 0  # How many comparisons the Holm adjustment counted.
  kind: str = ''  # better | worse | equivalent | inconclusive | not tested | reference
  verdict: str = ''

  @property
  def seeds(self) -> list[int]:
    return [r.seed for r in self.runs]

  def at_best(self, metric: str) -> list[float]:
    """Each run's `metric` at its best (validation) epoch, in seed order."""
    return [r.best.get(metric, math.nan) for r in self.runs]

  def summary(self, metric: str) -> stats.Summary:
    return stats.summarize(self.at_best(metric), bounds=None if metric ==
                           'generalization_gap' else (0.0, 1.0))

  @property
  def num_params(self) -> int | None:
    return self.runs[0].num_params

  @property
  def multiply_adds(self) -> int | None:
    return self.runs[0].multiply_adds


def aggregate(runs: Sequence[RecordedRun], baseline_key: str,
              margin: float = stats.EQUIVALENCE_MARGIN, metric: str = 'test_accuracy',
              strata: Sequence[str] = ()
              ) -> list[ConfigResult]:
  """Configurations in grid order, each compared with the baseline on `metric` over
  the seeds both finished (`strata`: the sweep's nuisance fields; each configuration
  against the baseline at the same values of them); verdicts wait for `adjust`."""
  by_key: dict[str, list[RecordedRun]] = {}
  for run in sorted(runs, key=lambda r: (r.index, r.seed)):
    by_key.setdefault(run.key, []).append(run)
  rows, where = [], {}
  for key, group in by_key.items():
    done = [r for r in group if r.completed and r.history]
    if done:
      core, where[key] = sweep.stratum(group[0].overrides, strata)
      own = sweep.config_key(core) if where[key] else key  # Its key less its stratum.
      rows.append(ConfigResult(key, group[0].overrides, own == baseline_key, done,
                               len(group) - len(done)))
  for row in rows:
    base = next((r for r in rows if r.is_baseline and where[r.key] == where[row.key]), None)
    if base is None or row.is_baseline:
      continue
    seeds = sorted(set(row.seeds) & set(base.seeds))
    value = lambda result, s: next(r.best[metric] for r in result.runs if r.seed == s)
    row.comparison = stats.paired([value(row, s) for s in seeds],
                                  [value(base, s) for s in seeds], margin)
  return rows


def adjust(families: Sequence[Sequence[ConfigResult]], alpha: float = stats.ALPHA) -> None:
  """Holm over every comparison in `families` together (one family: a page's), for the
  paired t-tests and for the TOSTs, and each comparison's verdict."""
  compared = [r for rows in families for r in rows if r.comparison is not None]
  for row in (r for rows in families for r in rows if r.is_baseline):
    row.kind, row.verdict = 'reference', 'the article\'s default (reference)'
  tests = stats.holm_adjust([r.comparison.p_value for r in compared])
  equivalences = stats.holm_adjust([r.comparison.p_equivalence for r in compared])
  k = sum(1 for r in compared if not math.isnan(r.comparison.p_value))
  for row, p, q in zip(compared, tests, equivalences):
    row.holm_p, row.holm_p_equivalence, row.family = p, q, k
    row.kind, row.verdict = stats.paired_verdict(row.comparison, p, q, max(k, 1), alpha)


# --- The page. ---

def _pct(x: float) -> str:
  return 'n/a' if math.isnan(x) else f'{100 * x:.2f}%'


def signed_pp(x: float) -> str:
  """'+0.32 pp', '−0.36 pp' (a typographic minus, as in every figure of the pages)."""
  return f'{100 * x:+.2f} pp'.replace('-', '−')


def accuracy_text(a: stats.Summary) -> str:
  """'98.73% ± 0.05 [98.67, 98.80]': mean ± sample std [95% CI] over seeds."""
  spread = '' if math.isnan(a.std) else f' ± {100 * a.std:.2f}'
  ci = '' if math.isnan(a.ci_low) else (f' [{100 * a.ci_low:.2f}, {100 * a.ci_high:.2f}]'
                                        + (' †' if a.clipped else ''))
  return f'{100 * a.mean:.2f}%{spread}{ci}'


def provenance_text(meta: dict[str, Any]) -> str:
  """Where the runs came from, as sweep.json recorded it."""
  version = meta.get('code_version')
  return (f"Runs trained by `{meta.get('command') or 'python -m experiments.' + meta['name']}`"
          + (f" at code version `{version}` ({meta.get('packages', '')})" if version else '')
          + '.')


def setup_text(base_config: dict[str, Any], seeds: Sequence[int],
               tuned: str | None = None, shared: Mapping[str, Sequence[Any]] | None = None
               ) -> str:
  """What every run of a sweep shared: data, epochs, seeds, recipe (`tuned`: the field
  tuned per configuration instead; `shared`: nuisance values every configuration
  trained at, by field)."""
  train = base_config.get('max_train_examples')
  test = base_config.get('max_test_examples')
  if base_config.get('split_seed') == 'last':
    data = (f"{f'first {train:,}' if train else 'all'} training images (the training "
            f"split's last {base_config['validation_examples']:,} held out for "
            f"validation) and {f'first {test:,}' if test else 'all'} test images")
  else:
    data = (f"{f'{train:,}' if train else 'all other'} training images and "
            f"{base_config['validation_examples']:,} held out for validation "
            f"(class-stratified random splits of the training split, "
            + ('one per run seed' if base_config.get('split_seed') == 'seed' else
               f"seed {base_config.get('split_seed', 0)}")
            + f"), {f'the first {test:,}' if test else 'all'} test images")
  return (f"Data: {base_config['dataset']}, {data}; "
          f"{base_config['num_epochs']} epoch(s); seeds {', '.join(map(str, seeds))}; "
          f"batch {base_config['batch_size']}, {base_config['optimizer']} "
          + (f'{tuned} tuned per configuration' if tuned else
             f"lr {base_config['learning_rate']:g}" if 'learning_rate' not in (shared or {})
             else '')
          + ''.join(f"{field} {', '.join(f'{v:g}' for v in values)} (every configuration "
                    'at each)' for field, values in (shared or {}).items())
          + f" ({base_config['lr_schedule']}).")


METHOD = ('Each run is reported at its epoch with the best validation accuracy; the test '
          'set decides nothing. Accuracy over seeds: mean ± sample std [95% Student-t CI, '
          '† where cut at 0% or 100%]. "gap": train-eval accuracy (eval mode, on '
          'images the run trained on) minus validation accuracy. Each configuration is '
          'compared with the article\'s default on test accuracy, paired by seed: paired '
          't-test (p), exact sign-flip permutation test (p_perm), Cohen\'s d_z, and two '
          'one-sided tests (TOST) against the equivalence margin; Holm\'s correction over '
          '{family}, α = {alpha:g}. "MDE": the smallest '
          'difference the first Holm step (α/{k}) detects with 80% power at this n and '
          'the seeds\' spread.')


def to_markdown(title: str, rows: Sequence[ConfigResult], meta: dict[str, Any],
                failed: Sequence[RecordedRun] = (), family: str | None = None,
                claims: Sequence[str] = ()) -> str:
  """The results page of one sweep, from its rows (after `adjust`); `family`: what
  the Holm correction counted (default: this sweep's comparisons). `claims`: the
  declared claims' table on this sweep (`claims.table`); with it, the comparisons
  with the default are descriptive (estimate, CI, p; no verdict), so the page can
  only say what the REPORT says."""
  k = max((r.family for r in rows), default=0)
  if claims:
    for r in rows:
      if r.comparison is not None and r.kind != 'not tested':
        r.verdict = descriptive_text(r.comparison, r.holm_p)
  lines = [f'# {title}', '', provenance_text(meta), '',
           setup_text(meta['base_config'], meta['seeds'],
                      (meta.get('search') or {}).get('field'), shared_values(meta)),
           '',
           METHOD.format(k=k or 1, alpha=stats.ALPHA,
                         family=family or f"this sweep's {k} comparisons"), '',
           '| configuration | seeds | test accuracy | validation | train (eval mode) | gap '
           '| shifted test | best epoch | params | multiply-adds | vs default | p_perm | '
           'MDE |', '|---|---:|---|---|---|---|---|---:|---:|---:|---|---:|---:|']
  for r in rows:
    c = r.comparison
    shifted = r.summary('test_shifted_accuracy')
    mde = (stats.min_detectable_effect(c.n, c.sd, stats.ALPHA / max(k, 1))
           if c and c.n >= 2 else math.nan)
    lines.append(
        f"| {f'**{r.key}**' if r.is_baseline else r.key} | {len(r.seeds)} | "
        f"{accuracy_text(r.summary('test_accuracy'))} | "
        f"{_pct(r.summary('validation_accuracy').mean)} | "
        f"{_pct(r.summary('train_eval_accuracy').mean)} | "
        f"{signed_pp(r.summary('generalization_gap').mean)} | "
        f"{'n/a' if math.isnan(shifted.mean) else _pct(shifted.mean)} | "
        f"{np.mean([run.best['epoch'] for run in r.runs]):.1f} | "
        f"{f'{r.num_params:,}' if r.num_params else 'n/a'} | "
        f"{f'{r.multiply_adds:,}' if r.multiply_adds else 'n/a'} | {r.verdict} | "
        f"{'' if not c or math.isnan(c.p_permutation) else f'{c.p_permutation:.3f}'} | "
        f"{'' if math.isnan(mde) else f'{100 * mde:.2f} pp'} |")
  lines += tuning_text(meta, [r.key for r in rows])
  incomplete = sum(r.incomplete for r in rows) - len(failed)
  if incomplete > 0:
    lines += ['', f'{incomplete} run(s) not finished yet are left out.']
  if failed:
    lines += ['', 'Failed runs (left out): ' + '; '.join(f'{r.name}: {r.failed}'
                                                         for r in failed) + '.']
  if rows:
    lines += ['', '![paired accuracies and learning curves](results.png)']
  if claims:
    strata = meta.get('strata') or []
    return '\n'.join(lines + [
        '', 'The comparisons above are descriptive' + (
            f" (each configuration against the default at the same {', '.join(strata)})"
            if strata else '') + '. The claims declared for this sweep before its runs, '
        'tested as REPORT.md tests them (at each run\'s best validation epoch, paired '
        'by seed' + (f", the contrast averaged over {', '.join(strata)} per seed"
                     if strata else '') + '):', '', *claims]) + '\n'
  counts = {kind: [r.key for r in rows if r.kind == kind]
            for kind in ('better', 'worse', 'equivalent', 'inconclusive')}
  lines.append('')
  lines.append('; '.join(f'{kind}: {", ".join(keys)}' for kind, keys in counts.items()
                         if keys).capitalize() + '.' if any(counts.values()) else
               'Nothing was tested: a comparison needs ≥ 2 finished seeds of a '
               'configuration and of the default (rerun with --seeds=2 or more).')
  return '\n'.join(lines) + '\n'


def shared_values(meta: Mapping[str, Any]) -> dict[str, list[Any]]:
  """The values of each of a sweep's strata (sweep.json 'strata'), from its grid."""
  return {field: sorted({g[field] for g in meta['grid'] if field in g})
          for field in meta.get('strata') or ()}


def descriptive_text(c: stats.Paired, holm_p: float) -> str:
  """A comparison as numbers only: '+0.24 pp [−0.01, +0.50], d_z 0.8, Holm p = 0.060'."""
  pp = lambda x: f'{100 * x:+.2f}'.replace('-', '−')
  p = 'Holm p < 0.001' if holm_p < 0.001 else f'Holm p = {holm_p:.3f}'
  return (f'{pp(c.difference)} pp [{pp(c.ci_low)}, {pp(c.ci_high)}], d_z {c.d_z:.1f}, '
          f'{p}').replace('-', '−')


def tuning_text(meta: dict[str, Any], keys: Sequence[str]) -> list[str]:
  """The sweep's nuisance search (sweep.json 'search', 'tuned'): each configuration's
  chosen value and its tuning curve, as lines of a page ([] where nothing was tuned)."""
  search, tuned = meta.get('search'), meta.get('tuned') or {}
  if not search:
    return []
  field = search['field']
  budget = ', '.join(f'{k}={v}' for k, v in search.get('overrides', {}).items())
  lines = ['', f"{field} tuned on validation for each configuration before its seeds "
           f"trained: {search['seeds']} seed(s) per value"
           + (f', {budget}' if budget else '') + f"; start grid "
           f"{', '.join(f'{v:g}' for v in search['values'])}, grown past each edge "
           'the best score sat at, alone or tied (up to ' + str(search.get('extend', 0))
           + ' times). '
           'Mean best validation accuracy per value; the chosen one in bold.', '',
           f'| configuration | {field} | tuning curve |', '|---|---:|---|']
  for key in keys:
    if key not in tuned:
      continue
    t = tuned[key]
    curve = ', '.join(f"**{v:g}: {100 * a:.2f}%**" if v == t['value'] else
                      f'{v:g}: {100 * a:.2f}%' for v, a in t['curve'])
    lines.append(f'| {key} | {tuning.chosen_text(t)} | {curve} |')
  return lines


def plot(rows: Sequence[ConfigResult], title: str, path: pathlib.Path) -> None:
  """Left: test accuracy at the best validation epoch per configuration, each seed a line
  across them (what the paired test sees), mean and 95% CI. Right: learning curves of
  train (eval mode), validation and test accuracy, mean over seeds with the band from
  the lowest to the highest seed."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt, ticker  # pylint: disable=g-import-not-at-top
  fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.8), layout='constrained')
  seeds = sorted({s for r in rows for s in r.seeds})
  for seed in seeds:
    xs = [i for i, r in enumerate(rows) if seed in r.seeds]
    ys = [100 * r.at_best('test_accuracy')[r.seeds.index(seed)] for r in rows
          if seed in r.seeds]
    left.plot(xs, ys, color='0.6', linewidth=0.8, marker='.', zorder=1)
  for i, r in enumerate(rows):
    a = r.summary('test_accuracy')
    err = [[0.0], [0.0]] if math.isnan(a.ci_low) else [[100 * (a.mean - a.ci_low)],
                                                       [100 * (a.ci_high - a.mean)]]
    left.errorbar([i], [100 * a.mean], yerr=err, fmt='s' if r.is_baseline else 'o',
                  capsize=6, color=f'C{i}', markersize=8, zorder=2)
  left.set_xticks(range(len(rows)), [_label(r) for r in rows], fontsize=8)
  left.set_xlim(-0.5, len(rows) - 0.5)
  left.margins(y=0.15)
  left.set_xlabel(', '.join(rows[0].overrides) + ' (square: the default)')
  left.set_ylabel('test accuracy at the best validation epoch (%)')
  left.set_title('each seed a grey line; mean and 95% CI')
  styles = (('train_eval_accuracy', ':', '^', 'train (eval mode)'),
            ('validation_accuracy', '-', 'o', 'validation'),
            ('test_accuracy', '--', 's', 'test'))
  length_max = 1
  for i, r in enumerate(rows):
    length = min(len(run.history) for run in r.runs)
    epochs = np.arange(1, length + 1, dtype=float)
    if length == 1:  # Side by side: one point each.
      epochs += (i - (len(rows) - 1) / 2) * 0.08
    for metric, style, marker, _ in styles:
      curves = 100 * np.array([[e.get(metric, math.nan) for e in run.history[:length]]
                               for run in r.runs])
      if np.isnan(curves).any():  # The test set, measured only where validation chose.
        continue
      right.plot(epochs, curves.mean(0), linestyle=style, marker=marker, color=f'C{i}',
                 linewidth=2.0 if r.is_baseline else 1.2,
                 label=r.key if metric == 'validation_accuracy' else None)
      if length > 1:
        right.fill_between(epochs, curves.min(0), curves.max(0), color=f'C{i}',
                           alpha=0.12, linewidth=0)
      else:
        right.vlines(epochs, curves.min(0), curves.max(0), color=f'C{i}', alpha=0.3,
                     linewidth=5)
    length_max = max(length_max, length)
  for _, style, marker, name in styles:
    right.plot([], [], linestyle=style, marker=marker, color='k', label=name)
  right.set_xlabel('epoch')
  right.set_xlim(0.5, length_max + 0.5)
  right.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
  right.set_ylabel('accuracy (%)')
  right.set_title('mean over seeds (band: lowest to highest)')
  right.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.02, 1), borderaxespad=0)
  fig.suptitle(title)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _label(row: ConfigResult) -> str:
  return '\n'.join(sweep.format_value(v) for v in row.overrides.values()) or row.key


def title(meta: dict[str, Any]) -> str:
  return f"{meta['name']}: test accuracy by configuration, paired by seed"


def write_page(directory: str | pathlib.Path, rows: Sequence[ConfigResult],
               meta: dict[str, Any], runs: Sequence[RecordedRun], family: str | None = None,
               claims: Sequence[str] = ()) -> str:
  """results.md and results.png in `directory`, from `rows` (after `adjust`);
  `claims`: the declared claims' table on this sweep (`to_markdown`)."""
  directory = pathlib.Path(directory)
  markdown = to_markdown(title(meta), rows, meta,
                         [r for r in runs if r.failed and not r.completed], family, claims)
  (directory / 'results.md').write_text(markdown)
  if rows:
    plot(rows, title(meta), directory / 'results.png')
  return markdown


def write_results(workdir: str | pathlib.Path,
                  output_dir: str | pathlib.Path | None = None,
                  declared: Sequence[Any] = ()) -> tuple[str, list[ConfigResult]]:
  """runs.csv, sweep.json, results.md and results.png of the sweep in `workdir`, into
  `output_dir` (default: the workdir), Holm over its own comparisons; returns the
  Markdown and the rows. `declared`: the study's claims on this sweep
  (`claims.Claim`), tested on the page as the REPORT tests them."""
  output_dir = output_dir or workdir
  export(workdir, output_dir)
  meta, runs = read_runs(output_dir)
  rows = aggregate(runs, meta['baseline'], meta.get('equivalence_margin',
                                                     stats.EQUIVALENCE_MARGIN),
                   strata=meta.get('strata', ()))
  adjust([rows])
  from cnn_jax import claims  # pylint: disable=g-import-not-at-top
  tested = claims.evaluate(declared, {meta['name']: runs},
                           strata={meta['name']: meta.get('strata', ())})
  return write_page(output_dir, rows, meta, runs, claims=claims.table(tested)
                    if tested else ()), rows

