"""Training: one `train_and_evaluate(config, workdir)`, and `train_seeds` for N seeds of
one configuration trained together, through the same epoch loop.

Set-up builds the data, model, mesh and device loop; restore finds where each run
stands; each epoch then runs K steps per dispatch on the device
(`cnn_jax.device_loop`) and ends with evaluation, checkpoints, TensorBoard and
metrics.json for every run (`cnn_jax.run_directory`). Data parallel by construction: a
`jax.jit` over a mesh of every device (1 or many, on 1 or many hosts), state
replicated, batch split along 'data'. Data order and dropout keys derive from
(seed, epoch, step) alone, so a resumed run, a run with another K, on another number of
devices, or trained beside other seeds, ends on the same parameters.
"""

from __future__ import annotations

import json
import pathlib
import signal
import sys
import threading
import time
from typing import Any, Callable, Sequence

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import tqdm

from cnn_jax import device_loop, errors, geometry, input_pipeline, models, options, parallel
from cnn_jax import run_metrics, steps
from cnn_jax.errors import Interrupted, NonFiniteLossError
from cnn_jax.run_directory import Position, RunDirectory

# on_epoch_end(run index, the epoch's record, that run's state).
EpochCallback = Callable[[int, dict[str, Any], steps.TrainState], None]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                       *, hparams_group: str | None = None,
                       compared: Sequence[str] = (),
                       on_epoch_end: EpochCallback | None = None,
                       allow_config_change: bool = False) -> dict[str, Any]:
  """Trains per `config` in `workdir`, evaluating, logging and checkpointing every
  epoch; returns its metrics.json. See `train_seeds`, of which this is one seed."""
  return train_seeds(config, [config.seed], [workdir], hparams_group=hparams_group,
                     compared=compared, on_epoch_end=on_epoch_end,
                     allow_config_change=allow_config_change)[0]


def train_seeds(config: ml_collections.ConfigDict, seeds: Sequence[int],
                workdirs: Sequence[str | pathlib.Path], *,
                hparams_group: str | None = None, compared: Sequence[str] = (),
                on_epoch_end: EpochCallback | None = None,
                allow_config_change: bool = False) -> list[dict[str, Any]]:
  """Trains `config` once per seed, all in one program, run i in `workdirs[i]`; returns
  each run's metrics.json.

  Rerun on the same workdirs, it resumes where they stopped (all runs must stand at
  the same step). Each workdir gets config.json, TensorBoard events (with
  `hparams_group` naming the HParams dashboard's group, `compared` the fields it shows
  first), checkpoints and metrics.json,
  written by process 0. `on_epoch_end(i, record, state)` runs in every process after
  run i's epoch is saved. A workdir holding another configuration is refused unless
  `allow_config_change`. SIGTERM/SIGINT (in any process): every process stops at the
  same dispatch boundary, saves a mid-epoch checkpoint and raises `errors.Interrupted`.
  A NaN/Inf loss marks the runs it hit as failed and raises
  `errors.NonFiniteLossError`.
  """
  trainer = Trainer(config, seeds, workdirs, allow_config_change)
  try:
    trainer.restore(hparams_group, compared)
    with StopSignal() as stop:
      for epoch in range(trainer.position.epoch + 1, config.num_epochs + 1):
        totals, seconds, first = trainer.train_epoch(epoch, stop)
        trainer.end_epoch(epoch, totals, seconds, first, on_epoch_end)
  finally:
    trainer.close()
  return [run.write_metrics() for run in trainer.runs]


def steps_per_dispatch(config: dict[str, Any], steps_per_epoch: int) -> int:
  """config.steps_per_dispatch as a number ('auto': per backend, see device_loop)."""
  value = config['steps_per_dispatch']
  if value == 'auto':
    return device_loop.auto_steps_per_dispatch(steps_per_epoch)
  return min(int(value), steps_per_epoch)


_BUILT: dict[str, tuple[Any, Any, Any]] = {}


def _model_and_optimizer(cfg: dict[str, Any], num_classes: int, steps_per_epoch: int
                         ) -> tuple[Any, Any, Any]:
  """(model, optimizer, jitted schedule), the same objects for every run of one
  configuration in this process (any seed): the jitted programs key on them, so the
  next run (a sweep's next seed, a resumed run) skips tracing and lowering them."""
  key = json.dumps([{k: v for k, v in cfg.items() if k != 'seed'}, num_classes,
                    steps_per_epoch], sort_keys=True, default=str)
  if key not in _BUILT:
    if len(_BUILT) >= 8:  # A sweep's configurations come one after another.
      _BUILT.clear()
    tx, schedule = steps.create_optimizer(cfg, steps_per_epoch)
    # The schedule is read on the host at each log: one compiled program, not a dozen
    # op by op.
    _BUILT[key] = (models.create_model(cfg, num_classes), tx, jax.jit(schedule))
  return _BUILT[key]


class Trainer:
  """The runs of one configuration, their states on the devices, and the epoch loop's
  parts: set-up (here), restore, train an epoch, end an epoch."""

  def __init__(self, config: ml_collections.ConfigDict, seeds: Sequence[int],
               workdirs: Sequence[str | pathlib.Path], allow_config_change: bool):
    options.validate_config(config.to_dict())
    configs = [dict(config.to_dict(), seed=s) for s in seeds]
    for c in configs:
      options.validate_config(c)
    if not seeds or len(seeds) != len(workdirs) or len(set(seeds)) != len(seeds):
      raise ValueError(f'expected one workdir per distinct seed, got seeds {list(seeds)} '
                       f'and {len(workdirs)} workdirs')
    cfg = self.config = configs[0]
    # A progress bar on a terminal at INFO verbosity (a sweep shows its own instead).
    self.bar = tqdm.tqdm(disable=True)
    self.dp = parallel.DataParallel.create(cfg['batch_size'], cfg['eval_batch_size'])
    self.dp.check_batch_size('batch_size', cfg['batch_size'])
    self.dp.check_batch_size('eval_batch_size', cfg['eval_batch_size'])
    if self.dp.num_devices < jax.device_count():
      logging.warning('Training on %d of %d devices: the most that split batch_size=%d '
                      'and eval_batch_size=%d evenly', self.dp.num_devices,
                      jax.device_count(), cfg['batch_size'], cfg['eval_batch_size'])
    # Workdirs are read before the dataset's info (TFDS takes seconds to import) and
    # written after the geometry is known to fit it.
    for workdir, c in zip(workdirs, configs):
      options.check_workdir(pathlib.Path(workdir), c, allow_config_change)
    spec = input_pipeline.dataset_spec(cfg)
    table = options.validate_geometry(cfg, spec.input_shape, spec.num_classes)
    self.runs: list[RunDirectory] = []
    try:
      for workdir, c in zip(workdirs, configs):
        self.runs.append(RunDirectory(workdir, c))
      self._set_up(seeds, table)
    except BaseException:
      self.close()  # Orbax's threads must not outlive an error here.
      raise

  def _set_up(self, seeds: Sequence[int], table: list[geometry.Layer]) -> None:
    """The data on the devices, the initial states, and the facts every run records."""
    cfg = self.config
    spec, train_split, test_split = input_pipeline.load_dataset(cfg)
    if cfg['batch_size'] > len(train_split.labels):
      raise errors.ConfigError(
          f"config.batch_size={cfg['batch_size']} is invalid: expected at most the "
          f'{len(train_split.labels)} training examples')
    self.loop = device_loop.DeviceLoop.create(
        self.dp, len(seeds), cfg['batch_size'], cfg['eval_batch_size'], train_split,
        test_split)
    self.steps_per_epoch = self.loop.steps_per_epoch
    self.steps_per_dispatch = steps_per_dispatch(cfg, self.steps_per_epoch)
    self.seeds = self.dp.replicate(np.asarray(seeds, np.int32))
    model, tx, self.schedule = _model_and_optimizer(cfg, spec.num_classes,
                                                    self.steps_per_epoch)
    states = steps.create_train_states(seeds, model, spec.input_shape, tx,
                                       self.dp.replicated)
    self.position = Position(0, 0, states)
    num_params = sum(x.size // len(seeds) for x in jax.tree.leaves(states.params))
    self.log('%s on %s: %s parameters (layer table: %s), %d seed(s), %d steps/epoch, '
             '%d per dispatch, on %d device(s), %d process(es)', cfg['model'],
             spec.name, f'{num_params:,}', f'{geometry.count_params(table):,}',
             len(seeds), self.steps_per_epoch, self.steps_per_dispatch,
             self.dp.num_devices, jax.process_count())
    kind = jax.devices()[0].device_kind
    facts = dict(num_params=num_params, dataset=spec.name,
                 device=f'{kind} × {self.dp.num_devices}' if self.dp.num_devices > 1
                 else kind, processes=jax.process_count(), compile_seconds=0.0,
                 steps_per_dispatch=self.steps_per_dispatch)
    if len(seeds) > 1:
      facts['seeds_trained_together'] = len(seeds)
    for run in self.runs:
      run.facts.update(facts)

  def log(self, *args: Any) -> None:
    if not parallel.is_primary():
      return
    if self.bar.disable:
      logging.info(*args)
    else:  # Above the bar, which would otherwise be cut by the line.
      self.bar.write(args[0] % args[1:], file=sys.stderr)

  def restore(self, hparams_group: str | None, compared: Sequence[str] = ()) -> None:
    """Every run's newest readable checkpoint; they must agree on where they stand."""
    states = self.position.state
    one_zero = jax.tree.map(lambda x: x[0], self.loop.zero_totals())
    found = [run.restore(steps.seed_state(states, i), one_zero, self.steps_per_epoch)
             for i, run in enumerate(self.runs)]
    where = sorted({(p.epoch, p.index) for p in found})
    if len(where) > 1:
      raise ValueError(f'the runs stand at different (epoch, step): {where}; resume '
                       'each alone')
    (epoch, index), = where
    if epoch or index:
      totals = self._stack([p.totals for p in found]) if index else None
      self.position = Position(epoch, index, self._stack([p.state for p in found]),
                               totals)
      if epoch >= self.config['num_epochs']:
        self.log('%s: already complete (%d epochs); results in metrics.json there, the '
                 'table: python -m experiments.summarize --workdir=%s',
                 ', '.join(str(r.path) for r in self.runs), epoch, self.runs[0].path)
      else:
        self.log('Resumed %s after epoch %d, step %d',
                 ', '.join(str(r.path) for r in self.runs), epoch, index)
    for run in self.runs:
      run.open_writer(not (epoch or index), hparams_group, compared)
    total = self.config['num_epochs'] * self.steps_per_epoch
    self.bar = tqdm.tqdm(
        total=total, initial=min(total, epoch * self.steps_per_epoch + index),
        unit='step', dynamic_ncols=True, file=sys.stderr,
        disable=not (parallel.is_primary() and sys.stderr.isatty()
                     and logging.get_verbosity() >= logging.INFO))

  def _stack(self, trees: list[Any]) -> Any:
    return jax.jit(lambda *t: steps.stack_states(t),
                   out_shardings=self.dp.replicated)(*trees)

  def train_epoch(self, epoch: int, stop: StopSignal) -> tuple[Any, float, int]:
    """Runs the epoch's remaining steps, K per dispatch; returns its running sums on
    the host, the training seconds (compiling excluded) and the step it started at.
    Stops, checks and logs at dispatch boundaries."""
    p, loop, total = self.position, self.loop, self.steps_per_epoch
    first = p.index if p.epoch == epoch - 1 else 0
    states, totals = p.state, p.totals if first else loop.zero_totals()
    start, compiled = time.perf_counter(), loop.compile_seconds
    orders = loop.orders(self.seeds, epoch)
    done, log_every = first, self.config['log_every_steps']
    offset = (epoch - 1) * total  # Logs fall every log_every_steps global steps.
    window = (first, parallel.to_host(totals)) if first else (0, None)
    self.bar.set_description(f"epoch {epoch}/{self.config['num_epochs']}", False)
    while done < total:
      count = min(self.steps_per_dispatch, total - done)
      states, totals = loop.run(states, totals, orders, self.seeds, epoch, done, count)
      before, done = done, done + count
      self.position = Position(epoch - 1, done, states, totals)
      if _stop_agreed(stop):
        self._save_interrupted(epoch, stop.requested)
      if (offset + done) // log_every > (offset + before) // log_every or done == total:
        host = parallel.to_host(totals)  # Waits for the device, once for all three.
        self._check_finite(host, epoch)
        if done < total:
          self._log_progress(epoch, host, first, start, loop.compile_seconds - compiled)
        self.bar.update(done - window[0])  # Draws the bar with the new figures once.
        window = self._log_window(epoch, host, window)
    compiled = loop.compile_seconds - compiled
    for run in self.runs:
      run.facts['compile_seconds'] = loop.compile_seconds
    return parallel.to_host(totals), time.perf_counter() - start - compiled, first

  def _log_window(self, epoch: int, totals: Any, window: tuple[int, Any]
                  ) -> tuple[int, Any]:
    """TensorBoard's training curves: each run's mean train loss and accuracy over the
    steps since the last log (`window`: its first step and the sums there; `totals`:
    the sums now, on the host), and the learning rate, at the global step. Returns the
    next window's start."""
    done = self.position.index
    since, before = window
    step = (epoch - 1) * self.steps_per_epoch + done
    rate = float(self.schedule(step - 1))  # The rate of the window's last update.
    for i, run in enumerate(self.runs):
      mean = {k: (totals[k][i] - (before[k][i] if before else 0)) / (done - since)
              for k in ('loss', 'accuracy')}
      run.log_train_scalars(step, mean['loss'], mean['accuracy'], rate)
    return done, totals

  def _log_progress(self, epoch: int, totals: Any, first: int, start: float,
                    compiled: float) -> None:
    done, total = self.position.index, self.steps_per_epoch
    loss = totals['loss'] / done
    elapsed = time.perf_counter() - start - compiled
    speed = f"{(done - first) * self.config['batch_size'] / elapsed:,.0f}"
    if not self.bar.disable:
      self.bar.set_postfix_str(f"loss {' '.join(f'{x:.4f}' for x in loss)}, {speed} ex/s",
                               refresh=False)
      return
    self.log('epoch %d/%d step %d/%d  loss %s  %s ex/s', epoch,
             self.config['num_epochs'], done, total, ' '.join(f'{x:.4f}' for x in loss),
             speed)

  def _save_interrupted(self, epoch: int, requested: str | None) -> None:
    p = self.position
    global_step = (epoch - 1) * self.steps_per_epoch + p.index
    saved = [run.save_interrupted(global_step, steps.seed_state(p.state, i),
                                  jax.tree.map(lambda x, i=i: x[i], p.totals))
             for i, run in enumerate(self.runs)]
    raise Interrupted(
        f"{requested or 'a signal to another process'}: stopped at epoch {epoch} step "
        f"{p.index}/{self.steps_per_epoch} and saved {', '.join(map(str, saved))}; rerun "
        'the same command to resume from there')

  def _check_finite(self, totals: Any, epoch: int) -> None:
    """NonFiniteLossError, with the runs it hit marked failed, if any loss was NaN/Inf
    (`totals`: the epoch's sums, on the host)."""
    bad_steps = totals['first_nonfinite_step']
    bad = [(run, int(b)) for run, b in zip(self.runs, bad_steps) if b >= 0]
    if not bad:
      return
    for run, step in bad:
      run.fail('non-finite loss', epoch, step + 1)
    run, step = bad[0]
    good = run.history[-1]['epoch'] if run.history else None
    raise NonFiniteLossError(
        f'the training loss became NaN or Inf at epoch {epoch}, step {step + 1}'
        + (f" in {', '.join(str(r.path) for r, _ in bad)}" if len(self.runs) > 1 else '')
        + '; the last good checkpoint is '
        + (f'epoch {good} in {run.checkpoints.directory}' if good
           else 'none (it diverged in epoch 1)')
        + '. Lower config.learning_rate or check the data')

  def end_epoch(self, epoch: int, totals: Any, train_seconds: float, first: int,
                on_epoch_end: EpochCallback | None) -> None:
    """Evaluates every seed, then saves and records the epoch in each run."""
    states = self.position.state
    tests = self.loop.evaluate(states)
    rate = float(self.schedule(int(parallel.to_host(states.step)[0]) - 1))
    examples = (self.steps_per_epoch - first) * self.config['batch_size']
    for i, (run, test) in enumerate(zip(self.runs, tests)):
      record = run_metrics.epoch_record(
          epoch, totals['loss'][i], totals['accuracy'][i], self.steps_per_epoch, test,
          rate, examples, train_seconds)
      state = steps.seed_state(states, i)
      run.end_epoch(record, state, global_step=epoch * self.steps_per_epoch)
      self.log('%sepoch %d/%d  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  '
               'lr %.2e  %s ex/s', f'{run.path.name}: ' if len(self.runs) > 1 else '',
               epoch, self.config['num_epochs'], record['train_loss'],
               100 * record['train_accuracy'], record['test_loss'],
               100 * record['test_accuracy'], record['learning_rate'],
               f"{record['examples_per_second']:,.0f}")
      if on_epoch_end:
        on_epoch_end(i, {**record, 'num_epochs': self.config['num_epochs']}, state)
    self.position = Position(epoch, 0, states)

  def close(self) -> None:
    self.bar.close()
    for run in self.runs:
      run.close()


def _stop_agreed(stop: StopSignal) -> bool:
  """Whether any process was asked to stop. Every process asks at the same dispatch
  boundaries, so all stop after the same step and save the same checkpoint."""
  if jax.process_count() == 1:
    return stop.requested is not None
  flags = multihost_utils.process_allgather(np.int32(stop.requested is not None))
  return bool(np.asarray(flags).any())


class StopSignal:
  """Within `with`, SIGTERM and SIGINT set `requested` instead of killing the process,
  so the training loop can finish its step and checkpoint. A second signal kills as
  usual. Only installed in the main thread (Python's rule for signal handlers)."""

  def __init__(self):
    self.requested: str | None = None
    self._previous = {}

  def __enter__(self) -> 'StopSignal':
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame) -> None:
    if self.requested:  # Second signal: stop now.
      signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
      signal.raise_signal(signum)
      return
    self.requested = signal.Signals(signum).name

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
