"""Preparing a TFDS dataset once, offline where its files ship (MNIST: data/mnist):
TFDS's builder and data dir, the manual files checked against TFDS's checksums before
anything is extracted, a lock so that one process prepares a data dir at a time, and
what a killed preparation left removed.

TFDS is imported without TensorFlow for a dataset's info; TensorFlow, kept off the
GPUs, only to prepare or read records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import logging as std_logging
import os
import pathlib
import shutil
import socket
import urllib.parse
import uuid
from typing import Any, Mapping

from absl import logging
import filelock

from cnn_jax.errors import ConfigError, DatasetUnavailableError

# Where the repo keeps manually downloaded dataset files, one folder per dataset.
DATA_ROOT = pathlib.Path(__file__).resolve().parent.parent / 'data'
# How long a run waits for another process preparing the same dataset (MNIST: under a
# minute) before it says so and stops.
PREPARE_WAIT_SECONDS = 1800


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  name: str
  input_shape: tuple[int, int, int]  # H, W, C
  num_classes: int
  image_key: str
  label_key: str


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
def tfds_with_tensorflow():
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


def local_data_root(config: Mapping[str, Any]) -> pathlib.Path | None:
  """The data dir on this machine's disk; None for a remote one (gs://…)."""
  root, _ = _data_root(config)
  return None if '://' in root else pathlib.Path(root).expanduser()


def tfds_builder(config: Mapping[str, Any]):
  local = local_data_root(config)
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


def spec(builder, config: Mapping[str, Any]) -> DatasetSpec:
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
  """Prepares config.dataset in config.data_dir if it is not yet (`prepare_builder`),
  without loading it: e.g. ahead of several processes that will load it."""
  prepare_builder(tfds_builder(config), config)


def prepare_builder(builder, config: Mapping[str, Any]) -> None:
  """Prepares the dataset once: from manual files if all are there, else downloads.

  One process at a time per data dir (a file lock), so two runs started together do not
  prepare into each other's folders, and leftovers of a killed one can be removed.
  """
  if builder.is_prepared():
    return
  downloads = pathlib.Path(builder.data_dir_root) / 'downloads'
  lock = filelock.FileLock(downloads / '.cnn_jax_prepare.lock',
                           timeout=PREPARE_WAIT_SECONDS)
  try:
    downloads.mkdir(parents=True, exist_ok=True)
    lock.acquire()
  except filelock.Timeout:
    raise DatasetUnavailableError(
        f"dataset {config['dataset']!r} is not prepared: another process has been "
        f'preparing it in {_data_root(config)[1]} for {PREPARE_WAIT_SECONDS} s (it holds '
        f'{lock.lock_file}); let it finish, or stop it, and run again') from None
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
  tfds = tfds_with_tensorflow()
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
