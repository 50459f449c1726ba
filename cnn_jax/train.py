"""Training: `train_and_evaluate(config, workdir)` for one run, and `train_seeds` for N
seeds of one configuration trained together, through the same loop.

Sections: set-up (`Setup`: the mesh, the data on it, the model, optimizer and programs
of one configuration), the loop (`train_seeds`), the trainer's parts it calls
(`Trainer`: restore, stop, check, end an epoch) and the console and TensorBoard
(`Logger`). Data parallel by construction: a `jax.jit` over a mesh of every device (1
or many, on 1 or many hosts), state replicated, batch split along 'data'. Data order
and dropout keys derive from (seed, epoch, step) alone, so a resumed run, a run with
another K, on another number of devices, or trained beside other seeds, ends on the
same parameters.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import signal
import sys
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np
import tqdm

from cnn_jax import device_loop, geometry, input_pipeline, models, options, parallel
from cnn_jax import provenance, run_metrics, steps
from cnn_jax.errors import ConfigError, Interrupted, NonFiniteLossError
from cnn_jax.run_directory import Position, RunDirectory

# on_epoch_end(run index, the epoch's record, that run's state).
EpochCallback = Callable[[int, dict[str, Any], steps.TrainState], None]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                       **kwargs: Any) -> dict[str, Any]:
  """Trains per `config` in `workdir`, evaluating, logging and checkpointing every
  epoch; returns its metrics.json. See `train_seeds`, of which this is one seed."""
  return train_seeds(config, [config.seed], [workdir], **kwargs)[0]


def train_seeds(config: ml_collections.ConfigDict, seeds: Sequence[int],
                workdirs: Sequence[str | pathlib.Path], *,
                kept: dict[int, Setup] | None = None, hparams_group: str | None = None,
                compared: Sequence[str] = (), on_epoch_end: EpochCallback | None = None,
                allow_config_change: bool = False) -> list[dict[str, Any]]:
  """Trains `config` once per seed, all in one program, run i in `workdirs[i]`; returns
  each run's metrics.json.

  Rerun on the same workdirs, it resumes where they stopped (all runs must stand at
  the same step). Each workdir gets config.json, TensorBoard events (`hparams_group`
  names the HParams dashboard's group, `compared` the fields it shows first),
  checkpoints and metrics.json, written by process 0. `kept`: where this
  configuration's `Setup` is kept between calls (a sweep passes one dict per
  configuration), so its next runs trace and compile nothing again.
  `on_epoch_end(i, record, state)` runs in every process after run i's epoch is saved.
  A workdir holding another configuration is refused unless `allow_config_change`.
  SIGTERM/SIGINT (in any process): every process stops at the same dispatch boundary,
  saves a mid-epoch checkpoint and raises `errors.Interrupted`. A NaN/Inf loss marks
  the runs it hit as failed and raises `errors.NonFiniteLossError`.
  """
  trainer = Trainer(config, seeds, workdirs, kept, allow_config_change)
  try:
    position = trainer.restore(hparams_group, compared)
    loop, spe, log = trainer.setup.loop, trainer.steps_per_epoch, trainer.log
    with StopSignal() as stop:
      for epoch in range(position.epoch + 1, trainer.num_epochs + 1):
        # Runs early stopping ended train on beside the others, but record nothing.
        live = [not stopped for stopped in trainer.stopped()]
        if not any(live):
          break
        first = position.index if position.epoch == epoch - 1 else 0
        states = position.state
        totals = position.totals if first else loop.zero_totals(states)
        orders = loop.orders(trainer.seeds, epoch)
        log.start_epoch(epoch, first, totals)
        for _, before, count in device_loop.dispatches(
            spe, trainer.steps_per_dispatch, (epoch - 1) * spe + first, spe - first):
          states, totals = loop.run(states, totals, orders, trainer.seeds, epoch, before,
                                    count)
          done = before + count
          if _stop_agreed(stop):
            trainer.save_stopped(epoch, done, states, totals, stop.requested)
          if log.due(epoch, before, done):
            host = parallel.to_host(totals)  # Waits for the device, once per log.
            check_finite(trainer.runs, host, epoch, live)
            log.progress(epoch, done, host, live)
        trainer.end_epoch(epoch, states, parallel.to_host(totals), first, live,
                          on_epoch_end, position.started if first else ())
        position = Position(epoch, 0, states)
    trainer.test_chosen(position.state)
  finally:
    trainer.close()
  return [run.write_metrics() for run in trainer.runs]


# --- Set-up: one configuration's mesh, data, model, optimizer and programs. ---

def setup_key(config: Mapping[str, Any], num_seeds: int) -> str:
  """What a `Setup` serves: the config but its seed, and the number of seeds."""
  return json.dumps([{k: v for k, v in config.items() if k != 'seed'}, num_seeds],
                    sort_keys=True, default=list)


@dataclasses.dataclass
class Setup:
  """What every run of one configuration (any seed) trains with, for `num_seeds` seeds
  together: the data on the mesh and the device loop's programs (`device_loop`), the
  model, the optimizer, and jitted init and schedule."""
  key: str
  spec: input_pipeline.DatasetSpec
  loop: device_loop.DeviceLoop
  model: Any
  init: Callable[[jax.Array], steps.TrainState]  # Seeds (int32) → stacked states.
  schedule: Callable[[int], jax.Array]  # Read on the host at each log: one program.
  test_examples: int
  stack: Callable[..., Any]  # Single-seed states → stacked, replicated.
  split: int | str  # The data's split seed (`input_pipeline.split_seed`).

  @classmethod
  def create(cls, config: Mapping[str, Any], num_seeds: int,
             dp: parallel.DataParallel) -> Setup:
    data = input_pipeline.load_dataset(config)
    spec = data.spec
    if config['batch_size'] > len(data.train.labels):
      raise ConfigError(
          f"config.batch_size={config['batch_size']} is invalid: expected at most the "
          f'{len(data.train.labels)} training examples')
    loop = device_loop.DeviceLoop.create(dp, num_seeds, config['batch_size'],
                                         config['eval_batch_size'], data.train,
                                         data.evaluated(config))
    model = models.create_model(config, spec.num_classes)
    tx, schedule = steps.create_optimizer(config, loop.steps_per_epoch)
    init = steps.init_states(model, spec.input_shape, tx, dp.replicated)
    return cls(setup_key(config, num_seeds), spec, loop, model, init, jax.jit(schedule),
               len(data.test.labels), jax.jit(lambda *trees: steps.stack_states(trees),
                                              out_shardings=dp.replicated),
               input_pipeline.split_seed(config))

  def with_split(self, config: Mapping[str, Any]) -> Setup:
    """This set-up on `config`'s split (split_seed='seed': another run seed's images),
    its programs kept."""
    data = input_pipeline.load_dataset(config)
    return dataclasses.replace(self, loop=self.loop.with_data(
        data.train, data.evaluated(config)), split=input_pipeline.split_seed(config))


def steps_per_dispatch(config: Mapping[str, Any], steps_per_epoch: int) -> int:
  """config.steps_per_dispatch as a number ('auto': per backend, see device_loop)."""
  value = config['steps_per_dispatch']
  if value == 'auto':
    return device_loop.auto_steps_per_dispatch(steps_per_epoch)
  return min(int(value), steps_per_epoch)


# --- The trainer: the runs of one configuration and the loop's parts. ---

class Trainer:
  """The runs of one configuration, their states on the devices, and what the loop
  calls: restore, save when stopped, end an epoch."""

  def __init__(self, config: ml_collections.ConfigDict, seeds: Sequence[int],
               workdirs: Sequence[str | pathlib.Path], kept: dict[int, Setup] | None,
               allow_config_change: bool):
    options.validate_config(config.to_dict())
    configs = [dict(config.to_dict(), seed=s) for s in seeds]
    for c in configs:
      options.validate_config(c)
    if not seeds or len(seeds) != len(workdirs) or len(set(seeds)) != len(seeds):
      raise ValueError(f'expected one workdir per distinct seed, got seeds {list(seeds)} '
                       f'and {len(workdirs)} workdirs')
    cfg = self.config = configs[0]
    self.num_epochs = cfg['num_epochs']
    dp = parallel.DataParallel.create(cfg['batch_size'], cfg['eval_batch_size'])
    dp.check_batch_size('batch_size', cfg['batch_size'])
    dp.check_batch_size('eval_batch_size', cfg['eval_batch_size'])
    if dp.num_devices < jax.device_count():
      logging.warning('Training on %d of %d devices: the most that split batch_size=%d '
                      'and eval_batch_size=%d evenly', dp.num_devices,
                      jax.device_count(), cfg['batch_size'], cfg['eval_batch_size'])
    # Workdirs are read before the dataset's info (TFDS takes seconds to import) and
    # written after the geometry is known to fit it.
    for workdir, c in zip(workdirs, configs):
      options.check_workdir(pathlib.Path(workdir), c, allow_config_change)
    spec = input_pipeline.dataset_spec(cfg)
    table = options.validate_geometry(cfg, spec.input_shape, spec.num_classes)
    self.runs: list[RunDirectory] = []
    self.log = Logger(self.runs, cfg)
    try:
      for workdir, c in zip(workdirs, configs):
        self.runs.append(RunDirectory(workdir, c))
      if len(seeds) > 1 and cfg['split_seed'] == 'seed':
        raise ConfigError("config.split_seed='seed' gives each seed its own images: "
                          'train them one by one (no vmap_seeds), or give a number')
      setup = (kept or {}).get(len(seeds))
      if setup is None or setup.key != setup_key(cfg, len(seeds)):
        setup = Setup.create(cfg, len(seeds), dp)
      elif setup.split != input_pipeline.split_seed(cfg):
        setup = setup.with_split(cfg)
      if kept is not None:
        kept[len(seeds)] = setup
      self._start(setup, seeds, table)
    except BaseException:
      self.close()  # Orbax's threads must not outlive an error here.
      raise

  def _start(self, setup: Setup, seeds: Sequence[int], table: list[geometry.Layer]
             ) -> None:
    """The initial states, and the facts every run records."""
    self.setup, loop, cfg = setup, setup.loop, self.config
    self.steps_per_epoch = loop.steps_per_epoch
    self.steps_per_dispatch = steps_per_dispatch(cfg, self.steps_per_epoch)
    self.seeds = loop.dp.replicate(np.asarray(seeds, np.int32))
    # What each epoch evaluates; the rest (the test sets) at the end (`test_chosen`).
    self.epoch_sets = [n for n in loop.evaluated if cfg['test_every_epoch']
                       or not input_pipeline.is_test_set(n)]
    self.initial = setup.init(np.asarray(seeds, np.int32))
    num_params = sum(x.size // len(seeds) for x in jax.tree.leaves(self.initial.params))
    self.log.line('%s on %s: %s parameters (layer table: %s), %d seed(s), %d steps/epoch,'
                  ' %d per dispatch, on %d device(s), %d process(es)', cfg['model'],
                  setup.spec.name, f'{num_params:,}', f'{geometry.count_params(table):,}',
                  len(seeds), self.steps_per_epoch, self.steps_per_dispatch,
                  loop.dp.num_devices, jax.process_count())
    kind = jax.devices()[0].device_kind
    facts = dict(num_params=num_params, multiply_adds=geometry.count_multiply_adds(table),
                 test_examples=setup.test_examples, dataset=setup.spec.name,
                 code_version=provenance.code_version(),
                 packages=provenance.package_versions(),
                 device=f'{kind} × {loop.dp.num_devices}' if loop.dp.num_devices > 1
                 else kind, processes=jax.process_count(), compile_seconds=0.0,
                 steps_per_dispatch=self.steps_per_dispatch)
    if len(seeds) > 1:
      facts['seeds_trained_together'] = len(seeds)
    for run in self.runs:
      run.facts.update(facts)
    self._compiled_before = loop.compile_seconds

  def restore(self, hparams_group: str | None, compared: Sequence[str] = ()
              ) -> Position:
    """Every run's newest readable checkpoint; they must agree on where they stand."""
    loop, spe = self.setup.loop, self.steps_per_epoch
    one_zero = jax.tree.map(lambda x: x[0], loop.zero_totals(self.initial))
    found = [run.restore(steps.seed_state(self.initial, i), one_zero, spe)
             for i, run in enumerate(self.runs)]
    where = sorted({(p.epoch, p.index) for p in found})
    if len(where) > 1:
      raise ValueError(f'the runs stand at different (epoch, step): {where}; resume '
                       'each alone')
    (epoch, index), = where
    position = Position(0, 0, self.initial)
    if epoch or index:
      totals = self._stack([p.totals for p in found]) if index else None
      started = tuple(sorted({k for p in found for k in p.started}))
      position = Position(epoch, index, self._stack([p.state for p in found]), totals,
                          started)
      if started:
        for run in self.runs:
          run.facts['sums_started_mid_epoch'] = {'epoch': epoch + 1, 'step': index,
                                                 'metrics': list(started)}
        self.log.line('%s: the mid-epoch checkpoint has no running sum of %s (a metric '
                      'added since): it starts at step %d, and epoch %d records train_%s '
                      'as NaN', ', '.join(str(r.path) for r in self.runs),
                      ', '.join(started), index, epoch + 1, ', train_'.join(started))
      paths = ', '.join(str(r.path) for r in self.runs)
      if epoch >= self.num_epochs or all(self.stopped()):
        self.log.line('%s: already complete (%d epochs); results in metrics.json there, '
                      'the table: python -m experiments.summarize --workdir=%s', paths,
                      epoch, self.runs[0].path)
      else:
        self.log.line('Resumed %s after epoch %d, step %d', paths, epoch, index)
    for run in self.runs:
      run.open_writer(not (epoch or index), hparams_group, compared)
    self.log.open(self.setup, epoch * spe + index)
    return position

  def _stack(self, trees: list[Any]) -> Any:
    return self.setup.stack(*trees)

  def save_stopped(self, epoch: int, done: int, states: steps.TrainState, totals: Any,
                   requested: str | None) -> None:
    """Saves every run after `done` steps of `epoch` and raises Interrupted."""
    global_step = (epoch - 1) * self.steps_per_epoch + done
    saved = [run.save_interrupted(global_step, steps.seed_state(states, i),
                                  jax.tree.map(lambda x, i=i: x[i], totals))
             for i, run in enumerate(self.runs)]
    raise Interrupted(
        f"{requested or 'a signal to another process'}: stopped at epoch {epoch} step "
        f"{done}/{self.steps_per_epoch} and saved {', '.join(map(str, saved))}; rerun "
        'the same command to resume from there')

  def end_epoch(self, epoch: int, states: steps.TrainState, totals: Any, first: int,
                live: Sequence[bool], on_epoch_end: EpochCallback | None,
                started: Sequence[str] = ()) -> None:
    """Evaluates every seed, then saves and records the epoch in each live run
    (`totals`: the epoch's sums on the host; `first`: the step this process started it
    at; `started`: metrics summed from there only, recorded as NaN: no mean of the
    epoch)."""
    loop = self.setup.loop
    for run in self.runs:
      run.facts['compile_seconds'] = loop.compile_seconds - self._compiled_before
    train_seconds = self.log.train_seconds()
    evaluated = loop.evaluate(states, self.epoch_sets)
    rate = float(self.setup.schedule(int(parallel.to_host(states.step)[0]) - 1))
    examples = (self.steps_per_epoch - first) * self.config['batch_size']
    for i, (run, sets) in enumerate(zip(self.runs, evaluated)):
      if not live[i]:
        continue
      record = run_metrics.epoch_record(
          epoch, {k: np.nan if k in started else v[i]
                  for k, v in steps.step_sums(totals).items()},
          self.steps_per_epoch, sets, rate, examples, train_seconds)
      state = steps.seed_state(states, i)
      run.end_epoch(record, state, global_step=epoch * self.steps_per_epoch,
                    scalars=run_metrics.tensorboard_scalars(record, self.epoch_sets))
      self.log.epoch(run, record)
      if on_epoch_end:
        on_epoch_end(i, {**record, 'num_epochs': self.num_epochs}, state)

  def test_chosen(self, states: steps.TrainState) -> None:
    """Evaluates the test sets on each finished run's best epoch (the checkpoint
    validation chose) and adds them to that epoch's record, unless they were measured
    every epoch (config.test_every_epoch) or before (a rerun). `states`: the runs'
    current states (what a checkpoint restores into; the initial ones were donated)."""
    loop, spe = self.setup.loop, self.steps_per_epoch
    best = [run_metrics.best_record(run.history) for run in self.runs]
    if not all(best):
      return
    # The sets some best epoch lacks (all test sets, unless measured every epoch then).
    tested = [n for n in loop.evaluated if input_pipeline.is_test_set(n)
              and any(f'{n}_accuracy' not in b for b in best)]
    if not tested:
      return
    for run in self.runs:
      run.checkpoints.wait()  # The last epoch's save may still be in flight.
    states = self._stack([
        run.checkpoints.restore(b['epoch'] * spe, steps.seed_state(states, i)).state
        for i, (run, b) in enumerate(zip(self.runs, best))])
    for run, b, sets in zip(self.runs, best, loop.evaluate(states, tested)):
      found = {f'{name}_{k}': v for name, metrics in sets.items() for k, v in metrics.items()}
      b.update(found)
      b.update(run_metrics.gaps(b))
      run.log_scalars(b['epoch'] * spe, run_metrics.tensorboard_scalars(found, tested))
      run.write_metrics()
      self.log.line('%sepoch %d (chosen on validation): %s',
                    f'{run.path.name}: ' if len(self.runs) > 1 else '', b['epoch'],
                    run_metrics.epoch_text(found, tested, rates=False))

  def stopped(self) -> list[bool]:
    """Which runs early stopping has ended (config.early_stopping_patience)."""
    return [run_metrics.stopped_early(run.history, self.config['early_stopping_patience'],
                                      self.config['early_stopping_min_epochs'])
            for run in self.runs]

  def close(self) -> None:
    self.log.close()
    for run in self.runs:
      run.close()


def check_finite(runs: Sequence[RunDirectory], totals: Any, epoch: int,
                 live: Sequence[bool]) -> None:
  """NonFiniteLossError, with the runs it hit marked failed, if a live run's loss was
  NaN/Inf (`totals`: the epoch's sums, on the host)."""
  bad = [(run, int(b)) for run, b, ok in zip(runs, totals['first_nonfinite_step'], live)
         if ok and b >= 0]
  if not bad:
    return
  for run, step in bad:
    run.fail('non-finite loss', epoch, step + 1)
  run, step = bad[0]
  good = run.history[-1]['epoch'] if run.history else None
  raise NonFiniteLossError(
      f'the training loss became NaN or Inf at epoch {epoch}, step {step + 1}'
      + (f" in {', '.join(str(r.path) for r, _ in bad)}" if len(runs) > 1 else '')
      + '; the last good checkpoint is '
      + (f'epoch {good} in {run.checkpoints.directory}' if good
         else 'none (it diverged in epoch 1)')
      + '. Lower config.learning_rate or check the data')


# --- The console and TensorBoard's training curves. ---

class Logger:
  """Progress on the console (a tqdm bar over the run's steps on a terminal at INFO
  verbosity, else absl lines), every `log_every_steps` global steps and at each
  epoch's end, where the host waits for the device anyway; and TensorBoard's training
  curves there: each run's mean of every train-step metric over the steps since the
  last log, and the learning rate. Also times each epoch's training, compiling excluded."""

  def __init__(self, runs: list[RunDirectory], config: Mapping[str, Any]):
    self.runs, self.config = runs, config
    self.bar = tqdm.tqdm(disable=True)  # Until `open`: lines go to absl.

  def open(self, setup: Setup, done: int) -> None:
    """The bar at the run's `done` steps, and what the logs read: the schedule, and the
    loop's compile seconds (left out of the training time)."""
    self.schedule, self.loop = setup.schedule, setup.loop
    self.steps_per_epoch = self.loop.steps_per_epoch
    total = self.config['num_epochs'] * self.steps_per_epoch
    self.bar = tqdm.tqdm(
        total=total, initial=min(total, done), unit='step', dynamic_ncols=True,
        file=sys.stderr, disable=not (parallel.is_primary() and sys.stderr.isatty()
                                      and logging.get_verbosity() >= logging.INFO))

  def line(self, *args: Any) -> None:
    if not parallel.is_primary():
      return
    if self.bar.disable:
      logging.info(*args)
    else:  # Above the bar, which would otherwise be cut by the line.
      self.bar.write(args[0] % args[1:], file=sys.stderr)

  def start_epoch(self, epoch: int, first: int, totals: Any) -> None:
    self.first, self.start = first, time.perf_counter()
    self.compiled = self.loop.compile_seconds
    # The TensorBoard window: its first step and the sums there.
    self.window = (first, parallel.to_host(totals) if first else None)
    self.bar.set_description(f"epoch {epoch}/{self.config['num_epochs']}", False)

  def due(self, epoch: int, before: int, done: int) -> bool:
    offset, every = (epoch - 1) * self.steps_per_epoch, self.config['log_every_steps']
    return (offset + done) // every > (offset + before) // every or (
        done == self.steps_per_epoch)

  def train_seconds(self) -> float:
    """Seconds since the epoch started here, less what the loop spent compiling."""
    return time.perf_counter() - self.start - (self.loop.compile_seconds - self.compiled)

  def progress(self, epoch: int, done: int, totals: Any, live: Sequence[bool]) -> None:
    """The progress line or bar, and a TensorBoard point for each live run; `totals`:
    the epoch's sums after `done` steps, on the host."""
    sums = steps.step_sums(totals)
    if done < self.steps_per_epoch:
      means = '  '.join(f"{k} {' '.join(f'{x:.4f}' for x in v / done)}"
                        for k, v in sums.items())
      speed = f"{(done - self.first) * self.config['batch_size'] / self.train_seconds():,.0f}"
      if not self.bar.disable:
        self.bar.set_postfix_str(f'{means}, {speed} ex/s', refresh=False)
      else:
        self.line('epoch %d/%d step %d/%d  %s  %s ex/s', epoch,
                  self.config['num_epochs'], done, self.steps_per_epoch, means, speed)
    since, before = self.window
    self.bar.update(done - since)  # Draws the bar with the new figures once.
    step = (epoch - 1) * self.steps_per_epoch + done
    rate = float(self.schedule(step - 1))  # The rate of the window's last update.
    for i, run in enumerate(self.runs):
      if not live[i]:
        continue
      mean = {f'train/{k}': (v[i] - (before[k][i] if before else 0)) / (done - since)
              for k, v in sums.items()}
      run.log_scalars(step, {**mean, 'train/learning_rate': rate})
    self.window = (done, totals)

  def epoch(self, run: RunDirectory, record: dict[str, Any]) -> None:
    self.line('%sepoch %d/%d  %s', f'{run.path.name}: ' if len(self.runs) > 1 else '',
              record['epoch'], self.config['num_epochs'],
              run_metrics.epoch_text(record, self.loop.evaluated))

  def close(self) -> None:
    self.bar.close()


# --- Stops: a signal ends the loop at a dispatch boundary. ---

def _stop_agreed(stop: StopSignal) -> bool:
  """Whether any process was asked to stop. Every process asks at the same dispatch
  boundaries, so all stop after the same step and save the same checkpoint."""
  return parallel.any_process(stop.requested is not None)


class StopSignal:
  """Within `with`, SIGTERM and SIGINT set `requested` instead of killing the process,
  so the training loop can finish its step and checkpoint. A second signal kills as
  usual. Only installed in the main thread (Python's rule for signal handlers)."""

  def __init__(self):
    self.requested: str | None = None
    self._previous = {}

  def __enter__(self) -> StopSignal:
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
