r"""When does dropout help? Dropout against none at a ladder of training-set sizes, paired
by seed, with the study's design (configs/learning_curve.py registers it).

python -m experiments.learning_curve [--seeds=N] [--sizes=500,1000,...] [--arm=after_fc1]
    [--steps=150] [--profile=gpu] [--estimate] [--config.dropout_rate=0.5 ...]

Trains into --workdir (rerunning resumes), then writes --output_dir/learning_curve/:
runs.csv and sweep.json (the raw data), learning_curve.md (each size's estimate, CI, n
and verdict, Holm over the sizes) and learning_curve.png; `python -m
experiments.report` rebuilds them from the raw data and puts the table in REPORT.md.
TensorBoard: tensorboard --logdir=<workdir> (HParams: size, epochs and arm).
"""

import pathlib

from absl import flags
from ml_collections import config_flags

from cnn_jax import learning_curve, provenance, results, study, sweep
from cnn_jax.errors import ConfigError
from experiments import cli, sweep_cli

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', f'runs/{learning_curve.NAME}', 'Where the runs train, '
                    'one folder each; rerunning skips finished runs.')
flags.DEFINE_string('output_dir', 'results', f'Its raw data, table and figure go to '
                    f'<output_dir>/{learning_curve.NAME}/.')
flags.DEFINE_integer('seeds', None, 'Seeds per configuration (default: the profile\'s).')
flags.DEFINE_list('sizes', None, 'Training-set sizes (0: all; default: the profile\'s).')
flags.DEFINE_string('arm', None, 'The dropout_placement compared with none (default: '
                    'the config\'s ARM, before_fc1).')
flags.DEFINE_integer('steps', None, 'Train steps per run at every size, about (default: '
                     'the config\'s STEPS).')
flags.DEFINE_enum('profile', 'cpu', ['cpu', 'gpu'], 'cpu: SIZES and SEEDS, sized for '
                  '45 min on 2 cores; gpu: GPU_SIZES and GPU_SEEDS.')
flags.DEFINE_bool('estimate', False, 'Print the runs left and the time they should '
                  'take on the 2-core machine, then exit.')
sweep_cli.define_training_flags('learning curve')
cli.define_config(f'configs/{learning_curve.NAME}.py', 'The learning curve\'s config: '
                  'its base config (the small-data regime), SIZES, STEPS, STRATA, EFFECTS.')


def plan(config_file: str) -> tuple[study.SweepPlan, dict[str, float]]:
  """The runs the flags ask for, and the registered smallest effects of interest."""
  _, module = sweep.load_config_module(config_file)
  gpu = FLAGS.profile == 'gpu'
  try:
    sizes = ([int(s) for s in FLAGS.sizes] if FLAGS.sizes
             else list(module.GPU_SIZES if gpu else module.SIZES))
  except ValueError:
    raise ConfigError(f'--sizes={",".join(FLAGS.sizes)} is invalid: expected whole '
                      'numbers of training images, e.g. 500,1000,2000 (0: all)') from None
  if not sizes or any(n < 0 for n in sizes) or len(set(sizes)) < len(sizes):
    raise ConfigError(f'--sizes={",".join(map(str, sizes))} is invalid: expected distinct '
                      'sizes >= 0 (0: all)')
  arm = FLAGS.arm or module.ARM
  if arm == module.OFF:
    raise ConfigError(f'--arm={arm} is invalid: expected a dropout_placement other than '
                      f'{module.OFF}, which it is compared with')
  base = FLAGS.config
  grid = module.make_grid(sizes, arm, base, FLAGS.steps or module.STEPS)
  seeds = range(FLAGS.seeds or (module.GPU_SEEDS if gpu else module.SEEDS))
  strata = dict(module.STRATA)
  spec = study.SweepSpec(learning_curve.NAME, sweep.stratified(grid, strata), {}, None,
                         base, len(seeds), strata)
  return (study.SweepPlan(spec, pathlib.Path(FLAGS.workdir), seeds,
                          sweep.plan(base, spec.grid, seeds)), dict(module.EFFECTS))


def main(argv):
  if len(argv) > 1:
    raise ConfigError(f'unexpected arguments {argv[1:]}')
  p, effects = plan(config_flags.get_config_filename(FLAGS['config']))
  if FLAGS.estimate:
    print(study.estimate_text([p]))
    return
  progress = sweep_cli.Progress(total_epochs=study.work_left([p])[0],
                                total_runs=len(p.runs))
  try:
    outcomes = study.run_study(
        [p], vmap_seeds=sweep_cli.vmap_seeds_choice(FLAGS.vmap_seeds),
        restart_changed=FLAGS.restart_changed,
        command=provenance.command_line('experiments.learning_curve'), progress=progress)
  finally:
    progress.close()
  output = pathlib.Path(FLAGS.output_dir) / learning_curve.NAME
  results.export(p.workdir, output)
  print('\n'.join(learning_curve.write(output, effects)))
  print(f'Learning curve: {output}/{learning_curve.TABLE_FILE} and '
        f'{learning_curve.FIGURE_FILE}; REPORT.md: python -m experiments.report; '
        f'TensorBoard: tensorboard --logdir={p.workdir}')
  sweep_cli.exit_on_failures([o for done in outcomes.values() for o in done])


if __name__ == '__main__':
  cli.run(main)
