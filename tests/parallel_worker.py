"""Trains a small run and saves this process's final parameters: run by test_parallel.

python tests/parallel_worker.py OUT_DIR DATA_DIR [COORDINATOR NUM_PROCESSES PROCESS_ID]
"""

import pathlib
import sys

import numpy as np

from configs import default
from cnn_jax import parallel, train


# The tests' narrow network (conftest.TINY_NETWORK) on an MNIST slice: 16 steps per epoch.
OVERRIDES = {'conv_features': (4, 8), 'fc_features': 16, 'batch_size': 64,
             'max_train_examples': 1024, 'max_test_examples': 500, 'num_epochs': 2}


def main(out_dir: str, data_dir: str, *distributed: str) -> None:
  if distributed:
    address, count, index = distributed
    parallel.initialize_distributed(address, int(count), int(index))
  import jax  # pylint: disable=g-import-not-at-top  # After initialize.
  config = default.get_config()
  config.update(data_dir=data_dir, log_every_steps=4, **OVERRIDES)
  final = {}
  metrics = train.train_and_evaluate(
      config, pathlib.Path(out_dir) / 'run',
      on_epoch_end=lambda i, record, state: final.update(params=state.params))
  leaves = jax.tree_util.tree_leaves_with_path(parallel.to_host(final['params']))
  np.savez(pathlib.Path(out_dir) / f'params_{jax.process_index()}.npz',
           train_loss=metrics['final']['train_loss'],
           devices=jax.device_count(), processes=jax.process_count(),
           **{jax.tree_util.keystr(path): leaf for path, leaf in leaves})


if __name__ == '__main__':
  main(*sys.argv[1:])
