"""Data parallelism: the same training on 1 device, 8 devices, and 2 processes (each
process of this session has one device: conftest.py)."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import filelock
import jax
import numpy as np
import pytest

from configs import default
from cnn_jax import checkpoints, errors, options, parallel
import parallel_worker
from train_states import epoch_state, make_state


def test_batch_must_split_over_devices():
  dp = parallel.DataParallel.create()
  dp.check_batch_size('batch_size', 128)
  fake = parallel.DataParallel.__new__(parallel.DataParallel)
  object.__setattr__(fake, 'mesh', type('M', (), {'size': 8})())
  with pytest.raises(errors.ConfigError, match=r'config.batch_size=100 .* multiple of 8'):
    fake.check_batch_size('batch_size', 100)


def _env(devices: int, **more: str) -> dict[str, str]:
  """This session's environment (its other XLA flags kept) with `devices` CPU devices."""
  flags = [f for f in os.environ.get('XLA_FLAGS', '').split()
           if not f.startswith('--xla_force_host_platform_device_count')]
  flags.append(f'--xla_force_host_platform_device_count={devices}')
  return dict(os.environ, XLA_FLAGS=' '.join(flags), JAX_PLATFORMS='cpu', **more)


def _worker(repo_root, out_dir, data_dir, *extra, devices=1):
  env = _env(devices, PYTHONPATH=str(repo_root))
  return subprocess.Popen(
      [sys.executable, str(repo_root / 'tests' / 'parallel_worker.py'), str(out_dir),
       data_dir, *map(str, extra)], cwd=repo_root, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)


def _finish(*workers, timeout=420):
  for w in workers:
    try:
      out, _ = w.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
      for other in workers:
        other.kill()
      raise
    assert w.returncode == 0, out[-4000:]


def _params(path):
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


@pytest.fixture(scope='session')
def one_device(mnist_data_dir, tmp_path_factory, worker_id):
  """The worker's training, here (this process has one device), once per session: in
  the controller's temp folder, whichever pytest-xdist worker comes first trains it."""
  assert jax.device_count() == 1
  base = tmp_path_factory.getbasetemp()
  out = (base.parent if worker_id != 'master' else base) / 'one_device'
  with filelock.FileLock(f'{out}.lock'):
    if not (out / 'params_0.npz').exists():
      out.mkdir(exist_ok=True)
      parallel_worker.main(str(out), mnist_data_dir)
  return _params(out / 'params_0.npz')


def _assert_close(a, b):
  assert a.keys() == b.keys()
  for key in a:
    if key in ('devices', 'processes'):
      continue
    np.testing.assert_allclose(a[key], b[key], rtol=2e-4, atol=2e-5, err_msg=key)


@pytest.mark.slow
def test_eight_devices_match_one(one_device, mnist_data_dir, repo_root, tmp_path):
  _finish(_worker(repo_root, tmp_path, mnist_data_dir, devices=8))
  eight = _params(tmp_path / 'params_0.npz')
  assert (int(eight['devices']), int(one_device['devices'])) == (8, 1)
  _assert_close(eight, one_device)


# A hang in a test of several processes is an error within a minute, not a timeout.
_TEST_AGREEMENT_TIMEOUT_S = '60'


def _train_process(repo_root, data_dir, workdir, address, i, *extra, **env):
  """`experiments.train` as process i of 2 on the tests' small run."""
  return subprocess.Popen(
      [sys.executable, '-m', 'experiments.train', f'--workdir={workdir}',
       '--distributed', f'--coordinator_address={address}', '--num_processes=2',
       f'--process_id={i}', f'--config.data_dir={data_dir}', '--config.log_every_steps=1',
       *(f'--config.{k}={v}' for k, v in parallel_worker.OVERRIDES.items()), *extra],
      cwd=repo_root,
      env=_env(1, **{parallel.AGREEMENT_TIMEOUT_ENV: _TEST_AGREEMENT_TIMEOUT_S, **env}),
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _free_address() -> str:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return f'127.0.0.1:{s.getsockname()[1]}'


@pytest.mark.slow
def test_a_signal_to_one_process_stops_both_after_the_same_step(
    one_device, mnist_data_dir, repo_root, tmp_path):
  """Two processes of one device each train as one: SIGTERM reaches process 1 only,
  both stop at the same dispatch boundary and save one mid-epoch checkpoint together;
  the rerun ends on the parameters of the one-device run."""
  workdir = tmp_path / 'run'
  start = lambda address, i: _train_process(repo_root, mnist_data_dir, workdir, address, i)
  address = _free_address()
  workers = [start(address, i) for i in range(2)]
  outputs = [[], []]
  training = threading.Event()

  def read(i):
    for line in workers[i].stdout:
      outputs[i].append(line)
      if 'step 1/16' in line:  # Process 0 logs; the loop is running.
        training.set()
    training.set()

  readers = [threading.Thread(target=read, args=(i,)) for i in range(2)]
  for r in readers:
    r.start()
  assert training.wait(timeout=120)
  workers[1].send_signal(signal.SIGTERM)
  for w, r in zip(workers, readers):
    w.wait(timeout=120)
    r.join()
  text = [''.join(o) for o in outputs]
  assert [w.returncode for w in workers] == [130, 130], text[0][-3000:] + text[1][-3000:]
  assert 'interrupted: a signal to another process: stopped at epoch 1 step' in text[0]
  assert 'interrupted: SIGTERM: stopped at epoch 1 step' in text[1]
  saved = [p.name for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit()]
  assert len(saved) == 1 and 0 < int(saved[0]) < 16  # Mid-epoch 1, by global step.

  address = _free_address()
  workers = [start(address, i) for i in range(2)]  # The same command again.
  for w in workers:
    out, _ = w.communicate(timeout=120)
    assert w.returncode == 0, out[-3000:]
    assert 'on 2 device(s), 2 process(es)' in out or w is workers[1]  # Process 0 logs.
  metrics = json.loads((workdir / 'metrics.json').read_text())  # Written by process 0.
  assert metrics['completed'] and metrics['processes'] == 2
  np.testing.assert_allclose(metrics['final']['train_loss'], one_device['train_loss'],
                             rtol=2e-4)
  # The epochs' ends (global steps 16, 32); the mid-epoch one went with epoch 1's end.
  assert sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir()) == [16, 32]
  config = default.get_config()
  config.update(parallel_worker.OVERRIDES)
  final = epoch_state(workdir, make_state(config, 16), 2)
  saved = {jax.tree_util.keystr(path): np.asarray(leaf)
           for path, leaf in jax.tree_util.tree_leaves_with_path(final.params)}
  _assert_close(saved, {k: v for k, v in one_device.items() if k in saved})
  assert len(saved) == len(one_device) - 3  # All but train_loss, devices, processes.


@pytest.mark.slow
def test_a_peer_that_stops_answering_ends_the_other_in_one_line(mnist_data_dir, repo_root,
                                                                 tmp_path):
  """Process 1 frozen mid-training (SIGSTOP): process 0, whose next all-reduce or stop
  agreement waits for it, stops within its timeout with one line and exit 1."""
  address = _free_address()
  workers = [_train_process(repo_root, mnist_data_dir, tmp_path / 'run', address, i,
                            '--config.num_epochs=50',
                            **{parallel.AGREEMENT_TIMEOUT_ENV: '3'}) for i in range(2)]
  lines, training = [], threading.Event()

  def read():
    for line in workers[0].stdout:  # Process 0 logs every step.
      lines.append(line)
      if 'step 2/16' in line:
        training.set()
    training.set()

  reader = threading.Thread(target=read)
  reader.start()
  assert training.wait(timeout=120) and workers[0].poll() is None, ''.join(lines)[-3000:]
  workers[1].send_signal(signal.SIGSTOP)
  frozen = time.monotonic()
  workers[0].wait(timeout=60)
  waited = time.monotonic() - frozen
  workers[1].kill()
  reader.join()
  out = ''.join(lines)
  assert workers[0].returncode == 1, out[-3000:]
  error = out.strip().splitlines()[-1]
  assert error.startswith('error: ') and 'within 3 s' in error, out[-3000:]
  assert 'another process' in error or 'process 1 did not' in error, error
  assert waited < 30


def test_the_agreement_timeout_is_read_from_the_environment(monkeypatch):
  monkeypatch.delenv(parallel.AGREEMENT_TIMEOUT_ENV, raising=False)
  assert parallel.agreement_timeout() == parallel.DEFAULT_AGREEMENT_TIMEOUT_S
  monkeypatch.setenv(parallel.AGREEMENT_TIMEOUT_ENV, '2.5')
  assert parallel.agreement_timeout() == 2.5
  for bad in ('0', '-1', 'soon', 'inf', 'nan'):
    monkeypatch.setenv(parallel.AGREEMENT_TIMEOUT_ENV, bad)
    with pytest.raises(errors.ConfigError, match=parallel.AGREEMENT_TIMEOUT_ENV):
      parallel.agreement_timeout()


_SPLIT_SCRIPT = """
import jax
from cnn_jax import parallel
n = jax.device_count()
print(n, parallel.DataParallel.create().num_devices,
      parallel.DataParallel.create(n * 64, n * 500).num_devices,
      *(parallel.DataParallel.create(b).num_devices for b in (1, 7, 33, 100, 1000)),
      parallel.use_cpu_cores(n + 1), jax.device_count())
"""


def test_single_process_uses_the_devices_that_split_the_batch(repo_root):
  done = subprocess.run([sys.executable, '-c', _SPLIT_SCRIPT], cwd=repo_root,
                        env=_env(6), capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  n, default_devices, both, *split, too_late, n_after = map(int, done.stdout.split())
  assert n == 6 and default_devices == both == 6
  # The most devices that split the batch: 1 → 1, 7 → 1, 33 → 3, 100 → 5, 1000 → 5.
  assert split == [1, 1, 3, 5, 5]
  # Too late once JAX has started: nothing changes.
  assert too_late == 0 and n_after == 6
