"""The pure pieces of training: optimizer, initial state, one train step, one eval step,
and the keys and orders that make a run a function of (seed, epoch, step) alone.

Nothing here knows about devices, files or loops (`cnn_jax.device_loop` runs these on
the mesh, `cnn_jax.train` around it); everything is jit- and vmap-able.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

from flax import struct
import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import optax

from cnn_jax import errors, options

Batch = tuple[jax.Array, jax.Array]  # (images NHWC uint8 or float, labels int32)

# Collections a model writes that are records, not state (the layer outputs it sows).
NOT_STATE = ('params', 'intermediates')


class TrainState(train_state.TrainState):
  """Flax's TrainState and `model_state`: every variable collection of the model but
  its parameters (BatchNorm's 'batch_stats', or whatever a forker's layer creates),
  which the train step updates, checkpoints save and restore, and inference uses."""
  model_state: Any = struct.field(default_factory=dict)

  @property
  def variables(self) -> dict[str, Any]:
    """All of the model's variables, as `model.apply` takes them."""
    return {'params': self.params, **self.model_state}


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
    raise errors.ConfigError(f"config.lr_schedule={config['lr_schedule']!r} is invalid")
  name = config['optimizer']
  if name == options.Optimizer.ADAM:
    tx = optax.adam(schedule)
  elif name == options.Optimizer.ADAMW:
    tx = optax.adamw(schedule, weight_decay=config['weight_decay'])
  elif name == options.Optimizer.SGD:
    tx = optax.chain(optax.add_decayed_weights(config['weight_decay']),
                     optax.sgd(schedule, momentum=config['momentum'] or None))
  else:
    raise errors.ConfigError(f'config.optimizer={name!r} is invalid')
  return tx, schedule


def create_train_state(rng: jax.Array, model: nn.Module, input_shape: tuple[int, ...],
                       tx: optax.GradientTransformation,
                       sharding: jax.sharding.Sharding | None = None) -> TrainState:
  """Initial parameters and optimizer state, placed per `sharding` (e.g. replicated)."""
  def init(rng):
    variables = model.init(rng, jnp.zeros((1, *input_shape), jnp.float32))
    return TrainState.create(
        apply_fn=model.apply, params=variables['params'], tx=tx,
        model_state={k: v for k, v in variables.items() if k not in NOT_STATE})
  # Jitted: eager init dispatches op by op and took seconds.
  return jax.jit(init, out_shardings=sharding)(rng)


def init_states(model: nn.Module, input_shape: tuple[int, ...],
                tx: optax.GradientTransformation, sharding: jax.sharding.Sharding | None
                ) -> Any:
  """The initial states of seeds (int32) stacked on a leading seed axis, as one jitted
  function: entry i equals `create_train_state(jax.random.key(seeds[i]), ...)`, and a
  caller that keeps it traces it once for every seed it initialises."""
  def init(seeds):
    return jax.vmap(lambda s: create_train_state(jax.random.key(s), model, input_shape,
                                                 tx))(seeds)
  return jax.jit(init, out_shardings=sharding)


@functools.partial(jax.jit, static_argnums=1)  # One program, not one per array shape.
def seed_state(states: TrainState, i: int) -> TrainState:
  """Entry i of stacked states: what a single-seed run holds."""
  return jax.tree.map(lambda x: x[i], states)


def stack_states(states: Sequence[TrainState]) -> TrainState:
  """The inverse of `seed_state`: single-seed states stacked on a leading axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def example_metrics(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
  """Each example's measurements, by name: the train step records their batch means,
  evaluation their means over each set. 'loss' is what training minimises. A metric
  added here reaches the console, TensorBoard, metrics.json and runs.csv as
  train_<name> and <set>_<name>."""
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return {'loss': loss,
          'accuracy': (jnp.argmax(logits, -1) == labels).astype(jnp.float32)}


def train_step(state: TrainState, batch: Batch, rng: jax.Array
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on `batch`; `rng` drives dropout. Pure: jit it. Returns the new
  state and the step's measurements (scalars by name; the loop sums them per epoch)."""
  images, labels = batch
  mutable = list(state.model_state)  # Batch statistics and the like: updated here.

  def loss_fn(params):
    out = state.apply_fn({'params': params, **state.model_state}, preprocess(images),
                         train=True, rngs={'dropout': rng}, mutable=mutable or False)
    logits, model_state = out if mutable else (out, {})
    metrics = jax.tree.map(jnp.mean, example_metrics(logits, labels))
    return metrics['loss'], (metrics, model_state)

  (_, (metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  state = state.apply_gradients(grads=grads).replace(model_state=model_state)
  return state, metrics


def eval_step(state: TrainState, batch: Batch, mask: jax.Array) -> dict[str, jax.Array]:
  """Sums of each `example_metrics` over the examples where `mask` is 1, and their
  'count': `mask` (batch,) gives scalars, (batch, sets) one sum per set (column)."""
  images, labels = batch
  logits = state.apply_fn(state.variables, preprocess(images), train=False)
  # HIGHEST: a GPU's default matmul precision (TF32) would round the loss sums.
  total = lambda x: jnp.tensordot(x, mask, 1, precision=jax.lax.Precision.HIGHEST)
  return {**jax.tree.map(total, example_metrics(logits, labels)), 'count': mask.sum(0)}


def epoch_permutation(seed: int | jax.Array, epoch: int | jax.Array, num_examples: int
                      ) -> jax.Array:
  """The order of epoch `epoch`'s examples, a function of (seed, epoch) alone."""
  key = jax.random.fold_in(jax.random.key(seed), epoch)
  return jax.random.permutation(jax.random.fold_in(key, 0), num_examples)


def step_rng(seed: int | jax.Array, epoch: int | jax.Array, step: int | jax.Array
             ) -> jax.Array:
  """The dropout key of one step, a function of (seed, epoch, step) alone."""
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), epoch), 1)
  return jax.random.fold_in(key, step)


# The loop's running sums: each train-step metric's, and this one entry of its own.
FIRST_NONFINITE = 'first_nonfinite_step'


def zero_totals(metrics: Mapping[str, Any], shape: tuple[int, ...] = ()
                ) -> dict[str, jax.Array]:
  """The epoch's running sums at its start (see add_to_totals), one per seed:
  `metrics` is what `train_step` returns (arrays or their shapes)."""
  return {**{k: jnp.zeros(shape + jnp.shape(v)) for k, v in metrics.items()},
          FIRST_NONFINITE: -jnp.ones(shape, jnp.int32)}


def add_to_totals(totals: Any, metrics: Mapping[str, jax.Array], index: jax.Array) -> Any:
  """The epoch's running sums after step `index`: every metric added, and the first
  step whose loss was NaN/Inf (-1: none), found without a host sync per step; the host
  looks at dispatch boundaries. Elementwise, so per seed too."""
  first_bad = jnp.where((totals[FIRST_NONFINITE] < 0) & ~jnp.isfinite(metrics['loss']),
                        index, totals[FIRST_NONFINITE])
  return {**{k: totals[k] + v for k, v in metrics.items()}, FIRST_NONFINITE: first_bad}


def step_sums(totals: Mapping[str, Any]) -> dict[str, Any]:
  """The metrics' sums in `totals`, without the loop's own entry."""
  return {k: v for k, v in totals.items() if k != FIRST_NONFINITE}


def mean_metrics(sums: Mapping[str, Any]) -> dict[str, float]:
  """Each metric's mean from eval_step's sums (added over batches)."""
  return {k: float(v / sums['count']) for k, v in sums.items() if k != 'count'}
