"""When does dropout help? Learning curves over the training-set size, with dropout's
paired effect at each size (Srivastava et al. 2014, §7.4, on MNIST: no gain at the
smallest sizes, a clear one in the middle, fading as the data grows).

The curve is a sweep (configs/learning_curve.py): each size trains two arms (dropout
off, and on at a placement) under the study's small-data design: shared learning rates
(STRATA), a class-stratified subset per seed. A size's training set is the first
`max_train_examples` of its seed's stratified order (`input_pipeline.load_dataset`),
so a smaller set is part of every larger one at that seed, and the validation set is
the same at every size. Every size trains about the same number of steps.

Everything here reads the sweep's raw data (runs.csv, sweep.json) alone.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any, Mapping, Sequence

from cnn_jax import claims, errors, results, stats, study, sweep

NAME = 'learning_curve'  # The sweep, its configs/ file and its results/ folder.
TABLE_FILE = 'learning_curve.md'
FIGURE_FILE = 'learning_curve.png'
ARM_FIELD, SIZE_FIELD = 'dropout_placement', 'max_train_examples'
OFF = 'none'  # The arm every other is compared with.
METRICS = (('test_accuracy', 'higher', 'improves test accuracy'),
           ('loss_gap', 'lower', 'reduces overfitting (loss gap)'))


def all_images(config: Mapping[str, Any]) -> int:
  """The images max_train_examples=0 trains on."""
  return study.train_images({**config, SIZE_FIELD: 0})


def epochs_for(size: int, steps: int, batch_size: int, all_images: int) -> int:
  """Epochs that train `size` images (0: `all_images`) for about `steps` steps of
  `batch_size` (the last partial batch is dropped), at least one."""
  per_epoch = (size or all_images) // batch_size
  if per_epoch < 1:
    raise errors.ConfigError(f'a training-set size of {size} is invalid: expected at least '
                             f'one batch ({batch_size} images)')
  return max(1, round(steps / per_epoch))


def grid(sizes: Sequence[int], arms: Sequence[str], steps: int, batch_size: int,
         all_images: int) -> list[dict[str, Any]]:
  """One configuration per (size, arm), sizes outermost."""
  return [{SIZE_FIELD: n, 'num_epochs': epochs_for(n, steps, batch_size, all_images),
           ARM_FIELD: arm} for n in sizes for arm in arms]


def size_text(size: int) -> str:
  return 'all' if size == 0 else f'{size:,}'


def declared_claims(configurations: Sequence[Mapping[str, Any]], arm: str, off: str,
                    effects: Mapping[str, float]) -> list[dict[str, Any]]:
  """CLAIMS entries: at each size of `configurations` (the GRID), `arm` against `off`
  on each metric of `effects` ({metric: smallest effect of interest}); Holm over the
  sizes, one family per metric."""
  out = []
  for config in configurations:
    if config[ARM_FIELD] != arm:
      continue
    other = {**config, ARM_FIELD: off}
    for metric, expect, words in METRICS:
      if metric in effects:
        out.append(dict(
            claim=f'Dropout {arm} {words} at {size_text(config[SIZE_FIELD])} images',
            sweep=NAME, contrast=[(1, dict(config)), (-1, other)], metric=metric,
            expect=expect, effect=effects[metric], family=f'{NAME}: {metric}'))
  return out


def _per_seed(runs: Sequence[results.RecordedRun], overrides: Mapping[str, Any],
              strata: Sequence[str], metric: str) -> dict[int, float]:
  """Each seed's `metric` at its best validation epoch, averaged over the strata (the
  seeds every stratum has)."""
  found: dict[int, dict[str, float]] = {}
  for r in runs:
    core, where = sweep.stratum(r.overrides, strata)
    if claims.same_overrides(core, overrides) and r.completed and r.history:
      found.setdefault(r.seed, {})[sweep.config_key(where)] = r.best.get(metric, math.nan)
  labels = set().union(*found.values()) if found else set()
  return {s: sum(v.values()) / len(v) for s, v in sorted(found.items())
          if set(v) == labels}


def claims_of(meta: Mapping[str, Any], effects: Mapping[str, float]
              ) -> list[claims.Claim]:
  """The claims a learning curve's sweep.json tests: at each size of its grid, its arm
  against OFF on each metric of `effects` (the registered smallest effects)."""
  configs = [sweep.stratum(g, meta.get('strata', ()))[0] for g in meta['grid']]
  arms = [a for a in dict.fromkeys(c[ARM_FIELD] for c in configs) if a != OFF]
  if len(arms) != 1:
    raise errors.ConfigError(f"{meta['name']}: the grid's {ARM_FIELD} values are "
                             f"{arms + [OFF]}: expected {OFF} and one other")
  distinct = list({sweep.config_key(c): c for c in configs}.values())
  return [claims.Claim.parse(c, f"{meta['name']}: claims")
          for c in declared_claims(distinct, arms[0], OFF, effects)]


def write(directory: str | pathlib.Path, effects: Mapping[str, float],
          link: str = '') -> list[str]:
  """learning_curve.md (the table: each size's arms, paired effect, CI, n and verdict,
  Holm over the sizes) and learning_curve.png (the figure) in `directory`, from its
  runs.csv and sweep.json alone and the registered `effects` ({metric: smallest effect
  of interest}); returns the page's body (no title), its links prefixed with `link`
  (e.g. 'learning_curve/' for REPORT.md beside the folder)."""
  directory = pathlib.Path(directory)
  meta, runs = results.read_runs(directory)
  strata = meta.get('strata', ())
  tested = claims.evaluate(claims_of(meta, effects), {NAME: runs}, strata={NAME: strata})
  configs = list({sweep.config_key(c): c for c in
                  (sweep.stratum(g, strata)[0] for g in meta['grid'])}.values())
  sizes = sorted({c[SIZE_FIELD] for c in configs}, key=lambda n: n or math.inf)
  arms = list(dict.fromkeys(c[ARM_FIELD] for c in configs))
  arm_values = {}  # (metric, arm, size) → stats.Summary over seeds.
  for metric, _, _ in METRICS:
    for config in configs:
      values = list(_per_seed(runs, config, strata, metric).values())
      if values:
        arm_values[(metric, config[ARM_FIELD], config[SIZE_FIELD])] = stats.summarize(
            values)
  body = lambda prefix: [
      f'Rebuilt from [runs.csv]({prefix}runs.csv) and [sweep.json]({prefix}sweep.json) '
      f'by `python -m experiments.report`. {results.provenance_text(meta)}', '',
      _design(meta, strata), '', f'![learning curve]({prefix}{FIGURE_FILE})', '',
      *_table(tested, arm_values, sizes, arms), '', shape_sentence(tested), '',
      _best_is_last(runs), '', 'Each claim, declared in configs/learning_curve.py before '
      'the runs:', '', *claims.table(tested),
      *(['', 'Each claim at each shared learning rate alone (Holm over the sizes there):',
         '', *claims.strata_table(tested)] if claims.strata_table(tested) else [])]
  (directory / TABLE_FILE).write_text('\n'.join(
      [f'# {NAME}: when does dropout help?', '', *body('')]) + '\n')
  plot(arm_values, tested, sizes, arms, directory / FIGURE_FILE, meta)
  return body(link)


def _cell(x: float, scale: float, signed: bool = False) -> str:
  text = f'{x * scale:{"+" if signed else ""}.{2 if scale != 1 else 3}f}'
  return text.replace('-', '−')


def _table(tested: Sequence[claims.Result],
           arm_values: Mapping[tuple[str, str, int], stats.Summary], sizes: Sequence[int],
           arms: Sequence[str]) -> list[str]:
  """Each size and metric: each arm's mean [95% CI] over seeds, the paired effect with
  its CI and n, and the verdict (Holm over the sizes)."""
  lines = ['| size | metric | ' + ' | '.join(f'{a}: mean [95% CI]' for a in arms)
           + ' | paired effect [95% CI] | n | verdict |',
           '|---|---|' + '---|' * len(arms) + '---|---|---|']
  for n in sizes:
    for metric, _, _ in METRICS:
      scale = 100.0 if metric.endswith('accuracy') else 1.0
      cells = [f'{_cell(s.mean, scale)} [{_cell(s.ci_low, scale)}, '
               f'{_cell(s.ci_high, scale)}]' if s else ''
               for s in (arm_values.get((metric, a, n)) for a in arms)]
      r = next((r for r in tested if r.claim.metric == (metric,)
                and r.claim.contrast[0][1][SIZE_FIELD] == n), None)
      t = r.test if r else None
      effect = (f'{_cell(t.difference, scale, True)} [{_cell(t.ci_low, scale, True)}, '
                f'{_cell(t.ci_high, scale, True)}]' if t else '')
      lines.append(f'| {size_text(n)} | {metric} | ' + ' | '.join(cells)
                   + f" | {effect} | {t.n if t else ''} | {r.kind if r else ''} |")
  return lines


def _design(meta: Mapping[str, Any], strata: Sequence[str]) -> str:
  base = meta['base_config']
  shared = results.shared_values(meta)
  steps = ', '.join(f"{size_text(g[SIZE_FIELD])}: {g['num_epochs']} epochs"
                    for g in {g[SIZE_FIELD]: g for g in meta['grid']}.values())
  return (f"Each size trains both arms on the same images (the first N of each seed's "
          f"class-stratified order: a smaller set is part of every larger one), from the "
          f"same initial weights and in the same order, for about the same number of "
          f"steps ({steps}; batch {base['batch_size']}), with "
          f"{base['validation_examples']:,} validation images shared by every size. "
          + (f"Every arm trains at each of {', '.join(f'{k} {v}' for k, v in shared.items())}"
             f" (shared), and the paired effect is averaged over them per seed. "
             if strata else '')
          + f"Seeds: {len(meta['seeds'])}. Metrics at each run's best validation epoch; "
          'the loss gap is test loss minus train-eval loss there.')


def _best_is_last(runs: Sequence[results.RecordedRun]) -> str:
  """Where the best validation epoch was the last one trained, by size: the sizes
  whose budget may have stopped short of convergence."""
  last: dict[int, list[bool]] = {}
  for r in runs:
    if r.completed and r.history:
      last.setdefault(r.overrides.get(SIZE_FIELD, 0), []).append(
          r.best['epoch'] == r.history[-1]['epoch'])
  parts = [f'{size_text(n)}: {sum(v)} of {len(v)}'
           for n, v in sorted(last.items(), key=lambda kv: kv[0] or math.inf)]
  return ('Runs whose best validation epoch was their last (a budget that may stop '
          'short of convergence there): ' + '; '.join(parts) + '.')


def shape_sentence(tested: Sequence[claims.Result]) -> str:
  """One sentence: does dropout's accuracy effect show the paper's shape (none at the
  smallest sizes, a peak in the middle, then a fade), with the numbers."""
  rows = [r for r in tested if r.claim.metric == ('test_accuracy',) and r.test]
  if len(rows) < 3:
    return 'Too few sizes tested to speak of a shape.'
  rows.sort(key=lambda r: r.claim.contrast[0][1][SIZE_FIELD] or math.inf)
  size = lambda r: size_text(r.claim.contrast[0][1][SIZE_FIELD])
  gains = [r.test.difference for r in rows]
  peak = max(range(len(rows)), key=lambda i: gains[i])
  shown = [r for r in rows if r.kind in ('holds', 'holds, smaller')]
  described = '; '.join(f'{size(r)}: {_cell(r.test.difference, 100, True)} pp '
                        f'[{_cell(r.test.ci_low, 100, True)}, {_cell(r.test.ci_high, 100, True)}] '
                        f'({r.kind})' for r in rows)
  paper = (0 < peak < len(rows) - 1 and rows[peak] in shown
           and rows[0] not in shown and rows[-1] not in shown)
  return ((f'The paper\'s shape (no gain at the smallest size, a peak in the middle, '
           f'then a fade) {"shows" if paper else "does not show"} here: the gain is '
           f'largest at {size(rows[peak])} images, and a gain is shown (Holm over the '
           f'sizes) at {", ".join(size(r) for r in shown) or "no size"}. ')
          + f'Dropout\'s effect on test accuracy by size: {described}.')


def _size_axis(ax: Any, sizes: Sequence[int], x: Mapping[int, int]) -> None:
  ax.set_xscale('log')
  ax.set_xticks([x[n] for n in sizes], [size_text(n) for n in sizes])
  ax.minorticks_off()
  ax.set_xlabel('training images (log scale)')


def plot(arm_values: Mapping[tuple[str, str, int], stats.Summary],
         tested: Sequence[claims.Result], sizes: Sequence[int], arms: Sequence[str],
         path: pathlib.Path, meta: Mapping[str, Any]) -> None:
  """Left, middle: test accuracy and loss gap against size (log axis), one line per arm
  with 95% CIs. Right: dropout's paired effect on test accuracy against size, its CI and
  the smallest effect of interest."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  all_images = 60_000 - meta['base_config']['validation_examples']
  x = {n: n or all_images for n in sizes}
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), layout='constrained')
  for ax, (metric, scale, label) in zip(axes[:2], (
      ('test_accuracy', 100.0, 'test accuracy (%)'), ('loss_gap', 1.0,
                                                       'loss gap (test − train-eval loss)'))):
    for i, arm in enumerate(arms):
      found = [(x[n], arm_values[(metric, arm, n)]) for n in sizes
               if (metric, arm, n) in arm_values]
      if not found:
        continue
      xs = [v[0] * (1 + 0.03 * (i - (len(arms) - 1) / 2)) for v in found]
      ys = [scale * s.mean for _, s in found]
      err = [[scale * (s.mean - s.ci_low) if s.n > 1 else 0 for _, s in found],
             [scale * (s.ci_high - s.mean) if s.n > 1 else 0 for _, s in found]]
      ax.errorbar(xs, ys, yerr=err, marker='o', capsize=4, label=f'dropout {arm}')
    _size_axis(ax, sizes, x)
    ax.set_ylabel(label)
    ax.legend(fontsize=8)
  ax = axes[2]
  rows = [r for r in tested if r.claim.metric == ('test_accuracy',) and r.test]
  if rows:
    xs = [x[r.claim.contrast[0][1][SIZE_FIELD]] for r in rows]
    ys = [100 * r.test.difference for r in rows]
    err = [[100 * (r.test.difference - r.test.ci_low) for r in rows],
           [100 * (r.test.ci_high - r.test.difference) for r in rows]]
    ax.errorbar(xs, ys, yerr=err, marker='s', capsize=4, color='k')
    effect = 100 * rows[0].claim.effect
    ax.axhline(0, color='0.5', linewidth=0.8)
    for sign in (1, -1):
      ax.axhline(sign * effect, color='C3', linestyle='--', linewidth=1,
                 label='smallest effect of interest' if sign > 0 else None)
    ax.legend(fontsize=8)
  _size_axis(ax, sizes, x)
  ax.set_ylabel('dropout − none, test accuracy (pp, paired)')
  ax.set_title('paired effect, 95% CI')
  fig.suptitle(f"{meta['name']}: dropout against training-set size "
               f"({len(meta['seeds'])} seeds)")
  fig.savefig(path, dpi=100)
  plt.close(fig)
