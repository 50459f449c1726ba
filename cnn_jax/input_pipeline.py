"""TFDS image datasets as arrays in memory (prepared once by `cnn_jax.prepare`).

MNIST is 47 MB as uint8, so the whole split is loaded once and handed to the trainer.
The arrays are also kept as .npz beside the TFDS data, so later processes read them
without importing TensorFlow or reading the records (README, Data).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import json
import os
import pathlib
import uuid
import zipfile
from typing import Any, BinaryIO, Callable, Mapping, NamedTuple

import numpy as np

from cnn_jax import prepare
from cnn_jax.errors import ConfigError, DatasetUnavailableError
from cnn_jax.prepare import DatasetSpec


class Split(NamedTuple):
  images: np.ndarray  # (N, H, W, C) uint8
  labels: np.ndarray  # (N,) int32


def dataset_spec(config: Mapping[str, Any]) -> DatasetSpec:
  """Shape and classes from the dataset's info, without reading or preparing data."""
  cached = _cached_info(config)
  return cached[0] if cached else prepare.spec(prepare.tfds_builder(config), config)


@dataclasses.dataclass(frozen=True)
class Data:
  """A dataset as the trainer uses it: uint8 images and int32 labels, read-only."""
  spec: DatasetSpec
  train: Split  # What the steps train on.
  validation: Split  # Held out of training; decides the best epoch.
  test: Split  # Only reported.

  def evaluated(self, config: Mapping[str, Any]) -> dict[str, Split]:
    """What every evaluation measures, in this order: the first
    `train_eval_examples` training images (in eval mode: the overfitting gap), the
    validation and test images, the test images shifted by `test_shift_pixels` (where
    a digit appears), if any, and the shift curve's: the test images moved 1 ..
    `shift_curve_pixels` pixels in each of `DIRECTIONS` (test_right1, test_left1, …)."""
    sets = {'train_eval': _first(self.train, config['train_eval_examples']),
            'validation': self.validation, 'test': self.test}
    if pixels := config['test_shift_pixels']:
      sets['test_shifted'] = Split(shift(self.test.images, pixels, pixels),
                                   self.test.labels)
    for s in shift_curve_sets(config['shift_curve_pixels']):
      sets[s.name] = Split(shift(self.test.images, s.down, s.right), self.test.labels)
    return sets


def is_test_set(name: str) -> bool:
  """Whether an evaluated set is the test set or made from it ('test_shifted'): only
  reported, measured where validation chose (`test_every_epoch`: every epoch too)."""
  return name == 'test' or name.startswith('test_')


def _first(split: Split, count: int) -> Split:
  return Split(split.images[:count], split.labels[:count])


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
  """A seeded permutation of the examples whose every prefix holds each class in its
  share of the whole (to within one example for balanced classes; 1/2 + share ·
  classes / 2 in general): each class shuffled, then the classes interleaved by their
  examples' rank / class size (ties in random order)."""
  rng = np.random.default_rng(seed)
  position = np.empty(len(labels))
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    position[rng.permutation(members)] = (np.arange(len(members)) + 0.5) / len(members)
  return np.lexsort((rng.random(len(labels)), position))


def shift(images: np.ndarray, down: int, right: int) -> np.ndarray:
  """NHWC `images` moved `down` pixels down and `right` right (negative: up, left),
  the vacated rows and columns zero."""
  out = np.zeros_like(images)
  height, width = images.shape[1:3]
  if abs(down) < height and abs(right) < width:
    rows = lambda d, n: (slice(max(d, 0), n + min(d, 0)), slice(max(-d, 0), n - max(d, 0)))
    (to_y, from_y), (to_x, from_x) = rows(down, height), rows(right, width)
    out[:, to_y, to_x] = images[:, from_y, from_x]
  return out


# The shift curve's directions: (name, rows down, columns right) per pixel.
DIRECTIONS = (('right', 0, 1), ('left', 0, -1), ('down', 1, 0), ('up', -1, 0))


class ShiftSet(NamedTuple):
  name: str  # The evaluated set: test_<direction><pixels>, e.g. test_right1.
  direction: str
  pixels: int
  down: int
  right: int


def shift_curve_sets(pixels: int) -> list[ShiftSet]:
  """The shift curve's test sets for `shift_curve_pixels=pixels`: 1 .. pixels in each
  of DIRECTIONS, in the order they are evaluated."""
  return [ShiftSet(f'test_{name}{p}', name, p, down * p, right * p)
          for p in range(1, pixels + 1) for name, down, right in DIRECTIONS]


def split_seed(config: Mapping[str, Any]) -> int | str:
  """The seed of the config's split ('last' as it is): split_seed='seed' follows the
  run seed."""
  return config['seed'] if config['split_seed'] == 'seed' else config['split_seed']


def load_dataset(config: Mapping[str, Any]) -> Data:
  """The config's dataset. The training split in `stratified_order(split_seed)`: its
  first `validation_examples` held out for validation, the next `max_train_examples`
  (0: all the rest) trained on, so every split is class-stratified and random, the same
  for every configuration (and every run seed, unless split_seed='seed'), and a smaller
  training set is part of a larger one. The test split's first `max_test_examples` (0: all).

  Kept per process, read-only (a sweep's runs share them), and on disk (see the module
  docstring).
  """
  spec, full, test = _load_dataset(config['dataset'], config['data_dir'],
                                   config['manual_dir'], 0, config['max_test_examples'])
  held_out = config['validation_examples']
  if held_out >= len(full.labels):
    raise ConfigError(f'config.validation_examples={held_out} is invalid: the train '
                      f'split of {spec.name} has {len(full.labels)} examples, and some '
                      'must be left to train on')
  rest = len(full.labels) - held_out
  limit = config['max_train_examples']
  if limit > rest:
    raise ConfigError(f'config.max_train_examples={limit} is invalid: the train split of '
                      f'{spec.name} has {rest} examples besides the {held_out} held out '
                      'for validation (0: all of them)')
  if config['split_seed'] == 'last':  # As runs from before split_seed did.
    order = np.r_[np.arange(rest, len(full.labels)), np.arange(rest)]
  else:
    order = stratified_order(full.labels, split_seed(config))
  take = lambda rows: _read_only(Split(full.images[rows], full.labels[rows]))
  return Data(spec, take(order[held_out:held_out + (limit or rest)]),
              take(order[:held_out]), test)


# Below <data dir>/cnn_jax_arrays/<dataset>-tfds<version>/: info.json (the spec, and
# which prepared dataset the arrays came from) and one .npz per split and slice.
_ARRAYS_DIR = 'cnn_jax_arrays'


def _arrays_dir(config: Mapping[str, Any]) -> pathlib.Path | None:
  """Found without TFDS's import; TFDS's version is in the name because it decides
  what an unversioned dataset name means. None for a remote data dir (gs://…)."""
  root = prepare.local_data_root(config)
  if root is None:
    return None
  key = f"{config['dataset']}-tfds{importlib.metadata.version('tensorflow-datasets')}"
  return root / _ARRAYS_DIR / key.replace('/', '_')


def _prepared_stamp(prepared_dir: str | os.PathLike[str]) -> int | None:
  """Changes when TFDS prepares the dataset again (None: not prepared any more)."""
  try:
    return os.stat(pathlib.Path(prepared_dir) / 'dataset_info.json').st_mtime_ns
  except OSError:
    return None


def _cached_info(config: Mapping[str, Any]) -> tuple[DatasetSpec, int] | None:
  """(spec, stamp) of arrays saved from the dataset as it is prepared now, if any."""
  directory = _arrays_dir(config)
  if directory is None:
    return None
  try:
    info = json.loads((directory / 'info.json').read_text())
    spec = DatasetSpec(config['dataset'], tuple(info['input_shape']),
                       info['num_classes'], info['image_key'], info['label_key'])
    stamp, prepared = info['stamp'], info['prepared']
  except (OSError, ValueError, KeyError, TypeError):
    return None
  return (spec, stamp) if stamp == _prepared_stamp(prepared) else None


def _split_file(directory: pathlib.Path, split: str, limit: int) -> pathlib.Path:
  return directory / (f'{split}[:{limit}].npz' if limit else f'{split}.npz')


def _read_only(split: Split) -> Split:
  for array in split:
    array.flags.writeable = False  # Shared by every later caller.
  return split


def _read_cached(path: pathlib.Path, stamp: int) -> Split | None:
  """The split saved at `path` from the dataset as stamped, or None (absent, stale,
  unreadable)."""
  try:
    with np.load(path) as saved:
      if int(saved['stamp']) != stamp:
        return None
      split = Split(saved['images'], saved['labels'])
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
    return None
  if (split.images.dtype != np.uint8 or split.labels.dtype != np.int32
      or len(split.images) != len(split.labels)):
    return None
  return split


def _atomic_write(path: pathlib.Path, write: Callable[[BinaryIO], Any]) -> None:
  """`write(file)` into a temporary file renamed onto `path`, so a reader never sees a
  half-written file; best effort (a read-only data dir keeps no cache)."""
  temporary = path.with_name(f'.{path.name}.{uuid.uuid4().hex}.tmp')
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(temporary, 'wb') as f:
      write(f)
    os.replace(temporary, path)
  except OSError:
    temporary.unlink(missing_ok=True)


def _save_info(directory: pathlib.Path | None, spec: DatasetSpec, builder) -> int | None:
  """Records what the arrays about to be saved in `directory` come from; their stamp,
  or None when nothing is saved."""
  if directory is None:
    return None
  stamp = _prepared_stamp(builder.data_dir)
  if stamp is not None:
    info = {'input_shape': spec.input_shape, 'num_classes': spec.num_classes,
            'image_key': spec.image_key, 'label_key': spec.label_key,
            'prepared': str(builder.data_dir), 'stamp': stamp}
    _atomic_write(directory / 'info.json',
                  lambda f: f.write(json.dumps(info, indent=2).encode()))
  return stamp


_DATA_FIELDS = ('dataset', 'data_dir', 'manual_dir', 'max_train_examples',
                'max_test_examples')  # The arguments of _load_dataset, in order.


@functools.lru_cache(maxsize=2)
def _load_dataset(*values: Any) -> tuple[DatasetSpec, Split, Split]:
  config = dict(zip(_DATA_FIELDS, values))
  directory = _arrays_dir(config)
  cached = _cached_info(config)
  if cached:
    splits = [_read_cached(_split_file(directory, name, limit), cached[1])
              for name, limit in (('train', config['max_train_examples']),
                                  ('test', config['max_test_examples']))]
    if all(splits):
      return cached[0], _read_only(splits[0]), _read_only(splits[1])
  builder = prepare.tfds_builder(config)
  spec = prepare.spec(builder, config)
  prepare.prepare_builder(builder, config)
  stamp = _save_info(directory, spec, builder)
  tfds = prepare.tfds_with_tensorflow()
  splits = []
  for name, limit in (('train', config['max_train_examples']),
                      ('test', config['max_test_examples'])):
    if name not in builder.info.splits:
      raise DatasetUnavailableError(
          f"dataset {spec.name!r} has no {name!r} split; it has "
          f"{', '.join(builder.info.splits)}")
    available = builder.info.splits[name].num_examples
    if limit > available:
      raise ConfigError(f'config.max_{name}_examples={limit} is invalid: the {name} split '
                        f'of {spec.name} has {available} examples (0: all of them)')
    images, labels = tfds.as_numpy(builder.as_dataset(
        split=f'{name}[:{limit}]' if limit else name, batch_size=-1,
        as_supervised=True))
    split = Split(images.astype(np.uint8), labels.astype(np.int32))
    if stamp is not None:
      _atomic_write(_split_file(directory, name, limit), functools.partial(
          np.savez, images=split.images, labels=split.labels, stamp=np.int64(stamp)))
    splits.append(_read_only(split))
  return spec, splits[0], splits[1]
