"""Every split the trainer builds keeps each image with its own label: checked against
MNIST's raw files in data/mnist, read here with gzip and NumPy (not TFDS), and on the
arrays the device loop trains and evaluates on."""

import gzip
import pathlib

import numpy as np
import pytest

from cnn_jax import device_loop, input_pipeline, parallel

MNIST = pathlib.Path(__file__).resolve().parent.parent / 'data' / 'mnist'


def _idx(name: str) -> np.ndarray:
  """An IDX file (the format of MNIST's official files): magic, dims, then uint8 data."""
  data = gzip.decompress((MNIST / name).read_bytes())
  ndim = data[3]
  shape = np.frombuffer(data, '>u4', ndim, 4)
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _labels_by_image(prefix: str, shift: int = 0) -> dict[bytes, set[int]]:
  """{image bytes: its labels} of a raw split, each image moved `shift` pixels right and
  down (np.pad here, not the pipeline's code)."""
  images = _idx(f'{prefix}-images-idx3-ubyte.gz')
  labels = _idx(f'{prefix}-labels-idx1-ubyte.gz')
  if shift:
    images = np.pad(images, ((0, 0), (shift, 0), (shift, 0)))[:, :28, :28]
  out: dict[bytes, set[int]] = {}
  for image, label in zip(images, labels):
    out.setdefault(image.tobytes(), set()).add(int(label))
  return out


def _mislabelled(images: np.ndarray, labels: np.ndarray,
                 raw: dict[bytes, set[int]]) -> list[int]:
  """Indices whose (image, label) is not a pair of the raw split."""
  assert images.shape[1:] == (28, 28, 1) and len(images) == len(labels) > 0
  return [i for i, (image, label) in enumerate(zip(images, labels))
          if int(label) not in raw.get(image[..., 0].tobytes(), ())]


@pytest.fixture(scope='module')
def raw():
  return {'train': _labels_by_image('train'), 'test': _labels_by_image('t10k'),
          'test_shifted': _labels_by_image('t10k', shift=3)}


@pytest.fixture
def config(small_config):
  small_config.update(max_train_examples=3000, validation_examples=2000,
                      train_eval_examples=1000, max_test_examples=2000, test_shift_pixels=3)
  return small_config.to_dict()


def test_every_split_keeps_each_image_with_its_label(config, raw):
  data = input_pipeline.load_dataset(config)
  sets = {'train': data.train, **data.evaluated(config)}
  assert list(sets) == ['train', 'train_eval', 'validation', 'test', 'test_shifted']
  sizes = {name: len(split.labels) for name, split in sets.items()}
  assert sizes == {'train': 3000, 'train_eval': 1000, 'validation': 2000, 'test': 2000,
                   'test_shifted': 2000}
  for name, split in sets.items():
    source = raw[name if name.startswith('test') else 'train']
    bad = _mislabelled(split.images, split.labels, source)
    assert not bad, f'{name}: {len(bad)} of {len(split.labels)} mislabelled, first {bad[:5]}'
  # Validation is held out: none of its images is trained on.
  trained = {image.tobytes() for image in data.train.images}
  assert not any(image.tobytes() in trained for image in data.validation.images)


def test_the_device_loops_arrays_keep_each_image_with_its_label(config, raw):
  """What the programs gather from: the training arrays, and the evaluated sets laid
  one after another with a mask saying which set each row is in."""
  data = input_pipeline.load_dataset(config)
  evaluated = data.evaluated(config)
  loop = device_loop.DeviceLoop.create(parallel.DataParallel.create(), 1, 64, 500,
                                       data.train, evaluated)
  host = parallel.to_host(loop.data)
  assert not _mislabelled(host['train_images'], host['train_labels'], raw['train'])
  for j, name in enumerate(loop.evaluated):
    rows = host['eval_mask'][:, j] == 1
    assert rows.sum() == len(evaluated[name].labels), name
    source = raw[name if name.startswith('test') else 'train']
    bad = _mislabelled(host['eval_images'][rows], host['eval_labels'][rows], source)
    assert not bad, f'{name}: {len(bad)} mislabelled on the devices'
