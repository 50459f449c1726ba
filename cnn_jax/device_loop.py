"""The device side of training: the dataset resident on the mesh, K train steps per
dispatch, and evaluation, for N >= 1 seeds of one configuration at once.

The host sends nothing per step: the train and test arrays are placed on every device
once, each epoch's example order is computed on the device, and one dispatch runs K
steps (`lax.scan`) that gather their batches there: on a GPU a per-step Python
dispatch and host→device copy would cost more than the step itself.

Seeds: states carry a leading seed axis; with N > 1 the step is vmapped over it (one
program trains every seed), with N = 1 the axis is dropped inside the program so a
single run compiles exactly the unbatched step. Example order and dropout keys come
from (seed, epoch, step) alone (`steps.epoch_permutation`, `steps.step_rng`), so the
result does not depend on K, on N, or on the number of devices.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping, Sequence

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from cnn_jax import input_pipeline, parallel, steps

Totals = dict[str, jax.Array]

# `steps_per_dispatch='auto'`, per backend (docs/speed.md). XLA:CPU: one step, since
# there the host is not the bottleneck and longer dispatches ran slower. Accelerators:
# the epoch in the fewest dispatches of at most this many steps.
MAX_AUTO_STEPS_PER_DISPATCH = 128


def auto_steps_per_dispatch(steps_per_epoch: int, backend: str | None = None) -> int:
  """K for `steps_per_dispatch='auto'`: 1 on CPU; elsewhere the epoch in the fewest
  dispatches of at most MAX_AUTO_STEPS_PER_DISPATCH steps, as equal as can be."""
  if (backend or jax.default_backend()) == 'cpu':
    return 1
  dispatches = -(-steps_per_epoch // MAX_AUTO_STEPS_PER_DISPATCH)
  return -(-steps_per_epoch // dispatches)


def dispatches(steps_per_epoch: int, steps_per_dispatch: int, first: int, count: int
               ) -> list[tuple[int, int, int]]:
  """How the trainer cuts global steps first .. first + count - 1 into dispatches:
  (epoch, first step in the epoch, count) each, at most `steps_per_dispatch` steps from
  where the last one ended, none across an epoch's end."""
  out, step, end = [], first, first + count
  while step < end:
    epoch, index = divmod(step, steps_per_epoch)
    n = min(steps_per_dispatch, steps_per_epoch - index, end - step)
    out.append((epoch + 1, index, n))
    step += n
  return out


def _per_seed(fn: Callable, num_seeds: int, batched: tuple[bool, ...]) -> Callable:
  """fn(state, *args) applied to states stacked on a leading seed axis, `args[i]` with
  that axis where batched[i]: vmapped for several seeds; for one, the axis is dropped
  and restored so the program is the plain single-run step."""
  if num_seeds > 1:
    return jax.vmap(fn, in_axes=(0, *(0 if b else None for b in batched)))

  def one(state, *args):
    first = lambda tree: jax.tree.map(lambda x: x[0], tree)
    out = fn(first(state), *(first(a) if b else a for a, b in zip(args, batched)))
    return jax.tree.map(lambda x: x[None], out)
  return one


@dataclasses.dataclass
class DeviceLoop:
  """The training data and the evaluated sets on the mesh, and the programs that train
  and evaluate N seeds on them. `run` is one dispatch; everything else is set-up."""
  dp: parallel.DataParallel
  num_seeds: int
  batch_size: int
  eval_batch_size: int
  num_train: int
  # Training images and labels; the evaluated sets' images and labels one after
  # another, with a mask (examples, sets) saying which set each is in (padding: none).
  data: dict[str, jax.Array]  # Replicated.
  evaluated: tuple[str, ...]  # The sets' names, in the mask's order.
  set_rows: np.ndarray  # The mask on the host: (examples, sets) bool.
  unroll: bool  # The K steps unrolled (XLA:CPU runs loops slowly) or a device loop.
  # The jitted programs, traced at their first call and kept with the loop (a sweep
  # keeps the loop for a configuration's next runs); `program` compiles K steps.
  _zeros: Callable | None = dataclasses.field(init=False, default=None)
  _orders: Callable = dataclasses.field(init=False)
  _eval_batch: Callable = dataclasses.field(init=False)
  _programs: dict[int, Any] = dataclasses.field(default_factory=dict)
  compile_seconds: float = 0.0

  def __post_init__(self):
    self._orders = _orders(self.dp, self.num_train)
    self._eval_batch = _eval_batch(self.dp, self.num_seeds, self.eval_batch_size)

  @classmethod
  def create(cls, dp: parallel.DataParallel, num_seeds: int, batch_size: int,
             eval_batch_size: int, train: input_pipeline.Split,
             evaluated: Mapping[str, input_pipeline.Split], unroll: bool | None = None
             ) -> 'DeviceLoop':
    """`evaluated`: the sets `evaluate` measures, by name (one pass over them all).
    `unroll`: the K steps unrolled (default on XLA:CPU, which runs loops slowly) or a
    device loop (`lax.scan`, elsewhere)."""
    splits = list(evaluated.values())
    which = np.concatenate([np.full(len(s.labels), i) for i, s in enumerate(splits)])
    mask = (which[:, None] == np.arange(len(splits))).astype(np.float32)
    images, labels, mask = pad_to_multiple(
        eval_batch_size, np.concatenate([s.images for s in splits]),
        np.concatenate([s.labels for s in splits]), mask)
    host = {'train_images': train.images, 'train_labels': train.labels,
            'eval_images': images, 'eval_labels': labels, 'eval_mask': mask}
    data = {k: dp.replicate(v) for k, v in host.items()}
    return cls(dp, num_seeds, batch_size, eval_batch_size, len(train.labels), data,
               tuple(evaluated), mask > 0, jax.default_backend() == 'cpu'
               if unroll is None else unroll)

  def with_data(self, train: input_pipeline.Split,
                evaluated: Mapping[str, input_pipeline.Split]) -> 'DeviceLoop':
    """This loop on other data of the same shapes (another seed's split): its compiled
    programs take the data as arguments, so they serve it without compiling again."""
    other = DeviceLoop.create(self.dp, self.num_seeds, self.batch_size,
                              self.eval_batch_size, train, evaluated, self.unroll)
    if (other.evaluated == self.evaluated and all(
        other.data[k].shape == v.shape for k, v in self.data.items())):
      other._zeros, other._orders, other._eval_batch = (  # pylint: disable=protected-access
          self._zeros, self._orders, self._eval_batch)
      other._programs, other.compile_seconds = self._programs, self.compile_seconds
    return other

  @property
  def steps_per_epoch(self) -> int:
    return self.num_train // self.batch_size

  def zero_totals(self, states: steps.TrainState) -> Totals:
    """The epoch's running sums at its start: zero for each metric the train step
    returns on `states` (found by tracing it, once), per seed."""
    if self._zeros is None:
      one = lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype)
      images, labels = self.data['train_images'], self.data['train_labels']
      _, metrics = jax.eval_shape(
          steps.train_step, jax.tree.map(one, states),
          (jax.ShapeDtypeStruct((self.batch_size, *images.shape[1:]), images.dtype),
           jax.ShapeDtypeStruct((self.batch_size,), labels.dtype)),
          steps.step_rng(0, 0, 0))
      self._zeros = jax.jit(lambda: steps.zero_totals(metrics, (self.num_seeds,)),
                            out_shardings=self.dp.replicated)
    return self._zeros()

  def orders(self, seeds: jax.Array, epoch: int) -> jax.Array:
    """(seeds, examples): each seed's example order for `epoch`, on the devices."""
    return self._orders(seeds, np.int32(epoch))

  def program(self, count: int, like: tuple[Any, ...]) -> Any:
    """The compiled program of `count` steps (compiled once per count; its time is added
    to `compile_seconds`). `like`: (states, totals, orders, seeds) to compile for."""
    if count not in self._programs:
      start = time.perf_counter()
      program = _train_steps(self.dp, self.num_seeds, self.batch_size, self.unroll, count)
      self._programs[count] = program.lower(
          *like[:2], self.data['train_images'], self.data['train_labels'], *like[2:],
          np.int32(0), np.int32(0)).compile()
      self.compile_seconds += time.perf_counter() - start
    return self._programs[count]

  def run(self, states: steps.TrainState, totals: Totals, orders: jax.Array,
          seeds: jax.Array, epoch: int, first: int, count: int
          ) -> tuple[steps.TrainState, Totals]:
    """Steps first .. first + count - 1 of `epoch`, in one dispatch (asynchronous)."""
    program = self.program(count, (states, totals, orders, seeds))
    return program(states, totals, self.data['train_images'], self.data['train_labels'],
                   orders, seeds, np.int32(epoch), np.int32(first))

  def evaluate(self, states: steps.TrainState, names: Sequence[str] | None = None
               ) -> list[dict[str, dict[str, float]]]:
    """Every seed's mean of each `steps.example_metrics` on each evaluated set of
    `names` (None: all): [{set: {'loss': …, 'accuracy': …}}], in seed order. Only the
    batches that hold those sets run."""
    program, d = self._eval_batch, self.data
    names = list(self.evaluated if names is None else names)
    columns = [self.evaluated.index(n) for n in names]
    rows = np.flatnonzero(self.set_rows[:, columns].any(1))
    sums = None
    first = rows[0] // self.eval_batch_size * self.eval_batch_size if len(rows) else 0
    for start in range(first, rows[-1] + 1 if len(rows) else 0, self.eval_batch_size):
      out = program(states, d['eval_images'], d['eval_labels'], d['eval_mask'],
                    np.int32(start))
      sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    sums = parallel.to_host(sums)
    return [{name: steps.mean_metrics({k: v[i][j] for k, v in sums.items()})
             for name, j in zip(names, columns)} for i in range(self.num_seeds)]


def _train_steps(dp: parallel.DataParallel, num_seeds: int, batch: int, unroll: bool,
                 count: int):
  """`count` train steps as one jitted function."""
  rows_sharding = NamedSharding(dp.mesh, PartitionSpec(None, parallel.DATA_AXIS))
  train_step = _per_seed(steps.train_step, num_seeds, (True, True))
  step_rngs = jax.vmap(steps.step_rng, in_axes=(0, None, None))

  def run(states, totals, images, labels, orders, seeds, epoch, first):
    def one(carry, index):
      states, totals = carry
      rows = lax.dynamic_slice_in_dim(orders, index * batch, batch, axis=1)
      # Each device gathers the rows of its share of the batch.
      rows = lax.with_sharding_constraint(rows, rows_sharding)
      states, metrics = train_step(states, (images[rows], labels[rows]),
                                   step_rngs(seeds, epoch, index))
      return (states, steps.add_to_totals(totals, metrics, index)), None

    indices = first + jnp.arange(count, dtype=jnp.int32)
    if unroll:  # XLA:CPU ran a scan's body, even unrolled, far slower than this.
      carry = (states, totals)
      for j in range(count):
        # The barrier keeps XLA from fusing across steps, which moved the last bits of
        # the loss with K (jax 0.12): each step computes what a dispatch of one does.
        carry = lax.optimization_barrier(one(carry, indices[j])[0])
      return carry
    return lax.scan(one, (states, totals), indices)[0]

  rep = dp.replicated
  return jax.jit(run, donate_argnums=(0, 1), in_shardings=(rep,) * 8,
                 out_shardings=(rep, rep))


def _orders(dp: parallel.DataParallel, num_examples: int):
  permute = jax.vmap(steps.epoch_permutation, in_axes=(0, None, None))
  return jax.jit(lambda seeds, epoch: permute(seeds, epoch, num_examples),
                 in_shardings=(dp.replicated,) * 2, out_shardings=dp.replicated)


def _eval_batch(dp: parallel.DataParallel, num_seeds: int, batch: int):
  eval_step = _per_seed(steps.eval_step, num_seeds, (False, False))

  def evaluate(states, images, labels, mask, start):
    take = lambda x: lax.with_sharding_constraint(
        lax.dynamic_slice_in_dim(x, start, batch), dp.batch)
    return eval_step(states, (take(images), take(labels)), take(mask))

  return jax.jit(evaluate, in_shardings=(dp.replicated,) * 5, out_shardings=dp.replicated)


def pad_to_multiple(multiple: int, *arrays: np.ndarray) -> list[np.ndarray]:
  """`arrays` (of one length) padded with zeros to a whole number of batches."""
  n = len(arrays[0])
  padded = -(-n // multiple) * multiple
  return [np.pad(a, [(0, padded - n)] + [(0, 0)] * (a.ndim - 1)) for a in arrays]
