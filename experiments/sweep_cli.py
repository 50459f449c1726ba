"""What every sweep script shares: flags, the progress display, the results at the end.

python -m experiments.<name> [--workdir=runs/<name>] [--seeds=3] [--shard=0/1]
                             [--config.num_epochs=2 ...]
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from absl import flags
from ml_collections import config_flags

from cnn_jax import provenance, results, run_metrics, sweep
from cnn_jax.options import ConfigError
from experiments import cli

FLAGS = flags.FLAGS


def define_flags(name: str) -> None:
  flags.DEFINE_string('workdir', f'runs/{name}', 'The sweep\'s directory; one '
                      'subdirectory per run. Rerunning skips finished runs.')
  flags.DEFINE_integer('seeds', 3, 'Seeds per configuration: 0, 1, ..., seeds - 1.')
  flags.DEFINE_string('shard', '0/1', 'i/n: train only configurations i, i+n, i+2n, ... '
                      'of the grid, to spread one sweep over n machines that run the same '
                      'command (e.g. a Slurm array job) on a shared --workdir.')
  flags.DEFINE_bool('restart_changed', False, 'Runs already in --workdir that were '
                    'trained with another config are deleted and trained again (without '
                    'it, the sweep stops and names the changed fields).')
  flags.DEFINE_enum('vmap_seeds', 'auto', ['auto', 'true', 'false'], 'Train the seeds '
                    'of each configuration together in one program (jax.vmap). auto: '
                    'only with an accelerator (on CPU it measured slower).')
  cli.define_config(f'configs/{name}.py', 'Sweep config: the '
                                  'base training config, its GRID and BASELINE.')


class Progress:
  """A bar on a terminal (runs done/total, running runs' epochs, ETA); plain lines
  otherwise, one per finished epoch and run."""

  def __init__(self, stream: TextIO = sys.stderr):
    self._stream = stream
    self._tty = stream.isatty()
    self._start = time.perf_counter()

  def __call__(self, kind: str, info: Any) -> None:
    if kind == 'start':
      runs, pending = info['runs'], info['pending']
      self._total, self._done = len(runs), len(runs) - len(pending)
      self._epochs = {r.name: info['epochs_done'][r.name] for r in pending}
      self._num_epochs = {}
      self._last_event = {}
      self._epoch_seconds = []
      self._print(f'{self._total} runs, {self._done} already finished; training '
                  f'{len(pending)}', newline=True)
    elif kind == 'epoch':
      name, now = info['run'], time.perf_counter()
      self._epoch_seconds.append(now - self._last_event.get(name, self._start)
                                 if name in self._last_event else info['train_seconds'])
      self._last_event[name] = now
      self._epochs[name] = info['epoch']
      self._num_epochs[name] = info['num_epochs']
      line = (f"{name}: epoch {info['epoch']}/{info['num_epochs']} test accuracy "
              f"{100 * info['test_accuracy']:.2f}%")
      self._print(line, newline=not self._tty)
    elif kind == 'run':
      self._done += 1
      self._epochs.pop(info.run.name, None)
      status = info.status + (f': {info.error}' if info.error else '')
      self._print(f'{info.run.name}: {status}', newline=True)

  def _eta(self) -> float:
    per_run = max(self._num_epochs.values(), default=0)
    left = sum(max(per_run, self._num_epochs.get(n, per_run)) - e
               for n, e in self._epochs.items())
    return sweep.eta_seconds(left, self._epoch_seconds)

  def _print(self, message: str, newline: bool) -> None:
    status = (f'[{self._done}/{self._total} runs] '
              f'elapsed {run_metrics.format_duration(time.perf_counter() - self._start)} '
              f'eta {run_metrics.format_duration(self._eta())}')
    if self._tty:
      width = 30
      filled = int(width * self._done / max(1, self._total))
      running = ' '.join(f'{n} {e}/{self._num_epochs.get(n, "?")}'
                         for n, e in self._epochs.items() if n in self._last_event)
      bar = f'\r\033[K|{"#" * filled}{"." * (width - filled)}| {status} {running}'
      if newline:
        self._stream.write(f'\r\033[K{message}\n')
      self._stream.write(bar[:200])
    else:
      self._stream.write(f'{status}  {message}\n')
    self._stream.flush()


def main(name: str) -> None:
  """Runs the sweep `name` (configs/<name>.py) and writes its results."""
  define_flags(name)

  def run(argv):
    if len(argv) > 1:
      raise ConfigError(f'unexpected arguments {argv[1:]}')
    config_file = config_flags.get_config_filename(FLAGS['config'])
    grid, baseline = sweep.load_grid(config_file)
    seeds = range(FLAGS.seeds)
    shard = sweep.parse_shard(FLAGS.shard)
    vmap_seeds = (sweep.default_vmap_seeds() if FLAGS.vmap_seeds == 'auto'
                  else FLAGS.vmap_seeds == 'true')
    command = provenance.command_line(f'experiments.{name}')
    outcomes = sweep.run_sweep(name, FLAGS.config, grid, baseline, seeds, FLAGS.workdir,
                               shard=shard, vmap_seeds=vmap_seeds,
                               restart_changed=FLAGS.restart_changed, command=command,
                               progress=Progress())
    sys.stderr.write('\n')
    markdown, _ = results.write_results(FLAGS.workdir, command)
    print(markdown)
    print(f'Results: {FLAGS.workdir}/results.md, results.csv, results.png; '
          f'TensorBoard: tensorboard --logdir={FLAGS.workdir}')
    failed = [o for o in outcomes if o.status == 'failed']
    if failed:
      for o in failed:
        print(f'error: {o.run.name} failed: {o.error}', file=sys.stderr)
      sys.exit(1)

  cli.run(run)
