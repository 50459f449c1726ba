"""Receptive fields measured by gradients, figures' data, digit preprocessing, and the
visualize / predict commands on a small trained run."""

import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from configs import default
from cnn_jax import digits, inference, input_pipeline, models, train, visualize


@pytest.mark.parametrize('overrides', [
    {},  # The article's network.
    {'padding': 0},
    {'pool_window': 3, 'pool_stride': 2, 'pooling': 'avg', 'conv_features': (8, 8, 8)},
])
def test_gradient_receptive_field_equals_the_formulas(overrides):
  config = default.get_config().to_dict()
  config.update(overrides)
  table = models.layer_table(config, (28, 28, 1), 10)
  model = models.create_model(config, 10)
  variables = jax.jit(model.init)(jax.random.key(1), np.zeros((1, 28, 28, 1), np.float32))
  layers = visualize.spatial_layers(table)
  assert [r.name for r in layers][:3] == ['conv1', 'act1', 'pool1']
  for row in layers:
    h, w = row.output_shape[:2]
    for i, j in {(0, 0), (h // 2, w // 3), (h - 1, w - 1)}:
      computed = visualize.computed_field(row, i, j, (28, 28))
      measured = visualize.gradient_field(model, variables, row.name, i, j, (28, 28, 1))
      np.testing.assert_array_equal(measured, computed, err_msg=f'{row.name} ({i},{j})')
  deepest = layers[-1].receptive_field.size
  assert deepest == {(): 10, ('padding',): 10}.get(tuple(overrides), deepest)


def test_confusion_matrix_and_confident_mistakes():
  labels = np.array([0, 1, 2, 2, 1])
  probabilities = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.0, 0.4],
                            [0.0, 0.1, 0.9], [0.05, 0.15, 0.8]])
  counts = visualize.confusion_matrix(labels, probabilities.argmax(-1), 3)
  np.testing.assert_array_equal(counts, [[1, 0, 0], [0, 1, 1], [1, 0, 1]])
  # Wrong: #2 (predicted 0 at 0.6) and #4 (predicted 2 at 0.8): most confident first.
  np.testing.assert_array_equal(visualize.confident_mistakes(probabilities, labels, 5),
                                [4, 2])


@pytest.fixture(scope='module')
def mnist_test_digits(mnist_data_dir):
  config = default.get_config()
  config.update(data_dir=mnist_data_dir, max_train_examples=128, max_test_examples=40)
  test = input_pipeline.load_dataset(config).test
  return test


def test_a_large_off_centre_dark_digit_on_white_becomes_mnist_like(mnist_test_digits):
  original = mnist_test_digits.images[3, :, :, 0]
  big = Image.fromarray(255 - original).resize((112, 112), Image.Resampling.BICUBIC)
  page = Image.new('L', (300, 220), 255)  # White paper, the digit at the top left.
  page.paste(big, (20, 10))
  result = digits.to_mnist(np.asarray(page, np.float32) / 255.0)
  assert result.shape == (28, 28, 1) and result.dtype == np.uint8
  ink = result[..., 0] > 0.2 * 255
  rows, cols = np.nonzero(ink)
  assert max(np.ptp(rows), np.ptp(cols)) + 1 in (19, 20, 21)  # Fits the 20×20 box.
  cy, cx = digits.centre_of_mass(result)
  assert abs(cy - 14.0) <= 0.6 and abs(cx - 14.0) <= 0.6  # Where MNIST puts it.
  assert result[0].max() == 0 and result[:, 0].max() == 0  # Background black again.
  correlation = np.corrcoef(result.ravel(), original.ravel())[0, 1]
  assert correlation > 0.8


def test_unreadable_and_blank_images_are_errors(tmp_path):
  bad = tmp_path / 'bad.png'
  bad.write_bytes(b'\x89PNG\r\n\x1a\n this is not an image')
  with pytest.raises(digits.ImageError, match='bad.png: cannot read it as an image'):
    digits.load_grayscale(bad)
  with pytest.raises(digits.ImageError, match='blank'):
    digits.to_mnist(np.ones((40, 40), np.float32), 'white.png')


@pytest.mark.slow
def test_visualize_and_predict_commands(small_config, mnist_test_digits, repo_root,
                                        tmp_path):
  workdir = tmp_path / 'run'
  train.train_and_evaluate(small_config, workdir)
  # The best epoch's checkpoint is what visualize and predict read.
  assert inference.load_run(workdir).which == 'best'
  env_python = [sys.executable, '-m']
  figures = tmp_path / 'figures'
  done = subprocess.run(env_python + ['experiments.visualize', f'--workdir={workdir}',
                                      f'--output_dir={figures}'],
                        cwd=repo_root, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  for name in ('filters', 'feature_maps', 'receptive_fields', 'confusion', 'mistakes'):
    assert (figures / f'{name}.png').stat().st_size > 1000, name
  assert done.stdout.count('gradient field equal') == 4
  events = event_accumulator.EventAccumulator(str(workdir))
  events.Reload()
  assert 'visualize/receptive_fields' in events.Tags()['images']

  paths = []
  for i in range(20):
    path = tmp_path / 'digits' / f'{i}.png'
    path.parent.mkdir(exist_ok=True)
    pixels = mnist_test_digits.images[i, :, :, 0]
    # Half of them as a person would draw them: dark ink on white.
    Image.fromarray(255 - pixels if i % 2 else pixels).save(path)
    paths.append(str(path))
  broken = tmp_path / 'digits' / 'broken.jpg'
  broken.write_bytes(b'not a jpeg')
  done = subprocess.run(env_python + ['experiments.predict', f'--workdir={workdir}',
                                      *paths[:10], str(broken), *paths[10:]],
                        cwd=repo_root, capture_output=True, text=True, timeout=300)
  assert done.returncode == 1  # One file failed ...
  assert 'broken.jpg: cannot read it as an image' in done.stderr
  lines = [l for l in done.stdout.splitlines() if l.startswith(str(tmp_path))]
  assert len(lines) == 20  # ... and every other one was classified.
  predicted = {l.split(':')[0]: int(l.split(': ')[1].split()[0]) for l in lines}
  run = inference.load_run(workdir)
  in_memory = inference.probabilities(run, mnist_test_digits.images[:20]).argmax(-1)
  agree = sum(predicted[p] == in_memory[i] for i, p in enumerate(paths))
  assert agree >= 19, (agree, predicted, in_memory)


def test_feature_map_rows_say_before_or_after_the_activation():
  config = default.get_config().to_dict()
  config.update(activation='tanh')
  table = models.layer_table(config, (28, 28, 1), 10)
  captions = dict(visualize.feature_map_captions(visualize.spatial_layers(table)))
  assert captions['conv1'] == 'conv1: before tanh'
  assert captions['act1'] == 'act1: after tanh'
  assert captions['pool2'] == 'pool2: MaxPool 2×2, s2'
  assert list(captions) == ['conv1', 'act1', 'pool1', 'conv2', 'act2', 'pool2']
