"""Compiled programs kept on disk: keyed by CPU, reused by the next process."""

import os
import subprocess
import sys

from cnn_jax import compilation_cache

_CPUINFO = 'processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nmodel name\t: X\n'


def test_host_signature_follows_the_instruction_set_only():
  same = compilation_cache.host_signature(_CPUINFO)
  assert compilation_cache.host_signature(
      'processor\t: 1\nflags\t\t: fma avx2 sse2 fpu\nmodel name\t: Y\n') == same
  assert compilation_cache.host_signature(
      'flags\t\t: fpu sse2 avx2 fma avx512f\n') != same
  assert compilation_cache.host_signature('Features\t: fp asimd\n') != same
  assert compilation_cache.host_signature('no flags here') != same


_SCRIPT = """
import sys
import jax, jax.numpy as jnp
from cnn_jax import compilation_cache
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event.endswith('cache_hits') else None)
print(compilation_cache.enable(sys.argv[1] or None))
jax.jit(lambda x: jnp.tanh(x @ x.T).sum())(jnp.ones((8, 8)))
print(len(hits))
"""


def _run(root, **env):
  env = {**{k: v for k, v in os.environ.items() if k != 'JAX_COMPILATION_CACHE_DIR'},
         'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0', **env}  # Tiny programs too.
  out = subprocess.run([sys.executable, '-c', _SCRIPT, str(root)], env=env, check=True,
                       capture_output=True, text=True).stdout.split()
  return out[0], int(out[1])


def test_the_next_process_reuses_compiled_programs(tmp_path):
  directory, hits = _run(tmp_path / 'cache')
  assert directory.startswith(str(tmp_path / 'cache')) and hits == 0
  assert any(p.name.startswith('jit_') for p in (tmp_path / 'cache').glob('*/*'))
  directory_again, hits = _run(tmp_path / 'cache')
  assert directory_again == directory and hits > 0
  # Off: nothing is cached or reused.
  assert _run('') == ('None', 0)


def test_jax_compilation_cache_dir_in_the_environment_wins(tmp_path):
  chosen = tmp_path / 'chosen'
  directory, _ = _run(tmp_path / 'ours', JAX_COMPILATION_CACHE_DIR=str(chosen))
  assert directory == str(chosen) and not (tmp_path / 'ours').exists()


def test_an_unwritable_cache_directory_only_turns_caching_off(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('a file where the cache directory should go')
  assert _run(blocker / 'cache') == ('None', 0)
