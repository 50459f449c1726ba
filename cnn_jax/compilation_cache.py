"""XLA's compiled programs kept on disk, so a rerun or the next run of a sweep skips
compiling them (docs/speed.md)."""

from __future__ import annotations

import hashlib
import os
import pathlib
import platform

from absl import logging

# JAX's own variables: a user who sets them has chosen, and is left alone.
_DIR_VARIABLE = 'JAX_COMPILATION_CACHE_DIR'
_SETTINGS = {  # jax config name -> (environment variable, value)
    'jax_persistent_cache_min_compile_time_secs':
        ('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', 0.2),  # JAX's 1 s skips eval steps.
    'jax_compilation_cache_max_size':
        ('JAX_COMPILATION_CACHE_MAX_SIZE', 1 << 30),  # Oldest entries go past 1 GiB.
}


def default_root() -> pathlib.Path:
  """$XDG_CACHE_HOME/cnn_jax/xla, or ~/.cache/cnn_jax/xla."""
  base = os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache'
  return pathlib.Path(base) / 'cnn_jax' / 'xla'


def host_signature(cpuinfo: str | None = None) -> str:
  """`machine-hash` of this CPU's instruction-set features.

  Why: XLA:CPU compiles for the host's features, and a home directory shared by
  machines with different CPUs would hand one machine's programs to another (XLA then
  refuses them and logs an error per program). `cpuinfo`: /proc/cpuinfo's text
  (read here on Linux; elsewhere the processor name stands in).
  """
  if cpuinfo is None:
    try:
      cpuinfo = pathlib.Path('/proc/cpuinfo').read_text()
    except OSError:
      cpuinfo = platform.processor()
  features = next((line.split(':', 1)[1].split() for line in cpuinfo.splitlines()
                   if line.split(':', 1)[0].strip() in ('flags', 'Features')), None)
  described = ' '.join(sorted(set(features))) if features is not None else cpuinfo
  return f'{platform.machine() or "unknown"}-{hashlib.sha256(described.encode()).hexdigest()[:12]}'


def enable(root: str | os.PathLike[str] | None) -> pathlib.Path | None:
  """Caches compiled programs under `root`/host_signature(); returns that directory.

  `root` None or '' turns caching off here (JAX's default); a JAX_COMPILATION_CACHE_DIR
  in the environment wins over `root`. Processes started later (sweep workers) inherit
  the setting through the environment. Call before the first compile.
  """
  if os.environ.get(_DIR_VARIABLE):
    return pathlib.Path(os.environ[_DIR_VARIABLE])
  if not root:
    return None
  directory = pathlib.Path(root).expanduser() / host_signature()
  try:
    directory.mkdir(parents=True, exist_ok=True)
  except OSError as e:  # A read-only home, say: run, just without the cache.
    logging.warning('Not caching compiled programs in %s: %s', directory, e)
    return None
  os.environ[_DIR_VARIABLE] = str(directory)
  import jax  # pylint: disable=g-import-not-at-top  # Not needed to name the folder.
  jax.config.update('jax_compilation_cache_dir', str(directory))
  for name, (variable, value) in _SETTINGS.items():
    os.environ.setdefault(variable, str(value))
    jax.config.update(name, type(value)(os.environ[variable]))
  return directory
