"""REPORT.md: each of the article's claims against what this codebase computes and
measures. Every number comes from the geometry formulas or from the sweeps' runs.
"""

from __future__ import annotations

import json
import math
import pathlib
import shutil
from typing import Any, Mapping, Sequence

from cnn_jax import geometry, provenance, results, sweep

MNIST_SHAPE, MNIST_CLASSES = (28, 28, 1), 10
ARTICLE_PARAMS = 421_642
ARTICLE_MLP_SHARE = 0.07
SWEEP_FILES = ('results.md', 'results.csv', 'results.png')


def _table(base: Mapping[str, Any], overrides: dict[str, Any]) -> list[geometry.Layer]:
  return geometry.layer_table({**base, **overrides}, MNIST_SHAPE, MNIST_CLASSES)


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


def _short(row: results.ConfigResult) -> str:
  """'99.01% [98.95, 99.07]': mean and 95% CI over seeds."""
  a = row.accuracy
  ci = '' if math.isnan(a.ci_low) else f' [{100 * a.ci_low:.2f}, {100 * a.ci_high:.2f}]'
  return f'{100 * a.mean:.2f}%{ci}'


def _name(row: results.ConfigResult) -> str:
  return ', '.join(f'{k}={sweep.format_value(v)}' for k, v in row.overrides.items()
                   ) or row.key


def _not_run(name: str, workdir: pathlib.Path) -> str:
  return (f'not run: `python -m experiments.study --workdir={workdir}` (all sweeps) or '
          f'`python -m experiments.{name} --workdir={workdir / name}`')


def _comparison(claim: str, rows: list[results.ConfigResult] | None, name: str,
                workdir: pathlib.Path) -> tuple[str, str, str]:
  """A sweep as one claim row: each configuration's accuracy (mean [95% CI], the
  article's choice marked), and each verdict against the article's choice."""
  if not rows:
    return claim, _not_run(name, workdir), 'not run'
  found = '; '.join(f'{_name(r)}{" (article)" if r.is_baseline else ""}: {_short(r)}'
                    for r in rows)
  seeds = sorted({r.accuracy.n for r in rows})
  found += f" (final test accuracy, mean [95% CI] over {'/'.join(map(str, seeds))} seeds)"
  verdict = '; '.join(f'{_name(r)}: {r.verdict}' for r in rows if not r.is_baseline)
  return claim, found, verdict


def claims(workdir: pathlib.Path, base_config: Mapping[str, Any]) -> list[tuple[str, str, str]]:
  """(claim, what we found, verdict) rows; the formulas' rows describe `base_config` (a
  config: the article's network)."""
  rows = []
  dropout, padding, pooling, activation, mlp = (
      _load(workdir, n) for n in ('dropout_sweep', 'padding_sweep', 'pooling_sweep',
                                  'activation_sweep', 'mlp_vs_cnn'))

  article = _table(base_config, {})
  counted = geometry.count_params(article)
  measured = sorted({r.num_params for sweep_rows in (dropout, padding, pooling,
                                                     activation, mlp)
                     for r in sweep_rows or [] if r.is_baseline and r.num_params})
  found = f'{counted:,} from the formulas' + (
      f'; {", ".join(f"{m:,}" for m in measured)} in the trained Flax model' if measured
      else '')
  ok = counted == ARTICLE_PARAMS and all(m == ARTICLE_PARAMS for m in measured)
  rows.append(('The CNN has 421,642 parameters', found, 'holds' if ok else 'does not hold'))

  base = next((r for sweep_rows in (dropout, padding, pooling, activation, mlp)
               for r in sweep_rows or [] if r.is_baseline), None)
  if base:
    ok = abs(base.accuracy.mean - 0.99) <= 0.005
    rows.append(('It reaches ~99% test accuracy on MNIST', f'{_accuracy(base)} after '
                 f'{len(base.curves[0])} epoch(s)', 'holds' if ok else 'does not hold'))
  else:
    rows.append(('It reaches ~99% test accuracy on MNIST',
                 _not_run('dropout_sweep', workdir), 'not run'))

  growth = [(r.name, r.receptive_field.size) for r in article
            if r.receptive_field is not None and r.kind != 'Activation'
            and r.name != 'input']
  ok = all(a[1] < b[1] for a, b in zip(growth, growth[1:]))
  rows.append(('Each conv and pool layer widens the receptive field',
               ' → '.join(f'{n} {k}×{k}' for n, k in growth) + ' (formulas; the tests '
               'check them against gradients)', 'holds' if ok else 'does not hold'))

  no_pad = _table(base_config, {'padding': 0})
  flat = {p: next(r for r in t if r.name == 'flatten') for p, t in ((1, article),
                                                                     (0, no_pad))}
  found = (f'padding 1: {_sizes(article)}; padding 0: {_sizes(no_pad)} '
           f'({geometry.count_params(no_pad):,} parameters)')
  ok = (flat[1].output_shape, flat[0].output_shape) == ((3136,), (1600,))
  rows.append(('Padding 1 keeps 28×28 through conv1; without it FC1 takes 1600 inputs, '
               'not 3136', found, 'holds' if ok else 'does not hold'))
  rows.append(_comparison('Padding 1 (the article\'s) vs 0: accuracy', padding,
                          'padding_sweep', workdir))
  rows.append(_comparison('Dropout before FC1 (the article\'s table) vs after FC1, both, '
                          'none', dropout, 'dropout_sweep', workdir))
  rows.append(_comparison('Max pooling 2×2/2 (the article\'s) vs average, and '
                          'overlapping 3×3/2 windows', pooling, 'pooling_sweep', workdir))
  rows.append(_comparison('ReLU (the article\'s) vs Leaky ReLU, tanh, sigmoid',
                          activation, 'activation_sweep', workdir))

  mlp_config = {**base_config, 'model': 'mlp'}
  mlp_params = geometry.count_params(
      geometry.layer_table(mlp_config, MNIST_SHAPE, MNIST_CLASSES))
  share = counted / mlp_params
  hidden = '→'.join(str(h) for h in mlp_config['mlp_hidden_features'])
  found = (f'our MLP (784→{hidden}→10) has {mlp_params:,} parameters: the CNN has '
           f'{share:.1%} of them ({1 - share:.1%} fewer). Read as "7% of the MLP\'s", the '
           f'claim needs an MLP of {counted / ARTICLE_MLP_SHARE:,.0f}; read as "7% fewer", '
           f'one of {counted / (1 - ARTICLE_MLP_SHARE):,.0f}')
  rows.append(('The CNN needs ~7% of the parameters of an equivalent MLP', found,
               'holds' if abs(share - ARTICLE_MLP_SHARE) < 0.01 else
               'holds in neither reading with our MLP (the claim depends on the MLP '
               'compared)'))
  rows.append(_comparison('The CNN is more accurate than the MLP', mlp, 'mlp_vs_cnn',
                          workdir))
  return rows


def write_report(workdir: str | pathlib.Path, output_dir: str | pathlib.Path,
                 command: str, base_config: Mapping[str, Any]) -> str:
  """REPORT.md in `output_dir`, with each sweep's results files copied beside it;
  `base_config`: the config whose network the formulas describe."""
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
  setups = sorted({results.setup_text(m['base_config'], m['seeds'])
                   for m in (json.loads(f.read_text())
                             for f in sorted(workdir.glob(f'*/{sweep.SWEEP_FILE}')))
                   if 'base_config' in m})
  lines[-2:-2] = [*setups, ''] if setups else []
  lines += [f'| {c} | {f} | {v} |' for c, f, v in claims(workdir, base_config)]
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


README_BEGIN, README_END = '<!-- study:begin -->', '<!-- study:end -->'


def claims_table(report_text: str) -> str:
  """The claims table of a REPORT.md (its first Markdown table)."""
  lines = report_text.splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith('| claim |'))
  end = next((i for i in range(start, len(lines)) if not lines[i].startswith('|')),
             len(lines))
  return '\n'.join(lines[start:end])


def update_readme(readme: str | pathlib.Path, output_dir: str | pathlib.Path) -> None:
  """Puts REPORT.md's claims table between the README's study markers."""
  readme, output_dir = pathlib.Path(readme), pathlib.Path(output_dir)
  text = readme.read_text()
  if README_BEGIN not in text or README_END not in text:
    raise ValueError(f'{readme} has no {README_BEGIN} … {README_END} section')
  table = claims_table((output_dir / 'REPORT.md').read_text())
  before, rest = text.split(README_BEGIN, 1)
  after = rest.split(README_END, 1)[1]
  readme.write_text(f'{before}{README_BEGIN}\n{table}\n{README_END}{after}')
