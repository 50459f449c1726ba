"""The train step, the optimizer, the device loop, checkpoints, and the trainer (one seed
or several) on a real MNIST slice."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tensorboard.backend.event_processing import event_accumulator

from configs import default
from cnn_jax import checkpoints, device_loop, errors, input_pipeline, parallel
from cnn_jax import models, options, steps, train
from train_states import epoch_state, make_state


def test_train_step_lowers_the_loss_on_a_fixed_batch(small_config):
  split = input_pipeline.load_dataset(small_config).train
  batch = (jnp.asarray(split.images[:128]), jnp.asarray(split.labels[:128]))
  state = make_state()
  step = jax.jit(steps.train_step)
  losses = []
  for i in range(25):
    state, metrics = step(state, batch, jax.random.key(i))
    losses.append(float(metrics['loss']))
  assert losses[0] > 2.0  # About ln 10 at initialisation.
  assert losses[-1] < 0.2 * losses[0]
  assert int(state.step) == 25


@pytest.mark.parametrize('optimizer', ['adam', 'adamw', 'sgd'])
@pytest.mark.parametrize('schedule', ['constant', 'cosine'])
def test_optimizers_and_schedules(optimizer, schedule):
  config = default.get_config()
  config.update(optimizer=optimizer, lr_schedule=schedule, warmup_epochs=1.0,
                num_epochs=4, weight_decay=1e-4, learning_rate=1e-3)
  tx, lr = steps.create_optimizer(config, steps_per_epoch=10)
  assert float(lr(0)) == 0.0  # Warmup starts at zero ...
  assert float(lr(10)) == pytest.approx(1e-3)  # ... and peaks after one epoch.
  if schedule == 'cosine':
    assert float(lr(40)) == pytest.approx(0.0, abs=1e-9)
    assert float(lr(25)) == pytest.approx(0.5e-3, rel=1e-5)
  else:
    assert float(lr(40)) == pytest.approx(1e-3)
  params = {'w': jnp.ones(3)}
  updates, _ = tx.update({'w': jnp.ones(3)}, tx.init(params), params)
  assert updates['w'].shape == (3,)


def test_the_largest_seed_a_config_allows_makes_its_own_state():
  largest = 2**31 - 1  # The seeds travel as int32.
  ok, _ = options.FIELDS['seed'].check
  assert ok(largest) and not ok(largest + 1)
  config = default.get_config()
  tx, _ = steps.create_optimizer(config, 10)
  model = models.create_model(config, 10)
  stacked = steps.init_states(model, (28, 28, 1), tx, None)(np.asarray([0, largest], np.int32))
  alone = steps.create_train_state(jax.random.key(largest), model, (28, 28, 1), tx)
  for leaf_stacked, leaf_alone in zip(jax.tree.leaves(stacked.params),
                                      jax.tree.leaves(alone.params)):
    np.testing.assert_array_equal(leaf_stacked[1], leaf_alone)
  assert not np.array_equal(jax.tree.leaves(stacked.params)[-1][0],
                            jax.tree.leaves(alone.params)[-1])
  assert not np.array_equal(steps.epoch_permutation(largest, 1, 100),
                            steps.epoch_permutation(0, 1, 100))


def test_epoch_order_and_dropout_keys_depend_only_on_seed_epoch_step():
  a = steps.epoch_permutation(0, 3, 100)
  np.testing.assert_array_equal(a, steps.epoch_permutation(0, 3, 100))
  assert sorted(np.asarray(a).tolist()) == list(range(100))
  assert not np.array_equal(a, steps.epoch_permutation(0, 4, 100))
  assert not np.array_equal(a, steps.epoch_permutation(1, 3, 100))
  same = jax.random.key_data(steps.step_rng(0, 1, 5))
  np.testing.assert_array_equal(same, jax.random.key_data(steps.step_rng(0, 1, 5)))
  assert not np.array_equal(same, jax.random.key_data(steps.step_rng(0, 1, 6)))


def test_evaluate_ignores_padding():
  state = make_state()
  rng = np.random.default_rng(0)
  split = input_pipeline.Split(rng.integers(0, 256, (37, 28, 28, 1), dtype=np.uint8),
                               rng.integers(0, 10, 37).astype(np.int32))
  dp = parallel.DataParallel.create(16)
  half = input_pipeline.Split(split.images[:20], split.labels[:20])
  loop = device_loop.DeviceLoop.create(dp, 1, 16, 16, split, {'all': split, 'half': half})
  result, = loop.evaluate(steps.stack_states([state]))
  assert list(result) == ['all', 'half']
  @jax.jit
  def expected(params, images, labels):
    logits = state.apply_fn({'params': params}, images.astype(np.float32) / 255)
    return (optax.softmax_cross_entropy_with_integer_labels(logits, labels),
            logits.argmax(-1) == labels)
  loss, correct = expected(state.params, split.images, split.labels)
  assert result['all']['loss'] == pytest.approx(float(loss.mean()), rel=1e-5)
  assert result['all']['accuracy'] == pytest.approx(float(correct.mean()))
  # Each set is its own mean, though the batches of 16 straddle the sets' boundary.
  assert result['half']['loss'] == pytest.approx(float(loss[:20].mean()), rel=1e-5)
  assert result['half']['accuracy'] == pytest.approx(float(correct[:20].mean()))


def test_auto_steps_per_dispatch():
  assert device_loop.auto_steps_per_dispatch(468, 'cpu') == 1
  assert device_loop.auto_steps_per_dispatch(468, 'gpu') == 117  # 4 dispatches.
  assert device_loop.auto_steps_per_dispatch(100, 'gpu') == 100
  assert device_loop.auto_steps_per_dispatch(131, 'tpu') == 66  # 66 + 65.
  assert device_loop.auto_steps_per_dispatch(1, 'gpu') == 1


@pytest.mark.parametrize('unroll', [True, False], ids=['unrolled', 'scan'])
@pytest.mark.parametrize('seeds', [(5,), (5, 2)], ids=['1 seed', '2 seeds'])
def test_the_device_loop_runs_the_steps_of_a_plain_python_loop(small_config, unroll,
                                                               seeds):
  """K = 7 steps in one dispatch that starts mid-epoch (at step 3), batches gathered on
  the device, equal the pure train step applied one by one to the rows of the epoch's
  permutation, per seed: unrolled (XLA:CPU's path) and as a `lax.scan` (every
  accelerator's), for one seed and two vmapped."""
  split = input_pipeline.load_dataset(dict(small_config.to_dict(),
                                           max_train_examples=384)).train
  batch, first, count = 32, 3, 7
  dp = parallel.DataParallel.create(batch)
  loop = device_loop.DeviceLoop.create(dp, len(seeds), batch, 1000, split,
                                       {'train': split}, unroll=unroll)
  assert loop.unroll is unroll
  state = make_state()
  ids = dp.replicate(np.asarray(seeds, np.int32))
  stacked = steps.stack_states([state] * len(seeds))
  states, totals = loop.run(stacked, loop.zero_totals(stacked), loop.orders(ids, 2), ids,
                            2, first, count)
  step = jax.jit(steps.train_step)
  for i, seed in enumerate(seeds):
    order = np.asarray(steps.epoch_permutation(seed, 2, 384))
    alone, losses = state, []
    for index in range(first, first + count):
      rows = order[index * batch:(index + 1) * batch]
      alone, metrics = step(alone, (split.images[rows], split.labels[rows]),
                            steps.step_rng(seed, 2, index))
      losses.append(float(metrics['loss']))
    assert float(totals['loss'][i]) == pytest.approx(sum(losses), rel=1e-5)
    assert int(steps.seed_state(states, i).step) == count
    for a, b in zip(jax.tree.leaves(steps.seed_state(states, i).params),
                    jax.tree.leaves(alone.params)):
      # XLA fuses a scan's body differently from one step, and Adam divides by √v:
      # where v is tiny an element may drift by ~1e-6. A wrong batch or key moves
      # nearly every element by ~the learning rate.
      a, b = np.asarray(a), np.asarray(b)
      assert np.mean(~np.isclose(a, b, rtol=1e-5, atol=1e-6)) < 1e-3
      np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


def test_checkpoint_save_restore_is_identical(tmp_path):
  state = make_state()
  batch = (jnp.zeros((4, 28, 28, 1), jnp.uint8), jnp.arange(4))
  state, _ = jax.jit(steps.train_step)(state, batch, jax.random.key(0))  # Adam state ≠ 0.
  checkpointer = checkpoints.Checkpoints(tmp_path, keep=2)
  checkpointer.save(1, state)
  checkpointer.close()
  fresh = make_state()
  restored = checkpoints.Checkpoints(tmp_path, keep=2).restore(1, fresh).state
  arrays = lambda s: (s.step, s.params, s.opt_state)
  assert jax.tree.structure(arrays(restored)) == jax.tree.structure(arrays(state))
  for a, b in zip(jax.tree.leaves(arrays(restored)), jax.tree.leaves(arrays(state))):
    np.testing.assert_array_equal(a, b)
  assert int(restored.step) == 1


def final_arrays(workdir, config):
  """The last epoch's checkpoint: step, parameters and optimizer state, as NumPy."""
  state = epoch_state(workdir, make_state(config), config.num_epochs)
  return [np.asarray(x) for x in jax.tree.leaves((state.step, state.params,
                                                  state.opt_state))]


def assert_same_arrays(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


def read_scalars(workdir):
  accumulator = event_accumulator.EventAccumulator(str(workdir))
  accumulator.Reload()
  return accumulator


@pytest.mark.slow
def test_short_run_learns_logs_checkpoints_and_resumes(small_config, tmp_path):
  # The article's network on 3,000 training images, 23 steps of 128 per epoch.
  small_config.update(conv_features=(32, 64), fc_features=128, max_train_examples=3000,
                      max_test_examples=1000, batch_size=128,
                      test_every_epoch=True)  # The test curves too.
  workdir = tmp_path / 'run'
  metrics = train.train_and_evaluate(small_config, workdir)
  # 3,000 training images, 2 epochs: far above chance (10%), measured ~94%; so is every
  # evaluated set, whose labels would be chance if they were misaligned with the images.
  for name in ('test', 'validation', 'train_eval'):
    assert metrics['final'][f'{name}_accuracy'] > 0.90, name
  assert metrics['completed'] and metrics['num_params'] == 421_642
  assert [r['epoch'] for r in metrics['history']] == [1, 2]
  assert json.loads((workdir / 'config.json').read_text())['dropout_placement'] == (
      'before_fc1')
  assert json.loads((workdir / 'metrics.json').read_text())['final'] == metrics['final']
  # TensorBoard: test metrics at each epoch's last global step (23 steps per epoch);
  # training curves every log_every_steps=10 steps and at the epoch's end, each the
  # mean over its own steps, so the epoch's mean is their step-weighted mean.
  accumulator = read_scalars(workdir)
  for tag in ('test/loss', 'test/accuracy', 'train/epoch', 'train/examples_per_second'):
    assert [e.step for e in accumulator.Scalars(tag)] == [23, 46], tag
  for tag in ('train/loss', 'train/accuracy', 'train/learning_rate'):
    assert [e.step for e in accumulator.Scalars(tag)] == [10, 20, 23, 30, 40, 46], tag
  assert accumulator.Scalars('test/accuracy')[-1].value == pytest.approx(
      metrics['final']['test_accuracy'])
  for epoch, window in ((1, slice(0, 3)), (2, slice(3, 6))):
    points = accumulator.Scalars('train/loss')[window]
    widths = np.diff([(epoch - 1) * 23] + [e.step for e in points])
    assert np.dot(widths, [e.value for e in points]) / 23 == pytest.approx(
        metrics['history'][epoch - 1]['train_loss'], rel=1e-5)
  # The rate used by each window's last step: warm-up over the first 2 steps, then a
  # cosine to 0 at the last (step 46).
  rates = [e.value for e in accumulator.Scalars('train/learning_rate')]
  schedule = steps.create_optimizer(small_config.to_dict(), 23)[1]
  assert rates == pytest.approx([float(schedule(s - 1)) for s in (10, 20, 23, 30, 40, 46)])
  # Each epoch records the rate of its last update.
  assert [r['learning_rate'] for r in metrics['history']] == pytest.approx(
      [float(schedule(22)), float(schedule(45))])
  assert rates[0] > rates[2] > rates[4] > rates[5] and rates[5] < 1e-4
  assert '_hparams_/session_start_info' in accumulator.Tags()['tensors']
  assert '_hparams_/experiment' in accumulator.Tags()['tensors']
  # Numbered by global step: the ends of epochs 1 and 2.
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['23', '46']

  # The same command again trains nothing.
  again = train.train_and_evaluate(small_config, workdir)
  assert again['history'] == metrics['history']

  # Lose epoch 2 as a crash would, and rerun: it resumes from epoch 1 and lands on
  # exactly the parameters and figures of the uninterrupted run.
  final_state = epoch_state(workdir, make_state(small_config), 2)
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(workdir / 'checkpoints' / '46')
  resumed = train.train_and_evaluate(small_config, workdir)
  assert [r['epoch'] for r in resumed['history']] == [1, 2]
  assert resumed['final']['test_accuracy'] == metrics['final']['test_accuracy']
  assert resumed['final']['train_loss'] == metrics['final']['train_loss']
  resumed_state = epoch_state(workdir, make_state(small_config), 2)
  for a, b in zip(jax.tree.leaves(resumed_state), jax.tree.leaves(final_state)):
    np.testing.assert_array_equal(a, b)


def test_early_stopping_ends_training_after_its_minimum_epoch(small_config, tmp_path,
                                                              caplog):
  """A learning rate too small to change a prediction: validation accuracy never beats
  epoch 1's, so patience 1 stops at epoch 2 — but not before early_stopping_min_epochs
  = 3. A rerun trains nothing."""
  small_config.update(learning_rate=1e-12, num_epochs=5, early_stopping_patience=1,
                      early_stopping_min_epochs=3)
  workdir = tmp_path / 'run'
  with caplog.at_level('INFO', logger='absl'):  # Whatever verbosity a sweep left.
    metrics = train.train_and_evaluate(small_config, workdir)
  assert 'epoch 3/5 step 8/16' in caplog.text and 'epoch 4/5' not in caplog.text
  assert [r['epoch'] for r in metrics['history']] == [1, 2, 3]
  assert metrics['stopped_early'] and metrics['completed'] and metrics['best_epoch'] == 1
  assert sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir()) == [16, 32, 48]
  caplog.clear()
  with caplog.at_level('INFO', logger='absl'):
    again = train.train_and_evaluate(small_config, workdir)
  assert again['history'] == metrics['history']
  assert 'already complete (3 epochs)' in caplog.text


class _Stop(Exception):
  pass


def test_a_seed_early_stopping_ended_records_nothing_while_the_others_train(
    small_config, tmp_path, monkeypatch):
  """Two seeds in one program; run a's best epoch made epoch 1 (in its metrics.json),
  so patience 1 ends it after epoch 2 while b trains epoch 3, whose loss is then made
  NaN for both at step 13: a gets no record, curve or failure; b fails alone."""
  small_config.update(num_epochs=3, early_stopping_patience=1)
  workdirs = [tmp_path / 'a', tmp_path / 'b']

  def stop_after_epoch_2(i, record, state):
    if record['epoch'] == 2 and i == 1:
      raise _Stop

  with pytest.raises(_Stop):
    train.train_seeds(small_config, [0, 1], workdirs, on_epoch_end=stop_after_epoch_2)
  for workdir, first in zip(workdirs, (1.0, 0.0)):
    metrics = json.loads((workdir / 'metrics.json').read_text())
    metrics['history'][0]['validation_accuracy'] = first
    (workdir / 'metrics.json').write_text(json.dumps(metrics))
  a_before = (workdirs[0] / 'metrics.json').read_text()

  real = steps.train_step
  def poisoned(state, batch, rng):
    state_after, metrics = real(state, batch, rng)
    return state_after, {**metrics, 'loss': jnp.where(state.step == 44, jnp.nan,
                                                      metrics['loss'])}
  monkeypatch.setattr(steps, 'train_step', poisoned)
  with pytest.raises(errors.NonFiniteLossError,
                     match=rf'at epoch 3, step 13 in {workdirs[1]};') as error:
    train.train_seeds(small_config, [0, 1], workdirs)
  assert str(workdirs[0]) not in str(error.value)
  b = json.loads((workdirs[1] / 'metrics.json').read_text())
  assert a_before == (workdirs[0] / 'metrics.json').read_text()  # Untouched.
  assert sorted(int(p.name) for p in (workdirs[0] / 'checkpoints').iterdir()) == [16, 32]
  assert b['failed'] == {'reason': 'non-finite loss', 'epoch': 3, 'step': 13}
  # TensorBoard's training curve every 10 steps: a's ends with its epoch 2 (step 32).
  a_steps, b_steps = ([e.step for e in read_scalars(w).Scalars('train/loss')]
                      for w in workdirs)
  assert max(a_steps) == 32 and 40 in b_steps


def test_an_epoch_resumed_mid_way_counts_the_examples_this_process_trained(
    small_config, tmp_path, monkeypatch):
  """Stopped after step 5 of epoch 2 (of 16 steps of 64), then resumed: epoch 2's
  examples/s counts the 11 steps the resumed process trained, in its own time."""
  dispatches = iter(range(100))
  monkeypatch.setattr(train, '_stop_agreed', lambda stop: next(dispatches) == 16 + 5 - 1)
  workdir = tmp_path / 'run'
  with pytest.raises(errors.Interrupted, match='stopped at epoch 2 step 5/16'):
    train.train_and_evaluate(small_config, workdir)
  monkeypatch.undo()
  history = train.train_and_evaluate(small_config, workdir)['history']
  assert [r['epoch'] for r in history] == [1, 2]
  for record, steps_trained in zip(history, (16, 11)):
    assert record['examples_per_second'] * record['train_seconds'] == pytest.approx(
        steps_trained * 64)


def test_another_seed_of_a_configuration_traces_no_new_program(small_config, tmp_path):
  """A sweep's next seed (or a rerun) reuses the traced programs of the set-up it keeps
  for the configuration: tracing and lowering took half of a small run's time."""
  kept = {}
  train.train_and_evaluate(small_config, tmp_path / 'seed0', kept=kept)
  assert list(kept) == [1]
  traced = []

  def listen(event, seconds, **kwargs):  # pylint: disable=unused-argument
    if event == '/jax/core/compile/jaxpr_trace_duration':
      traced.append(kwargs.get('fun_name'))

  jax.monitoring.register_event_duration_secs_listener(listen)
  try:
    jax.jit(lambda x: x + 1)(1)  # The listener hears a trace.
    assert traced == ['<lambda>']
    traced.clear()
    small_config.seed = 1
    metrics = train.train_and_evaluate(small_config, tmp_path / 'seed1', kept=kept)
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)
  assert metrics['completed']
  assert not traced, traced


def _stop_after(monkeypatch, dispatches):
  """Makes the loop see a stop request after `dispatches` dispatches, as a SIGTERM
  would (deterministically, in this process)."""
  seen = []

  def stop_agreed(stop):
    seen.append(1)
    if len(seen) == dispatches:
      stop.requested = 'SIGTERM'
    return stop.requested is not None

  monkeypatch.setattr(train, '_stop_agreed', stop_agreed)


@pytest.mark.slow
def test_seeds_together_train_what_each_seed_trains_alone_and_resume_exactly(
    small_config, tmp_path, monkeypatch):
  small_config.steps_per_dispatch = '3'
  dirs = [tmp_path / 's0', tmp_path / 's1']
  together = train.train_seeds(small_config, [0, 1], dirs)
  for seed, metrics in zip([0, 1], together):
    # Alone, one step per dispatch: the programs the other tests compile.
    config = small_config.copy_and_resolve_references()
    config.update(seed=seed, steps_per_dispatch='1')
    alone = train.train_and_evaluate(config, tmp_path / f'alone{seed}')
    if seed == 0:  # Steps per dispatch change nothing: 16 steps as 5 + 5 + 5 + 1.
      config.steps_per_dispatch = '5'
      five = train.train_and_evaluate(config, tmp_path / 'alone0_5')
      assert five['steps_per_dispatch'] == 5
      for a, b in zip(five['history'], alone['history'], strict=True):
        for key in ('train_loss', 'train_accuracy', 'validation_loss',
                    'validation_accuracy'):
          assert a[key] == b[key], (key, a, b)
      assert_same_arrays(final_arrays(tmp_path / 'alone0', config),
                         final_arrays(tmp_path / 'alone0_5', config))
    for a, b in zip(metrics['history'], alone['history'], strict=True):
      assert a['train_loss'] == pytest.approx(b['train_loss'], rel=1e-3)
      assert a['validation_loss'] == pytest.approx(b['validation_loss'], rel=1e-3)
    # Tested where validation chose: the same epoch, nearly the same accuracy.
    assert metrics['best_epoch'] == alone['best_epoch']
    assert abs(metrics['best_test_accuracy'] - alone['best_test_accuracy']) <= 0.004  # ≤ 2 of 500 flip.
    assert metrics['completed'] and metrics['seeds_trained_together'] == 2
    saved = json.loads((tmp_path / f's{seed}' / 'config.json').read_text())
    assert saved['seed'] == seed
  # The seeds really differ (the comparison above would not catch a shared key).
  assert together[0]['history'][0]['train_loss'] != together[1]['history'][0]['train_loss']

  # Stopped mid-epoch 2 (after 8 of 16 steps), then resumed: the same parameters.
  stopped = [tmp_path / 'x0', tmp_path / 'x1']
  small_config.seed = 0
  _stop_after(monkeypatch, 8)  # Epoch 1: 6 dispatches (3+3+3+3+3+1); then 2 more.
  with pytest.raises(errors.Interrupted, match=r'stopped at epoch 2 step 6/16'):
    train.train_seeds(small_config, [0, 1], stopped)
  for d in stopped:  # Epoch 1's end (step 16) and the stop after step 22.
    assert sorted(int(p.name) for p in (d / 'checkpoints').iterdir()) == [16, 22]
  monkeypatch.undo()
  resumed = train.train_seeds(small_config, [0, 1], stopped)
  for a, b, ra, rb in zip(dirs, stopped, together, resumed):
    assert_same_arrays(final_arrays(a, small_config), final_arrays(b, small_config))
    assert ra['history'] and ra['best_test_accuracy'] == rb['best_test_accuracy']
    for x, y in zip(ra['history'], rb['history'], strict=True):
      for key in ('train_loss', 'train_accuracy', 'validation_loss', 'validation_accuracy'):
        assert x[key] == y[key], (key, x, y)
    # The mid-epoch checkpoint went once epoch 2's end was saved.
    assert sorted(int(p.name) for p in (b / 'checkpoints').iterdir()) == [16, 32]
