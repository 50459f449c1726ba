r"""Prepares a dataset once, without training: python -m experiments.prepare_data

[--config=configs/default.py] [--data_dir=DIR] [--config.dataset=fashion_mnist]
MNIST prepares offline from data/mnist. Useful before starting several processes on
one data dir (a cluster's hosts, a sweep's shards), or to check the files are intact.
"""

from absl import flags

from cnn_jax import prepare
from cnn_jax.errors import ConfigError
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string('data_dir', None, 'The TFDS data dir (default: config.data_dir, '
                    'else TFDS\'s own).')
cli.define_config('configs/default.py', 'Training config: its dataset, data_dir and '
                  'manual_dir are used.')


def main(argv):
  if len(argv) > 1:
    raise ConfigError(f'unexpected arguments {argv[1:]}')
  config = FLAGS.config.to_dict()
  if FLAGS.data_dir:
    config['data_dir'] = FLAGS.data_dir
  prepare.prepare(config)
  print(f"{config['dataset']} is prepared in {config['data_dir'] or 'the TFDS default dir'}")


if __name__ == '__main__':
  cli.run(main, cache_compiled=False)
