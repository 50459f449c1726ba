r"""Trains one model: python -m experiments.train --config=configs/default.py --workdir=DIR

Override any field: --config.dropout_placement=after_fc1 --config.num_epochs=3
Rerun with the same --workdir to resume from its latest checkpoint.
"""

from absl import flags
from ml_collections import config_flags

from cnn_jax import train
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, TensorBoard and metrics.')
config_flags.DEFINE_config_file('config', 'configs/default.py', 'Training config file.',
                                lock_config=True)
flags.mark_flags_as_required(['workdir'])


def main(argv):
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
  cli.run(main)
