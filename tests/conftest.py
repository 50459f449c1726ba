"""Shared fixtures: MNIST prepared once per session from the repo's own files."""

import pathlib

import pytest

from configs import default
from cnn_jax import input_pipeline, parallel

# As every entry point does (experiments/cli.py): in-process training runs data-parallel
# over one CPU device per core, so the tests take the code path users get.
parallel.use_cpu_cores()


@pytest.fixture(scope='session')
def mnist_data_dir(tmp_path_factory) -> str:
  """A fresh TFDS data dir holding MNIST, prepared offline from data/mnist (~20 s)."""
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  config = default.get_config()
  config.data_dir = data_dir
  builder = input_pipeline._builder(config.to_dict())  # pylint: disable=protected-access
  input_pipeline._prepare(builder, config.to_dict())  # pylint: disable=protected-access
  assert builder.is_prepared()
  return data_dir


@pytest.fixture
def small_config(mnist_data_dir):
  """The default config on an MNIST slice, small enough for seconds per epoch."""
  config = default.get_config()
  config.data_dir = mnist_data_dir
  config.max_train_examples = 3000
  config.max_test_examples = 1000
  config.num_epochs = 2
  config.log_every_steps = 10
  return config


@pytest.fixture
def repo_root() -> pathlib.Path:
  return pathlib.Path(__file__).resolve().parent.parent
