"""TFDS image datasets as arrays in memory; MNIST prepares offline from data/mnist.

MNIST is 47 MB as uint8, so the whole split is loaded once and handed to the trainer.
The arrays are also kept as .npz beside the TFDS data: importing TensorFlow and reading
the records cost every process 11 s (6.6 s + 4.1 s measured), the .npz 0.1 s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import io
import json
import logging as std_logging
import os
import pathlib
import shutil
import socket
import urllib.parse
import uuid
import zipfile
from typing import Any, BinaryIO, Callable, Mapping, NamedTuple

from absl import logging
import filelock
import numpy as np

from cnn_jax.errors import ConfigError, DatasetUnavailableError

# Where the repo keeps manually downloaded dataset files, one folder per dataset.
DATA_ROOT = pathlib.Path(__file__).resolve().parent.parent / 'data'


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  name: str
  input_shape: tuple[int, int, int]  # H, W, C
  num_classes: int
  image_key: str
  label_key: str


class Split(NamedTuple):
  images: np.ndarray  # (N, H, W, C) uint8
  labels: np.ndarray  # (N,) int32


@functools.cache
def _tfds():
  """TFDS without TensorFlow, which a dataset's info and name checks do not need."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tfds.display_progress_bar(False)
  # A folder being prepared has no dataset_info.json yet; TFDS warns of it each time it
  # looks. Nothing to act on.
  std_logging.getLogger('absl').addFilter(
      lambda record: 'has no dataset_info.json' not in record.getMessage())
  return tfds


@functools.cache
def _tfds_with_tensorflow():
  """TFDS once TF is imported and kept off the GPUs, which belong to JAX: to prepare
  or read records (TF's import alone takes seconds).

  Once per process: TF refuses to change visible devices after it has initialised.
  """
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  return _tfds()


def _data_root(config: Mapping[str, Any]) -> tuple[str, str]:
  """TFDS's data dir for `config` (config.data_dir, else $TFDS_DATA_DIR, else TFDS's
  default), and where that came from, to name it in errors."""
  if config['data_dir']:
    return config['data_dir'], f"config.data_dir={config['data_dir']!r}"
  if os.environ.get('TFDS_DATA_DIR'):
    return os.environ['TFDS_DATA_DIR'], f"TFDS_DATA_DIR={os.environ['TFDS_DATA_DIR']!r}"
  return '~/tensorflow_datasets', "TFDS's default data dir '~/tensorflow_datasets'"


def _local_data_root(config: Mapping[str, Any]) -> pathlib.Path | None:
  """The data dir on this machine's disk; None for a remote one (gs://…)."""
  root, _ = _data_root(config)
  return None if '://' in root else pathlib.Path(root).expanduser()


def _builder(config: Mapping[str, Any]):
  local = _local_data_root(config)
  if local is not None and local.is_file():
    raise ConfigError(f'{_data_root(config)[1]} is invalid: it is a file; expected the '
                      "directory of TFDS's data (config.data_dir=None: $TFDS_DATA_DIR or "
                      '~/tensorflow_datasets)')
  tfds = _tfds()
  try:
    return tfds.builder(config['dataset'], data_dir=config['data_dir'])
  except tfds.core.registered.DatasetNotFoundError:
    raise ConfigError(
        f"config.dataset={config['dataset']!r} is invalid: expected the name of a TFDS "
        'image dataset, e.g. mnist, fashion_mnist, cifar10') from None


def dataset_spec(config: Mapping[str, Any]) -> DatasetSpec:
  """Shape and classes from the dataset's info, without reading or preparing data."""
  cached = _cached_info(config)
  return cached[0] if cached else _spec(_builder(config), config)


def _spec(builder, config: Mapping[str, Any]) -> DatasetSpec:
  info = builder.info
  keys = info.supervised_keys
  if not keys or len(keys) != 2:
    raise DatasetUnavailableError(
        f"dataset {config['dataset']!r} has no (image, label) supervised keys")
  image_key, label_key = keys
  shape = tuple(info.features[image_key].shape)
  if len(shape) != 3 or None in shape:
    raise DatasetUnavailableError(
        f"dataset {config['dataset']!r} has images of shape {shape}; cnn_jax needs a "
        'fixed height × width × channels')
  return DatasetSpec(config['dataset'], shape, info.features[label_key].num_classes,
                     image_key, label_key)


def _manual_dir(config: Mapping[str, Any]) -> pathlib.Path | None:
  if config['manual_dir']:
    return pathlib.Path(config['manual_dir'])
  shipped = DATA_ROOT / config['dataset']
  return shipped if shipped.is_dir() else None


def _reachable(url: str, timeout_s: float = 5.0) -> bool:
  """Whether a TCP connection to the URL's host opens (TFDS retries for minutes)."""
  parsed = urllib.parse.urlparse(url)
  port = parsed.port or (443 if parsed.scheme == 'https' else 80)
  try:
    with socket.create_connection((parsed.hostname, port), timeout=timeout_s):
      return True
  except OSError:
    return False


def _manual_files(builder, manual_dir: pathlib.Path) -> dict[pathlib.Path, Any]:
  """Each file TFDS would read from the manual dir, with its registered size/checksum."""
  return {manual_dir / os.path.basename(urllib.parse.urlparse(url).path): info
          for url, info in (builder.url_infos or {}).items()}


def _check_manual_files(files: Mapping[pathlib.Path, Any], name: str) -> None:
  """Refuses a manual file that is not the one TFDS registered, before TFDS extracts
  anything (its extractor threads outlived a failed attempt and its cleanup)."""
  for path, info in files.items():
    with open(path, 'rb') as f:
      digest = hashlib.file_digest(f, 'sha256')
    size = path.stat().st_size
    expected_size = int(info.size) if info.size else None
    if (expected_size is not None and size != expected_size) or (
        info.checksum and digest.hexdigest() != info.checksum):
      raise DatasetUnavailableError(
          f'dataset {name!r}: {path} fails its checksum ({size} bytes, sha256 '
          f'{digest.hexdigest()[:16]}…; TFDS registered {expected_size} bytes, sha256 '
          f'{(info.checksum or "?")[:16]}…): replace it with the original file')


def _remove_leftovers(builder, downloads: pathlib.Path) -> None:
  """Removes what a killed preparation left (extracted files, TFDS's incomplete folder);
  called with the preparation lock held, so no living process owns them."""
  leftovers = list(downloads.glob('extracted-*'))
  leftovers += list(pathlib.Path(builder.data_dir).parent.glob('incomplete.*'))
  for path in leftovers:
    shutil.rmtree(path, ignore_errors=True)


def prepare(config: Mapping[str, Any]) -> None:
  """Prepares config.dataset in config.data_dir if it is not yet (see `_prepare`),
  without loading it: e.g. ahead of several processes that will load it."""
  _prepare(_builder(config), config)


def _prepare(builder, config: Mapping[str, Any]) -> None:
  """Prepares the dataset once: from manual files if all are there, else downloads.

  One process at a time per data dir (a file lock), so two runs started together do not
  prepare into each other's folders, and leftovers of a killed one can be removed.
  """
  if builder.is_prepared():
    return
  downloads = pathlib.Path(builder.data_dir_root) / 'downloads'
  lock = filelock.FileLock(downloads / '.cnn_jax_prepare.lock')
  try:
    downloads.mkdir(parents=True, exist_ok=True)
    lock.acquire()
  except OSError as e:
    raise DatasetUnavailableError(
        f"dataset {config['dataset']!r} is not prepared and cannot be prepared in "
        f'{_data_root(config)[1]}: {e.strerror}: {e.filename}; choose a directory that '
        'can be written with --config.data_dir=…') from None
  try:
    if builder.is_prepared():
      return
    _remove_leftovers(builder, downloads)
    _prepare_locked(builder, config, downloads)
  finally:
    lock.release()


def _prepare_locked(builder, config: Mapping[str, Any], downloads: pathlib.Path) -> None:
  name = config['dataset']
  manual_dir = _manual_dir(config)
  files = _manual_files(builder, manual_dir) if manual_dir else {}
  missing = [path.name for path in files if not path.is_file()]
  urls = list(builder.url_infos or ())
  advice = (f'Prepare it where the network works (python -c "import tensorflow_datasets '
            f"as tfds; tfds.builder('{name}').download_and_prepare()\") and copy the "
            f'TFDS data dir here (--config.data_dir=…), or put its files in '
            f'--config.manual_dir=DIR.')
  have_files = bool(files) and not missing
  if not have_files and urls and not _reachable(urls[0]):
    host = urllib.parse.urlparse(urls[0]).hostname
    lacking = ('' if not missing else f'{manual_dir} is a file, not a directory, and '
               if manual_dir.is_file() else f'{manual_dir} does not exist and '
               if not manual_dir.is_dir() else f'{manual_dir} lacks {", ".join(missing)} and ')
    raise DatasetUnavailableError(
        f'dataset {name!r} is not prepared in {builder.data_dir} and cannot be '
        f'downloaded: {lacking}{host} is unreachable. {advice}')
  if have_files:
    _check_manual_files(files, name)
  extract_dir = downloads / f'extracted-{uuid.uuid4().hex[:8]}'
  tfds = _tfds_with_tensorflow()
  download_config = tfds.download.DownloadConfig(
      manual_dir=str(manual_dir) if manual_dir else None, extract_dir=str(extract_dir),
      try_download_gcs=False)
  source = f'the files in {manual_dir}' if have_files else 'a download'
  logging.info('Preparing %s once from %s into %s (seconds to a minute; later runs read '
               'the prepared arrays)', name, source, builder.data_dir)
  try:
    # TFDS's own line ("Downloading and preparing dataset Unknown size") says less than
    # the one above.
    with contextlib.redirect_stdout(io.StringIO()):
      builder.download_and_prepare(download_config=download_config)
  except Exception as e:  # TFDS raises many kinds; the user needs one message.
    raise DatasetUnavailableError(
        f'dataset {name!r} could not be prepared in {builder.data_dir}: '
        f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}. {advice}'
    ) from e
  finally:  # The prepared records are all that is read later.
    shutil.rmtree(extract_dir, ignore_errors=True)


def load_dataset(config: Mapping[str, Any]) -> tuple[DatasetSpec, Split, Split]:
  """(spec, train, test) as uint8 images and int32 labels, sliced per the config.

  Kept per process, read-only (a sweep's runs share them), and on disk (see the module
  docstring).
  """
  return _load_dataset(*(config[k] for k in _DATA_FIELDS))


# Below <data dir>/cnn_jax_arrays/<dataset>-tfds<version>/: info.json (the spec, and
# which prepared dataset the arrays came from) and one .npz per split and slice.
_ARRAYS_DIR = 'cnn_jax_arrays'


def _arrays_dir(config: Mapping[str, Any]) -> pathlib.Path | None:
  """Found without TFDS's import; TFDS's version is in the name because it decides
  what an unversioned dataset name means. None for a remote data dir (gs://…)."""
  root = _local_data_root(config)
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
                'max_test_examples')


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
  builder = _builder(config)
  spec = _spec(builder, config)
  _prepare(builder, config)
  stamp = _save_info(directory, spec, builder)
  tfds = _tfds_with_tensorflow()
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
