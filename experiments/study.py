r"""The whole study in one command: every sweep of the article, then REPORT.md.

python -m experiments.study [--workdir=runs/study] [--output_dir=results] [--seeds=N]
                            [--readme=README.md] [--estimate] [--config.num_epochs=2 ...]

Trains the sweeps named in the config file (configs/study.py; configs/study_long.py
for the long profile) into --workdir/<sweep>, each distinct run once, with one
progress display; then writes each sweep's raw data (runs.csv, sweep.json), its page
and REPORT.md into --output_dir, from that raw data alone (as `python -m
experiments.report` rebuilds them). Rerun the same command to resume: finished runs
are skipped. --estimate prints what is left to train and how long it should take.
"""

import dataclasses
import json
import pathlib
import time

from absl import flags
from ml_collections import config_flags

from cnn_jax import provenance, report, results, study
from cnn_jax.errors import ConfigError
from configs import learning_curve as curve_config
from experiments import cli, sweep_cli

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', 'runs/study', 'Where the sweeps train, one folder each.')
flags.DEFINE_string('output_dir', 'results', 'Where REPORT.md, and each sweep\'s raw '
                    'data and page, go.')
flags.DEFINE_integer('seeds', None, 'Seeds per configuration in every sweep (default: '
                     'the config file\'s SWEEP_SEEDS for the sweeps it names there, '
                     'SEEDS for the others).')
flags.DEFINE_string('readme', '', 'A README whose study section (between its '
                    '<!-- study --> markers) gets the report\'s claims table.')
flags.DEFINE_bool('estimate', False, 'Print the runs and epochs left to train and the '
                  'time they should take at --examples_per_second, then exit.')
flags.DEFINE_float('examples_per_second', None, 'Training speed for --estimate (default: '
                   'cnn_jax.study.CPU_2_CORES\'s, measured on the 2-core machine).')
sweep_cli.define_training_flags('study')
cli.define_config('configs/study.py', 'The study config: the base training config, '
                  'its SWEEPS, SEEDS, SWEEP_SEEDS, EQUIVALENCE_MARGIN and CLAIMS.')


def estimate(plans) -> str:
  model = study.CPU_2_CORES
  if FLAGS.examples_per_second:
    model = dataclasses.replace(model, train_examples_per_second=FLAGS.examples_per_second)
  return study.estimate_text(plans, model, '--examples_per_second' if
                             FLAGS.examples_per_second else '')


def main(argv):
  if len(argv) > 1:
    raise ConfigError(f'unexpected arguments {argv[1:]}')
  start = time.perf_counter()
  config_file = config_flags.get_config_filename(FLAGS['config'])
  declared = study.load_study(config_file, FLAGS.config)
  margin = declared.margin
  plans = study.plan_sweeps(declared.sweeps, FLAGS.workdir, FLAGS.seeds)
  if FLAGS.estimate:
    print(estimate(plans))
    return
  vmap_seeds = sweep_cli.vmap_seeds_choice(FLAGS.vmap_seeds)
  command = provenance.command_line('experiments.study')
  progress = sweep_cli.Progress(total_epochs=study.work_left(plans)[0],
                                total_runs=sum(len(p.runs) for p in plans))
  try:
    outcomes = study.run_study(plans, vmap_seeds=vmap_seeds,
                               restart_changed=FLAGS.restart_changed, command=command,
                               equivalence_margin=margin, progress=progress)
  finally:
    progress.close()
  output = pathlib.Path(FLAGS.output_dir)
  for p in plans:
    results.export(p.workdir, output / p.name)
  text = report.write_report(output, output, report.rebuild_command(output),
                             json.loads(json.dumps(FLAGS.config.to_dict(), default=list)),
                             [p.name for p in plans], declared.claims,
                             curve_config.EFFECTS)
  if FLAGS.readme:
    report.update_readme(FLAGS.readme, output)
  print(text)
  print(f'Study: {output}/REPORT.md; runs in {FLAGS.workdir}; '
        f'{(time.perf_counter() - start) / 60:.1f} min wall')
  sweep_cli.exit_on_failures([o for done in outcomes.values() for o in done])


if __name__ == '__main__':
  cli.run(main)
