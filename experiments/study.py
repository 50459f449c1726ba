r"""The whole study in one command: every sweep of the article, then REPORT.md.

python -m experiments.study [--workdir=runs/study] [--output_dir=results] [--seeds=5]
                            [--readme=README.md] [--config.num_epochs=2 ...]

Trains the sweeps named in the config file (configs/study.py: dropout, padding,
pooling, activation, MLP vs CNN) into --workdir/<sweep>, each distinct run once, with
one progress display; then writes each sweep's results and REPORT.md with the figures
into --output_dir. Rerun the same command to resume: finished runs are skipped.
"""

import pathlib
import sys
import time

from absl import flags
from ml_collections import config_flags

from cnn_jax import provenance, report, study
from cnn_jax.errors import ConfigError
from experiments import cli, sweep_cli

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', 'runs/study', 'Where the sweeps train, one folder each.')
flags.DEFINE_string('output_dir', 'results', 'Where REPORT.md and each sweep\'s '
                    'results go.')
flags.DEFINE_integer('seeds', None, 'Seeds per configuration (default: SEEDS in the '
                     'config file).')
flags.DEFINE_string('readme', '', 'A README whose study section (between its '
                    '<!-- study --> markers) gets the report\'s claims table.')
sweep_cli.define_training_flags('study')
cli.define_config('configs/study.py', 'The study config: the base training config, '
                  'its SWEEPS and SEEDS.')


def load_study(config_file: str) -> tuple[list[tuple[str, list, dict]], int]:
  """The sweeps a study config file names in SWEEPS, each (name, GRID, BASELINE) from
  configs/<name>.py beside it, and its SEEDS."""
  path, module = sweep_cli.load_config_module(config_file)
  seeds = getattr(module, 'SEEDS', 5)
  if not isinstance(seeds, int) or seeds < 1:
    raise ConfigError(f'{path}: SEEDS={seeds!r} is invalid: expected an integer >= 1')
  sweeps = []
  for name in getattr(module, 'SWEEPS', ()):
    sweep_file = pathlib.Path(path).resolve().parent / f'{name}.py'
    if not sweep_file.exists():
      raise ConfigError(f'the study names sweep {name!r}, but {sweep_file} does not exist')
    sweeps.append((name, *sweep_cli.load_grid(str(sweep_file))))
  return sweeps, seeds


def main(argv):
  if len(argv) > 1:
    raise ConfigError(f'unexpected arguments {argv[1:]}')
  start = time.perf_counter()
  config_file = config_flags.get_config_filename(FLAGS['config'])
  sweeps, default_seeds = load_study(config_file)
  seeds = range(FLAGS.seeds if FLAGS.seeds is not None else default_seeds)
  base = FLAGS.config
  plans = study.plan(base, sweeps, seeds, FLAGS.workdir)
  vmap_seeds = sweep_cli.vmap_seeds_choice(FLAGS.vmap_seeds)
  command = provenance.command_line('experiments.study')
  progress = sweep_cli.Progress(total_epochs=study.epochs_left(base, plans),
                                total_runs=sum(len(p.runs) for p in plans))
  try:
    outcomes = study.run_study(base, plans, seeds, vmap_seeds=vmap_seeds,
                               restart_changed=FLAGS.restart_changed, command=command,
                               progress=progress)
  finally:
    progress.close()
  text = report.write_report(FLAGS.workdir, FLAGS.output_dir, command, base.to_dict())
  if FLAGS.readme:
    report.update_readme(FLAGS.readme, FLAGS.output_dir)
  print(text)
  print(f'Study: {FLAGS.output_dir}/REPORT.md; runs in {FLAGS.workdir}; '
        f'{(time.perf_counter() - start) / 60:.1f} min wall')
  failed = [o for done in outcomes.values() for o in done if o.status == 'failed']
  for o in failed:
    print(f'error: {o.run.name} failed: {o.error}', file=sys.stderr)
  if failed:
    sys.exit(1)


if __name__ == '__main__':
  cli.run(main)
