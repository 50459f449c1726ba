"""The per-epoch record and metrics.json the trainer writes."""

import pytest

from cnn_jax import run_metrics


def test_epoch_record_turns_step_sums_into_means_and_rates():
  sets = {'train_eval': {'loss': 0.01, 'accuracy': 0.997},
          'validation': {'loss': 0.02, 'accuracy': 0.991},
          'test': {'loss': 0.03, 'accuracy': 0.99}}
  record = run_metrics.epoch_record(3, {'loss': 46.8, 'accuracy': 421.2}, 468, sets, 1e-3,
                                    59904, 32.0)
  assert record == {'epoch': 3, 'train_loss': pytest.approx(0.1),
                    'train_accuracy': pytest.approx(0.9), 'train_eval_loss': 0.01,
                    'train_eval_accuracy': 0.997, 'validation_loss': 0.02,
                    'validation_accuracy': 0.991, 'test_loss': 0.03,
                    'test_accuracy': 0.99,
                    'generalization_gap': pytest.approx(0.006),  # 99.7% − 99.1%.
                    'loss_gap': pytest.approx(0.02),  # Test 0.03 − train-eval 0.01.
                    'learning_rate': 1e-3,
                    'examples_per_second': pytest.approx(1872.0), 'train_seconds': 32.0}
  assert run_metrics.tensorboard_scalars(record, list(sets)) == {
      'train_eval/accuracy': 0.997, 'train_eval/loss': 0.01,
      'validation/accuracy': 0.991, 'validation/loss': 0.02,
      'test/accuracy': 0.99, 'test/loss': 0.03,
      'train/generalization_gap': record['generalization_gap'],
      'train/loss_gap': record['loss_gap'], 'train/epoch': 3,
      'train/examples_per_second': record['examples_per_second']}


def _history(*validation):
  return [{'epoch': e, 'validation_accuracy': a, 'test_accuracy': 0.9 + e / 100,
           'train_seconds': 1.0} for e, a in enumerate(validation, start=1)]


@pytest.mark.parametrize('validation, best', [
    ((0.98, 0.99, 0.985, 0.99), 2),  # A tie keeps the first.
    ((0.99, 0.98, 0.97), 1),  # The first epoch.
    ((0.97, 0.98, 0.99), 3),  # The last.
])
def test_the_best_epoch_is_the_first_of_the_highest_validation_accuracy(tmp_path,
                                                                       validation, best):
  metrics = run_metrics.write_metrics(tmp_path / 'm.json', _history(*validation),
                                      num_epochs=5)
  assert metrics['best_epoch'] == best
  assert metrics['best_validation_accuracy'] == validation[best - 1]
  assert metrics['best_test_accuracy'] == pytest.approx(0.9 + best / 100)  # Reported.
  assert not metrics['completed'] and metrics['final']['epoch'] == len(validation)


def test_early_stopping_counts_the_epochs_since_the_best():
  history = _history(0.98, 0.99, 0.985, 0.989)
  assert not run_metrics.stopped_early(history, 0)  # Never.
  assert not run_metrics.stopped_early(history[:2], 1)  # The last is the best.
  assert run_metrics.stopped_early(history[:3], 1)
  assert not run_metrics.stopped_early(history[:3], 2)
  assert run_metrics.stopped_early(history, 2)
  assert not run_metrics.stopped_early([], 1)
  metrics = run_metrics.write_metrics(None, history, num_epochs=10, patience=2)
  assert metrics['completed'] and metrics['stopped_early']


def test_tensorboard_shows_swept_fields_first_and_a_seed_only_for_a_lone_run():
  from cnn_jax import metric_writers  # pylint: disable=g-import-not-at-top
  grouped = metric_writers.hparam_names(['pooling', 'pool_window', 'pool_stride'],
                                        grouped=True)
  # TensorBoard ticks the first five hyperparameters (alphabetically): all of these.
  assert grouped == ['pooling', 'pool_window', 'pool_stride', 'max_train_examples',
                     'num_epochs']
  alone = metric_writers.hparam_names()
  assert alone[-1] == 'seed' and alone.count('pooling') == 1 and 'learning_rate' in alone
  assert [tag for tag, _ in metric_writers.METRICS][:2] == ['validation/accuracy',
                                                       'test/accuracy']


def test_early_stopping_waits_for_its_minimum_epochs():
  history = _history(0.99, 0.98, 0.98, 0.98)
  assert run_metrics.stopped_early(history[:2], 1)
  assert not run_metrics.stopped_early(history[:2], 1, min_epochs=3)
  assert run_metrics.stopped_early(history[:3], 1, min_epochs=3)
