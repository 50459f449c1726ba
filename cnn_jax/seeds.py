"""Several seeds of one configuration trained together: one XLA program, `jax.vmap`
over a leading seed axis of the train state, the batches and the dropout keys.

Seed s sees the example order and dropout keys that `train.train_and_evaluate` with
seed s would (`train.epoch_permutation`, `train.step_rng`), starts from the same
parameters, and its run directory gets the same files (config.json, metrics.json,
TensorBoard events, epoch checkpoints), so each run can be resumed, compared or
reported alone.

Where it pays: on an accelerator, which one small network leaves mostly idle. On
XLA:CPU it is slower than training the seeds one after another (`python -m
experiments.benchmark --vmap_seeds=4` measures both), so sweeps use it only with an
accelerator (`sweep.default_vmap_seeds`). One process, the default device; a SIGTERM
stops after the current step with the finished epochs checkpointed (no mid-epoch
checkpoint), and the rerun resumes each run on its own.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnn_jax import checkpoints, input_pipeline, models, options, run_metrics, safety, train
from cnn_jax.metric_writers import SummaryWriter


def create_train_states(seeds: Sequence[int], model, input_shape: tuple[int, ...], tx
                        ) -> train.TrainState:
  """The initial states of `seeds`, stacked on a leading axis: entry i equals
  `train.create_train_state(jax.random.key(seeds[i]), ...)`."""
  return jax.vmap(lambda seed: train.create_train_state(
      jax.random.key(seed), model, input_shape, tx))(jnp.asarray(seeds, jnp.int32))


def seed_state(states: train.TrainState, i: int) -> train.TrainState:
  """Entry i of stacked states: what a single-seed run holds."""
  return jax.tree.map(lambda x: x[i], states)


def make_train_step():
  """The jitted step of every seed at once: `train.train_step` vmapped, with per-seed
  running sums of loss, accuracy and the first non-finite step (as
  `train.make_train_step` keeps them for one seed)."""

  def step(states, totals, images, labels, seeds, epoch, index):
    rngs = jax.vmap(train.step_rng, in_axes=(0, None, None))(seeds, epoch, index)
    states, metrics = jax.vmap(train.train_step)(states, (images, labels), rngs)
    return states, train.add_to_totals(totals, metrics, index)

  return jax.jit(step, donate_argnums=(0, 1))


def zero_totals(num_seeds: int) -> dict[str, jax.Array]:
  return train.zero_totals((num_seeds,))


_eval_step = jax.jit(jax.vmap(train.eval_step, in_axes=(0, None, None)))


def evaluate(states: train.TrainState, images: np.ndarray, labels: np.ndarray,
             mask: np.ndarray, batch_size: int) -> list[dict[str, float]]:
  """`train.evaluate` of every seed: [{'loss', 'accuracy'}] in seed order."""
  totals = None
  for start in range(0, images.shape[0], batch_size):
    rows = slice(start, start + batch_size)
    sums = _eval_step(states, (images[rows], labels[rows]), mask[rows])
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  totals = jax.tree.map(np.asarray, totals)
  return [train.mean_metrics({k: v[i] for k, v in totals.items()})
          for i in range(len(totals['count']))]


def train_seeds(config: ml_collections.ConfigDict, seeds: Sequence[int],
                workdirs: Sequence[str | pathlib.Path], *, hparams_group: str | None = None,
                on_epoch_end: Callable[[int, dict[str, Any], train.TrainState], None]
                | None = None) -> list[dict[str, Any]]:
  """Trains `config` once per seed, all together, run i in `workdirs[i]` (new runs
  only); returns each run's metrics. `on_epoch_end(i, record, state)` after each
  epoch's checkpoints. A non-finite loss in any seed stops all of them
  (`safety.NonFiniteLossError`) with the finished epochs checkpointed.
  """
  if jax.process_count() > 1:
    raise ValueError('training seeds together is single-process only')
  if len(seeds) != len(workdirs) or len(set(seeds)) != len(seeds):
    raise ValueError(f'expected one workdir per distinct seed, got seeds {list(seeds)} '
                     f'and {len(workdirs)} workdirs')
  wall_start = time.perf_counter()
  configs = []
  for seed in seeds:
    c = ml_collections.ConfigDict(config.to_dict())
    c.seed = seed
    options.validate_config(c.to_dict())
    configs.append(c)
  cfg = configs[0].to_dict()
  spec = input_pipeline.dataset_spec(cfg)
  options.validate_geometry(cfg, spec.input_shape, spec.num_classes)
  spec, train_split, test_split = input_pipeline.load_dataset(cfg)
  num_train, batch = len(train_split.labels), config.batch_size
  if batch > num_train:
    raise options.ConfigError(f'config.batch_size={batch} is invalid: expected at most '
                              f'the {num_train} training examples')
  steps_per_epoch = num_train // batch

  workdirs = [pathlib.Path(w) for w in workdirs]
  savers = []
  for workdir, c in zip(workdirs, configs):
    safety.check_workdir_config(workdir, c.to_dict(), False)
    workdir.mkdir(parents=True, exist_ok=True)
    saver = checkpoints.Checkpointer(workdir / 'checkpoints', config.checkpoints_to_keep)
    if saver.latest_epoch() is not None:
      saver.close()
      raise ValueError(f'{workdir} has checkpoints: resume it alone '
                       '(train.train_and_evaluate)')
    (workdir / 'config.json').write_text(c.to_json_best_effort(indent=2) + '\n')
    savers.append((saver, checkpoints.Checkpointer(workdir / checkpoints.BEST_DIR, keep=1)))

  model = models.create_model(cfg, spec.num_classes)
  tx, schedule = train.create_optimizer(cfg, steps_per_epoch)
  states = create_train_states(seeds, model, spec.input_shape, tx)
  num_params = sum(x[0].size for x in jax.tree.leaves(states.params))
  seed_array = np.asarray(seeds, np.int32)
  compile_start = time.perf_counter()
  step = make_train_step().lower(
      states, zero_totals(len(seeds)),
      jax.ShapeDtypeStruct((len(seeds), batch, *spec.input_shape), np.uint8),
      jax.ShapeDtypeStruct((len(seeds), batch), np.int32), seed_array, np.int32(0),
      np.int32(0)).compile()
  facts = dict(num_params=num_params, dataset=spec.name,
               device=jax.devices()[0].device_kind, processes=1,
               compile_seconds=time.perf_counter() - compile_start,
               seeds_trained_together=len(seeds))
  writers = [SummaryWriter(str(w)) for w in workdirs]
  for writer, c in zip(writers, configs):
    writer.hparams(c.to_dict(), group=hparams_group)
  histories = [[] for _ in seeds]
  test_arrays = train.pad_to_multiple(test_split, config.eval_batch_size)

  def write_all() -> list[dict[str, Any]]:
    return [run_metrics.write_metrics(
        w / 'metrics.json', h, num_epochs=config.num_epochs, **facts,
        wall_seconds_this_process=time.perf_counter() - wall_start)
        for w, h in zip(workdirs, histories)]

  with safety.StopSignal() as stop:
    try:
      for epoch in range(1, config.num_epochs + 1):
        epoch_start = time.perf_counter()
        orders = np.stack([np.asarray(train.epoch_permutation(s, epoch, num_train))
                           for s in seeds])
        totals = zero_totals(len(seeds))
        for index in range(steps_per_epoch):
          rows = orders[:, index * batch:(index + 1) * batch]
          states, totals = step(states, totals, train_split.images[rows],
                                train_split.labels[rows], seed_array, np.int32(epoch),
                                np.int32(index))
          if stop.requested:
            raise safety.Interrupted(
                f'{stop.requested}: stopped at epoch {epoch} step {index + 1}; rerun to '
                'resume each run from its last finished epoch')
        totals = jax.tree.map(np.asarray, totals)
        train_seconds = time.perf_counter() - epoch_start
        bad = [s for s, b in zip(seeds, totals['first_nonfinite_step']) if b >= 0]
        if bad:
          raise safety.NonFiniteLossError(
              f'the training loss became NaN or Inf at epoch {epoch} for seed(s) {bad}; '
              'lower config.learning_rate or check the data')
        tests = evaluate(states, *test_arrays, config.eval_batch_size)
        rate = float(schedule(int(np.asarray(states.step)[0]) - 1))
        for i, (history, test) in enumerate(zip(histories, tests)):
          # This run's examples per second of wall time; the seeds together did
          # len(seeds) times as many.
          record = run_metrics.epoch_record(
              epoch, totals['loss'][i], totals['accuracy'][i], steps_per_epoch, test,
              rate, steps_per_epoch * batch, train_seconds)
          best = run_metrics.is_best(record, history)
          history.append(record)
          state = seed_state(states, i)
          train.save_epoch(*savers[i], epoch, state, best)
          writers[i].scalars(epoch, run_metrics.tensorboard_scalars(record))
          writers[i].flush()
          if on_epoch_end:
            on_epoch_end(i, {**record, 'num_epochs': config.num_epochs}, state)
        write_all()
    finally:
      for saver, best in savers:
        saver.close()
        best.close()
      for writer in writers:
        writer.close()
  return write_all()
