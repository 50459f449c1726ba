"""Decisions a run's numbers rest on, each against an expectation computed here without
the code under test: tuning scores a run at its best validation epoch, the test sets
are measured on the checkpoint validation chose, the shift curve moves the pixels where
its set names say, and BatchNorm's running statistics follow their update rule."""

import json
import re

import jax
import numpy as np
import pytest

from cnn_jax import input_pipeline, models, run_metrics, train, tuning
from cnn_jax.prepare import DatasetSpec
from train_states import epoch_state, make_state


# --- 1. Tuning reads each run at its best validation epoch. ---

def _write_run(directory, accuracies):
  directory.mkdir(parents=True)
  history = [{'epoch': e, 'validation_accuracy': a}
             for e, a in enumerate(accuracies, start=1)]
  (directory / 'metrics.json').write_text(json.dumps({'history': history}))


def test_tuning_scores_each_run_at_its_best_epoch_not_its_last(tmp_path):
  """Guards against tuning scoring a run by its last epoch (history[-1]), which would
  pick a value that merely ends higher over one that peaked higher earlier."""
  histories = {
      # Peaks at epoch 2, then degrades (e.g. a rate too high late in training).
      1e-3: [[0.80, 0.95, 0.70, 0.60], [0.82, 0.93, 0.75, 0.65]],
      # Still climbing at the last epoch, but never as high as 1e-3's peak.
      3e-3: [[0.70, 0.80, 0.85, 0.90], [0.72, 0.81, 0.86, 0.88]],
      1e-2: [[0.50, 0.55, 0.52, 0.51], [0.40, 0.45, 0.58, 0.57]],
  }
  curve = {}
  for value, runs in histories.items():
    dirs = [tmp_path / f'{value:g}' / f'seed{i}' for i in range(len(runs))]
    for d, accuracies in zip(dirs, runs):
      _write_run(d, accuracies)
    expected = sum(max(accuracies) for accuracies in runs) / len(runs)
    got, counted = tuning.score(dirs)
    assert counted == len(runs)
    assert got == pytest.approx(expected, abs=1e-12), value
    curve[value] = got
  # Read at their last epochs, 3e-3 (0.89) would beat 1e-3 (0.625).
  assert tuning.choose(curve) == 1e-3


# --- 2. The test sets are measured on the checkpoint validation chose. ---

def _accuracy(config, state, split):
  """Test accuracy of a restored state, by the model's own forward pass in eval mode."""
  model = models.create_model(config, 10)
  logits = model.apply(state.variables, np.asarray(split.images, np.float32) / 255.0,
                       train=False)
  return float(np.mean(np.asarray(logits).argmax(-1) == split.labels))


def test_test_accuracy_is_measured_on_the_chosen_epochs_checkpoint(small_config, tmp_path,
                                                                    monkeypatch):
  """Guards against test_chosen evaluating the last epoch's states instead of the
  checkpoint of the epoch validation chose."""
  # Validation "chooses" epoch 1 of 2 (the earliest epoch ranks best), so the chosen
  # checkpoint is not the last state.
  monkeypatch.setattr(run_metrics, 'best_rank', lambda record: (0.0, -record['epoch']))
  workdir = tmp_path / 'run'
  metrics = train.train_and_evaluate(small_config, workdir)
  assert metrics['best_epoch'] == 1 and len(metrics['history']) == 2

  test = input_pipeline.load_dataset(small_config.to_dict()).test
  like = make_state(small_config, 16)
  chosen = _accuracy(small_config, epoch_state(workdir, like, 1), test)
  last = _accuracy(small_config, epoch_state(workdir, like, 2), test)
  assert chosen != last  # Else this test could not tell the two apart.
  assert metrics['history'][0]['test_accuracy'] == pytest.approx(chosen, abs=1e-6)
  assert metrics['best_test_accuracy'] == pytest.approx(chosen, abs=1e-6)


# --- 3. The shift curve moves pixels where its names say. ---

# Where a pixel at (row, column) goes when moved p pixels in each named direction.
_MOVES = {'right': lambda r, c, p: (r, c + p), 'left': lambda r, c, p: (r, c - p),
          'down': lambda r, c, p: (r + p, c), 'up': lambda r, c, p: (r - p, c)}


def _moved(images, direction, p):
  """`images` (NHWC) moved p pixels in `direction`, by np.roll with the wrapped rows or
  columns zeroed: larger row index is down, larger column index is right."""
  axis, sign = {'right': (2, 1), 'left': (2, -1), 'down': (1, 1), 'up': (1, -1)}[direction]
  out = np.roll(images, sign * p, axis=axis)
  index = [slice(None)] * 4
  index[axis] = slice(0, p) if sign > 0 else slice(-p, None)
  out[tuple(index)] = 0
  return out


def _one_pixel(row, column, size=28):
  image = np.zeros((1, size, size, 1), np.uint8)
  image[0, row, column, 0] = 255
  return image


@pytest.mark.parametrize('pixels', [1, 3, 7])
def test_each_shift_curve_set_moves_the_pixels_the_way_its_name_says(pixels):
  """Guards against a lost or flipped sign in DIRECTIONS or shift_curve_sets (e.g.
  test_left<N> moving the digit right, or down moving it up)."""
  sets = input_pipeline.shift_curve_sets(pixels)
  assert sorted(s.name for s in sets) == sorted(
      f'test_{d}{p}' for d in _MOVES for p in range(1, pixels + 1))
  row, column = 11, 14
  rng = np.random.default_rng(0)
  digits = rng.integers(0, 256, (2, 28, 28, 1), dtype=np.uint8)
  for s in sets:
    direction, p = re.fullmatch(r'test_(right|left|down|up)(\d+)', s.name).groups()
    moved = input_pipeline.shift(_one_pixel(row, column), s.down, s.right)
    lit = [tuple(int(i) for i in w) for w in np.argwhere(moved[0, :, :, 0])]
    assert lit == [_MOVES[direction](row, column, int(p))], s.name
    np.testing.assert_array_equal(input_pipeline.shift(digits, s.down, s.right),
                                  _moved(digits, direction, int(p)), err_msg=s.name)


def test_the_evaluated_shift_curve_sets_hold_the_test_images_moved_as_named():
  """Guards against the sets evaluated as test_<direction><N> holding images moved
  another way (a sign lost in DIRECTIONS, or down and right swapped where they are built)."""
  row, column = 9, 17
  test = input_pipeline.Split(
      np.concatenate([_one_pixel(row, column),
                      np.random.default_rng(1).integers(0, 256, (1, 28, 28, 1), np.uint8)]),
      np.array([3, 5], np.int32))
  empty = input_pipeline.Split(np.zeros((0, 28, 28, 1), np.uint8), np.zeros(0, np.int32))
  data = input_pipeline.Data(DatasetSpec('mnist', (28, 28, 1), 10, 'image', 'label'),
                             empty, empty, test)
  config = {'train_eval_examples': 0, 'test_shift_pixels': 0, 'shift_curve_pixels': 4}
  sets = {n: s for n, s in data.evaluated(config).items() if n.startswith('test_')}
  assert sorted(sets) == sorted(f'test_{d}{p}' for d in _MOVES for p in range(1, 5))
  for name, split in sets.items():
    direction, p = re.fullmatch(r'test_(right|left|down|up)(\d+)', name).groups()
    np.testing.assert_array_equal(split.labels, test.labels)
    lit = [tuple(int(i) for i in w) for w in np.argwhere(split.images[0, :, :, 0])]
    assert lit == [_MOVES[direction](row, column, int(p))], name
    np.testing.assert_array_equal(split.images, _moved(test.images, direction, int(p)),
                                  err_msg=name)


# --- 4. BatchNorm's running statistics. ---

# models._batch_norm's momentum (PyTorch's 0.1): running = m · running + (1 - m) · batch.
MOMENTUM = 0.9


def _conv1_output(params, images):
  """conv1 (3×3, padding 1, stride 1) in float64 NumPy on uint8 `images`."""
  kernel = np.asarray(params['conv1']['kernel'], np.float64)
  bias = np.asarray(params['conv1']['bias'], np.float64)
  x = np.pad(images.astype(np.float64) / 255.0, ((0, 0), (1, 1), (1, 1), (0, 0)))
  h, w = images.shape[1:3]
  out = sum(x[:, i:i + h, j:j + w] @ kernel[i, j] for i in range(3) for j in range(3))
  return out + bias


def test_batch_norm_running_statistics_follow_the_momentum_update(small_config, tmp_path):
  """Guards against BatchNorm's running mean/var not being kept after a train step,
  updated with another momentum (e.g. Flax's default 0.99), or from other statistics
  than the step's batch mean and biased variance."""
  # 64 training images, batch 64: each step's batch is the whole training set (in some
  # order, which mean and variance ignore). 2 epochs of 1 step, each checkpointed.
  small_config.update(batch_norm='conv', max_train_examples=64, batch_size=64,
                      train_eval_examples=64)
  workdir = tmp_path / 'run'
  train.train_and_evaluate(small_config, workdir)
  images = input_pipeline.load_dataset(small_config.to_dict()).train.images
  assert len(images) == 64

  like = make_state(small_config, 1)
  initial = make_state(small_config, 1)  # Seed 0's initial state, as the run's.
  after = [epoch_state(workdir, like, e) for e in (1, 2)]
  mean, var = np.zeros(4), np.ones(4)  # Flax's initial running statistics.
  for before, state in zip([initial, after[0]], after):
    x = _conv1_output(before.params, images)  # bn1's input in that step.
    mean = MOMENTUM * mean + (1 - MOMENTUM) * x.mean(axis=(0, 1, 2))
    var = MOMENTUM * var + (1 - MOMENTUM) * x.var(axis=(0, 1, 2))  # Biased.
    stats = jax.tree.map(np.asarray, state.model_state['batch_stats']['bn1'])
    np.testing.assert_allclose(stats['mean'], mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats['var'], var, rtol=1e-4, atol=1e-5)
