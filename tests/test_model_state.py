"""Model state beyond the parameters, end to end: BatchNorm (an option of the article's
network) and a collection a forker's layer adds are trained, checkpointed, resumed
exactly, and used by evaluation and inference; a state a checkpoint lacks is named.
A metric a forker adds in one place reaches every record.
And a config field added with a default keeps old runs and the shipped results."""

import json
import math
import re
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from cnn_jax import checkpoints, errors, inference, input_pipeline, models, options, results
from cnn_jax import run_metrics, steps, sweep, train, visualize
from train_states import epoch_state, make_state


def _stopped_then_resumed(config, workdir, monkeypatch):
  """Trains `config` in `workdir`, stopped as a SIGTERM stops it after step 5 of epoch
  2 (a mid-epoch checkpoint), then resumed by the same call; returns metrics.json."""
  dispatches = iter(range(1000))
  with monkeypatch.context() as patch:
    patch.setattr(train, '_stop_agreed', lambda stop: next(dispatches) == 16 + 5 - 1)
    with pytest.raises(errors.Interrupted, match='stopped at epoch 2 step 5/16'):
      train.train_and_evaluate(config, workdir)
  return train.train_and_evaluate(config, workdir)


def _assert_same_state(a, b):
  for x, y in zip(jax.tree.leaves((a.params, a.opt_state, a.model_state)),
                  jax.tree.leaves((b.params, b.opt_state, b.model_state)), strict=True):
    np.testing.assert_array_equal(x, y)


def test_batch_norm_trains_resumes_exactly_and_predicts_with_its_statistics(
    small_config, tmp_path, monkeypatch):
  small_config.update(batch_norm='both', dropout_placement='after_fc1',
                      fc_activation='relu')
  whole = train.train_and_evaluate(small_config, tmp_path / 'whole')
  resumed = _stopped_then_resumed(small_config, tmp_path / 'stopped', monkeypatch)
  keys = [k for k in whole['history'][0] if 'loss' in k or 'accuracy' in k]
  assert [[r[k] for k in keys] for r in resumed['history']] == [
      [r[k] for k in keys] for r in whole['history']]
  like = make_state(small_config, 16)
  final = epoch_state(tmp_path / 'whole', like, 2)
  _assert_same_state(epoch_state(tmp_path / 'stopped', like, 2), final)
  stats = final.model_state['batch_stats']
  assert set(stats) == {'bn1', 'bn2', 'fc1_bn'}
  # The running statistics moved from their initial 0 and 1: the steps updated them.
  assert float(jnp.abs(stats['bn1']['mean']).max()) > 1e-3
  assert float(jnp.abs(stats['fc1_bn']['var'] - 1).max()) > 1e-3
  assert whole['final']['validation_accuracy'] > 0.5  # Chance is 0.1.

  # Inference: the best epoch's parameters and statistics, the evaluation's accuracy;
  # one image alone gets the logits it gets in a batch (running statistics, not the batch's).
  run = inference.load_run(tmp_path / 'whole')
  assert set(run.variables) == {'params', 'batch_stats'}
  test = input_pipeline.load_dataset(small_config.to_dict()).test
  predicted = inference.probabilities(run, test.images).argmax(-1)
  assert np.mean(predicted == test.labels) == pytest.approx(
      whole['best_test_accuracy'], abs=1e-6)
  alone = inference.probabilities(run, test.images[:1])
  np.testing.assert_allclose(alone[0], inference.probabilities(run, test.images[:50])[0],
                             rtol=1e-5, atol=1e-6)
  # The layer outputs the figures draw include the BatchNorms, in the table's order.
  _, outputs = models.layer_outputs(run.model, run.variables, test.images[:2] / 255.0)
  assert [k for k in outputs if 'bn' in k] == ['bn1', 'bn2', 'fc1_bn']
  field = visualize.gradient_field(run.model, run.variables, 'bn2', 3, 3, (28, 28, 1))
  assert field.sum() == 8 * 8  # conv2's 8×8 receptive field: BatchNorm adds none.


class _CountingCNN(models.CNN):
  """A forker's layer: the article's CNN plus a collection of its own, a count of the
  training steps it has seen."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    seen = self.variable('counters', 'steps', lambda: jnp.zeros((), jnp.int32))
    if train:
      seen.value += 1
    return super().__call__(x, train)


def _with_confidence(example_metrics):
  """A forker's metric: example_metrics plus each example's top softmax probability."""
  def metrics(logits, labels):
    return {**example_metrics(logits, labels),
            'confidence': jax.nn.softmax(logits).max(-1)}
  return metrics


def test_a_collection_and_a_metric_a_forker_adds_are_checkpointed_resumed_and_exported(
    small_config, tmp_path, monkeypatch):
  one_epoch = small_config.copy_and_resolve_references()
  one_epoch.num_epochs = 1
  train.train_and_evaluate(one_epoch, tmp_path / 'plain')  # The CNN without them.
  plain = make_state(small_config, 16)
  # The only changes: the model (a collection) and the per-example metrics.
  monkeypatch.setitem(models.MODELS, 'cnn', _CountingCNN)
  monkeypatch.setattr(steps, 'example_metrics', _with_confidence(steps.example_metrics))
  counting = make_state(small_config, 16)
  whole = train.train_and_evaluate(small_config, tmp_path / 'whole')
  # Through a sweep (one run), stopped mid-epoch and resumed, then exported.
  sweep_dir = tmp_path / 'sweep'
  dispatches = iter(range(1000))
  with monkeypatch.context() as patch:
    patch.setattr(train, '_stop_agreed', lambda stop: next(dispatches) == 16 + 5 - 1)
    with pytest.raises(errors.Interrupted, match='stopped at epoch 2 step 5/16'):
      sweep.run_sweep('t', small_config, [{}], {}, [small_config.seed], sweep_dir)
  outcome, = sweep.run_sweep('t', small_config, [{}], {}, [small_config.seed], sweep_dir)
  assert outcome.status == 'trained', outcome.error
  run_dir = sweep_dir / outcome.run.name
  state = epoch_state(run_dir, counting, 2)
  # 32 steps: the 21 before the stop were restored, not counted again from 0.
  assert int(state.model_state['counters']['steps']) == 32
  _assert_same_state(state, epoch_state(tmp_path / 'whole', counting, 2))
  # The metric: a train-step mean (its mid-epoch sum checkpointed and resumed) and one
  # per evaluated set, in metrics.json, TensorBoard, the console and runs.csv.
  resumed = json.loads((run_dir / 'metrics.json').read_text())
  names = [f'{s}_confidence' for s in ('train', 'train_eval', 'validation')]
  for record, alone in zip(resumed['history'], whole['history'], strict=True):
    assert [record[k] for k in names] == [alone[k] for k in names]
  best = resumed['history'][resumed['best_epoch'] - 1]  # Tested where validation chose.
  assert best['test_confidence'] == whole['history'][whole['best_epoch'] - 1][
      'test_confidence']
  assert 0.1 < best['test_confidence'] <= 1
  events = event_accumulator.EventAccumulator(str(run_dir))
  events.Reload()
  assert {'train/confidence', 'validation/confidence', 'test/confidence'} <= set(
      events.Tags()['scalars'])
  line = run_metrics.epoch_text(resumed['history'][-1], ['train_eval', 'validation'])
  assert re.search(r'validation accuracy \S+ confidence 0\.\d{4} loss', line), line
  results.export(sweep_dir)
  _, (run,) = results.read_runs(sweep_dir)
  assert [r['validation_confidence'] for r in run.history] == [
      r['validation_confidence'] for r in whole['history']]
  # A checkpoint that lacks what the model has, or holds what it lacks: one line each.
  for where, like, words in (
      (tmp_path / 'plain', counting, 'it lacks model_state/counters/steps, which the model has'),
      (run_dir, plain, 'it holds model_state/counters/steps, which the model does not')):
    saved = checkpoints.Checkpoints(where / checkpoints.DIRECTORY, keep=9)
    try:
      with pytest.raises(errors.ShapeMismatchError, match=words):
        saved.restore(16, like)
    finally:
      saved.close()
  with pytest.raises(errors.ConfigError, match='another network .*lacks model_state/co'):
    train.train_and_evaluate(one_epoch, tmp_path / 'plain')


def test_a_field_added_with_a_default_keeps_old_runs_and_the_shipped_results(
    small_config, tmp_path, monkeypatch):
  small_config.num_epochs = 1
  old = tmp_path / 'old'
  train.train_and_evaluate(small_config, old)  # Written before the field existed.
  added = options.Field(0, options._int(0), 'a field a forker adds')  # pylint: disable=protected-access
  monkeypatch.setitem(options.FIELDS, 'added_field', added)
  config = options.default_config()
  config.update({k: v for k, v in small_config.items()})
  config.added_field = 0
  options.check_workdir(old, config.to_dict())  # Its default: the same run.
  assert train.train_and_evaluate(config, old)['completed']  # Already complete.
  config.added_field = 1  # Another value changes what it computes: refused, named.
  with pytest.raises(errors.WorkdirConflictError, match=r'added_field: 0 there, 1 now'):
    options.check_workdir(old, config.to_dict())
  assert inference.load_run(old).config['added_field'] == 0
  shipped = sorted((pathlib.Path(__file__).resolve().parent.parent / 'results').glob(
      '*/sweep.json'))
  assert shipped
  for path in shipped:
    meta, runs = results.read_runs(path.parent)
    assert meta['base_config']['added_field'] == 0 and runs


def test_a_mid_epoch_stop_resumes_under_a_metric_added_since(small_config, tmp_path,
                                                              monkeypatch, caplog):
  """Guards against a metric added between a stop and its resume reading as a damaged
  checkpoint (and a silent fall-back to the epoch before, losing the progress): the
  mid-epoch state resumes, the new sum starts there, and that epoch records it as NaN
  (no mean over the whole epoch), the next epochs in full."""
  small_config.num_epochs = 3
  dispatches = iter(range(1000))
  with monkeypatch.context() as patch:
    patch.setattr(train, '_stop_agreed', lambda stop: next(dispatches) == 16 + 5 - 1)
    with pytest.raises(errors.Interrupted, match='stopped at epoch 2 step 5/16'):
      train.train_and_evaluate(small_config, tmp_path / 'run')
  alone = train.train_and_evaluate(small_config, tmp_path / 'alone')
  monkeypatch.setattr(steps, 'example_metrics', _with_confidence(steps.example_metrics))
  with caplog.at_level('INFO'):
    resumed = train.train_and_evaluate(small_config, tmp_path / 'run')
  assert 'cannot be read' not in caplog.text  # Not taken for damage, no fall-back.
  # The record says where the new sum began.
  assert resumed['sums_started_mid_epoch'] == {'epoch': 2, 'step': 5,
                                               'metrics': ['confidence']}
  history = resumed['history']
  assert [r['epoch'] for r in history] == [1, 2, 3]
  # Epoch 2 resumed from step 5, not from epoch 1's end: the same parameters as alone.
  assert [r['validation_loss'] for r in history] == [
      r['validation_loss'] for r in alone['history']]
  assert 'train_confidence' not in history[0] and math.isnan(history[1]['train_confidence'])
  assert 0.1 < history[2]['train_confidence'] <= 1
  assert history[1]['train_loss'] == alone['history'][1]['train_loss']
