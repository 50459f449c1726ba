"""MNIST from the repo's own files; other datasets fail clearly when offline."""

import time

import numpy as np
import pytest

from configs import default
from cnn_jax import input_pipeline


def test_mnist_slice_loads_from_shipped_files(small_config):
  spec, train, test = input_pipeline.load_dataset(small_config)
  assert spec.input_shape == (28, 28, 1) and spec.num_classes == 10
  assert train.images.shape == (3000, 28, 28, 1) and train.images.dtype == np.uint8
  assert test.images.shape == (1000, 28, 28, 1)
  assert train.labels.dtype == np.int32 and set(np.unique(train.labels)) == set(range(10))
  assert train.images.max() == 255 and train.images.min() == 0
  # The official files' first training labels.
  assert train.labels[:10].tolist() == [4, 1, 0, 7, 8, 1, 2, 7, 1, 6]


def test_dataset_spec_comes_from_the_dataset_info():
  config = default.get_config()
  config.dataset = 'cifar10'
  spec = input_pipeline.dataset_spec(config)
  assert spec.input_shape == (32, 32, 3) and spec.num_classes == 10


def test_unreachable_dataset_fails_fast_with_advice(tmp_path):
  config = default.get_config()
  config.dataset = 'fashion_mnist'
  config.data_dir = str(tmp_path)
  builder = input_pipeline._builder(config)  # pylint: disable=protected-access
  if input_pipeline._reachable(next(iter(builder.url_infos))):  # pylint: disable=protected-access
    pytest.skip('the network is up here; this checks the offline path')
  start = time.perf_counter()
  with pytest.raises(input_pipeline.DatasetUnavailableError) as error:
    input_pipeline.load_dataset(config)
  assert time.perf_counter() - start < 30
  message = str(error.value)
  assert "dataset 'fashion_mnist' is not prepared" in message
  assert 'unreachable' in message and '--config.data_dir' in message
