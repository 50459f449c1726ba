"""What every sweep script shares: flags, the progress display, the results at the end.

python -m experiments.<name> [--workdir=runs/<name>] [--seeds=5] [--shard=0/1]
                             [--config.num_epochs=2 ...]
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
from typing import Any, Sequence, TextIO

from absl import flags
from ml_collections import config_flags
import tqdm

from cnn_jax import claims, provenance, results, sweep
from cnn_jax.errors import ConfigError
from experiments import cli

FLAGS = flags.FLAGS


def parse_shard(text: str) -> tuple[int, int]:
  """'i/n' → (i, n): this machine's share of a sweep spread over n machines."""
  try:
    index, count = (int(x) for x in text.split('/'))
  except ValueError:
    index, count = -1, 0
  if not 0 <= index < count:
    raise ConfigError(f'--shard={text} is invalid: expected i/n with 0 <= i < n, e.g. 0/4')
  return index, count


def vmap_seeds_choice(flag: str) -> bool:
  """The --vmap_seeds flag ('auto', 'true', 'false') as a decision. auto: seeds train
  together only where JAX has an accelerator plugin (asked without importing JAX): on
  XLA:CPU it was slower than one seed after another."""
  if flag == 'auto':
    return any(importlib.util.find_spec(m) for m in (
        'jax_cuda12_plugin', 'jax_cuda13_plugin', 'jax_rocm7_plugin', 'libtpu'))
  return flag == 'true'


def define_training_flags(what: str) -> None:
  """--restart_changed and --vmap_seeds, which a sweep and the study both take."""
  flags.DEFINE_bool('restart_changed', False, 'Runs already in --workdir that were '
                    'trained with another config are deleted and trained again (without '
                    f'it, the {what} stops before training and names the changed fields).')
  flags.DEFINE_enum('vmap_seeds', 'auto', ['auto', 'true', 'false'], 'Train the seeds '
                    'of each configuration together in one program (jax.vmap). auto: '
                    'only with an accelerator (on CPU it measured slower).')


def define_flags(name: str) -> None:
  flags.DEFINE_string('workdir', f'runs/{name}', 'The sweep\'s directory; one '
                      'subdirectory per run. Rerunning skips finished runs.')
  flags.DEFINE_integer('seeds', None, 'Seeds per configuration: 0, 1, ..., seeds - 1 '
                       '(default: the sweep config\'s SEEDS, else 5).')
  flags.DEFINE_string('claims', 'configs/study.py', 'A study config whose CLAIMS on this '
                      'sweep its page tests as REPORT.md does (\'\': none).')
  flags.DEFINE_string('shard', '0/1', 'i/n: train only configurations i, i+n, i+2n, ... '
                      'of the grid, to spread one sweep over n machines that run the same '
                      'command (e.g. a Slurm array job) on a shared --workdir.')
  define_training_flags('sweep')
  cli.define_config(f'configs/{name}.py', 'Sweep config: the '
                                  'base training config, its GRID and BASELINE.')


class Progress:
  """A sweep's progress over the epochs it has left to train (tqdm's rate and ETA).
  On a terminal: one bar (runs done, the latest test accuracy) and a line above it per
  finished run. Otherwise (a log file): a line per finished epoch and run. Several
  sweeps share one Progress (experiments.study) by naming `total_epochs` and
  `total_runs` up front; the tuning runs (a 'start' with 'tuning') add to them."""

  def __init__(self, stream: TextIO = sys.stderr, total_epochs: int | None = None,
               total_runs: int | None = None):
    self._stream = stream
    self._tty = stream.isatty()
    self._fixed_total = total_epochs is not None
    self._fixed_runs = total_runs is not None
    self._runs_total, self._runs_done = total_runs or 0, 0
    if self._tty:
      self._bar = tqdm.tqdm(total=total_epochs or 0, unit='epoch', file=stream,
                            dynamic_ncols=True)
    else:  # Never drawn: its text goes into the lines.
      self._devnull = open(os.devnull, 'w')  # pylint: disable=consider-using-with
      self._bar = tqdm.tqdm(total=total_epochs or 0, file=self._devnull,
                            bar_format='{n}/{total} epochs, {elapsed} elapsed, eta '
                                       '{remaining}')

  def __call__(self, kind: str, info: Any) -> None:
    if kind == 'start':
      runs, pending = info['runs'], info['pending']
      # Tuning runs are found as the search grows: the fixed totals never had them.
      unplanned = info.get('tuning', False)
      if not self._fixed_runs or unplanned:
        self._runs_total += len(runs)
      self._runs_done += len(runs) - len(pending)
      if not self._fixed_total or unplanned:
        self._bar.total += sum(info['num_epochs'] - info['epochs_done'][r.name]
                               for r in pending)
      self._line(f'{len(runs)} runs, {len(runs) - len(pending)} already finished; '
                 f'training {len(pending)}')
    elif kind == 'epoch':
      self._bar.update(1)
      text = (f"{info['run']}: epoch {info['epoch']}/{info['num_epochs']} validation "
              f"accuracy {100 * info['validation_accuracy']:.2f}%")
      if self._tty:
        self._bar.set_postfix_str(f'{self._runs_done}/{self._runs_total} runs; {text}')
      else:
        self._line(text)
    elif kind == 'run':
      self._runs_done += 1
      self._line(f'{info.run.name}: {info.status}' + (f': {info.error}' if info.error
                                                      else ''))

  def _line(self, message: str) -> None:
    if self._tty:
      self._bar.write(message, file=self._stream)
      self._bar.refresh()
    else:
      self._stream.write(f'[{self._runs_done}/{self._runs_total} runs] {self._bar}  '
                         f'{message}\n')
      self._stream.flush()

  def close(self) -> None:
    self._bar.close()
    if not self._tty:
      self._devnull.close()


def exit_on_failures(outcomes: Sequence[Any]) -> None:
  """Names each run that failed (`sweep.Outcome`s), one line each, and exits 1 if any."""
  failed = [o for o in outcomes if o.status == 'failed']
  for o in failed:
    print(f'error: {o.run.name} failed: {o.error}', file=sys.stderr)
  if failed:
    sys.exit(1)


def name_from_argv(argv: Sequence[str]) -> str:
  """The sweep a `python -m experiments.sweep --config=configs/<name>.py` command names:
  its config file's stem (before absl parses the flags, which need it for defaults)."""
  for i, arg in enumerate(argv[1:], start=1):
    value = (arg.split('=', 1)[1] if arg.startswith('--config=')
             else argv[i + 1] if arg == '--config' and i + 1 < len(argv) else None)
    if value:
      return pathlib.Path(value.split(':', 1)[0]).stem
  if any(arg in cli.HELP_ARGS for arg in argv[1:]):
    return 'dropout_sweep'  # Help lists the flags; this sweep's config is the example.
  print('error: --config is required: the sweep config, e.g. '
        '--config=configs/dropout_sweep.py', file=sys.stderr)
  sys.exit(2)


def main(name: str, module: str | None = None) -> None:
  """Runs the sweep `name` (configs/<name>.py) and writes its results; `module`: the
  entry point the results record (default experiments.<name>)."""
  define_flags(name)

  def run(argv):
    if len(argv) > 1:
      raise ConfigError(f'unexpected arguments {argv[1:]}')
    config_file = config_flags.get_config_filename(FLAGS['config'])
    grid, baseline, search, strata = sweep.load_grid(config_file)
    seeds = range(FLAGS.seeds or getattr(sweep.load_config_module(config_file)[1],
                                         'SEEDS', 5))
    declared = []
    if FLAGS.claims and pathlib.Path(FLAGS.claims).exists():
      declared = claims.load(FLAGS.claims, name)
    elif FLAGS.claims and FLAGS['claims'].present:
      raise ConfigError(f'--claims={FLAGS.claims}: no such file: expected a study config '
                        "such as configs/study.py, or '' for none")
    shard = parse_shard(FLAGS.shard)
    vmap_seeds = vmap_seeds_choice(FLAGS.vmap_seeds)
    command = provenance.command_line(module or f'experiments.{name}')
    progress = Progress()
    try:
      outcomes = sweep.run_sweep(name, FLAGS.config, grid, baseline, seeds, FLAGS.workdir,
                                 shard=shard, vmap_seeds=vmap_seeds,
                                 restart_changed=FLAGS.restart_changed, command=command,
                                 progress=progress, search=search, strata=strata)
    finally:
      progress.close()
    markdown, _ = results.write_results(FLAGS.workdir, declared=declared)
    print(markdown)
    print(f'Results: {FLAGS.workdir}/results.md, runs.csv, results.png; '
          f'TensorBoard: tensorboard --logdir={FLAGS.workdir}')
    exit_on_failures(outcomes)

  cli.run(run)
