"""Training: pure `train_step`/`eval_step` and one `train_and_evaluate(config, workdir)`.

The dataset lives on the device; each step gathers its batch there from a per-epoch
permutation, so the host only dispatches. A Python loop over a jitted step, not a
`lax.scan` over the epoch: on XLA:CPU the scanned epoch measured 10× slower.
Data order and dropout keys derive from (seed, epoch, step) alone, so a resumed run
sees the same batches an uninterrupted one would.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import platform
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

from cnn_jax import checkpoints, geometry, input_pipeline, models, options
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
                       tx: optax.GradientTransformation) -> TrainState:
  # Jitted: eager init dispatches op by op and took seconds.
  params = jax.jit(model.init)(rng, jnp.zeros((1, *input_shape), jnp.float32))['params']
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx)


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


def make_train_epoch_step(batch_size: int):
  """A jitted step that gathers batch `step` of the epoch's permutation on device."""

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(state, totals, images, labels, perm, seed, epoch, index):
    idx = jax.lax.dynamic_slice_in_dim(perm, index * batch_size, batch_size)
    state, metrics = train_step(state, (images[idx], labels[idx]),
                                step_rng(seed, epoch, index))
    return state, jax.tree.map(jnp.add, totals, metrics)

  return step


def pad_to_multiple(split: input_pipeline.Split, multiple: int
                    ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Device arrays (images, labels, mask) padded to a whole number of batches."""
  n = len(split.labels)
  padded = -(-n // multiple) * multiple
  pad = [(0, padded - n)]
  images = np.pad(split.images, pad + [(0, 0)] * (split.images.ndim - 1))
  return (jnp.asarray(images), jnp.asarray(np.pad(split.labels, pad)),
          jnp.asarray(np.arange(padded) < n, jnp.float32))


@functools.partial(jax.jit, static_argnums=(4,))
def _eval_batch(state, images, labels, mask, batch_size, index):
  def take(a):
    return jax.lax.dynamic_slice_in_dim(a, index * batch_size, batch_size)
  return eval_step(state, (take(images), take(labels)), take(mask))


def evaluate(state: TrainState, images: jax.Array, labels: jax.Array, mask: jax.Array,
             batch_size: int) -> dict[str, float]:
  """Mean loss and accuracy over the examples where `mask` is 1 (from pad_to_multiple)."""
  totals = None
  for index in range(images.shape[0] // batch_size):
    sums = _eval_batch(state, images, labels, mask, batch_size, index)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  totals = jax.device_get(totals)
  return {'loss': float(totals['loss'] / totals['count']),
          'accuracy': float(totals['correct'] / totals['count'])}


def _format_duration(seconds: float) -> str:
  minutes, seconds = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f'{hours}:{minutes:02d}:{seconds:02d}'


def host_description() -> str:
  """The CPU model and core count, for reports that name the machine."""
  name = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        name = line.split(':', 1)[1].strip()
        break
  except OSError:
    pass
  return f'{name}, {os.cpu_count()} cores'


def _load_history(path: pathlib.Path, up_to_epoch: int) -> list[dict[str, Any]]:
  if not up_to_epoch or not path.exists():
    return []
  return [r for r in json.loads(path.read_text())['history'] if r['epoch'] <= up_to_epoch]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                       *, hparams_group: str | None = None,
                       on_epoch_end: Callable[[dict[str, Any]], None] | None = None
                       ) -> dict[str, Any]:
  """Trains per `config`, evaluating, logging and checkpointing every epoch.

  Rerun on the same workdir, it resumes after the latest checkpointed epoch. Writes
  config.json, TensorBoard events and metrics.json (history and final figures) there.
  `hparams_group` names the HParams dashboard's group (runs differing only in seed);
  `on_epoch_end` receives each epoch's record, after its checkpoint is written.
  """
  wall_start = time.perf_counter()
  cfg = config.to_dict()
  options.validate_config(cfg)
  spec = input_pipeline.dataset_spec(cfg)
  table = options.validate_geometry(cfg, spec.input_shape, spec.num_classes)
  spec, train_split, test_split = input_pipeline.load_dataset(cfg)
  num_train = len(train_split.labels)
  if config.batch_size > num_train:
    raise options.ConfigError(
        f'config.batch_size={config.batch_size} is invalid: expected at most the '
        f'{num_train} training examples')
  steps_per_epoch = num_train // config.batch_size

  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2) + '\n')
  model = models.create_model(cfg, spec.num_classes)
  tx, schedule = create_optimizer(cfg, steps_per_epoch)
  state = create_train_state(jax.random.key(config.seed), model, spec.input_shape, tx)
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  logging.info('%s on %s: %s parameters (layer table: %s), %d steps/epoch',
               config.model, spec.name, f'{num_params:,}',
               f'{geometry.count_params(table):,}', steps_per_epoch)

  checkpointer = checkpoints.Checkpointer(workdir / 'checkpoints',
                                          config.checkpoints_to_keep)
  start_epoch = checkpointer.latest_epoch() or 0
  history = _load_history(workdir / 'metrics.json', start_epoch)
  writer = SummaryWriter(str(workdir))
  if start_epoch:
    state = checkpointer.restore(start_epoch, state)
    logging.info('Resumed from the checkpoint of epoch %d in %s', start_epoch, workdir)
  else:
    writer.hparams(cfg, group=hparams_group)

  images, labels = jnp.asarray(train_split.images), jnp.asarray(train_split.labels)
  test_arrays = pad_to_multiple(test_split, config.eval_batch_size)
  seed = np.int32(config.seed)
  compile_seconds = 0.0
  if start_epoch < config.num_epochs:
    compile_start = time.perf_counter()
    step = make_train_epoch_step(config.batch_size).lower(
        state, {'loss': jnp.zeros(()), 'accuracy': jnp.zeros(())}, images, labels,
        epoch_permutation(config.seed, 0, num_train), seed, np.int32(0),
        np.int32(0)).compile()
    compile_seconds = time.perf_counter() - compile_start
    logging.info('Compiled the train step in %.1f s', compile_seconds)

  epoch_seconds = []
  for epoch in range(start_epoch + 1, config.num_epochs + 1):
    epoch_start = time.perf_counter()
    perm = epoch_permutation(config.seed, epoch, num_train)
    totals = {'loss': jnp.zeros(()), 'accuracy': jnp.zeros(())}
    for index in range(steps_per_epoch):
      state, totals = step(state, totals, images, labels, perm, seed, np.int32(epoch),
                           np.int32(index))
      done = index + 1
      if done % config.log_every_steps == 0 and done < steps_per_epoch:
        loss = float(totals['loss']) / done  # The only host sync inside an epoch.
        elapsed = time.perf_counter() - epoch_start
        steps_left = (config.num_epochs - epoch + 1) * steps_per_epoch - done
        logging.info('epoch %d/%d step %d/%d  loss %.4f  %s ex/s  eta %s', epoch,
                     config.num_epochs, done, steps_per_epoch, loss,
                     f'{done * config.batch_size / elapsed:,.0f}',
                     _format_duration(steps_left * elapsed / done))
    totals = jax.device_get(totals)
    train_seconds = time.perf_counter() - epoch_start
    test = evaluate(state, *test_arrays, config.eval_batch_size)
    record = {
        'epoch': epoch,
        'train_loss': float(totals['loss']) / steps_per_epoch,
        'train_accuracy': float(totals['accuracy']) / steps_per_epoch,
        'test_loss': test['loss'], 'test_accuracy': test['accuracy'],
        'learning_rate': float(schedule(state.step - 1)),
        'examples_per_second': steps_per_epoch * config.batch_size / train_seconds,
        'train_seconds': train_seconds,
    }
    history.append(record)
    epoch_seconds.append(time.perf_counter() - epoch_start)
    writer.scalars(epoch, {
        'train/loss': record['train_loss'], 'train/accuracy': record['train_accuracy'],
        'test/loss': record['test_loss'], 'test/accuracy': record['test_accuracy'],
        'learning_rate': record['learning_rate'],
        'examples_per_second': record['examples_per_second']})
    writer.flush()
    checkpointer.save(epoch, state)
    eta = np.mean(epoch_seconds) * (config.num_epochs - epoch)
    logging.info('epoch %d/%d  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  '
                 'lr %.2e  %s ex/s  eta %s', epoch, config.num_epochs,
                 record['train_loss'], 100 * record['train_accuracy'],
                 record['test_loss'], 100 * record['test_accuracy'],
                 record['learning_rate'], f"{record['examples_per_second']:,.0f}",
                 _format_duration(eta))
    _write_metrics(workdir, history, num_params, spec, compile_seconds,
                   time.perf_counter() - wall_start, config.num_epochs)
    if on_epoch_end:
      on_epoch_end({**record, 'num_epochs': config.num_epochs})
  checkpointer.close()
  writer.close()
  return _write_metrics(workdir, history, num_params, spec, compile_seconds,
                        time.perf_counter() - wall_start, config.num_epochs)


def _write_metrics(workdir: pathlib.Path, history: list[dict[str, Any]], num_params: int,
                   spec: input_pipeline.DatasetSpec, compile_seconds: float,
                   wall_seconds: float, num_epochs: int) -> dict[str, Any]:
  """metrics.json: the final and best epoch, timings, and every epoch's record."""
  best = max(history, key=lambda r: r['test_accuracy']) if history else None
  metrics = {
      'completed': bool(history) and history[-1]['epoch'] == num_epochs,
      'final': history[-1] if history else None,
      'best_epoch': best and best['epoch'],
      'best_test_accuracy': best and best['test_accuracy'],
      'num_params': num_params,
      'dataset': spec.name,
      'device': jax.devices()[0].device_kind,
      'host': host_description(),
      'compile_seconds': compile_seconds,
      'train_seconds': sum(r['train_seconds'] for r in history),
      'wall_seconds_this_process': wall_seconds,
      'history': history,
  }
  (workdir / 'metrics.json').write_text(json.dumps(metrics, indent=2) + '\n')
  return metrics
