"""The train step, the optimizer, checkpoints, and the trainer on a real MNIST slice."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from configs import default
from cnn_jax import checkpoints, input_pipeline, models, train


def make_state(config=None, steps_per_epoch=10):
  config = config or default.get_config()
  tx, _ = train.create_optimizer(config, steps_per_epoch)
  model = models.create_model(config, 10)
  return train.create_train_state(jax.random.key(0), model, (28, 28, 1), tx)


def test_train_step_lowers_the_loss_on_a_fixed_batch(small_config):
  _, split, _ = input_pipeline.load_dataset(small_config)
  batch = (jnp.asarray(split.images[:128]), jnp.asarray(split.labels[:128]))
  state = make_state()
  step = jax.jit(train.train_step)
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
  tx, lr = train.create_optimizer(config, steps_per_epoch=10)
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


def test_epoch_order_and_dropout_keys_depend_only_on_seed_epoch_step():
  a = train.epoch_permutation(0, 3, 100)
  np.testing.assert_array_equal(a, train.epoch_permutation(0, 3, 100))
  assert sorted(np.asarray(a).tolist()) == list(range(100))
  assert not np.array_equal(a, train.epoch_permutation(0, 4, 100))
  assert not np.array_equal(a, train.epoch_permutation(1, 3, 100))
  same = jax.random.key_data(train.step_rng(0, 1, 5))
  np.testing.assert_array_equal(same, jax.random.key_data(train.step_rng(0, 1, 5)))
  assert not np.array_equal(same, jax.random.key_data(train.step_rng(0, 1, 6)))


def test_evaluate_ignores_padding():
  state = make_state()
  rng = np.random.default_rng(0)
  split = input_pipeline.Split(rng.integers(0, 256, (37, 28, 28, 1), dtype=np.uint8),
                               rng.integers(0, 10, 37).astype(np.int32))
  result = train.evaluate(state, *train.pad_to_multiple(split, 16), 16)
  logits = state.apply_fn({'params': state.params}, train.preprocess(split.images))
  loss, correct = train._loss_and_correct(logits, split.labels)  # pylint: disable=protected-access
  assert result['loss'] == pytest.approx(float(loss.mean()), rel=1e-5)
  assert result['accuracy'] == pytest.approx(float(correct.mean()))


def test_checkpoint_save_restore_is_identical(tmp_path):
  state = make_state()
  batch = (jnp.zeros((4, 28, 28, 1), jnp.uint8), jnp.arange(4))
  state, _ = train.train_step(state, batch, jax.random.key(0))  # Non-trivial Adam state.
  checkpointer = checkpoints.Checkpointer(tmp_path, keep=2)
  checkpointer.save(1, state)
  checkpointer.close()
  fresh = make_state()
  restored = checkpoints.Checkpointer(tmp_path, keep=2).restore(1, fresh)
  arrays = lambda s: (s.step, s.params, s.opt_state)
  assert jax.tree.structure(arrays(restored)) == jax.tree.structure(arrays(state))
  for a, b in zip(jax.tree.leaves(arrays(restored)), jax.tree.leaves(arrays(state))):
    np.testing.assert_array_equal(a, b)
  assert int(restored.step) == 1


def read_scalars(workdir):
  accumulator = event_accumulator.EventAccumulator(str(workdir))
  accumulator.Reload()
  return accumulator


@pytest.mark.slow
def test_short_run_learns_logs_checkpoints_and_resumes(small_config, tmp_path):
  workdir = tmp_path / 'run'
  metrics = train.train_and_evaluate(small_config, workdir)
  # 3,000 training images, 2 epochs: far above chance (10%), measured ~94%.
  assert metrics['final']['test_accuracy'] > 0.90
  assert metrics['completed'] and metrics['num_params'] == 421_642
  assert [r['epoch'] for r in metrics['history']] == [1, 2]
  assert json.loads((workdir / 'config.json').read_text())['dropout_placement'] == (
      'before_fc1')
  assert json.loads((workdir / 'metrics.json').read_text())['final'] == metrics['final']
  accumulator = read_scalars(workdir)
  for tag in ('train/loss', 'train/accuracy', 'test/loss', 'test/accuracy',
              'learning_rate', 'examples_per_second'):
    assert [e.step for e in accumulator.Scalars(tag)] == [1, 2], tag
  assert accumulator.Scalars('test/accuracy')[-1].value == pytest.approx(
      metrics['final']['test_accuracy'])
  assert '_hparams_/session_start_info' in accumulator.Tags()['tensors']
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['1', '2']

  # The same command again trains nothing.
  again = train.train_and_evaluate(small_config, workdir)
  assert again['history'] == metrics['history']

  # Lose epoch 2 as a crash would, and rerun: it resumes from epoch 1 and lands on
  # exactly the parameters and figures of the uninterrupted run.
  final_state = checkpoints.Checkpointer(workdir / 'checkpoints', 3).restore(
      2, make_state(small_config))
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(workdir / 'checkpoints' / '2')
  resumed = train.train_and_evaluate(small_config, workdir)
  assert [r['epoch'] for r in resumed['history']] == [1, 2]
  assert resumed['final']['test_accuracy'] == metrics['final']['test_accuracy']
  assert resumed['final']['train_loss'] == metrics['final']['train_loss']
  resumed_state = checkpoints.Checkpointer(workdir / 'checkpoints', 3).restore(
      2, make_state(small_config))
  for a, b in zip(jax.tree.leaves(resumed_state), jax.tree.leaves(final_state)):
    np.testing.assert_array_equal(a, b)
