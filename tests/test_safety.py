"""Reliability: workdir safety, locks, corrupt files, divergence, and kills at random
moments that must not change the final parameters."""

import json
import logging
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from cnn_jax import checkpoints, errors, input_pipeline, options, prepare, sweep
from cnn_jax import steps, train
from train_states import epoch_state, make_state


def test_workdir_with_another_config_is_refused_naming_both(tmp_path):
  config = default.get_config().to_dict()
  (tmp_path / 'config.json').write_text(json.dumps(config))
  options.check_workdir(tmp_path, config)  # The same config: fine.
  changed = dict(config, log_every_steps=7, data_dir='/elsewhere')
  options.check_workdir(tmp_path, changed)  # Changes that compute the same.
  other = dict(config, padding=0, dataset='fashion_mnist')
  with pytest.raises(errors.WorkdirConflictError) as error:
    options.check_workdir(tmp_path, other)
  message = str(error.value)
  assert "dataset: 'mnist' there, 'fashion_mnist' now" in message
  assert 'padding: 1 there, 0 now' in message and '--allow_config_change' in message
  options.check_workdir(tmp_path, other, allow_change=True)
  (tmp_path / 'config.json').write_text('{truncated')
  with pytest.raises(errors.WorkdirConflictError, match='not valid JSON'):
    options.check_workdir(tmp_path, config)


def test_a_run_locked_by_another_process_is_not_trained_twice(tmp_path):
  with sweep.run_lock(tmp_path):
    with pytest.raises(errors.RunLockedError):
      with sweep.run_lock(tmp_path):
        pass
  with sweep.run_lock(tmp_path):  # Released: free again.
    pass
  # A lock held by a process that is then killed -9 is released by the OS.
  holder = subprocess.Popen([sys.executable, '-c', (
      'import fcntl, sys, time; f = open(sys.argv[1], "a"); '
      'fcntl.flock(f, fcntl.LOCK_EX); print("locked", flush=True); time.sleep(60)'),
      str(tmp_path / sweep.LOCK_FILE)], stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == 'locked'
  with pytest.raises(errors.RunLockedError):
    with sweep.run_lock(tmp_path):
      pass
  holder.kill()
  holder.wait()
  with sweep.run_lock(tmp_path):
    pass


def test_stop_signal_defers_sigterm_until_the_loop_looks():
  with train.StopSignal() as stop:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)
    assert stop.requested == 'SIGTERM'  # Still alive: the loop decides when to stop.
  assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.slow
def test_tampered_mnist_file_is_refused_before_extraction_and_leftovers_are_removed(
    repo_root, tmp_path, monkeypatch, capsys, caplog):
  manual = tmp_path / 'manual'
  shutil.copytree(repo_root / 'data' / 'mnist', manual)
  victim = manual / 't10k-labels-idx1-ubyte.gz'
  victim.write_bytes(victim.read_bytes()[:-100])  # Truncated.
  config = default.get_config().to_dict()
  config.update(data_dir=str(tmp_path / 'tfds'), manual_dir=str(manual))
  extractions = []
  monkeypatch.setattr(prepare.shutil, 'rmtree', lambda path, **kw: (
      extractions.append(pathlib.Path(path)), _rmtree(path, **kw))[1])
  with pytest.raises(errors.DatasetUnavailableError,
                     match=r't10k-labels-idx1-ubyte.gz fails its checksum \(4442 bytes'):
    input_pipeline.load_dataset(config)
  downloads = tmp_path / 'tfds' / 'downloads'
  # Refused before TFDS ran: no extraction folder was ever made (none to clean up).
  assert not [p for p in extractions if p.name.startswith('extracted-')]
  assert not list(downloads.glob('extracted*'))
  assert not prepare.tfds_builder(config).is_prepared()
  # What a kill -9 in the middle of a preparation leaves (53 MB of extracted files and
  # TFDS's incomplete folder) is gone by the time the next preparation starts (TFDS's
  # own run is left out here: the session's MNIST fixture shows it works).
  (downloads / 'extracted-3_89xm0l').mkdir()
  (downloads / 'extracted-3_89xm0l' / 'GZIP.train-images-idx3-ubyte.gz').write_bytes(b'x')
  incomplete = tmp_path / 'tfds' / 'mnist' / 'incomplete.2ZV9K5_3.0.1'
  incomplete.mkdir(parents=True)
  shutil.copy(repo_root / 'data' / 'mnist' / victim.name, victim)  # Repaired.
  seen = []

  def download_and_prepare(self, download_config):
    seen.append((list(downloads.glob('extracted*')), incomplete.exists(),
                 download_config.manual_dir))
    print('Downloading and preparing dataset Unknown size')  # As TFDS does, offline too.
  monkeypatch.setattr(type(prepare.tfds_builder(config)), 'download_and_prepare',
                      download_and_prepare)
  capsys.readouterr()
  with caplog.at_level(logging.INFO, logger='absl'):
    prepare.prepare_builder(prepare.tfds_builder(config), config)
  assert seen == [([], False, str(manual))]  # The checksums passed; TFDS was called.
  # The console says what happens, in our words only.
  assert f'Preparing mnist once from the files in {manual}' in caplog.text
  assert 'Unknown size' not in capsys.readouterr().out
  assert not list(downloads.glob('extracted*'))


_rmtree = shutil.rmtree


def test_a_missing_mnist_file_is_named_not_blamed_on_the_network(repo_root, tmp_path,
                                                                monkeypatch):
  manual = tmp_path / 'manual'
  shutil.copytree(repo_root / 'data' / 'mnist', manual)
  (manual / 'train-labels-idx1-ubyte.gz').unlink()
  monkeypatch.setattr(prepare, '_reachable', lambda url: False)  # Offline, as CI.
  config = default.get_config().to_dict()
  config.update(data_dir=str(tmp_path / 'tfds'), manual_dir=str(manual))
  with pytest.raises(errors.DatasetUnavailableError,
                     match=f'{manual} lacks train-labels-idx1-ubyte.gz and '
                           'storage.googleapis.com is unreachable'):
    input_pipeline.load_dataset(config)
  config['manual_dir'] = str(tmp_path / 'nowhere')
  with pytest.raises(errors.DatasetUnavailableError, match='nowhere does not exist'):
    input_pipeline.load_dataset(config)
  config['manual_dir'] = str(manual / 'train-images-idx3-ubyte.gz')
  with pytest.raises(errors.DatasetUnavailableError,
                     match='train-images-idx3-ubyte.gz is a file, not a directory'):
    input_pipeline.load_dataset(config)


@pytest.mark.slow
def test_killed_at_random_moments_ends_on_the_uninterrupted_parameters(
    small_config, repo_root, tmp_path):
  # 200 steps/epoch × 2 of the narrow network: every planned kill lands before the end
  # (each mid-training one comes at most ~20 + 70 steps into its process, and the
  # SIGKILL loses its steps).
  small_config.update(log_every_steps=20, max_train_examples=200 * small_config.batch_size)
  reference = train.train_and_evaluate(small_config, tmp_path / 'reference')
  workdir = tmp_path / 'killed'
  command = [sys.executable, '-m', 'experiments.train', f'--workdir={workdir}'] + [
      f'--config.{k}={small_config[k]}' for k in
      ('data_dir', 'max_train_examples', 'max_test_examples', 'validation_examples',
       'train_eval_examples', 'batch_size', 'num_epochs', 'conv_features', 'fc_features',
       'log_every_steps')]
  rng = np.random.default_rng(1234)  # Random moments, the same ones on every CI run.
  plan = [(signal.SIGKILL, 'start-up'), (signal.SIGTERM, 'training'),
          (signal.SIGKILL, 'training')]
  kills = []
  for attempt in range(12):
    process = subprocess.Popen(command, cwd=repo_root, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines, training = [], threading.Event()

    def read(process=process, lines=lines, training=training):
      for line in process.stdout:
        lines.append(line)
        if re.search(r'epoch \d+/\d+ step \d+/\d+', line):  # The loop is running.
          training.set()
      training.set()  # Ended.

    reader = threading.Thread(target=read)
    reader.start()
    # Killed during start-up (imports, data, compile), then twice mid-training.
    how, when = plan[len(kills)] if len(kills) < len(plan) else (None, None)
    if when == 'start-up':
      time.sleep(rng.uniform(0.5, 3.0))
    elif when == 'training':  # 0-1 s after the loop's first progress line.
      training.wait(timeout=300)
      time.sleep(rng.uniform(0.0, 1.0))
    if how is not None and process.poll() is None:
      process.send_signal(how)
    process.wait(timeout=600)
    reader.join()
    output = ''.join(lines)
    if process.returncode == 0:
      break
    kills.append((signal.Signals(how).name, process.returncode))
    if how == signal.SIGTERM:
      assert process.returncode == 130, output[-3000:]
      assert 'interrupted: SIGTERM: stopped at epoch' in output
      assert 'rerun the same command to resume' in output
    else:
      assert process.returncode == -9, output[-3000:]
  else:
    pytest.fail(f'never finished; kills: {kills}')
  print(f'kills survived: {kills}')
  assert len(kills) == len(plan)
  metrics = json.loads((workdir / 'metrics.json').read_text())
  assert metrics['completed']
  for ours, theirs in zip(metrics['history'], reference['history'], strict=True):
    for key in ('train_loss', 'train_accuracy', 'validation_loss', 'validation_accuracy'):
      assert ours[key] == theirs[key], (key, ours, theirs)
  # Tested once, where validation chose, even when a kill came between the last epoch
  # and that test (the rerun, finding the run complete, tests it).
  assert metrics['best_test_accuracy'] == reference['best_test_accuracy'] is not None
  like = make_state(small_config)
  a = epoch_state(workdir, like, 2)
  b = epoch_state(tmp_path / 'reference', like, 2)
  for x, y in zip(jax.tree.leaves((a.params, a.opt_state)),
                  jax.tree.leaves((b.params, b.opt_state))):
    np.testing.assert_array_equal(x, y)


def _largest_file(directory: pathlib.Path) -> pathlib.Path:
  return max((p for p in directory.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)


def _arrays(state):
  return [np.asarray(x) for x in jax.tree.leaves((state.step, state.params, state.opt_state))]


def test_a_checkpoint_whose_arrays_changed_is_refused_by_its_digest(tmp_path):
  state = make_state(default.get_config())
  record = {'epoch': 1, 'validation_accuracy': 0.5, 'test_accuracy': 0.5}
  saver = checkpoints.Checkpoints(tmp_path, keep=2)
  saver.save(10, state, record=record)
  saver.close()
  meta = tmp_path / '10' / '_CHECKPOINT_METADATA'
  content = json.loads(meta.read_text())
  assert content['custom_metadata']['record'] == record
  reader = checkpoints.Checkpoints(tmp_path, keep=2)
  assert reader.record(10) == record
  restored = reader.restore_latest_good(state).state
  for a, b in zip(_arrays(restored), _arrays(state)):
    np.testing.assert_array_equal(a, b)
  reader.close()
  content['custom_metadata']['sha256'] = '0' * 64  # What the arrays no longer match.
  meta.write_text(json.dumps(content))
  reader = checkpoints.Checkpoints(tmp_path, keep=2)
  with pytest.raises(errors.CheckpointError, match='SHA-256 mismatch'):
    reader.restore_latest_good(state)
  reader.close()


@pytest.mark.slow
def test_records_survive_a_kill_and_damaged_checkpoints_are_retrained(small_config,
                                                                      tmp_path, caplog,
                                                                      capfd):
  workdir = tmp_path / 'run'
  first = train.train_and_evaluate(small_config, workdir)
  like = make_state(small_config)
  original = _arrays(epoch_state(workdir, like, 2))
  epoch_2 = workdir / 'checkpoints' / '32'  # 16 steps per epoch.

  # Killed after epoch 2's checkpoint, before metrics.json: the rerun trains nothing
  # and gets the record back from the checkpoint.
  metrics = json.loads((workdir / 'metrics.json').read_text())
  metrics['history'], metrics['completed'] = metrics['history'][:1], False
  (workdir / 'metrics.json').write_text(json.dumps(metrics))
  again = train.train_and_evaluate(small_config, workdir)
  assert again['completed'] and again['history'] == first['history']  # Not retrained.
  assert json.loads((workdir / 'metrics.json').read_text())['history'] == first['history']
  saved = checkpoints.Checkpoints(workdir / 'checkpoints', 3)
  assert saved.best_step() == 16 * first['best_epoch']
  saved.close()

  # Random bytes inside checkpoint 2: refused (Orbax's error or the digest), named, the
  # run falls back to epoch 1, retrains epoch 2 onto the same arrays and replaces the
  # damaged checkpoint, so the next rerun trains nothing.
  victim = _largest_file(epoch_2)
  data = bytearray(victim.read_bytes())
  middle = len(data) // 2
  data[middle:middle + 64] = np.random.default_rng(0).bytes(64)
  victim.write_bytes(bytes(data))
  caplog.clear()
  retrained = train.train_and_evaluate(small_config, workdir)
  assert str(epoch_2) in caplog.text
  assert retrained['final']['train_loss'] == first['final']['train_loss']
  for a, b in zip(_arrays(epoch_state(workdir, like, 2)), original):
    np.testing.assert_array_equal(a, b)
  caplog.clear()
  assert train.train_and_evaluate(small_config, workdir)['history'] == retrained['history']
  assert 'cannot be read' not in caplog.text

  # A checkpoint folder whose contents were deleted, then one whose files were all
  # truncated to nothing: the same fallback and retraining.
  for damage in ('deleted', 'emptied'):
    if damage == 'deleted':
      shutil.rmtree(epoch_2 / 'default')
    else:
      for path in epoch_2.rglob('*'):
        if path.is_file():
          path.write_bytes(b'')
    caplog.clear()
    again = train.train_and_evaluate(small_config, workdir)
    assert str(epoch_2) in caplog.text, damage
    assert again['final']['train_loss'] == first['final']['train_loss'], damage
    assert again['final']['test_accuracy'] == first['final']['test_accuracy'], damage
    assert (epoch_2 / 'default').is_dir()

  # Another architecture in the same workdir: refused before anything is touched.
  other = small_config.copy_and_resolve_references()
  other.padding = 0
  with pytest.raises(errors.WorkdirConflictError, match='padding: 1 there, 0 now'):
    train.train_and_evaluate(other, workdir)

  # A config change the checkpoints cannot take (padding 1 -> 0): one error, and
  # config.json still describes the run, so the original command still runs.
  capfd.readouterr()
  with pytest.raises(errors.ConfigError,
                     match=r"holds checkpoints of another network \(params/fc1/kernel is "
                           r"\(392, 16\) there, \(200, 16\) now\)"):
    train.train_and_evaluate(other, workdir, allow_config_change=True)
  # Refused from the metadata: Orbax never failed a read (its threads printed dozens of
  # 'Event loop is closed' tracebacks when it did).
  assert 'Event loop' not in ''.join(capfd.readouterr())
  assert json.loads((workdir / 'config.json').read_text())['padding'] == 1
  caplog.clear()
  with caplog.at_level(logging.INFO, logger='absl'):
    assert train.train_and_evaluate(small_config, workdir)['completed']
  assert f'{workdir}: already complete (2 epochs)' in caplog.text  # Not "Resumed".

  # A damaged best checkpoint: inference falls back to the other epoch.
  best = first['best_epoch']
  victim = _largest_file(workdir / 'checkpoints' / str(16 * best))
  victim.write_bytes(victim.read_bytes()[:len(victim.read_bytes()) // 2])
  _, epoch, which = checkpoints.load_for_inference(workdir, like)
  assert (epoch, which) == (3 - best, 'latest')


@pytest.mark.slow
@pytest.mark.parametrize('global_step, epoch, step', [
    (0, 1, 1),  # The run's first step.
    (3, 1, 4),  # The first epoch's last.
    (4, 2, 1),  # The last epoch's first.
    (7, 2, 4),  # The run's last step.
])
def test_a_non_finite_loss_is_caught_at_the_first_and_last_steps_and_epochs(
    small_config, tmp_path, monkeypatch, global_step, epoch, step):
  """The loss made NaN at one global step (4 steps per epoch): the run stops naming
  that epoch and step, marks itself failed, and names the last good checkpoint."""
  real = steps.train_step

  def poisoned(state, batch, rng):
    state_after, metrics = real(state, batch, rng)
    loss = jnp.where(state.step == global_step, jnp.nan, metrics['loss'])
    return state_after, {**metrics, 'loss': loss}

  monkeypatch.setattr(steps, 'train_step', poisoned)
  small_config.update(max_train_examples=256, log_every_steps=1000)  # Checked at the
  # epoch's end alone, then.
  workdir = tmp_path / 'run'
  with pytest.raises(errors.NonFiniteLossError,
                     match=rf'at epoch {epoch}, step {step}; the last good checkpoint '
                           + ('is none' if epoch == 1 else 'is epoch 1 in')):
    train.train_and_evaluate(small_config, workdir)
  metrics = json.loads((workdir / 'metrics.json').read_text())
  assert metrics['failed'] == {'reason': 'non-finite loss', 'epoch': epoch, 'step': step}
  assert not metrics['completed'] and len(metrics['history']) == epoch - 1
