"""MNIST from the repo's own files; other datasets fail clearly when offline."""

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import time

import filelock
import numpy as np
import pytest

from configs import default
from cnn_jax import errors, input_pipeline, options, prepare
from cnn_jax.errors import ConfigError


def test_mnist_slice_loads_from_shipped_files(small_config):
  data = input_pipeline.load_dataset(small_config)
  spec, train, test = data.spec, data.train, data.test
  assert spec.input_shape == (28, 28, 1) and spec.num_classes == 10
  assert train.images.shape == (small_config.max_train_examples, 28, 28, 1)
  assert train.images.dtype == np.uint8
  assert test.images.shape == (small_config.max_test_examples, 28, 28, 1)
  assert train.labels.dtype == np.int32 and set(np.unique(train.labels)) == set(range(10))
  assert train.images.max() == 255 and train.images.min() == 0
  # The split's images in its stratified order, after the held-out ones.
  _, raw, _ = input_pipeline._load_dataset(  # pylint: disable=protected-access
      'mnist', small_config.data_dir, None, 0, 0)
  held = small_config.validation_examples
  rows = input_pipeline.stratified_order(raw.labels, small_config.split_seed)[
      held:held + len(train.labels)]
  np.testing.assert_array_equal(train.images, raw.images[rows])


def _refuse_tensorflow(monkeypatch):
  def refuse():
    raise AssertionError('TensorFlow was imported')
  monkeypatch.setattr(prepare, 'tfds_with_tensorflow', refuse)


def test_dataset_spec_comes_from_the_dataset_info_without_tensorflow(repo_root):
  # In a process of its own: this one may have imported TF for another test.
  script = textwrap.dedent("""
      import sys
      from cnn_jax import errors, input_pipeline
      config = {'dataset': 'cifar10', 'data_dir': None}
      print(input_pipeline.dataset_spec(config))
      try:
        input_pipeline.dataset_spec(dict(config, dataset='no_such_dataset'))
      except errors.ConfigError as e:
        print(e)
      print('tensorflow imported:', 'tensorflow' in sys.modules)
  """)
  done = subprocess.run([sys.executable, '-c', script], cwd=repo_root,
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "input_shape=(32, 32, 3), num_classes=10, image_key='image'" in done.stdout
  assert ("config.dataset='no_such_dataset' is invalid: expected the name of a TFDS "
          'image dataset') in done.stdout
  assert done.stdout.endswith('tensorflow imported: False\n')


@pytest.mark.parametrize('through', ['config', 'environment'])
def test_a_data_dir_that_is_a_file_is_named(through, tmp_path, monkeypatch):
  config = default.get_config()
  (tmp_path / 'file').write_text('not a directory')
  if through == 'config':
    config.data_dir = str(tmp_path / 'file')
    field = 'config.data_dir'
  else:
    config.data_dir = None
    monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'file'))
    field = 'TFDS_DATA_DIR'
  for load in (input_pipeline.dataset_spec, input_pipeline.load_dataset,
               prepare.prepare):
    with pytest.raises(ConfigError, match=f"^{field}='.*file' is invalid: it is a "
                                          'file; expected the directory'):
      load(config)


def _lock_refused(*args, **kwargs):
  raise PermissionError(13, 'Permission denied', 'downloads/.cnn_jax_prepare.lock')


@pytest.mark.parametrize('where, reason', [
    ('under_a_file', 'Not a directory: .*file/data/downloads'),
    ('lock_refused', 'Permission denied: downloads/.cnn_jax_prepare.lock'),
])
def test_a_data_dir_that_cannot_be_written_is_named(where, reason, tmp_path, monkeypatch):
  (tmp_path / 'file').write_text('not a directory')
  config = default.get_config()
  config.data_dir = str(tmp_path / 'file' / 'data' if where == 'under_a_file'
                        else tmp_path / 'data')
  if where == 'lock_refused':
    monkeypatch.setattr(prepare.filelock.FileLock, 'acquire', _lock_refused)
  _refuse_tensorflow(monkeypatch)  # Named before TF's import and any preparation.
  with pytest.raises(errors.DatasetUnavailableError,
                     match=f"^dataset 'mnist' is not prepared and cannot be prepared in "
                           f"config.data_dir='.*': {reason}; choose a directory that can "
                           'be written'):
    input_pipeline.load_dataset(config)


def test_unreachable_dataset_fails_fast_with_advice(tmp_path, monkeypatch):
  config = default.get_config()
  config.dataset = 'fashion_mnist'
  config.data_dir = str(tmp_path)
  _refuse_tensorflow(monkeypatch)  # Offline, the one line comes before TF's import.
  builder = prepare.tfds_builder(config)  # pylint: disable=protected-access
  if prepare._reachable(next(iter(builder.url_infos))):  # pylint: disable=protected-access
    pytest.skip('the network is up here; this checks the offline path')
  start = time.perf_counter()
  with pytest.raises(errors.DatasetUnavailableError) as error:
    input_pipeline.load_dataset(config)
  assert time.perf_counter() - start < 30
  message = str(error.value)
  assert "dataset 'fashion_mnist' is not prepared" in message
  assert 'unreachable' in message and '--config.data_dir' in message


@pytest.fixture
def own_data_config(small_config, tmp_path):
  """small_config with a copy of the prepared MNIST of its own: the tests below damage,
  restamp or count on the saved arrays, which the other test workers read meanwhile."""
  shared = pathlib.Path(small_config.data_dir)
  shutil.copytree(shared / 'mnist', tmp_path / 'tfds' / 'mnist')
  small_config.data_dir = str(tmp_path / 'tfds')
  return small_config


def _fresh_load(config):
  input_pipeline._load_dataset.cache_clear()  # pylint: disable=protected-access
  data = input_pipeline.load_dataset(config)
  return data.spec, data.train, data.test


def _no_tensorflow(monkeypatch):
  def refuse(*args):
    raise AssertionError('TFDS was asked although the arrays were saved')
  monkeypatch.setattr(prepare, 'tfds_builder', refuse)
  monkeypatch.setattr(prepare, '_tfds', refuse)
  monkeypatch.setattr(prepare, 'tfds_with_tensorflow', refuse)


def test_saved_arrays_load_again_without_tfds(own_data_config, monkeypatch):
  spec, train, test = _fresh_load(own_data_config)
  _no_tensorflow(monkeypatch)
  assert input_pipeline.dataset_spec(own_data_config) == spec
  spec2, train2, test2 = _fresh_load(own_data_config)
  assert spec2 == spec
  for a, b in ((train, train2), (test, test2)):
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert b.images.dtype == np.uint8 and b.labels.dtype == np.int32
    assert not b.images.flags.writeable
  # Another test slice is another file: asking for it reads the records again.
  own_data_config.max_test_examples //= 2
  with pytest.raises(AssertionError, match='TFDS was asked'):
    _fresh_load(own_data_config)


def test_splits_are_stratified_random_disjoint_and_nested_whatever_the_slice(
    small_config):
  """The same held-out images for every slice and seed, none of them trained on; each
  split class-stratified; a smaller training set part of a larger one; another
  split_seed another split."""
  config = dict(small_config.to_dict(), validation_examples=700, max_train_examples=0)
  full = input_pipeline.load_dataset(config)
  _, raw, _ = input_pipeline._load_dataset(  # pylint: disable=protected-access
      'mnist', config['data_dir'], None, 0, 0)
  assert len(full.train.labels) + len(full.validation.labels) == 60_000
  assert len(full.validation.labels) == 700
  # Together exactly the split's images (as multisets of bytes), none in both.
  key = lambda images: sorted(x.tobytes() for x in images)
  assert key(np.concatenate([full.train.images, full.validation.images])) == key(
      raw.images)
  sliced = input_pipeline.load_dataset(dict(config, max_train_examples=900, seed=3))
  np.testing.assert_array_equal(sliced.validation.images, full.validation.images)
  np.testing.assert_array_equal(sliced.train.images, full.train.images[:900])
  share = np.bincount(raw.labels, minlength=10) / len(raw.labels)
  for split in (full.validation, sliced.train):
    counts = np.bincount(split.labels, minlength=10)
    assert np.all(np.abs(counts - share * len(split.labels)) <= 1.5), counts
  # Random, not the file's first or last images.
  assert not np.array_equal(full.validation.labels, raw.labels[-700:])
  other = input_pipeline.load_dataset(dict(config, split_seed=1))
  assert not np.array_equal(other.validation.images, full.validation.images)
  with pytest.raises(ConfigError, match=r'^config.max_train_examples=59301 is invalid: .* '
                     r'has 59300 examples besides the 700 held out'):
    input_pipeline.load_dataset(dict(config, max_train_examples=59_301))
  with pytest.raises(ConfigError, match=r'^config.validation_examples=60000 is invalid'):
    input_pipeline.load_dataset(dict(config, validation_examples=60_000))
  sets = sliced.evaluated(dict(config, train_eval_examples=100, test_shift_pixels=2))
  assert list(sets) == ['train_eval', 'validation', 'test', 'test_shifted']
  # Train-eval: images the run trains on.
  np.testing.assert_array_equal(sets['train_eval'].images, sliced.train.images[:100])
  assert 'test_shifted' not in full.evaluated(dict(config, test_shift_pixels=0))


def test_a_run_from_before_split_seed_keeps_its_split(small_config):
  """A config written before split_seed existed reads as 'last' (options.with_defaults):
  the training split's last images held out, its first trained on, as those runs did;
  a rerun of such a workdir with today's default is a change, named."""
  legacy = {k: v for k, v in small_config.to_dict().items() if k != 'split_seed'}
  config = options.with_defaults(legacy)
  assert config['split_seed'] == 'last'
  data = input_pipeline.load_dataset(config)
  _, raw, _ = input_pipeline._load_dataset(  # pylint: disable=protected-access
      'mnist', small_config.data_dir, None, 0, 0)
  np.testing.assert_array_equal(data.validation.labels, raw.labels[-500:])
  np.testing.assert_array_equal(data.train.images, raw.images[:1024])
  assert options.config_changes_between(legacy, small_config.to_dict()) == [
      "split_seed: 'last' there, 0 now"]


@pytest.mark.parametrize('seed', [0, 7])
def test_every_prefix_of_the_stratified_order_holds_each_class_in_its_share(seed):
  labels = np.random.default_rng(seed).choice(5, 997, p=[0.5, 0.2, 0.15, 0.1, 0.05])
  order = input_pipeline.stratified_order(labels, seed)
  assert sorted(order) == list(range(len(labels)))
  np.testing.assert_array_equal(order, input_pipeline.stratified_order(labels, seed))
  share = np.bincount(labels) / len(labels)
  for k in range(1, len(labels) + 1):
    counts = np.bincount(labels[order[:k]], minlength=5)
    # Off by under 1/2 + share · classes / 2: one example for balanced classes.
    assert np.all(np.abs(counts - share * k) < 0.5 + share * 5 / 2), (k, counts)


@pytest.mark.parametrize('down, right', [(1, 0), (0, -2), (-3, 0), (0, 1), (2, -1)])
def test_every_shift_is_numpys_roll_with_the_wrapped_pixels_zeroed(down, right):
  images = np.arange(1, 2 * 5 * 6 + 1, dtype=np.uint8).reshape(2, 5, 6, 1)
  expected = np.roll(images, (down, right), axis=(1, 2))
  expected[:, :down] = 0 if down > 0 else expected[:, :down]
  if down < 0:
    expected[:, down:] = 0
  if right > 0:
    expected[:, :, :right] = 0
  if right < 0:
    expected[:, :, right:] = 0
  np.testing.assert_array_equal(input_pipeline.shift(images, down, right), expected)


def test_the_shift_curve_is_four_directions_per_pixel(small_config):
  data = input_pipeline.load_dataset(small_config)
  sets = data.evaluated(dict(small_config.to_dict(), shift_curve_pixels=2))
  assert [n for n in sets if n.startswith('test_') and n != 'test_shifted'] == [
      'test_right1', 'test_left1', 'test_down1', 'test_up1', 'test_right2', 'test_left2',
      'test_down2', 'test_up2']
  np.testing.assert_array_equal(sets['test_up2'].images[:, :-2], data.test.images[:, 2:])
  assert all(input_pipeline.is_test_set(n) for n in sets if n.startswith('test'))


def test_shift_moves_the_digit_and_fills_with_zeros():
  images = np.arange(2 * 4 * 5, dtype=np.uint8).reshape(2, 4, 5, 1) + 1
  moved = input_pipeline.shift(images, 2, 2)
  assert moved.shape == images.shape and moved.dtype == np.uint8
  assert (moved[:, :2] == 0).all() and (moved[:, :, :2] == 0).all()
  np.testing.assert_array_equal(moved[:, 2:, 2:], images[:, :2, :3])
  assert not input_pipeline.shift(images, 4, 4).any()  # Moved out entirely.


def test_slices_match_the_full_split(own_data_config):
  _, train, _ = _fresh_load(own_data_config)
  own_data_config.max_train_examples = 600
  _, smaller, _ = _fresh_load(own_data_config)
  np.testing.assert_array_equal(smaller.images, train.images[:600])
  np.testing.assert_array_equal(smaller.labels, train.labels[:600])


def test_arrays_of_a_dataset_prepared_again_are_not_used(own_data_config, monkeypatch):
  _, train, _ = _fresh_load(own_data_config)
  builder = prepare.tfds_builder(own_data_config)  # pylint: disable=protected-access
  info_file = pathlib.Path(builder.data_dir) / 'dataset_info.json'
  stat = info_file.stat()
  os.utime(info_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # "Prepared again".
  asked = []
  real_builder = prepare.tfds_builder  # pylint: disable=protected-access
  monkeypatch.setattr(prepare, 'tfds_builder',
                      lambda config: asked.append(1) or real_builder(config))
  _, again, _ = _fresh_load(own_data_config)
  assert asked, 'stale arrays were used'
  np.testing.assert_array_equal(again.images, train.images)
  _no_tensorflow(monkeypatch)  # Saved again, with the new stamp.
  _fresh_load(own_data_config)


@pytest.mark.parametrize('damage', ['garbage', 'truncated', 'wrong dtype'])
def test_damaged_saved_arrays_are_read_again_from_the_records(own_data_config, damage):
  _, train, _ = _fresh_load(own_data_config)
  path = input_pipeline._split_file(  # pylint: disable=protected-access
      input_pipeline._arrays_dir(own_data_config), 'train', 0)  # pylint: disable=protected-access
  if damage == 'garbage':
    path.write_bytes(b'not an npz')
  elif damage == 'truncated':
    path.write_bytes(path.read_bytes()[:1000])
  else:
    with np.load(path) as saved:
      np.savez(path, images=saved['images'].astype(np.float32), labels=saved['labels'],
               stamp=saved['stamp'])
  _, again, _ = _fresh_load(own_data_config)
  np.testing.assert_array_equal(again.images, train.images)
  assert again.images.dtype == np.uint8
  with np.load(path) as saved:  # Written again, whole: the split trained on is in it.
    assert len(saved['images']) == 60_000
    order = input_pipeline.stratified_order(saved['labels'], own_data_config.split_seed)
    held = own_data_config.validation_examples
    np.testing.assert_array_equal(saved['images'][order[held:held + len(train.images)]],
                                  train.images)


def test_arrays_are_kept_only_for_a_local_data_dir(tmp_path, monkeypatch):
  config = {'dataset': 'mnist', 'data_dir': 'gs://bucket/tfds'}
  assert input_pipeline._arrays_dir(config) is None  # pylint: disable=protected-access
  assert input_pipeline._cached_info(config) is None  # pylint: disable=protected-access
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path))
  local = input_pipeline._arrays_dir({'dataset': 'mnist:3.0.1', 'data_dir': None})  # pylint: disable=protected-access
  assert local.parent == tmp_path / 'cnn_jax_arrays' and local.name.startswith('mnist:3.0.1-tfds')


def test_a_preparation_another_process_holds_is_waited_for_within_a_bound(tmp_path,
                                                                          monkeypatch):
  config = default.get_config()
  config.data_dir = str(tmp_path / 'data')
  builder = prepare.tfds_builder(config)
  downloads = pathlib.Path(builder.data_dir_root) / 'downloads'
  downloads.mkdir(parents=True)
  monkeypatch.setattr(prepare, 'PREPARE_WAIT_SECONDS', 0.2)
  with filelock.FileLock(downloads / '.cnn_jax_prepare.lock'):  # Another preparer.
    with pytest.raises(errors.DatasetUnavailableError,
                       match=r"^dataset 'mnist' is not prepared: another process has been "
                             r"preparing it in config.data_dir='.*' for 0.2 s"):
      prepare.prepare_builder(builder, config)
