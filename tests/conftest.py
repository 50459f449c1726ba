"""Shared fixtures: MNIST prepared once per session from the repo's own files."""

import ctypes
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile

import psutil
import pytest

from configs import default
from cnn_jax import compilation_cache, prepare

# Compiling was half of the suite's time (two workers on two cores), so the tests and the
# commands they start (through the environment) compile less:
# - one CPU device per process, not one per core as the entry points make
#   (parallel.use_cpu_cores leaves a device count in XLA_FLAGS alone): the trainer's
#   tests took 15% less CPU time. The same training on 1 and 8 devices and on 2
#   processes is tested in test_parallel.py, which sets its own counts;
# - XLA:CPU's backend optimisation level 1, not 3: the threefry random numbers of every
#   parameter init compiled in seconds at level 3. Only the compiler's effort changes,
#   not what our code computes.
os.environ['XLA_FLAGS'] = ' '.join(filter(None, [
    os.environ.get('XLA_FLAGS'), '--xla_force_host_platform_device_count=1',
    '--xla_backend_optimization_level=1']))

# Compiled programs shared by every test of this session and the commands they start
# (through the environment): most tests compile the same small programs, and compiling
# was most of their time. A fresh folder per session, so nothing comes from a past one.
_XLA_CACHE = tempfile.mkdtemp(prefix='cnn_jax_tests_xla_')
os.environ.pop('JAX_COMPILATION_CACHE_DIR', None)
compilation_cache.enable(_XLA_CACHE)


_PREPARING: list[subprocess.Popen] = []


if sys.platform == 'linux':
  _prctl = ctypes.CDLL(None).prctl  # Looked up here: a forked child only calls it.

  def _die_with_this_process() -> None:
    """In a child, before exec: the kernel kills it when the test process that started
    it dies, even by SIGKILL (PR_SET_PDEATHSIG), so no training outlives a killed
    pytest worker."""
    _prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG.

  # Every process a test starts (subprocess.run too) dies with the test process; what
  # is still running when a test ends is killed by `_no_process_left_behind`.
  _popen_init = subprocess.Popen.__init__

  def _popen_dying_with_us(self, *args, preexec_fn=None, **kwargs):
    _popen_init(self, *args, preexec_fn=preexec_fn or _die_with_this_process, **kwargs)

  subprocess.Popen.__init__ = _popen_dying_with_us


@pytest.fixture(autouse=True)
def _no_process_left_behind():
  """Kills (with their children) the processes a test started and left running, on a
  failure or a timeout as on success."""
  before = {p.pid for p in psutil.Process().children(recursive=True)}
  yield
  left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
  for process in left:
    try:
      process.kill()
    except psutil.NoSuchProcess:
      pass
  psutil.wait_procs(left, timeout=30)




def pytest_sessionstart(session):
  """With pytest-xdist workers, the controller starts preparing MNIST in the background
  while the workers run the tests that need no data (ordered first, below)."""
  config = session.config
  if hasattr(config, 'workerinput') or not getattr(config.option, 'numprocesses', None):
    return
  data_dir = config._tmp_path_factory.getbasetemp() / 'tfds'  # pylint: disable=protected-access
  _PREPARING.append(subprocess.Popen(
      [sys.executable, '-m', 'experiments.prepare_data', f'--data_dir={data_dir}'],
      cwd=pathlib.Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL))


def pytest_collection_modifyitems(items):
  """Tests that need no MNIST first (MNIST is being prepared meanwhile), then the slow
  end-to-end ones, so neither worker is left alone with a long test at the end."""
  def rank(item):
    if 'mnist_data_dir' not in item.fixturenames:
      return 0
    return 1 if item.get_closest_marker('slow') else 2
  items.sort(key=rank)  # Stable: file order within each group.


def pytest_sessionfinish(session, exitstatus):  # pylint: disable=unused-argument
  for process in _PREPARING:
    process.kill()
    process.wait()
  shutil.rmtree(_XLA_CACHE, ignore_errors=True)


@pytest.fixture(scope='session')
def mnist_data_dir(tmp_path_factory, worker_id) -> str:
  """A fresh TFDS data dir holding MNIST, prepared offline from data/mnist (~20 s).

  Shared by the pytest-xdist workers of one session (in the controller's temp folder,
  where it starts preparing it at once): whoever holds the preparation's file lock
  prepares it, the others wait on the lock and find it prepared.
  """
  base = tmp_path_factory.getbasetemp()
  config = default.get_config()
  config.data_dir = str((base.parent if worker_id != 'master' else base) / 'tfds')
  prepare.prepare(config.to_dict())
  return config.data_dir


# A narrow version of the article's network (6,794 parameters): the trainer's mechanics
# (resume, kills, sweeps, seeds together) do not depend on the width, and vmapped
# convolutions are slow on XLA:CPU. Tests of what the article's network learns say so.
TINY_NETWORK = {'conv_features': (4, 8), 'fc_features': 16}


@pytest.fixture
def small_config(mnist_data_dir):
  """A narrow CNN on an MNIST slice: 16 steps per epoch, 2 epochs; 500 images each
  held out for validation, evaluated in eval mode from training, and of the test set.

  Tests that train use it as it is where they can: the same shapes make the same
  programs, compiled once per session (the cache in the environment) and reused.
  """
  config = default.get_config()
  config.update(TINY_NETWORK)
  config.data_dir = mnist_data_dir
  config.max_train_examples = 1024
  config.max_test_examples = 500
  config.validation_examples = 500
  config.train_eval_examples = 500
  config.batch_size = 64
  config.num_epochs = 2
  config.log_every_steps = 10
  return config


@pytest.fixture
def repo_root() -> pathlib.Path:
  return pathlib.Path(__file__).resolve().parent.parent
