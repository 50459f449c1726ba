"""Training: pure `train_step`/`eval_step` and one `train_and_evaluate(config, workdir)`.

Data parallel by construction: a `jax.jit` over a mesh of every device (1 or many, on
1 or many hosts) with the batch split along 'data' and the state replicated
(`cnn_jax.parallel`). Each process gathers its rows of every batch from a per-epoch
permutation on the host and feeds them; a Python loop over a jitted step, not a
`lax.scan` over the epoch (on XLA:CPU the scanned epoch measured 10× slower).
Data order and dropout keys derive from (seed, epoch, step) alone, so a resumed run
sees the same batches an uninterrupted one would, on any number of devices.
"""

from __future__ import annotations

import functools
import pathlib
import time
from typing import Any, Callable, Mapping

from absl import logging
import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from cnn_jax import checkpoints, geometry, input_pipeline, models, options, parallel
from cnn_jax import run_metrics, safety
from cnn_jax.metric_writers import SummaryWriter

TrainState = train_state.TrainState
Batch = tuple[jax.Array, jax.Array]  # (images NHWC uint8 or float, labels int32)


def preprocess(images: jax.Array) -> jax.Array:
  """uint8 pixels → float32 in [0, 1], as the article's ToTensor()."""
  return images.astype(jnp.float32) / 255.0


def create_optimizer(config: Mapping[str, Any], steps_per_epoch: int
                     ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The config's optimizer and its learning-rate schedule (per step)."""
  total_steps = config['num_epochs'] * steps_per_epoch
  warmup_steps = int(config['warmup_epochs'] * steps_per_epoch)
  lr = config['learning_rate']
  if config['lr_schedule'] == options.Schedule.CONSTANT:
    schedule = optax.constant_schedule(lr)
    if warmup_steps:
      schedule = optax.join_schedules(
          [optax.linear_schedule(0.0, lr, warmup_steps), schedule], [warmup_steps])
  elif config['lr_schedule'] == options.Schedule.COSINE:
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup_steps, max(total_steps, warmup_steps + 1))
  else:
    raise options.ConfigError(f"config.lr_schedule={config['lr_schedule']!r} is invalid")
  name = config['optimizer']
  if name == options.Optimizer.ADAM:
    tx = optax.adam(schedule)
  elif name == options.Optimizer.ADAMW:
    tx = optax.adamw(schedule, weight_decay=config['weight_decay'])
  elif name == options.Optimizer.SGD:
    tx = optax.chain(optax.add_decayed_weights(config['weight_decay']),
                     optax.sgd(schedule, momentum=config['momentum'] or None))
  else:
    raise options.ConfigError(f'config.optimizer={name!r} is invalid')
  return tx, schedule


def create_train_state(rng: jax.Array, model: nn.Module, input_shape: tuple[int, ...],
                       tx: optax.GradientTransformation,
                       sharding: jax.sharding.Sharding | None = None) -> TrainState:
  """Initial parameters and optimizer state, placed per `sharding` (e.g. replicated)."""
  def init(rng):
    params = model.init(rng, jnp.zeros((1, *input_shape), jnp.float32))['params']
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx)
  # Jitted: eager init dispatches op by op and took seconds.
  return jax.jit(init, out_shardings=sharding)(rng)


def _loss_and_correct(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return loss, (jnp.argmax(logits, -1) == labels).astype(jnp.float32)


def train_step(state: TrainState, batch: Batch, rng: jax.Array
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on `batch`; `rng` drives dropout. Pure: jit it."""
  images, labels = batch

  def loss_fn(params):
    logits = state.apply_fn({'params': params}, preprocess(images), train=True,
                            rngs={'dropout': rng})
    loss, correct = _loss_and_correct(logits, labels)
    return loss.mean(), correct.mean()

  (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  return state.apply_gradients(grads=grads), {'loss': loss, 'accuracy': accuracy}


def eval_step(state: TrainState, batch: Batch, mask: jax.Array) -> dict[str, jax.Array]:
  """Sums of loss and correct predictions over the examples where `mask` is 1."""
  images, labels = batch
  logits = state.apply_fn({'params': state.params}, preprocess(images), train=False)
  loss, correct = _loss_and_correct(logits, labels)
  return {'loss': (loss * mask).sum(), 'correct': (correct * mask).sum(),
          'count': mask.sum()}


def epoch_permutation(seed: int, epoch: int, num_examples: int) -> jax.Array:
  """The order of epoch `epoch`'s examples, a function of (seed, epoch) alone."""
  key = jax.random.fold_in(jax.random.key(seed), epoch)
  return jax.random.permutation(jax.random.fold_in(key, 0), num_examples)


def step_rng(seed: int, epoch: int, step: jax.Array) -> jax.Array:
  """The dropout key of one step, a function of (seed, epoch, step) alone."""
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), epoch), 1)
  return jax.random.fold_in(key, step)


def add_to_totals(totals: Any, metrics: Mapping[str, jax.Array], index: jax.Array) -> Any:
  """The epoch's running sums after step `index`: loss and accuracy added, and the first
  step whose loss was NaN/Inf (-1: none), found without a host sync per step; the host
  looks when it logs and at the end of the epoch. Elementwise, so per seed too."""
  first_bad = jnp.where((totals['first_nonfinite_step'] < 0)
                        & ~jnp.isfinite(metrics['loss']), index,
                        totals['first_nonfinite_step'])
  return {'loss': totals['loss'] + metrics['loss'],
          'accuracy': totals['accuracy'] + metrics['accuracy'],
          'first_nonfinite_step': first_bad}


def make_train_step(dp: parallel.DataParallel):
  """The jitted step over the mesh: batch split over 'data', state and sums replicated.

  It adds each step's loss and accuracy into `totals` on device, so the host only
  waits for the device when it logs.
  """
  rep = dp.replicated

  def step(state, totals, images, labels, seed, epoch, index):
    state, metrics = train_step(state, (images, labels), step_rng(seed, epoch, index))
    return state, add_to_totals(totals, metrics, index)

  return jax.jit(step, donate_argnums=(0, 1),
                 in_shardings=(rep, rep, dp.batch, dp.batch, rep, rep, rep),
                 out_shardings=(rep, rep))


def compile_train_step(dp: parallel.DataParallel, state: TrainState, totals: Any,
                       batch_size: int, images: np.ndarray, labels: np.ndarray):
  """`make_train_step(dp)` compiled ahead of time for global batches of `batch_size`
  examples shaped like those of `images`/`labels`, so its compile time is measured apart
  from the first step's."""
  abstract = [jax.ShapeDtypeStruct((batch_size, *a.shape[1:]), a.dtype, sharding=dp.batch)
              for a in (images, labels)]
  return make_train_step(dp).lower(state, totals, *abstract, np.int32(0), np.int32(0),
                                   np.int32(0)).compile()


def zero_totals(shape: tuple[int, ...] = ()) -> dict[str, jax.Array]:
  """The step's running sums at the start of an epoch (see add_to_totals); shape (): one
  seed, (seeds,): seeds trained together."""
  return {'loss': jnp.zeros(shape), 'accuracy': jnp.zeros(shape),
          'first_nonfinite_step': -jnp.ones(shape, jnp.int32)}


def make_zero_totals(dp: parallel.DataParallel):
  """A jitted function returning `zero_totals()` replicated over the mesh."""
  return jax.jit(zero_totals, out_shardings=dp.replicated)


def mean_metrics(sums: Mapping[str, Any]) -> dict[str, float]:
  """Mean loss and accuracy from eval_step's sums (added over batches)."""
  return {'loss': float(sums['loss'] / sums['count']),
          'accuracy': float(sums['correct'] / sums['count'])}


def pad_to_multiple(split: input_pipeline.Split, multiple: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(images, labels, mask) padded to a whole number of batches; mask 0 on padding."""
  n = len(split.labels)
  padded = -(-n // multiple) * multiple
  pad = [(0, padded - n)]
  images = np.pad(split.images, pad + [(0, 0)] * (split.images.ndim - 1))
  return images, np.pad(split.labels, pad), (np.arange(padded) < n).astype(np.float32)


@functools.cache
def _sharded_eval_step(dp: parallel.DataParallel):
  rep = dp.replicated
  return jax.jit(eval_step, in_shardings=(rep, (dp.batch, dp.batch), dp.batch),
                 out_shardings=rep)


def evaluate(state: TrainState, images: np.ndarray, labels: np.ndarray, mask: np.ndarray,
             batch_size: int, dp: parallel.DataParallel | None = None) -> dict[str, float]:
  """Mean loss and accuracy over the examples where `mask` is 1 (from pad_to_multiple).

  Every process holds the whole padded split and feeds its rows of each batch.
  """
  dp = dp or parallel.DataParallel.create(batch_size)
  # Let queued train steps finish first: with several XLA:CPU devices in one process,
  # the eval step's all-reduce dispatched behind them was seen to deadlock (rendezvous
  # timeout) when the runtime's threads were all waiting.
  jax.block_until_ready(state)
  rows = dp.local_slice(batch_size)
  totals = None
  for start in range(0, images.shape[0], batch_size):
    local = slice(start + rows.start, start + rows.stop)
    x, y, m = dp.global_batch(images[local], labels[local], mask[local],
                              batch_size=batch_size)
    sums = _sharded_eval_step(dp)(state, (x, y), m)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  return mean_metrics(parallel.to_host(totals))


def save_epoch(checkpointer: checkpoints.Checkpointer,
               best_checkpointer: checkpoints.Checkpointer, epoch: int, state: TrainState,
               is_best: bool) -> None:
  """The epoch's checkpoint, and a copy kept apart if it is the best so far (the
  rolling checkpoints may drop it later)."""
  checkpointer.save(epoch, state)
  if is_best:
    checkpointer.wait()  # Same step number: see Checkpointer.wait.
    best_checkpointer.save(epoch, state)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                       *, hparams_group: str | None = None,
                       on_epoch_end: Callable[[dict[str, Any], TrainState], None] | None = None,
                       allow_config_change: bool = False) -> dict[str, Any]:
  """Trains per `config`, evaluating, logging and checkpointing every epoch.

  Rerun on the same workdir, it resumes after the latest checkpointed epoch. Writes
  config.json, TensorBoard events and metrics.json (history and final figures) there,
  from process 0 only. `hparams_group` names the HParams dashboard's group (runs that
  differ only in seed); `on_epoch_end(record, state)` runs in every process after each
  epoch's checkpoint. A workdir holding another configuration is refused unless
  `allow_config_change`. SIGTERM/SIGINT: the current step finishes, a mid-epoch
  checkpoint is written, and `safety.Interrupted` is raised; the rerun resumes there.
  """
  wall_start = time.perf_counter()
  cfg = config.to_dict()
  options.validate_config(cfg)
  dp = parallel.DataParallel.create(config.batch_size, config.eval_batch_size)
  dp.check_batch_size('batch_size', config.batch_size)
  dp.check_batch_size('eval_batch_size', config.eval_batch_size)
  spec = input_pipeline.dataset_spec(cfg)
  table = options.validate_geometry(cfg, spec.input_shape, spec.num_classes)
  spec, train_split, test_split = input_pipeline.load_dataset(cfg)
  num_train = len(train_split.labels)
  if config.batch_size > num_train:
    raise options.ConfigError(
        f'config.batch_size={config.batch_size} is invalid: expected at most the '
        f'{num_train} training examples')
  steps_per_epoch = num_train // config.batch_size
  primary = parallel.is_primary()
  log = logging.info if primary else lambda *args: None

  workdir = pathlib.Path(workdir)
  safety.check_workdir_config(workdir, cfg, allow_config_change)
  workdir.mkdir(parents=True, exist_ok=True)
  if primary:
    (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2) + '\n')
  model = models.create_model(cfg, spec.num_classes)
  tx, schedule = create_optimizer(cfg, steps_per_epoch)
  state = create_train_state(jax.random.key(config.seed), model, spec.input_shape, tx,
                             dp.replicated)
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  log('%s on %s: %s parameters (layer table: %s), %d steps/epoch on %d device(s), '
      '%d process(es)', config.model, spec.name, f'{num_params:,}',
      f'{geometry.count_params(table):,}', steps_per_epoch, dp.num_devices,
      jax.process_count())

  checkpointer = checkpoints.Checkpointer(workdir / 'checkpoints',
                                          config.checkpoints_to_keep)
  best_checkpointer = checkpoints.Checkpointer(workdir / checkpoints.BEST_DIR, keep=1)
  interrupted = checkpoints.Checkpointer(workdir / checkpoints.INTERRUPTED_DIR, keep=1)
  zeros = make_zero_totals(dp)
  start_epoch, start_index, resumed_totals = 0, 0, None
  found = checkpointer.restore_latest_good(state)
  if found:
    start_epoch, state = found
    log('Resumed from the checkpoint of epoch %d in %s', start_epoch, workdir)
  mid_step = interrupted.latest_epoch()  # Numbered by global step.
  if mid_step is not None and mid_step > start_epoch * steps_per_epoch:
    found = interrupted.restore_latest_good(state, totals=zeros())
    if found:
      mid_step, (state, extra) = found
      start_epoch = (mid_step - 1) // steps_per_epoch
      start_index, resumed_totals = mid_step - start_epoch * steps_per_epoch, extra['totals']
      log('Resumed from the interrupted checkpoint at epoch %d step %d', start_epoch + 1,
          start_index)
  history = run_metrics.load_history(workdir / 'metrics.json', start_epoch)
  writer = SummaryWriter(str(workdir)) if primary else None
  if not start_epoch and not start_index and writer:
    writer.hparams(cfg, group=hparams_group)

  batch = config.batch_size
  rows = dp.local_slice(batch)
  test_arrays = pad_to_multiple(test_split, config.eval_batch_size)
  seed = np.int32(config.seed)
  step = make_train_step(dp)
  compile_seconds = 0.0
  if start_epoch < config.num_epochs:
    compile_start = time.perf_counter()
    step = compile_train_step(dp, state, zeros(), batch, train_split.images,
                              train_split.labels)
    compile_seconds = time.perf_counter() - compile_start
    log('Compiled the train step in %.1f s', compile_seconds)

  facts = dict(num_params=num_params, dataset=spec.name,
               device=f'{jax.devices()[0].device_kind} × {dp.num_devices}'
               if dp.num_devices > 1 else jax.devices()[0].device_kind,
               processes=jax.process_count(), compile_seconds=compile_seconds)

  def write_metrics() -> dict[str, Any]:
    metrics = run_metrics.write_metrics(
        workdir / 'metrics.json' if primary else None, history,
        num_epochs=config.num_epochs, **facts,
        wall_seconds_this_process=time.perf_counter() - wall_start)
    return metrics

  def stop_if_diverged(totals, epoch: int) -> None:
    bad_step = int(parallel.to_host(totals['first_nonfinite_step']))
    if bad_step < 0:
      return
    good = checkpointer.latest_epoch()
    facts['failed'] = {'reason': 'non-finite loss', 'epoch': epoch, 'step': bad_step + 1}
    write_metrics()
    raise safety.NonFiniteLossError(
        f'the training loss became NaN or Inf at epoch {epoch}, step {bad_step + 1}; '
        f'the last good checkpoint is ' + (f'epoch {good} in {checkpointer.directory}'
                                          if good else 'none (it diverged in epoch 1)')
        + '. Lower config.learning_rate or check the data')

  epoch_seconds = []
  # SIGTERM/SIGINT: stop after the current step.
  with safety.StopSignal() as stop:
    try:
      for epoch in range(start_epoch + 1, config.num_epochs + 1):
        epoch_start = time.perf_counter()
        perm = np.asarray(epoch_permutation(config.seed, epoch, num_train))
        first = start_index if epoch == start_epoch + 1 else 0
        totals = resumed_totals if first else zeros()
        for index in range(first, steps_per_epoch):
          mine = perm[index * batch + rows.start:index * batch + rows.stop]
          images, labels = dp.global_batch(train_split.images[mine],
                                           train_split.labels[mine], batch_size=batch)
          state, totals = step(state, totals, images, labels, seed, np.int32(epoch),
                               np.int32(index))
          done = index + 1
          if stop.requested:
            global_step = (epoch - 1) * steps_per_epoch + done
            checkpointer.wait()
            best_checkpointer.wait()
            interrupted.save(global_step, state, totals=totals)
            raise safety.Interrupted(
                f'{stop.requested}: stopped at epoch {epoch} step {done}/{steps_per_epoch}'
                f' and saved {interrupted.directory / str(global_step)}; rerun the same '
                'command to resume from there')
          if primary and done % config.log_every_steps == 0 and done < steps_per_epoch:
            stop_if_diverged(totals, epoch)  # Waits for the device, like the loss below.
            loss = float(parallel.to_host(totals['loss'])) / done
            elapsed = time.perf_counter() - epoch_start
            steps_left = (config.num_epochs - epoch + 1) * steps_per_epoch - done
            log('epoch %d/%d step %d/%d  loss %.4f  %s ex/s  eta %s', epoch,
                config.num_epochs, done, steps_per_epoch, loss,
                f'{(done - first) * batch / elapsed:,.0f}',
                run_metrics.format_duration(steps_left * elapsed / max(1, done - first)))
        stop_if_diverged(totals, epoch)
        totals = parallel.to_host(totals)
        train_seconds = time.perf_counter() - epoch_start
        test = evaluate(state, *test_arrays, config.eval_batch_size, dp)
        record = run_metrics.epoch_record(
            epoch, totals['loss'], totals['accuracy'], steps_per_epoch, test,
            float(schedule(int(parallel.to_host(state.step)) - 1)),
            (steps_per_epoch - first) * batch, train_seconds)
        best = run_metrics.is_best(record, history)
        history.append(record)
        epoch_seconds.append(time.perf_counter() - epoch_start)
        save_epoch(checkpointer, best_checkpointer, epoch, state, best)
        if first:
          interrupted.delete_all()  # The epoch checkpoint supersedes it.
        if writer:
          writer.scalars(epoch, run_metrics.tensorboard_scalars(record))
          writer.flush()
        log('epoch %d/%d  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  '
            'lr %.2e  %s ex/s  eta %s', epoch, config.num_epochs, record['train_loss'],
            100 * record['train_accuracy'], record['test_loss'],
            100 * record['test_accuracy'], record['learning_rate'],
            f"{record['examples_per_second']:,.0f}", run_metrics.format_duration(
                np.mean(epoch_seconds) * (config.num_epochs - epoch)))
        write_metrics()
        if on_epoch_end:
          on_epoch_end({**record, 'num_epochs': config.num_epochs}, state)
    finally:
      # Also on errors: waits for checkpoints still being written in the background.
      for c in (checkpointer, best_checkpointer, interrupted):
        c.close()
      if writer:
        writer.close()
  return write_metrics()
