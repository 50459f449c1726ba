"""REPORT.md: each of the article's claims against what this codebase computes and
measures. Every number comes from the geometry formulas or from the sweeps' runs.
"""

from __future__ import annotations

import json
import math
import pathlib
import shutil
from typing import Any, Sequence

from configs import default
from cnn_jax import geometry, provenance, results, sweep

MNIST_SHAPE, MNIST_CLASSES = (28, 28, 1), 10
ARTICLE_PARAMS = 421_642
ARTICLE_MLP_SHARE = 0.07
SWEEP_FILES = ('results.md', 'results.csv', 'results.png')


def _table(overrides: dict[str, Any]) -> list[geometry.Layer]:
  config = default.get_config().to_dict()
  config.update(overrides)
  return geometry.layer_table(config, MNIST_SHAPE, MNIST_CLASSES)


def _sizes(rows: Sequence[geometry.Layer]) -> str:
  keep = [r for r in rows if r.name.startswith(('conv', 'pool', 'flatten'))]
  return ' → '.join(f'{r.name} {geometry.shape_text(r.output_shape)}' for r in keep)


def _load(workdir: pathlib.Path, name: str) -> list[results.ConfigResult] | None:
  if not (workdir / name / sweep.SWEEP_FILE).exists():
    return None
  meta = json.loads((workdir / name / sweep.SWEEP_FILE).read_text())
  rows = results.aggregate(results.load_runs(workdir / name), meta['baseline'])
  return rows or None


def _accuracy(row: results.ConfigResult) -> str:
  a = row.accuracy
  spread = '' if math.isnan(a.std) else f' ± {100 * a.std:.2f}'
  ci = '' if math.isnan(a.ci_low) else (
      f', 95% CI [{100 * a.ci_low:.2f}%, {100 * a.ci_high:.2f}%]')
  return f'{100 * a.mean:.2f}%{spread} (n = {a.n} seeds{ci})'


def _missing(name: str) -> str:
  return f'not measured yet: run `python -m experiments.{name}`'


def claims(workdir: pathlib.Path) -> list[tuple[str, str, str]]:
  """(claim, what we found, verdict) rows."""
  rows = []
  dropout, padding, mlp = (_load(workdir, n) for n in
                           ('dropout_sweep', 'padding_sweep', 'mlp_vs_cnn'))

  article = _table({})
  counted = geometry.count_params(article)
  measured = sorted({r.num_params for r in (dropout or []) if r.is_baseline})
  found = f'{counted:,} from the formulas' + (
      f'; {", ".join(f"{m:,}" for m in measured)} in the trained Flax model' if measured
      else '')
  ok = counted == ARTICLE_PARAMS and all(m == ARTICLE_PARAMS for m in measured)
  rows.append(('The CNN has 421,642 parameters', found, 'holds' if ok else 'does not hold'))

  base = next((r for r in dropout or [] if r.is_baseline), None)
  if base:
    ok = abs(base.accuracy.mean - 0.99) <= 0.005
    rows.append(('It reaches ~99% test accuracy on MNIST', f'{_accuracy(base)} after '
                 f'{len(base.curves[0])} epochs', 'holds' if ok else 'does not hold'))
  else:
    rows.append(('It reaches ~99% test accuracy on MNIST', _missing('dropout_sweep'), '—'))

  no_pad = _table({'padding': 0})
  flat = {p: next(r for r in t if r.name == 'flatten') for p, t in ((1, article),
                                                                     (0, no_pad))}
  found = (f'padding 1: {_sizes(article)}; padding 0: {_sizes(no_pad)} '
           f'({geometry.count_params(no_pad):,} parameters)')
  ok = (flat[1].output_shape, flat[0].output_shape) == ((3136,), (1600,))
  rows.append(('Padding 1 keeps 28×28 through conv1; without it FC1 takes 1600 inputs, '
               'not 3136', found, 'holds' if ok else 'does not hold'))
  if padding:
    by_pad = {r.overrides.get('padding'): r for r in padding}
    if 0 in by_pad and 1 in by_pad:
      rows.append(('Padding 1 is the better choice (the article keeps the border)',
                   f'padding 1: {_accuracy(by_pad[1])}; padding 0: '
                   f'{_accuracy(by_pad[0])}',
                   f'padding 0 vs 1: {by_pad[0].verdict}'))
  else:
    rows.append(('Padding 1 is the better choice', _missing('padding_sweep'), '—'))

  mlp_config = default.get_config().to_dict()
  mlp_config['model'] = 'mlp'
  mlp_params = geometry.count_params(
      geometry.layer_table(mlp_config, MNIST_SHAPE, MNIST_CLASSES))
  share = counted / mlp_params
  hidden = '→'.join(str(h) for h in mlp_config['mlp_hidden_features'])
  found = (f'{share:.1%} of our MLP (784→{hidden}→10, {mlp_params:,} parameters); '
           f'7% would take an MLP of {counted / ARTICLE_MLP_SHARE / 1e6:.1f} M parameters')
  if mlp:
    by_model = {r.overrides.get('model'): r for r in mlp}
    if 'mlp' in by_model and 'cnn' in by_model:
      found += (f'. Accuracy: CNN {_accuracy(by_model["cnn"])}, MLP '
                f'{_accuracy(by_model["mlp"])}; MLP vs CNN: {by_model["mlp"].verdict}')
  rows.append(('The CNN needs ~7% of the parameters of an equivalent MLP', found,
               'holds' if abs(share - ARTICLE_MLP_SHARE) < 0.01 else
               'depends on the MLP: not with ours'))

  if dropout:
    better = [r for r in dropout if r.test and r.adjusted_p < 0.05 and r.test.difference > 0]
    found = '; '.join(f'{r.overrides.get("dropout_placement")}: {_accuracy(r)}'
                      for r in dropout)
    if better:
      verdict = 'better than before_fc1: ' + ', '.join(
          f'{r.overrides.get("dropout_placement")} ({r.verdict})' for r in better)
    else:
      verdict = ('no placement is significantly better than before FC1 (Welch, '
                 'Holm-corrected); ' + '; '.join(
                     f'{r.overrides.get("dropout_placement")}: {r.verdict}'
                     for r in dropout if r.test))
    rows.append(('Dropout before FC1 (the article\'s table) is where it belongs', found,
                 verdict))
  else:
    rows.append(('Where dropout belongs', _missing('dropout_sweep'), '—'))
  return rows


def write_report(workdir: str | pathlib.Path, output_dir: str | pathlib.Path,
                 command: str) -> str:
  """REPORT.md in `output_dir`, with each sweep's results files copied beside it."""
  workdir, output_dir = pathlib.Path(workdir), pathlib.Path(output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  sections, hosts = [], set()
  for meta_file in sorted(workdir.glob(f'*/{sweep.SWEEP_FILE}')):
    name = meta_file.parent.name
    results.write_results(meta_file.parent)  # With the command that ran the sweep.
    (output_dir / name).mkdir(exist_ok=True)
    for file in SWEEP_FILES:
      if (meta_file.parent / file).exists():
        shutil.copy(meta_file.parent / file, output_dir / name / file)
    runs = results.load_runs(meta_file.parent)
    for run_dir in meta_file.parent.iterdir():
      try:
        m = json.loads((run_dir / 'metrics.json').read_text())
        hosts.add(f"{m['device']} ({m['host']})")
      except (OSError, ValueError, KeyError):
        pass
    total = sum(r.train_seconds for r in runs)
    sections.append(f'- [{name}]({name}/results.md): {len(runs)} runs, '
                    f'{total / 60:.0f} min of training in all '
                    f'(compile, data and evaluation excluded)')
  lines = ['# The article\'s claims, measured', '',
           provenance.footer(command) + ' The parameter counts and sizes come from '
           '`cnn_jax.geometry`, accuracies from the sweeps\' runs (final epoch, mean ± '
           'std over seeds, Student-t 95% CI cut to [0%, 100%]; comparisons by Welch\'s '
           't-test, Holm-corrected, α = 0.05). Nothing here is typed by hand.', '',
           '| claim | measured | verdict |', '|---|---|---|']
  lines += [f'| {c} | {f} | {v} |' for c, f, v in claims(workdir)]
  lines += ['', '## Sweeps', ''] + (sections or ['No sweeps found in ' + str(workdir)])
  if hosts:
    lines += ['', 'Machine: ' + '; '.join(sorted(hosts)) + '.']
  for meta_file in sorted(workdir.glob(f'*/{sweep.SWEEP_FILE}')):
    name = meta_file.parent.name
    if (output_dir / name / 'results.png').exists():
      lines += ['', f'### {name}', '', f'![{name}]({name}/results.png)']
  text = '\n'.join(lines) + '\n'
  (output_dir / 'REPORT.md').write_text(text)
  return text

