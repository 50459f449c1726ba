r"""cnn_jax vs a plain PyTorch reference of the same network and recipe, same machine:
python -m experiments.benchmark [--batch_sizes=128,32] [--target_accuracy=0.99]
(pip install -e '.[bench]')

cnn_jax is timed through the trainer itself (`train.Trainer`: its set-up, its device
loop, its steps per dispatch); PyTorch runs eagerly on the same device (CUDA where a
GPU is visible, else CPU), its data on that device too. Both train on MNIST in the
trainer's example order.

1. Steady-state training throughput: the median of --repeats timings of --steps steps
   after --warmup steps; compile time apart.
2. Seeds trained together (--vmap_seeds=N): N seeds in one program against one seed,
   on the same devices.
3. Time to --target_accuracy MNIST test accuracy with the default config's recipe
   (configs/default.py; the PyTorch reference follows the same learning-rate schedule
   step by step): the training time until the first evaluation (every
   --eval_every_steps) that reaches it, evaluation time excluded, compile time apart.

Prints tables with ratios; writes --output (JSON) and --markdown (the README's table).
"""

import itertools
import json
import os
import pathlib
import statistics
import tempfile
import time
from typing import Any, Callable

from absl import flags
import jax
import numpy as np

from configs import default
from cnn_jax import device_loop, input_pipeline, provenance, run_metrics, steps, train
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_list('batch_sizes', ['128', '32'], 'Batch sizes to time.')
flags.DEFINE_integer('steps', None, 'Timed steps per repeat (default: 40 on CPU, 936 — '
                     'two MNIST epochs — on accelerators).')
flags.DEFINE_integer('warmup', 5, 'Untimed steps first (at least one dispatch).')
flags.DEFINE_integer('repeats', 3, 'Timings per figure; the median is reported.')
flags.DEFINE_bool('torch', True, 'Also time the PyTorch reference.')
flags.DEFINE_string('output', 'runs/benchmark.json', 'Where the JSON goes.')
flags.DEFINE_string('markdown', None, 'Also write the tables here (e.g. results/benchmark.md).')
flags.DEFINE_float('target_accuracy', 0.99, 'Test accuracy to time; 0 skips that part.')
flags.DEFINE_integer('eval_every_steps', 100, 'Test-set evaluations this often.')
flags.DEFINE_string('data_dir', None, 'TFDS data dir (default: the config\'s).')
flags.DEFINE_integer('vmap_seeds', 0, 'Also time this many seeds trained together '
                     'against one seed, at the default batch size; 0 skips.')
flags.DEFINE_string('steps_per_dispatch', 'auto', 'cnn_jax\'s config.steps_per_dispatch.')

RunSteps = Callable[[int, int, int], None]  # (epoch, first step, count)


def _config(**overrides: Any):
  config = default.get_config()
  config.data_dir = FLAGS.data_dir or config.data_dir
  config.steps_per_dispatch = FLAGS.steps_per_dispatch
  config.update(overrides)
  return config


class CnnJax:
  """The trainer's own set-up and device loop, driven step range by step range."""
  name = 'cnn_jax'

  def __init__(self, config, num_seeds: int, workdir: str):
    self.trainer = train.Trainer(config, list(range(num_seeds)),
                                 [f'{workdir}/seed{i}' for i in range(num_seeds)], None,
                                 False)
    self.loop = self.trainer.setup.loop
    self.states = self.trainer.initial
    self.totals = self.loop.zero_totals(self.states)
    self.orders = {}
    self.steps_per_epoch = self.trainer.steps_per_epoch
    self.steps_per_dispatch = self.trainer.steps_per_dispatch
    # Compiled before any clock starts: both program shapes an epoch uses, and eval.
    start = time.perf_counter()
    like = (self.states, self.totals, self.loop.orders(self.trainer.seeds, 1),
            self.trainer.seeds)
    for count in {self.steps_per_dispatch, self.steps_per_epoch % self.steps_per_dispatch}:
      if count:
        self.loop.program(count, like)
    self.evaluate()
    self.compile_seconds = time.perf_counter() - start

  def run_steps(self, epoch: int, first: int, count: int) -> None:
    if epoch not in self.orders:
      self.orders = {epoch: self.loop.orders(self.trainer.seeds, epoch)}
    self.states, self.totals = self.loop.run(self.states, self.totals, self.orders[epoch],
                                             self.trainer.seeds, epoch, first, count)

  def evaluate(self) -> float:
    return self.loop.evaluate(self.states)[0]['test']['accuracy']

  def wait(self) -> None:
    jax.block_until_ready(self.states)

  def close(self) -> None:
    self.trainer.close()


class TorchReference:
  """The article's CNN in eager PyTorch (its default initializers), Adam on the
  trainer's learning-rate schedule, data on the device; one step per call."""
  name = 'PyTorch eager'
  compile_seconds = 0.0

  def __init__(self, config, train_split: input_pipeline.Split,
               test_split: input_pipeline.Split):
    import torch  # pylint: disable=g-import-not-at-top
    from torch import nn  # pylint: disable=g-import-not-at-top
    if config.optimizer != 'adam':
      raise ValueError(f'the PyTorch reference uses Adam, not {config.optimizer!r}')
    self.torch, self.config = torch, config
    self.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if self.device == 'cpu':
      torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    self.model = nn.Sequential(
        nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
        nn.Dropout(0.25), nn.Linear(3136, 128), nn.Linear(128, 10)).to(self.device)
    self.steps_per_epoch = len(train_split.labels) // config.batch_size
    self.steps_per_dispatch = 1
    _, schedule = steps.create_optimizer(config, self.steps_per_epoch)
    self.rates = np.asarray(jax.vmap(schedule)(
        np.arange(config.num_epochs * self.steps_per_epoch + 1)))
    self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
    self.step = 0
    # uint8 NHWC → float NCHW in [0, 1] once, on the device (steps.preprocess).
    as_input = lambda x: (torch.from_numpy(np.array(x)).to(self.device)
                          .permute(0, 3, 1, 2).float() / 255.0)
    self.train_x, self.test_x = as_input(train_split.images), as_input(test_split.images)
    as_labels = lambda y: torch.from_numpy(np.array(y)).long().to(self.device)
    self.train_y, self.test_y = as_labels(train_split.labels), as_labels(test_split.labels)
    self.orders = {}

  def run_steps(self, epoch: int, first: int, count: int) -> None:
    torch, batch = self.torch, self.config.batch_size
    if epoch not in self.orders:
      self.orders = {epoch: torch.from_numpy(np.array(steps.epoch_permutation(
          self.config.seed, epoch, len(self.train_y)))).to(self.device)}
    self.model.train()
    for index in range(first, first + count):
      rows = self.orders[epoch][index * batch:(index + 1) * batch]
      for group in self.optimizer.param_groups:
        group['lr'] = float(self.rates[min(self.step, len(self.rates) - 1)])
      self.optimizer.zero_grad(set_to_none=True)
      loss = torch.nn.functional.cross_entropy(self.model(self.train_x[rows]),
                                               self.train_y[rows])
      loss.backward()
      self.optimizer.step()
      self.step += 1

  def evaluate(self) -> float:
    self.model.eval()
    size = self.config.eval_batch_size
    with self.torch.no_grad():
      correct = sum(int((self.model(self.test_x[i:i + size]).argmax(1)
                         == self.test_y[i:i + size]).sum())
                    for i in range(0, len(self.test_y), size))
    return correct / len(self.test_y)

  def wait(self) -> None:
    if self.device == 'cuda':
      self.torch.cuda.synchronize()

  def close(self) -> None:
    pass


def throughput(trainer, examples_per_step: int, warmup: int, timed: int,
               repeats: int) -> float:
  """Examples/s: `warmup` steps untimed, then the median of `repeats` timings of
  `timed` steps (global steps run on, epoch after epoch)."""
  def run(first: int, count: int) -> None:
    for epoch, index, n in device_loop.dispatches(trainer.steps_per_epoch, trainer.steps_per_dispatch,
                                      first, count):
      trainer.run_steps(epoch, index, n)
    trainer.wait()

  run(0, warmup)
  times = []
  for r in range(repeats):
    start = time.perf_counter()
    run(warmup + r * timed, timed)
    times.append(time.perf_counter() - start)
  return timed * examples_per_step / statistics.median(times)


class _Clock:
  """Training seconds only: `pause()` around evaluations."""

  def __init__(self):
    self.seconds, self._start = 0.0, time.perf_counter()

  def pause(self):
    self.seconds += time.perf_counter() - self._start

  def resume(self):
    self._start = time.perf_counter()


def time_to_accuracy(config, num_examples: int, run_steps: RunSteps,
                     evaluate: Callable[[], float], target: float, eval_every_steps: int,
                     steps_per_dispatch: int = 1, wait: Callable[[], None] = lambda: None
                     ) -> dict[str, Any]:
  """Trains over the config's epochs with `run_steps(epoch, first, count)` (dispatches
  of at most `steps_per_dispatch` steps), calling `evaluate()` with the clock paused
  after the dispatch that completes each `eval_every_steps` steps and at each epoch's
  end, until it returns at least `target`. `wait()` blocks until the steps run so far
  have finished (dispatch is asynchronous)."""
  steps_per_epoch = num_examples // config.batch_size
  total = config.num_epochs * steps_per_epoch
  clock, accuracy, step = _Clock(), 0.0, 0

  def result() -> dict[str, Any]:
    return {'seconds': clock.seconds, 'steps': step, 'epochs': step / steps_per_epoch,
            'accuracy': accuracy, 'reached': accuracy >= target}

  for epoch, index, count in device_loop.dispatches(steps_per_epoch, steps_per_dispatch, 0,
                                                         total):
    run_steps(epoch, index, count)
    before, step = step, step + count
    if step // eval_every_steps > before // eval_every_steps or (
        index + count == steps_per_epoch):
      wait()  # Queued steps are training time, not evaluation time.
      clock.pause()
      accuracy = evaluate()
      if accuracy >= target:
        return result()
      clock.resume()
  return result()


def _throughput_table(results) -> list[str]:
  lines = ['| batch | cnn_jax ex/s | steps/dispatch | compile s | PyTorch eager ex/s | '
           'cnn_jax / PyTorch |', '|---:|---:|---:|---:|---:|---:|']
  for row in results['rows']:
    ours, theirs = row['cnn_jax'], row['torch']
    lines.append(f"| {row['batch']} | {ours['examples_per_second']:,.0f} | "
                 f"{ours['steps_per_dispatch']} | {ours['compile_seconds']:.1f} | " +
                 (f"{theirs['examples_per_second']:,.0f} | {row['ratio']:.2f}× |" if theirs
                  else 'not run | |'))
  return lines


def _seeds_table(r) -> list[str]:
  return ['| seeds, same devices | together ex/s (all seeds) | one seed ex/s | '
          'together / one |', '|---|---:|---:|---:|',
          f"| {r['seeds']} × batch {r['batch']} | "
          f"{r['together_examples_per_second']:,.0f} | "
          f"{r['alone_examples_per_second']:,.0f} | "
          f"{r['together_examples_per_second'] / r['alone_examples_per_second']:.2f}× |"]


def _accuracy_table(results) -> list[str]:
  target = results['time_to_accuracy']['target']
  lines = [f'| to {target:.1%} test accuracy | training s | + compile s | steps | epochs '
           '| accuracy reached |', '|---|---:|---:|---:|---:|---:|']
  for name, r in results['time_to_accuracy']['runs'].items():
    lines.append(f"| {name} | {r['seconds']:.2f}{'' if r['reached'] else ' (not reached)'}"
                 f" | {r['compile_seconds']:.1f} | {r['steps']} | {r['epochs']:.2f} | "
                 f"{r['accuracy']:.2%} |")
  return lines


def _time(make, batch: int, examples_per_step: int, timed: int) -> dict[str, Any]:
  trainer = make()
  speed = throughput(trainer, examples_per_step, FLAGS.warmup, timed, FLAGS.repeats)
  trainer.close()
  return {'examples_per_second': speed, 'compile_seconds': trainer.compile_seconds,
          'batch': batch, 'steps_per_dispatch': trainer.steps_per_dispatch}


def _reach(trainer, config, num_examples: int) -> dict[str, Any]:
  result = time_to_accuracy(config, num_examples, trainer.run_steps, trainer.evaluate,
                            FLAGS.target_accuracy, FLAGS.eval_every_steps,
                            trainer.steps_per_dispatch, trainer.wait)
  trainer.close()
  return {**result, 'compile_seconds': trainer.compile_seconds}


def _measure(config, batches: list[int], timed: int, train_split, test_split, jax_make
             ) -> dict[str, Any]:
  """Every timing, cnn_jax first: PyTorch's thread pools are not running yet then."""
  out: dict[str, Any] = {'rows': []}
  torch_make = lambda **kw: lambda: TorchReference(_config(**kw), train_split, test_split)
  timing = {'cnn_jax': {b: _time(jax_make(1, batch_size=b), b, b, timed) for b in batches}}
  runs = {}
  if FLAGS.vmap_seeds:
    n, batch = FLAGS.vmap_seeds, config.batch_size
    out['vmap_seeds'] = {
        'seeds': n, 'batch': batch,
        'together_examples_per_second': _time(jax_make(n), batch, batch * n, timed)[
            'examples_per_second'],
        'alone_examples_per_second': _time(jax_make(1), batch, batch, timed)[
            'examples_per_second']}
  if FLAGS.target_accuracy:
    runs['cnn_jax'] = _reach(jax_make(1)(), config, len(train_split.labels))
  if FLAGS.torch:
    timing['torch'] = {b: _time(torch_make(batch_size=b), b, b, timed) for b in batches}
    if FLAGS.target_accuracy:
      reference = TorchReference(config, train_split, test_split)
      runs[f'PyTorch eager ({reference.device})'] = _reach(reference, config,
                                                           len(train_split.labels))
  for b in batches:
    ours, theirs = timing['cnn_jax'][b], timing.get('torch', {}).get(b)
    out['rows'].append({
        'batch': b, 'cnn_jax': ours, 'torch': theirs,
        'ratio': ours['examples_per_second'] / theirs['examples_per_second']
                 if theirs else None})
  if runs:
    out['time_to_accuracy'] = {'target': FLAGS.target_accuracy,
                               'eval_every_steps': FLAGS.eval_every_steps, 'runs': runs}
  return out


def main(argv):
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  accelerator = jax.default_backend() != 'cpu'
  timed = FLAGS.steps or (936 if accelerator else 40)
  results = {'machine': f'{jax.devices()[0].device_kind} ({run_metrics.host_description()})',
             'threads': len(os.sched_getaffinity(0)),
             'devices': jax.local_device_count(), 'timed_steps': timed,
             'compilation_cache': jax.config.jax_compilation_cache_dir}
  header = (f"machine: {results['machine']}, {results['threads']} threads, "
            f"{results['devices']} XLA device(s)" + (
                f"; compiled programs reused from {results['compilation_cache']}"
                if results['compilation_cache'] else ''))
  print(header + '\n', flush=True)
  config = _config()
  data = input_pipeline.load_dataset(config.to_dict())
  train_split, test_split = data.train, data.test
  batches = list(map(int, FLAGS.batch_sizes))
  with tempfile.TemporaryDirectory(prefix='cnn_jax_benchmark_') as workdir:
    # The trainer's run directories, thrown away: only its timings matter here.
    names = itertools.count()
    jax_make = lambda n, **kw: lambda: CnnJax(_config(**kw), n, f'{workdir}/{next(names)}')
    results.update(_measure(config, batches, timed, train_split, test_split, jax_make))
  tables = _throughput_table(results)
  if FLAGS.vmap_seeds:
    tables += [''] + _seeds_table(results['vmap_seeds'])
  if 'time_to_accuracy' in results:
    tables += [''] + _accuracy_table(results)
  print('\n'.join(tables))
  path = pathlib.Path(FLAGS.output)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(results, indent=2) + '\n')
  print(f'\nWrote {path}')
  if FLAGS.markdown:
    footer = provenance.footer(provenance.command_line('experiments.benchmark'))
    markdown = pathlib.Path(FLAGS.markdown)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text('\n'.join([f'{header}.', '', footer, ''] + tables) + '\n')
    print(f'Wrote {markdown}')


if __name__ == '__main__':
  cli.run(main, cache_compiled=False)  # Compile times are cold unless --compilation_cache.
