r"""Trains one model: python -m experiments.train --config=configs/default.py --workdir=DIR

Override any field: --config.dropout_placement=after_fc1 --config.num_epochs=3
Rerun with the same --workdir to resume from its latest checkpoint.

Every visible device trains (data parallel). Several hosts: start the same command on
each with --distributed (and --coordinator_address=HOST:PORT --num_processes=N
--process_id=I unless the environment or a Slurm/MPI/TPU launcher provides them).
"""

from absl import flags

from cnn_jax.errors import ConfigError
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, TensorBoard and metrics.')
cli.define_config('configs/default.py', 'Training config file.')
flags.DEFINE_bool('distributed', False, 'Join a multi-process run with '
                  'jax.distributed.initialize before training.')
flags.DEFINE_string('coordinator_address', None, 'HOST:PORT of process 0 '
                    '(default: $JAX_COORDINATOR_ADDRESS or auto-detected).')
flags.DEFINE_integer('num_processes', None, 'Processes in the run (default: '
                     '$JAX_NUM_PROCESSES or auto-detected).')
flags.DEFINE_integer('process_id', None, 'This process, 0..num_processes-1 (default: '
                     '$JAX_PROCESS_ID or auto-detected).')
flags.DEFINE_bool('allow_config_change', False, 'Continue a workdir whose config.json '
                  'differs from --config (otherwise refused, naming the fields).')
flags.mark_flags_as_required(['workdir'])


def main(argv):
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  if not FLAGS.workdir.strip():
    raise ConfigError('--workdir is empty: expected the directory for checkpoints, '
                      'TensorBoard and metrics')
  # Here, not above: --help and bad flags answer without JAX's seconds-long import.
  from cnn_jax import parallel, train  # pylint: disable=g-import-not-at-top
  if FLAGS.distributed:
    parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes,
                                    FLAGS.process_id)
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir,
                           allow_config_change=FLAGS.allow_config_change)


if __name__ == '__main__':
  cli.run(main)
