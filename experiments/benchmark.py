r"""cnn_jax vs a plain PyTorch reference of the same network and recipe, same machine:
python -m experiments.benchmark [--batch_sizes=128,32] [--target_accuracy=0.99]
(pip install -e '.[bench]')

1. Steady-state training throughput: both train the article's CNN (dropout before FC1,
   Adam) on in-memory random uint8 images (throughput does not depend on pixel
   values); each figure is the median of --repeats timings of --steps steps after
   --warmup steps; compile time apart.
2. Time to --target_accuracy MNIST test accuracy with the default config's recipe
   (configs/default.py: batch, Adam, learning-rate schedule, epochs; the PyTorch
   reference follows the same schedule step by step and the same example order): the
   training time until the first evaluation (every --eval_every_steps) that reaches it,
   evaluation time excluded, compile time apart.

Prints tables with ratios; writes --output (JSON) and --markdown (the README's table).
"""

import json
import os
import pathlib
import statistics
import time

from absl import flags
import jax
import numpy as np

from configs import default
from cnn_jax import input_pipeline, models, parallel, run_metrics, seeds, train
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_list('batch_sizes', ['128', '32'], 'Batch sizes to time.')
flags.DEFINE_integer('steps', 40, 'Timed steps per repeat.')
flags.DEFINE_integer('warmup', 5, 'Untimed steps first.')
flags.DEFINE_integer('repeats', 3, 'Timings per figure; the median is reported.')
flags.DEFINE_bool('torch', True, 'Also time the PyTorch reference.')
flags.DEFINE_string('output', 'runs/benchmark.json', 'Where the JSON goes.')
flags.DEFINE_string('markdown', None, 'Also write the tables here (e.g. results/benchmark.md).')
flags.DEFINE_float('target_accuracy', 0.99, 'Test accuracy to time; 0 skips that part.')
flags.DEFINE_integer('eval_every_steps', 100, 'Test-set evaluations this often.')
flags.DEFINE_string('data_dir', None, 'TFDS data dir (default: the config\'s).')
flags.DEFINE_integer('vmap_seeds', 0, 'Also time this many seeds trained together '
                     '(cnn_jax.seeds) against one seed at a time, both on one device, at '
                     'the default batch size; 0 skips.')


def _data(batch: int, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (count, batch, 28, 28, 1), dtype=np.uint8),
          rng.integers(0, 10, (count, batch)).astype(np.int32))


def _throughput(run, batch: int) -> float:
  """Examples/s of `run(first_step, count)`: warm-up untimed, then the median of
  --repeats timings of --steps steps."""
  run(0, FLAGS.warmup)
  times = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    run(FLAGS.warmup, FLAGS.steps)
    times.append(time.perf_counter() - start)
  return FLAGS.steps * batch / statistics.median(times)


def _cnn_jax_trainer(config, dp: parallel.DataParallel, steps_per_epoch: int,
                     images: np.ndarray, labels: np.ndarray):
  """(state, make zero totals, compiled step, its compile seconds) for `config`, with
  batches shaped like those of `images`/`labels`, as `train.train_and_evaluate` builds
  them."""
  tx, _ = train.create_optimizer(config, steps_per_epoch)
  state = train.create_train_state(jax.random.key(config.seed),
                                   models.create_model(config, 10), (28, 28, 1), tx,
                                   dp.replicated)
  zeros = train.make_zero_totals(dp)
  start = time.perf_counter()
  step = train.compile_train_step(dp, state, zeros(), config.batch_size, images, labels)
  return state, zeros, step, time.perf_counter() - start


def time_cnn_jax(batch: int, dp: parallel.DataParallel | None = None
                 ) -> dict[str, float]:
  config = default.get_config()
  config.batch_size = batch
  images, labels = _data(batch, FLAGS.warmup + FLAGS.steps)
  dp = dp or parallel.DataParallel.create(batch)
  state, zeros, step, compile_seconds = _cnn_jax_trainer(config, dp, 1000, images[0],
                                                         labels[0])
  totals = zeros()

  def run(first: int, count: int):
    nonlocal state, totals
    for i in range(first, first + count):
      x, y = dp.global_batch(images[i % len(images)], labels[i % len(labels)],
                             batch_size=batch)
      state, totals = step(state, totals, x, y, np.int32(0), np.int32(1), np.int32(i))
    jax.block_until_ready(state)

  return {'examples_per_second': _throughput(run, batch),
          'compile_seconds': compile_seconds}


def time_vmap_seeds(count: int) -> dict[str, float]:
  """Examples/s (all seeds together) of `count` seeds in one vmapped program, and of
  one seed alone, both on the first device."""
  config = default.get_config()
  batch = config.batch_size
  images, labels = _data(batch, FLAGS.warmup + FLAGS.steps)
  images = np.repeat(images[:, None], count, axis=1)  # (steps, seeds, batch, ...)
  labels = np.repeat(labels[:, None], count, axis=1)
  tx, _ = train.create_optimizer(config, 1000)
  states = seeds.create_train_states(range(count), models.create_model(config, 10),
                                     (28, 28, 1), tx)
  totals = seeds.zero_totals(count)
  seed_array = np.arange(count, dtype=np.int32)
  start = time.perf_counter()
  step = seeds.make_train_step().lower(states, totals, images[0], labels[0], seed_array,
                                       np.int32(0), np.int32(0)).compile()
  compile_seconds = time.perf_counter() - start

  def run(first: int, steps: int):
    nonlocal states, totals
    for i in range(first, first + steps):
      states, totals = step(states, totals, images[i % len(images)],
                            labels[i % len(labels)], seed_array, np.int32(1), np.int32(i))
    jax.block_until_ready(states)

  one_device = parallel.DataParallel(jax.sharding.Mesh(
      np.array(jax.devices()[:1]), (parallel.DATA_AXIS,),
      axis_types=(jax.sharding.AxisType.Auto,)))
  return {'seeds': count, 'device': jax.devices()[0].device_kind, 'batch': batch,
          'together_examples_per_second': _throughput(run, batch * count),
          'together_compile_seconds': compile_seconds,
          'alone_examples_per_second': time_cnn_jax(batch, one_device)['examples_per_second']}


def _torch_model():
  """The article's CNN in PyTorch (its default initializers), and the torch module."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  torch.set_num_threads(len(os.sched_getaffinity(0)))
  return torch, nn.Sequential(
      nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
      nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
      nn.Dropout(0.25), nn.Linear(3136, 128), nn.Linear(128, 10))


def _torch_images(torch, images: np.ndarray):
  """uint8 NHWC → float NCHW in [0, 1], what train.preprocess does in the JAX step."""
  return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float() / 255.0


def time_torch(batch: int) -> dict[str, float]:
  torch, model = _torch_model()
  nn = torch.nn
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  images, labels = _data(batch, FLAGS.warmup + FLAGS.steps)
  y_all = torch.from_numpy(labels).long()
  model.train()

  def run(first: int, count: int):
    for i in range(first, first + count):
      x = _torch_images(torch, images[i % len(images)])
      optimizer.zero_grad(set_to_none=True)
      loss = nn.functional.cross_entropy(model(x), y_all[i % len(y_all)])
      loss.backward()
      optimizer.step()

  return {'examples_per_second': _throughput(run, batch), 'compile_seconds': 0.0,
          'torch_version': torch.__version__}


class _Clock:
  """Training seconds only: `pause()` around evaluations."""

  def __init__(self):
    self.seconds, self._start = 0.0, time.perf_counter()

  def pause(self):
    self.seconds += time.perf_counter() - self._start

  def resume(self):
    self._start = time.perf_counter()


def time_to_accuracy(config, num_examples: int, run_step, evaluate, target: float,
                     eval_every_steps: int, wait=lambda: None) -> dict[str, float]:
  """Runs `run_step(epoch, step, rows)` over the config's epochs in the trainer's example
  order, calling `evaluate()` every `eval_every_steps` and at each epoch's end with the
  clock paused, until it returns at least `target`. `wait()` blocks until the steps
  run so far have finished (JAX dispatches them asynchronously)."""
  batch = config.batch_size
  steps_per_epoch = num_examples // batch
  clock, accuracy, step = _Clock(), 0.0, 0

  def result() -> dict[str, float]:
    return {'seconds': clock.seconds, 'steps': step, 'epochs': step / steps_per_epoch,
            'accuracy': accuracy, 'reached': accuracy >= target}

  for epoch in range(config.num_epochs):
    # A writable copy: torch refuses read-only index arrays.
    order = np.array(train.epoch_permutation(config.seed, epoch, num_examples))
    for i in range(steps_per_epoch):
      run_step(epoch, i, order[i * batch:(i + 1) * batch])
      step += 1
      if step % eval_every_steps == 0 or i == steps_per_epoch - 1:
        wait()  # Queued steps are training time, not evaluation time.
        clock.pause()
        accuracy = evaluate()
        if accuracy >= target:
          return result()
        clock.resume()
  return result()


def cnn_jax_time_to_accuracy(config, train_split, test_split) -> dict[str, float]:
  start = time.perf_counter()
  dp = parallel.DataParallel.create(config.batch_size, config.eval_batch_size)
  state, zeros, step, _ = _cnn_jax_trainer(
      config, dp, len(train_split.labels) // config.batch_size, train_split.images,
      train_split.labels)
  totals = zeros()
  seed = np.int32(config.seed)
  test = train.pad_to_multiple(test_split, config.eval_batch_size)

  def evaluate() -> float:
    return train.evaluate(state, *test, config.eval_batch_size, dp)['accuracy']

  evaluate()  # Compiles the eval step.
  compile_seconds = time.perf_counter() - start

  def run_step(epoch, index, rows):
    nonlocal state, totals
    x, y = dp.global_batch(train_split.images[rows], train_split.labels[rows],
                           batch_size=config.batch_size)
    state, totals = step(state, totals, x, y, seed, np.int32(epoch), np.int32(index))

  result = time_to_accuracy(config, len(train_split.labels), run_step, evaluate,
                            FLAGS.target_accuracy, FLAGS.eval_every_steps,
                            wait=lambda: jax.block_until_ready(state))
  return {**result, 'compile_seconds': compile_seconds}


def torch_time_to_accuracy(config, train_split, test_split) -> dict[str, float]:
  if config.optimizer != 'adam':
    raise ValueError(f'the PyTorch reference uses Adam, not {config.optimizer!r}')
  torch, model = _torch_model()
  optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
  steps_per_epoch = len(train_split.labels) // config.batch_size
  # The trainer's own schedule (warmup, decay), tabulated once per step.
  _, schedule = train.create_optimizer(config, steps_per_epoch)
  rates = np.asarray(jax.vmap(schedule)(np.arange(config.num_epochs * steps_per_epoch + 1)))
  scheduler = torch.optim.lr_scheduler.LambdaLR(
      optimizer, lambda t: float(rates[min(t, len(rates) - 1)]) / config.learning_rate)
  train_y = torch.from_numpy(np.array(train_split.labels)).long()
  test_x = _torch_images(torch, test_split.images)
  test_y = torch.from_numpy(np.array(test_split.labels))

  def evaluate() -> float:
    model.eval()
    with torch.no_grad():
      correct = sum(int((model(test_x[i:i + config.eval_batch_size]).argmax(1)
                         == test_y[i:i + config.eval_batch_size]).sum())
                    for i in range(0, len(test_y), config.eval_batch_size))
    model.train()
    return correct / len(test_y)

  def run_step(epoch, index, rows):
    del epoch, index
    optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(_torch_images(torch, train_split.images[rows])),
                                             train_y[rows])
    loss.backward()
    optimizer.step()
    scheduler.step()

  model.train()
  return {**time_to_accuracy(config, len(train_split.labels), run_step, evaluate,
                             FLAGS.target_accuracy, FLAGS.eval_every_steps),
          'compile_seconds': 0.0}


def _throughput_table(results) -> list[str]:
  lines = ['| batch | cnn_jax ex/s | compile s | PyTorch eager ex/s | cnn_jax / PyTorch |',
           '|---:|---:|---:|---:|---:|']
  for row in results['rows']:
    ours, theirs = row['cnn_jax'], row['torch']
    lines.append(f"| {row['batch']} | {ours['examples_per_second']:,.0f} | "
                 f"{ours['compile_seconds']:.1f} | " +
                 (f"{theirs['examples_per_second']:,.0f} | {row['ratio']:.2f}× |" if theirs
                  else 'not run | |'))
  return lines


def _seeds_table(r) -> list[str]:
  return ['| seeds on one device | together ex/s (all seeds) | one at a time ex/s | '
          'together / one at a time |', '|---|---:|---:|---:|',
          f"| {r['seeds']} × batch {r['batch']} ({r['device']}) | "
          f"{r['together_examples_per_second']:,.0f} | "
          f"{r['alone_examples_per_second']:,.0f} | "
          f"{r['together_examples_per_second'] / r['alone_examples_per_second']:.2f}× |"]


def _accuracy_table(results) -> list[str]:
  target = results['time_to_accuracy']['target']
  lines = [f'| to {target:.1%} test accuracy | training s | + compile s | steps | epochs '
           '| accuracy reached |', '|---|---:|---:|---:|---:|---:|']
  for name, r in results['time_to_accuracy']['runs'].items():
    lines.append(f"| {name} | {r['seconds']:.1f}{'' if r['reached'] else ' (not reached)'}"
                 f" | {r['compile_seconds']:.1f} | {r['steps']} | {r['epochs']:.2f} | "
                 f"{r['accuracy']:.2%} |")
  return lines


def main(argv):
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  results = {'machine': f'{jax.devices()[0].device_kind} ({run_metrics.host_description()})',
             'threads': len(os.sched_getaffinity(0)),
             'cpu_devices': jax.local_device_count(),
             'compilation_cache': jax.config.jax_compilation_cache_dir, 'rows': []}
  header = (f"machine: {results['machine']}, {results['threads']} threads "
            f"({results['cpu_devices']} XLA device(s))" + (
                f"; compiled programs reused from {results['compilation_cache']}"
                if results['compilation_cache'] else ''))
  print(header + '\n', flush=True)
  batches = list(map(int, FLAGS.batch_sizes))
  timing = {'cnn_jax': {b: time_cnn_jax(b) for b in batches}}
  data = None
  if FLAGS.target_accuracy:
    config = default.get_config()
    config.data_dir = FLAGS.data_dir or config.data_dir
    _, train_split, test_split = input_pipeline.load_dataset(config.to_dict())
    data = (config, train_split, test_split)
    runs = {'cnn_jax': cnn_jax_time_to_accuracy(*data)}
  # PyTorch last, so its thread pools are not running yet while JAX is timed.
  if FLAGS.torch:
    timing['torch'] = {b: time_torch(b) for b in batches}
    if data:
      runs['PyTorch eager'] = torch_time_to_accuracy(*data)
  for b in batches:
    ours, theirs = timing['cnn_jax'][b], timing.get('torch', {}).get(b)
    results['rows'].append({
        'batch': b, 'cnn_jax': ours, 'torch': theirs,
        'ratio': ours['examples_per_second'] / theirs['examples_per_second']
                 if theirs else None})
  tables = _throughput_table(results)
  if FLAGS.vmap_seeds:
    results['vmap_seeds'] = time_vmap_seeds(FLAGS.vmap_seeds)
    tables += [''] + _seeds_table(results['vmap_seeds'])
  if data:
    results['time_to_accuracy'] = {'target': FLAGS.target_accuracy,
                                   'eval_every_steps': FLAGS.eval_every_steps, 'runs': runs}
    tables += [''] + _accuracy_table(results)
  print('\n'.join(tables))
  path = pathlib.Path(FLAGS.output)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(results, indent=2) + '\n')
  print(f'\nWrote {path}')
  if FLAGS.markdown:
    command = ' '.join(['python -m experiments.benchmark'] + [
        f'--{f}={FLAGS[f].serialize().split("=", 1)[1]}'
        for f in ('batch_sizes', 'target_accuracy', 'eval_every_steps', 'vmap_seeds')
        if FLAGS[f].present])
    markdown = pathlib.Path(FLAGS.markdown)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text('\n'.join([f'{header}; `{command}`', ''] + tables) + '\n')
    print(f'Wrote {markdown}')


if __name__ == '__main__':
  cli.run(main, cache_compiled=False)  # Compile times are cold unless --compilation_cache.
