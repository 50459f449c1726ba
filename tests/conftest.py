"""Shared fixtures: MNIST prepared once per session from the repo's own files."""

import os
import pathlib
import shutil
import tempfile

import pytest

from configs import default
from cnn_jax import compilation_cache, input_pipeline, parallel

# As every entry point does (experiments/cli.py): in-process training runs data-parallel
# over one CPU device per core, so the tests take the code path users get.
parallel.use_cpu_cores()

# Compiled programs shared by every test of this session and the commands they start
# (through the environment): most tests compile the same small programs, and compiling
# was most of their time. A fresh folder per session, so nothing comes from a past one.
_XLA_CACHE = tempfile.mkdtemp(prefix='cnn_jax_tests_xla_')
os.environ.pop('JAX_COMPILATION_CACHE_DIR', None)
compilation_cache.enable(_XLA_CACHE)


def pytest_sessionfinish(session, exitstatus):  # pylint: disable=unused-argument
  shutil.rmtree(_XLA_CACHE, ignore_errors=True)


@pytest.fixture(scope='session')
def mnist_data_dir(tmp_path_factory, worker_id) -> str:
  """A fresh TFDS data dir holding MNIST, prepared offline from data/mnist (~20 s).

  Shared by the pytest-xdist workers of one session: the first prepares it, the others
  wait on the preparation's file lock and find it prepared.
  """
  base = tmp_path_factory.getbasetemp()
  data_dir = str((base.parent if worker_id != 'master' else base) / 'tfds')
  config = default.get_config()
  config.data_dir = data_dir
  builder = input_pipeline._builder(config.to_dict())  # pylint: disable=protected-access
  input_pipeline._prepare(builder, config.to_dict())  # pylint: disable=protected-access
  assert builder.is_prepared()
  return data_dir


# A narrow version of the article's network (6,794 parameters): the trainer's mechanics
# (resume, kills, sweeps, seeds together) do not depend on the width, and vmapped
# convolutions are slow on XLA:CPU. Tests of what the article's network learns say so.
TINY_NETWORK = {'conv_features': (4, 8), 'fc_features': 16}


@pytest.fixture
def small_config(mnist_data_dir):
  """A narrow CNN on an MNIST slice, small enough for a second or two per epoch."""
  config = default.get_config()
  config.update(TINY_NETWORK)
  config.data_dir = mnist_data_dir
  config.max_train_examples = 3000
  config.max_test_examples = 1000
  config.num_epochs = 2
  config.log_every_steps = 10
  return config


@pytest.fixture
def repo_root() -> pathlib.Path:
  return pathlib.Path(__file__).resolve().parent.parent
