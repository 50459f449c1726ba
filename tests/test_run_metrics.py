"""The per-epoch record and metrics.json the trainer writes."""

import pytest

from cnn_jax import run_metrics


def test_epoch_record_turns_step_sums_into_means_and_rates():
  record = run_metrics.epoch_record(3, 46.8, 421.2, 468, {'loss': 0.03, 'accuracy': 0.99},
                                    1e-3, 59904, 32.0)
  assert record == {'epoch': 3, 'train_loss': pytest.approx(0.1),
                    'train_accuracy': pytest.approx(0.9), 'test_loss': 0.03,
                    'test_accuracy': 0.99, 'learning_rate': 1e-3,
                    'examples_per_second': pytest.approx(1872.0), 'train_seconds': 32.0}
  assert run_metrics.tensorboard_scalars(record) == {
      'test/loss': 0.03, 'test/accuracy': 0.99, 'train/epoch': 3,
      'train/examples_per_second': record['examples_per_second']}


def test_the_best_epoch_is_the_first_of_the_highest_test_accuracy(tmp_path):
  history = [{'epoch': e, 'test_accuracy': a, 'train_seconds': 1.0}
             for e, a in ((1, 0.98), (2, 0.99), (3, 0.985), (4, 0.99))]
  metrics = run_metrics.write_metrics(tmp_path / 'm.json', history, num_epochs=5)
  assert (metrics['best_epoch'], metrics['best_test_accuracy']) == (2, 0.99)
  assert not metrics['completed'] and metrics['final']['epoch'] == 4


def test_tensorboard_shows_swept_fields_first_and_a_seed_only_for_a_lone_run():
  from cnn_jax import metric_writers  # pylint: disable=g-import-not-at-top
  grouped = metric_writers.hparam_names(['pooling', 'pool_window', 'pool_stride'],
                                        grouped=True)
  # TensorBoard ticks the first five hyperparameters (alphabetically): all of these.
  assert grouped == ['pooling', 'pool_window', 'pool_stride', 'max_train_examples',
                     'num_epochs']
  alone = metric_writers.hparam_names()
  assert alone[-1] == 'seed' and alone.count('pooling') == 1 and 'learning_rate' in alone
  assert [tag for tag, _ in metric_writers.METRICS][0] == 'test/accuracy'
