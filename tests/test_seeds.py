"""Seeds trained together (vmap) against the same seeds trained one by one."""

import json

import jax
import numpy as np
import pytest

from cnn_jax import checkpoints, models, seeds, train


def test_stacked_initial_states_equal_the_single_seed_ones(small_config):
  model = models.create_model(small_config.to_dict(), 10)
  tx, _ = train.create_optimizer(small_config.to_dict(), 10)
  stacked = seeds.create_train_states([3, 7], model, (28, 28, 1), tx)
  for i, seed in enumerate([3, 7]):
    alone = train.create_train_state(jax.random.key(seed), model, (28, 28, 1), tx)
    jax.tree.map(np.testing.assert_array_equal, seeds.seed_state(stacked, i).params,
                 alone.params)


def test_seeds_together_train_what_each_seed_trains_alone(small_config, tmp_path):
  small_config.max_train_examples = 1024
  small_config.max_test_examples = 500
  small_config.batch_size = 64
  together = seeds.train_seeds(small_config, [0, 1], [tmp_path / 's0', tmp_path / 's1'])
  for seed, metrics in zip([0, 1], together):
    small_config.seed = seed
    alone = train.train_and_evaluate(small_config, tmp_path / f'alone{seed}')
    for a, b in zip(metrics['history'], alone['history']):
      assert a['epoch'] == b['epoch']
      assert a['train_loss'] == pytest.approx(b['train_loss'], rel=1e-3)
      assert a['test_loss'] == pytest.approx(b['test_loss'], rel=1e-3)
      assert abs(a['test_accuracy'] - b['test_accuracy']) <= 0.004  # ≤ 2 of 500 flip.
    assert metrics['completed'] and metrics['seeds_trained_together'] == 2
    # The run directory holds what a single run's does, so it resumes and reports alone.
    saved = json.loads((tmp_path / f's{seed}' / 'config.json').read_text())
    assert saved['seed'] == seed
    assert checkpoints.Checkpointer(tmp_path / f's{seed}' / 'checkpoints', 1
                                    ).latest_epoch() == small_config.num_epochs
  # The seeds really differ (the comparison above would not catch a shared key).
  assert together[0]['history'][0]['train_loss'] != together[1]['history'][0]['train_loss']


def test_seeds_together_refuse_runs_that_have_checkpoints(small_config, tmp_path):
  small_config.max_train_examples = 256
  small_config.num_epochs = 1
  train.train_and_evaluate(small_config, tmp_path / 'a')
  with pytest.raises(ValueError, match='resume it alone'):
    seeds.train_seeds(small_config, [0, 1], [tmp_path / 'a', tmp_path / 'b'])
