r"""Steady-state training throughput, cnn_jax vs a plain PyTorch reference, same machine:
python -m experiments.benchmark [--batch_sizes=128,32] [--steps=40]   (pip install -e '.[bench]')

Both train the article's CNN (dropout before FC1, Adam 1e-3) on in-memory random uint8
images (throughput does not depend on pixel values); compile time is reported apart;
each figure is the median of --repeats timings of --steps steps after --warmup steps.
Prints a table with the ratio and writes --output (JSON). Not yet here (issue 4): time to
99% test accuracy.
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
from cnn_jax import models, parallel, run_metrics, train
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_list('batch_sizes', ['128', '32'], 'Batch sizes to time.')
flags.DEFINE_integer('steps', 40, 'Timed steps per repeat.')
flags.DEFINE_integer('warmup', 5, 'Untimed steps first.')
flags.DEFINE_integer('repeats', 3, 'Timings per figure; the median is reported.')
flags.DEFINE_bool('torch', True, 'Also time the PyTorch reference.')
flags.DEFINE_string('output', 'runs/benchmark.json', 'Where the JSON goes.')


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


def time_cnn_jax(batch: int) -> dict[str, float]:
  config = default.get_config()
  config.batch_size = batch
  tx, _ = train.create_optimizer(config, steps_per_epoch=1000)
  dp = parallel.DataParallel.create()
  state = train.create_train_state(jax.random.key(0), models.create_model(config, 10),
                                   (28, 28, 1), tx, dp.replicated)
  images, labels = _data(batch, FLAGS.warmup + FLAGS.steps)
  zeros = train.make_zero_totals(dp)
  start = time.perf_counter()
  abstract = [jax.ShapeDtypeStruct(a.shape[1:], a.dtype, sharding=dp.batch)
              for a in (images, labels)]
  step = train.make_train_step(dp).lower(state, zeros(), *abstract, np.int32(0),
                                         np.int32(0), np.int32(0)).compile()
  compile_seconds = time.perf_counter() - start
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


def time_torch(batch: int) -> dict[str, float]:
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  torch.set_num_threads(len(os.sched_getaffinity(0)))
  model = nn.Sequential(
      nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
      nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
      nn.Dropout(0.25), nn.Linear(3136, 128), nn.Linear(128, 10))
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  images, labels = _data(batch, FLAGS.warmup + FLAGS.steps)
  x_all = torch.from_numpy(images).permute(0, 1, 4, 2, 3).contiguous()  # NCHW
  y_all = torch.from_numpy(labels).long()
  model.train()

  def run(first: int, count: int):
    for i in range(first, first + count):
      x = x_all[i % len(x_all)].float() / 255.0
      optimizer.zero_grad(set_to_none=True)
      loss = nn.functional.cross_entropy(model(x), y_all[i % len(y_all)])
      loss.backward()
      optimizer.step()

  return {'examples_per_second': _throughput(run, batch), 'compile_seconds': 0.0,
          'torch_version': torch.__version__}


def main(argv):
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  results = {'machine': f'{jax.devices()[0].device_kind} ({run_metrics.host_description()})',
             'threads': len(os.sched_getaffinity(0)), 'rows': []}
  print(f"machine: {results['machine']}, {results['threads']} threads\n")
  print('| batch | cnn_jax ex/s | compile s | PyTorch eager ex/s | cnn_jax / PyTorch |')
  print('|---:|---:|---:|---:|---:|')
  for batch in map(int, FLAGS.batch_sizes):
    ours = time_cnn_jax(batch)
    theirs = time_torch(batch) if FLAGS.torch else None
    ratio = ours['examples_per_second'] / theirs['examples_per_second'] if theirs else None
    results['rows'].append({'batch': batch, 'cnn_jax': ours, 'torch': theirs,
                            'ratio': ratio})
    print(f"| {batch} | {ours['examples_per_second']:,.0f} | {ours['compile_seconds']:.1f} | "
          + (f"{theirs['examples_per_second']:,.0f} | {ratio:.2f}× |" if theirs
             else 'not run | |'))
  path = pathlib.Path(FLAGS.output)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(results, indent=2) + '\n')
  print(f'\nWrote {path}')


if __name__ == '__main__':
  cli.run(main)
